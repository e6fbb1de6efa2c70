/* fuzz_ws.c - libFuzzer target for the WebSocket server connection
 * (common/ws.c on libwslay): arbitrary bytes from a client.
 *
 * First byte: bit 0 set, the bytes follow a valid upgrade (frames: the
 * framing, fragmentation, control frames, close codes, UTF-8 and size
 * checks); clear, they are the whole stream (the request head too). The
 * other bits pick the message bound and the chunking. The bytes go through
 * a real socketpair, in chunks, with ws_process() after each, and whatever
 * the server writes is read back. Beyond "no crash, no leak": every message
 * handed to the caller is valid UTF-8 within the bound, nothing is handed
 * out after the close, and closed_cb runs at most once.
 */
#include "loop.h"
#include "ws.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define UPGRADE                                                                                \
	"GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"         \
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"

struct st {
	size_t max;
	int closed, messages;
	bool echo;
};

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_ws: %s\n", what);
		abort();
	}
}

/* An independent strict UTF-8 check (RFC 3629). */
static bool utf8_ok(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		unsigned c = s[i], k = c < 0x80 ? 0 : c < 0xc2 ? 9 : c < 0xe0 ? 1 : c < 0xf0 ? 2
				      : c < 0xf5 ? 3 : 9;
		unsigned long cp = k == 0 ? c : k == 1 ? (c & 0x1f) : k == 2 ? (c & 0x0f) : (c & 7);

		if (k == 9 || n - i <= k)
			return false;
		for (unsigned j = 1; j <= k; j++) {
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

static void request_cb(struct ws *w, const struct wshttp_req *rq, struct ws_answer *ans,
		       void *arg)
{
	ans->upgrade = rq->kind == WSHTTP_UPGRADE;
	if (!ans->upgrade)
		ans->status = strcmp(rq->path, "/readyz") == 0 ? 200 : 404;
}

static void message_cb(struct ws *w, const char *data, size_t len, void *arg)
{
	struct st *s = arg;

	expect(s->closed == 0, "message after the close");
	expect(len <= s->max, "message over the bound");
	expect(utf8_ok((const unsigned char *)data, len), "message is not UTF-8");
	s->messages++;
	if (s->echo)
		(void)ws_send_text(w, data, len);
}

static void closed_cb(struct ws *w, int code, const char *reason, void *arg)
{
	struct st *s = arg;

	expect(reason != NULL, "no reason");
	s->closed++;
}

static const struct ws_ops ops = { request_cb, message_cb, closed_cb, NULL, NULL };

static void drain(int fd)
{
	char buf[65536];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 16, 1000, 70000 };
	static struct loop *l;
	struct st s = { 0 };
	struct ws_config cfg = { 0 };
	struct ws *w;
	uint32_t rng;
	size_t at = 1;
	int sv[2], err = 0;

	if (size == 0)
		return 0;
	if (!l)
		expect((l = loop_new()) != NULL, "loop_new");
	cfg.max_message = maxes[(data[0] >> 1) & 3];
	s.max = cfg.max_message ? cfg.max_message : WS_DEFAULT_MAX_MESSAGE;
	s.echo = data[0] & 0x40;
	rng = data[0] >> 3;
	expect(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) == 0,
	       "socketpair");
	w = ws_new(l, sv[1], &cfg, &ops, &s, &err);
	expect(w != NULL, "ws_new");
	if (data[0] & 1) {
		expect(send(sv[0], UPGRADE, strlen(UPGRADE), MSG_NOSIGNAL) == (ssize_t)strlen(UPGRADE),
		       "write");
		ws_process(w);
		drain(sv[0]);
	}
	while (at < size && s.closed == 0) {
		size_t chunk = size - at;
		ssize_t n;

		rng = rng * 1103515245u + 12345u;
		if (rng & 0x10000)
			chunk = 1 + (rng >> 17) % 64;
		chunk = chunk < size - at ? chunk : size - at;
		chunk = chunk < 32768 ? chunk : 32768;
		n = send(sv[0], data + at, chunk, MSG_NOSIGNAL);
		if (n <= 0)
			break; /* the server stopped reading: it has closed */
		at += (size_t)n;
		ws_process(w);
		drain(sv[0]);
	}
	shutdown(sv[0], SHUT_WR);
	for (int i = 0; i < 4 && s.closed == 0; i++) {
		ws_process(w);
		drain(sv[0]);
	}
	expect(s.closed <= 1, "closed_cb more than once");
	ws_free(w);
	close(sv[0]);
	return 0;
}
