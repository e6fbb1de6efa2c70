/* fuzz_httpd.c - libFuzzer target for the OAuth callback's request parsing:
 * the loopback server's head framing and request-line parser (httpd.c),
 * then the query lookups the callback does (urlutil.c url_query_get).
 *
 * Checks beyond "no crash, no leak": the end of the head does not depend on
 * how the bytes arrive (whole, byte by byte, pseudo-random chunks, the way
 * conn_read_head calls it), never lies past the HTTPD_MAX_HEAD bytes the
 * server keeps, and a parsed request has the shape httpd.h promises
 * (token method, origin-form path without '?', query without '#').
 */
#include "httpd.h"
#include "urlutil.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_httpd: %s\n", what);
		abort();
	}
}

/* The server's way: bytes arrive in chunks into a buffer of at most
 * HTTPD_MAX_HEAD bytes; each call searches only the new ones. */
static size_t end_in_chunks(const char *s, size_t n, unsigned step)
{
	uint32_t rng = step;
	size_t have = 0;

	n = n < HTTPD_MAX_HEAD ? n : HTTPD_MAX_HEAD;
	while (have < n) {
		size_t chunk = n - have, end;

		if (step == 1) {
			chunk = 1;
		} else if (step > 1) {
			rng = rng * 1103515245u + 12345u;
			chunk = 1 + (rng >> 16) % 23;
			chunk = chunk < n - have ? chunk : n - have;
		}
		end = httpd_head_end(s, have + chunk, have);
		have += chunk;
		if (end)
			return end;
	}
	return 0;
}

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static void check_request(const struct httpd_request *rq)
{
	expect(*rq->method != '\0', "empty method");
	for (const char *p = rq->method; *p; p++)
		expect(is_tchar(*p), "method is not a token");
	expect(rq->path[0] == '/', "path is not origin-form");
	expect(!strchr(rq->path, '?') && !strchr(rq->path, '#'), "path holds ? or #");
	expect(!strchr(rq->query, '#'), "query holds #");
	for (const char *p = rq->path; *p; p++)
		expect(*p > 0x20 && *p < 0x7f, "path holds a byte outside visible ASCII");
}

static void lookups(const char *query)
{
	static const char *const names[] = { "code", "state", "error", "error_description", "" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *v = url_query_get(query, names[i]);

		free(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = size ? (const char *)data : "";
	size_t end = end_in_chunks(s, size, 0);
	struct httpd_request rq;
	char *head;

	for (unsigned step = 1; step <= 3; step++)
		expect(end_in_chunks(s, size, step) == end, "head end depends on the chunking");
	expect(end <= HTTPD_MAX_HEAD && end <= size, "head end out of bounds");
	if (!end)
		return 0;
	/* Exactly end bytes: a sanitizer sees any read past the head. */
	head = malloc(end);
	expect(head != NULL, "out of memory");
	memcpy(head, s, end);
	if (httpd_parse_request(head, end, &rq) == 0) {
		check_request(&rq);
		lookups(rq.query);
	}
	free(head);
	return 0;
}
