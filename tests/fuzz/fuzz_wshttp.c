/* fuzz_wshttp.c - libFuzzer target for the WebSocket upgrade parser
 * (common/wshttp.c): the head framing, the request line and header fields,
 * the RFC 6455 checks, and the answers built from what was parsed.
 *
 * Beyond "no crash, no leak": the head end does not depend on chunking; a
 * request classified as an upgrade really has GET, HTTP/1.1 or later, a
 * Host, and a 24-character key, and its 101 carries a 28-character accept;
 * a bad upgrade always says why with a 400 or 426; the sniffer's verdict is
 * consistent with the first byte.
 */
#include "wshttp.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_wshttp: %s\n", what);
		abort();
	}
}

static size_t end_in_chunks(const char *s, size_t n, unsigned step)
{
	uint32_t rng = step;
	size_t have = 0;

	n = n < WSHTTP_MAX_HEAD ? n : WSHTTP_MAX_HEAD;
	while (have < n) {
		size_t chunk = n - have, end;

		if (step) {
			rng = rng * 1103515245u + 12345u;
			chunk = 1 + (rng >> 16) % (step == 1 ? 1 : 31);
			chunk = chunk < n - have ? chunk : n - have;
		}
		end = wshttp_head_end(s, have + chunk, have);
		have += chunk;
		if (end)
			return end;
	}
	return 0;
}

static void check_parsed(const struct wshttp_req *rq)
{
	char *ans;
	size_t len;

	switch (rq->kind) {
	case WSHTTP_UPGRADE:
		expect(strcmp(rq->method, "GET") == 0, "upgrade without GET");
		expect(strcmp(rq->version, "HTTP/1.1") >= 0, "upgrade below HTTP/1.1");
		expect(rq->host && rq->key && strlen(rq->key) == 24, "upgrade without host or key");
		expect(rq->ws_version && strcmp(rq->ws_version, "13") == 0, "upgrade not version 13");
		ans = wshttp_answer_upgrade(rq);
		expect(strstr(ans, "Sec-WebSocket-Accept: ") &&
		       strlen(strstr(ans, "Sec-WebSocket-Accept: ")) == 22 + 28 + 4,
		       "accept value not 28 characters");
		free(ans);
		break;
	case WSHTTP_BAD_UPGRADE:
		expect(rq->bad_reason && (rq->bad_status == 400 || rq->bad_status == 426),
		       "bad upgrade without a reason or status");
		ans = wshttp_answer(rq->bad_status, NULL, rq->bad_reason, false, &len);
		expect(len == strlen(ans), "answer length");
		free(ans);
		break;
	case WSHTTP_PLAIN:
		/* The caller may echo parsed values into an answer. */
		ans = wshttp_answer(200, rq->compression, rq->path, strcmp(rq->method, "HEAD") == 0,
				    &len);
		expect(len == strlen(ans), "answer length");
		free(ans);
		break;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = size ? (const char *)data : "";
	enum wshttp_sniff sn = wshttp_sniff(s, size);
	size_t end = end_in_chunks(s, size, 0);
	struct wshttp_req rq;
	char *head;
	int r;

	expect(size == 0 || (sn == WSHTTP_SNIFF_JSON_LINE) == (s[0] == '{'), "sniff of '{'");
	expect(sn != WSHTTP_SNIFF_MORE || size < 16, "sniff wants more after 16 bytes");
	for (unsigned step = 1; step <= 3; step++)
		expect(end_in_chunks(s, size, step) == end, "head end depends on the chunking");
	if (!end)
		return 0;
	head = malloc(end);
	expect(head != NULL, "out of memory");
	memcpy(head, s, end);
	r = wshttp_parse(head, end, &rq);
	expect(r == 0 || r == -EINVAL || r == -E2BIG, "unexpected error");
	if (r == 0)
		check_parsed(&rq);
	free(head);
	return 0;
}
