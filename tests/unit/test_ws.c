/* test_ws.c - the WebSocket server connection over real sockets.
 *
 * Most cases use a socketpair: the test plays the client on one end (it
 * builds masked frames by hand, as RFC 6455 §5 says a client must) and
 * drives the server with ws_process() after each step, so every exchange
 * is deterministic without threads or sleeps. One case runs the loop with a
 * TCP client on loopback, and one lets the head deadline fire.
 */
#include "loop.h"
#include "testmain.h"
#include "util.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>

#define RFC_KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define UPGRADE                                                                                \
	"GET /rpc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"                       \
	"Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n"                             \
	"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer right\r\n\r\n"

struct t {
	struct loop *l;
	struct ws *w;
	int cfd; /* the client's end */
	/* server side record */
	int requests;
	char *path, *auth, *compression;
	int messages;
	char *last;
	size_t last_len;
	int closed, close_code;
	char close_reason[128];
	int drained;
	bool echo;       /* message_cb echoes */
	bool free_in_closed;
	int readyz;      /* answer for /readyz: status */
	/* client side buffer of server output */
	char *got;
	size_t glen, gcap;
};

static void request_cb(struct ws *w, const struct wshttp_req *rq, struct ws_answer *ans,
		       void *arg)
{
	struct t *t = arg;

	t->requests++;
	free(t->path);
	free(t->auth);
	free(t->compression);
	t->path = xstrdup(rq->path);
	t->auth = rq->authorization ? xstrdup(rq->authorization) : NULL;
	t->compression = rq->compression ? xstrdup(rq->compression) : NULL;
	if (strcmp(rq->path, "/readyz") == 0) {
		ans->status = t->readyz;
		ans->body = xstrdup(t->readyz == 200 ? "ready\n" : "not ready\n");
		return;
	}
	if (rq->kind == WSHTTP_UPGRADE && rq->authorization &&
	    strcmp(rq->authorization, "Bearer right") == 0) {
		ans->upgrade = true;
		return;
	}
	ans->status = rq->kind == WSHTTP_UPGRADE ? 401 : 404;
	ans->body = xstrdup("no\n");
}

static void message_cb(struct ws *w, const char *data, size_t len, void *arg)
{
	struct t *t = arg;

	t->messages++;
	free(t->last);
	t->last = xmalloc(len + 1);
	memcpy(t->last, data, len);
	t->last[len] = '\0';
	t->last_len = len;
	if (t->echo)
		ck_assert_int_eq(ws_send_text(w, data, len), 0);
}

static void closed_cb(struct ws *w, int code, const char *reason, void *arg)
{
	struct t *t = arg;

	t->closed++;
	t->close_code = code;
	snprintf(t->close_reason, sizeof(t->close_reason), "%s", reason);
	if (t->free_in_closed)
		t->w = ws_free(w);
	if (t->l)
		loop_stop(t->l);
}

static void drained_cb(struct ws *w, void *arg)
{
	((struct t *)arg)->drained++;
}

static const struct ws_ops ops = { request_cb, message_cb, closed_cb, drained_cb, NULL };

static void t_init(struct t *t, const struct ws_config *cfg)
{
	int sv[2], err = 0;
	struct ws_config def = { 0 };

	*t = (struct t){ .readyz = 200, .echo = true };
	t->l = loop_new();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0);
	t->cfd = sv[0];
	t->w = ws_new(t->l, sv[1], cfg ? cfg : &def, &ops, t, &err);
	ck_assert_msg(t->w, "ws_new: %d", err);
}

static void t_done(struct t *t)
{
	ws_free(t->w);
	loop_free(t->l);
	close(t->cfd);
	free(t->path);
	free(t->auth);
	free(t->compression);
	free(t->last);
	free(t->got);
}

/* ---- the client ---- */

static void send_raw(struct t *t, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(t->cfd, p, n, MSG_NOSIGNAL);

		ck_assert_msg(w > 0, "client send: %s", strerror(errno));
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

/* One frame as a client sends it (masked), appended to buf. */
static size_t frame(uint8_t *buf, bool fin, uint8_t opcode, const void *payload, size_t len,
		    bool masked)
{
	static const uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d };
	size_t n = 0;

	buf[n++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
	if (len < 126) {
		buf[n++] = (uint8_t)((masked ? 0x80 : 0) | len);
	} else if (len < 65536) {
		buf[n++] = (uint8_t)((masked ? 0x80 : 0) | 126);
		buf[n++] = (uint8_t)(len >> 8);
		buf[n++] = (uint8_t)len;
	} else {
		buf[n++] = (uint8_t)((masked ? 0x80 : 0) | 127);
		for (int i = 7; i >= 0; i--)
			buf[n++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	if (masked) {
		memcpy(buf + n, mask, 4);
		n += 4;
	}
	for (size_t i = 0; i < len; i++)
		buf[n + i] = ((const uint8_t *)payload)[i] ^ (masked ? mask[i % 4] : 0);
	return n + len;
}

static void send_frame(struct t *t, bool fin, uint8_t opcode, const void *p, size_t len)
{
	uint8_t *buf = xmalloc(len + 14);

	send_raw(t, buf, frame(buf, fin, opcode, p, len, true));
	free(buf);
}

/* Reads what the server wrote so far into t->got. */
static void pull(struct t *t)
{
	for (;;) {
		ssize_t n;

		if (t->gcap - t->glen < 65536)
			t->got = xrealloc(t->got, t->gcap = t->gcap * 2 + 65536);
		n = read(t->cfd, t->got + t->glen, t->gcap - t->glen - 1);
		if (n <= 0)
			break;
		t->glen += (size_t)n;
	}
	t->got[t->glen] = '\0';
}

static void step(struct t *t)
{
	ws_process(t->w);
	pull(t);
}

/* Takes the HTTP head the server sent off t->got; returns it. */
static char *take_head(struct t *t)
{
	char *e = strstr(t->got ? t->got : "", "\r\n\r\n");
	size_t n;
	char *head;

	ck_assert_msg(e, "no answer head in %.*s", (int)t->glen, t->got ? t->got : "");
	n = (size_t)(e + 4 - t->got);
	head = xstrndup(t->got, n);
	memmove(t->got, t->got + n, t->glen - n + 1);
	t->glen -= n;
	return head;
}

struct sframe {
	uint8_t opcode;
	bool fin;
	char *payload;
	size_t len;
};

/* Takes one server frame off t->got (servers do not mask). */
static bool take_frame(struct t *t, struct sframe *f)
{
	const uint8_t *p = (const uint8_t *)t->got;
	size_t n = 2, len;

	if (t->glen < 2)
		return false;
	ck_assert_msg(!(p[1] & 0x80), "server frame is masked");
	len = p[1] & 0x7f;
	if (len == 126) {
		if (t->glen < 4)
			return false;
		len = (size_t)p[2] << 8 | p[3];
		n = 4;
	} else if (len == 127) {
		if (t->glen < 10)
			return false;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		n = 10;
	}
	if (t->glen < n + len)
		return false;
	f->fin = p[0] & 0x80;
	f->opcode = p[0] & 0x0f;
	f->payload = xstrndup((const char *)p + n, len);
	f->len = len;
	memmove(t->got, t->got + n + len, t->glen - n - len + 1);
	t->glen -= n + len;
	return true;
}

static void upgrade(struct t *t)
{
	_cleanup_free_ char *head = NULL;

	send_raw(t, UPGRADE, strlen(UPGRADE));
	step(t);
	head = take_head(t);
	ck_assert_str_eq(head, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			       "Connection: Upgrade\r\n"
			       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n");
	ck_assert(ws_is_open(t->w));
}

static void expect_close(struct t *t, int code)
{
	struct sframe f;

	step(t);
	ck_assert_msg(take_frame(t, &f), "no close frame");
	ck_assert_int_eq(f.opcode, 8);
	ck_assert_uint_ge(f.len, 2);
	ck_assert_int_eq(((uint8_t)f.payload[0] << 8) | (uint8_t)f.payload[1], code);
	free(f.payload);
	ck_assert_int_eq(t->closed, 1);
	ck_assert_int_eq(t->close_code, code);
}

/* ---- cases ---- */

START_TEST(upgrade_and_echo_text)
{
	struct t t;
	struct sframe f;

	t_init(&t, NULL);
	upgrade(&t);
	ck_assert_str_eq(t.path, "/rpc");
	ck_assert_str_eq(t.auth, "Bearer right");
	send_frame(&t, true, 1, "{\"id\":1,\"method\":\"initialize\"}", 30);
	step(&t);
	ck_assert_int_eq(t.messages, 1);
	ck_assert_str_eq(t.last, "{\"id\":1,\"method\":\"initialize\"}");
	ck_assert(take_frame(&t, &f));
	ck_assert_int_eq(f.opcode, 1);
	ck_assert(f.fin);
	ck_assert_str_eq(f.payload, "{\"id\":1,\"method\":\"initialize\"}");
	free(f.payload);
	/* A message of 70000 bytes: the 64-bit length form both ways. */
	{
		char *big = xmalloc(70000);

		memset(big, 'x', 70000);
		send_frame(&t, true, 1, big, 70000);
		step(&t);
		ck_assert_uint_eq(t.last_len, 70000);
		ck_assert(take_frame(&t, &f));
		ck_assert_uint_eq(f.len, 70000);
		ck_assert_int_eq(memcmp(f.payload, big, 70000), 0);
		free(f.payload);
		free(big);
	}
	ck_assert_int_eq(t.closed, 0);
	t_done(&t);
}
END_TEST

START_TEST(frame_right_after_the_head)
{
	struct t t;
	uint8_t buf[256];
	size_t n = strlen(UPGRADE);

	t_init(&t, NULL);
	memcpy(buf, UPGRADE, n);
	n += frame(buf + n, true, 1, "{}", 2, true);
	send_raw(&t, buf, n);
	step(&t);
	free(take_head(&t));
	ck_assert_int_eq(t.messages, 1);
	ck_assert_str_eq(t.last, "{}");
	t_done(&t);
}
END_TEST

START_TEST(fragments_and_ping)
{
	struct t t;
	struct sframe f;

	t_init(&t, NULL);
	t.echo = false;
	upgrade(&t);
	send_frame(&t, false, 1, "{\"a\":", 5);
	step(&t);
	ck_assert_int_eq(t.messages, 0);
	/* A ping between fragments is answered at once with its payload. */
	send_frame(&t, true, 9, "hb", 2);
	step(&t);
	ck_assert(take_frame(&t, &f));
	ck_assert_int_eq(f.opcode, 10);
	ck_assert_str_eq(f.payload, "hb");
	free(f.payload);
	send_frame(&t, false, 0, "\"\xc3", 2); /* a character split across fragments */
	send_frame(&t, true, 0, "\xa9\"}", 3);
	step(&t);
	ck_assert_int_eq(t.messages, 1);
	ck_assert_str_eq(t.last, "{\"a\":\"\xc3\xa9\"}");
	t_done(&t);
}
END_TEST

START_TEST(close_handshake_from_client)
{
	struct t t;
	uint8_t payload[] = { 0x03, 0xe8, 'b', 'y', 'e' }; /* 1000 */

	t_init(&t, NULL);
	upgrade(&t);
	send_frame(&t, true, 8, payload, sizeof(payload));
	expect_close(&t, 1000);
	ck_assert_str_eq(t.close_reason, "closed by the peer");
	ck_assert_int_eq(ws_send_text(t.w, "{}", 2), -EPIPE);
	t_done(&t);
}
END_TEST

START_TEST(server_close_with_code)
{
	struct t t;
	struct sframe f;

	t_init(&t, NULL);
	upgrade(&t);
	ws_close(t.w, WS_CLOSE_GOING_AWAY, "shutting down");
	ck_assert(!ws_is_open(t.w));
	step(&t);
	ck_assert(take_frame(&t, &f));
	ck_assert_int_eq(f.opcode, 8);
	ck_assert_str_eq(f.payload + 2, "shutting down");
	free(f.payload);
	ck_assert_int_eq(t.closed, 1);
	ck_assert_int_eq(t.close_code, WS_CLOSE_GOING_AWAY);
	t_done(&t);
}
END_TEST

START_TEST(hostile_messages_get_their_close_codes)
{
	static const struct {
		uint8_t opcode;
		const char *payload;
		size_t len;
		int code;
	} cases[] = {
		{ 2, "\x00\x01", 2, WS_CLOSE_UNSUPPORTED },  /* binary */
		{ 1, "\xc3\x28", 2, WS_CLOSE_BAD_DATA },    /* invalid UTF-8 */
		{ 1, "\xed\xa0\x80", 3, WS_CLOSE_BAD_DATA }, /* a surrogate */
		{ 1, "\xc0\xaf", 2, WS_CLOSE_BAD_DATA },    /* overlong */
		{ 3, "x", 1, WS_CLOSE_PROTOCOL },          /* reserved opcode */
		{ 0, "x", 1, WS_CLOSE_PROTOCOL },          /* continuation of nothing */
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct t t;

		t_init(&t, NULL);
		upgrade(&t);
		send_frame(&t, true, cases[i].opcode, cases[i].payload, cases[i].len);
		expect_close(&t, cases[i].code);
		ck_assert_int_eq(t.messages, 0);
		t_done(&t);
	}
}
END_TEST

START_TEST(unmasked_and_rsv_frames_are_protocol_errors)
{
	struct t t;
	uint8_t buf[32];
	size_t n;

	t_init(&t, NULL);
	upgrade(&t);
	send_raw(&t, buf, frame(buf, true, 1, "{}", 2, false));
	expect_close(&t, WS_CLOSE_PROTOCOL);
	t_done(&t);

	t_init(&t, NULL);
	upgrade(&t);
	n = frame(buf, true, 1, "{}", 2, true);
	buf[0] |= 0x40; /* RSV1: compression that was never negotiated */
	send_raw(&t, buf, n);
	expect_close(&t, WS_CLOSE_PROTOCOL);
	ck_assert_int_eq(t.messages, 0);
	t_done(&t);
}
END_TEST

START_TEST(message_over_the_maximum_is_1009)
{
	struct ws_config cfg = { .max_message = 100 };
	struct t t;
	char big[101];

	memset(big, 'a', sizeof(big));
	t_init(&t, &cfg);
	t.echo = false;
	upgrade(&t);
	send_frame(&t, true, 1, big, 100); /* at the bound: fine */
	step(&t);
	ck_assert_int_eq(t.messages, 1);
	/* Over it in fragments, each under it. */
	send_frame(&t, false, 1, big, 60);
	send_frame(&t, true, 0, big, 41);
	expect_close(&t, WS_CLOSE_TOO_BIG);
	ck_assert_int_eq(t.messages, 1);
	t_done(&t);
}
END_TEST

START_TEST(peer_vanishes_is_1006)
{
	struct t t;

	t_init(&t, NULL);
	t.free_in_closed = true;
	upgrade(&t);
	send_frame(&t, false, 1, "{", 1);
	shutdown(t.cfd, SHUT_WR);
	/* A short read ends a pass (the socket is taken for empty); the EOF
	 * is read on the next one, as the loop's next readiness would. */
	ws_process(t.w);
	ws_process(t.w);
	ck_assert_int_eq(t.closed, 1);
	ck_assert_int_eq(t.close_code, WS_CLOSE_ABNORMAL);
	ck_assert_ptr_null(t.w); /* freed from closed_cb */
	t_done(&t);
}
END_TEST

START_TEST(plain_requests_get_plain_answers)
{
	static const struct {
		const char *req;
		int readyz;
		const char *status;
	} cases[] = {
		{ "GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", 200, "HTTP/1.1 200 OK\r\n" },
		{ "GET /readyz HTTP/1.1\r\nHost: h\r\n\r\n", 503, "HTTP/1.1 503 Service" },
		{ "GET /other HTTP/1.1\r\n\r\n", 200, "HTTP/1.1 404 Not Found\r\n" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 13\r\n"
		  "Authorization: Bearer wrong\r\n\r\n",
		  200, "HTTP/1.1 401 Unauthorized\r\n" },
		{ "GET /rpc HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		  "Sec-WebSocket-Key: " RFC_KEY "\r\nSec-WebSocket-Version: 7\r\n\r\n",
		  200, "HTTP/1.1 426 Upgrade Required\r\n" },
		{ "GET rpc HTTP/1.1\r\n\r\n", 200, "HTTP/1.1 400 Bad Request\r\n" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct t t;

		t_init(&t, NULL);
		t.readyz = cases[i].readyz;
		send_raw(&t, cases[i].req, strlen(cases[i].req));
		step(&t);
		ck_assert_msg(t.glen && strncmp(t.got, cases[i].status, strlen(cases[i].status)) == 0,
			      "case %zu: %s", i, t.got ? t.got : "(nothing)");
		ck_assert(strstr(t.got, "\r\nConnection: close\r\n"));
		/* The server shut its side: EOF after the answer... */
		ck_assert_int_eq(read(t.cfd, (char[1]){ 0 }, 1), 0);
		ck_assert_int_eq(t.closed, 0);
		/* ...and ends once we close ours. */
		shutdown(t.cfd, SHUT_WR);
		ws_process(t.w);
		ck_assert_int_eq(t.closed, 1);
		ck_assert_int_eq(t.close_code, atoi(cases[i].status + 9));
		ck_assert_int_eq(ws_send_text(t.w, "{}", 2), -EPIPE);
		t_done(&t);
	}
}
END_TEST

START_TEST(oversized_head_is_431)
{
	struct t t;
	char *junk = xmalloc(WSHTTP_MAX_HEAD + 100);

	memset(junk, 'a', WSHTTP_MAX_HEAD + 100);
	memcpy(junk, "GET /", 5);
	t_init(&t, NULL);
	send_raw(&t, junk, WSHTTP_MAX_HEAD + 100);
	step(&t);
	ck_assert_msg(t.glen && strncmp(t.got, "HTTP/1.1 431 ", 13) == 0, "%s", t.got);
	ck_assert_int_eq(t.requests, 0);
	free(junk);
	t_done(&t);
}
END_TEST

START_TEST(prefix_from_sniffing)
{
	struct ws_config cfg = { .prefix = "GET /rp", .prefix_len = 7 };
	struct t t;
	_cleanup_free_ char *head = NULL;
	const char *rest = UPGRADE + 7;

	t_init(&t, &cfg);
	send_raw(&t, rest, strlen(rest));
	step(&t);
	head = take_head(&t);
	ck_assert_ptr_nonnull(strstr(head, "101 Switching Protocols"));
	ck_assert_str_eq(t.path, "/rpc");
	t_done(&t);
}
END_TEST

START_TEST(backpressure_refuses_then_drains)
{
	struct ws_config cfg = { .max_queue = 64 * 1024 };
	struct t t;
	char *msg = xmalloc(16 * 1024);
	int small = 4096, sent = 0, r;
	struct sframe f;

	t_init(&t, &cfg);
	t.echo = false;
	upgrade(&t);
	memset(msg, 'm', 16 * 1024);
	/* The client reads nothing: the socket fills, then the queue. */
	(void)setsockopt(t.cfd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	for (int i = 0; i < 10000 && (r = ws_send_text(t.w, msg, 16 * 1024)) == 0; i++)
		sent++;
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert_uint_le(ws_queued(t.w), cfg.max_queue);
	ck_assert_int_eq(ws_send_text(t.w, msg, 65 * 1024), -EMSGSIZE);
	ck_assert_int_eq(t.drained, 0);
	/* The client reads; the queue drains and the caller hears of it. */
	for (int i = 0; i < 1000 && t.drained == 0; i++)
		step(&t);
	ck_assert_int_eq(t.drained, 1);
	ck_assert_int_eq(ws_send_text(t.w, msg, 16 * 1024), 0);
	sent++;
	for (int i = 0, got = 0; got < sent; i++) {
		ck_assert_msg(i < 10000, "only %d of %d frames arrived", got, sent);
		step(&t);
		while (take_frame(&t, &f)) {
			ck_assert_uint_eq(f.len, 16 * 1024);
			free(f.payload);
			got++;
		}
	}
	free(msg);
	t_done(&t);
}
END_TEST

START_TEST(head_deadline_ends_idle_peer)
{
	struct ws_config cfg = { .head_timeout_ms = 20 };
	struct t t;

	t_init(&t, &cfg);
	send_raw(&t, "GET /rpc HTTP/1.1\r\n", 19);
	ck_assert_int_eq(loop_run(t.l), 0); /* closed_cb stops it */
	ck_assert_int_eq(t.closed, 1);
	ck_assert_int_eq(t.close_code, 0);
	ck_assert_int_eq(t.requests, 0);
	ck_assert_int_eq(read(t.cfd, (char[1]){ 0 }, 1), 0); /* closed, nothing said */
	t_done(&t);
}
END_TEST

/* ---- over TCP with the loop running ---- */

struct tcp {
	struct t t;
	int lfd;
	uint16_t port;
	char reply[256];
	int err;
};

static void tcp_accept_cb(struct loop_io *io, int fd, uint32_t ev, void *arg)
{
	struct tcp *c = arg;
	int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), err = 0;
	struct ws_config cfg = { .head_timeout_ms = 60000 };

	ck_assert_int_ge(cfd, 0);
	c->t.w = ws_new(c->t.l, cfd, &cfg, &ops, &c->t, &err);
	ck_assert_ptr_nonnull(c->t.w);
	loop_io_del(io);
}

static void *tcp_client(void *arg)
{
	struct tcp *c = arg;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(c->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct timeval tv = { .tv_sec = 60 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint8_t buf[64];
	size_t n = 0;
	uint8_t closing[] = { 0x03, 0xe8 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		c->err = errno;
		close(fd);
		return NULL;
	}
	(void)!write(fd, UPGRADE, strlen(UPGRADE));
	(void)!write(fd, buf, frame(buf, true, 1, "{\"id\":7}", 8, true));
	/* The 101 and the echo, then our close (a close answered first would
	 * end the exchange before the echo), then the server's close. */
	while (n < sizeof(c->reply) - 1 && !(strstr(c->reply, "\r\n\r\n") &&
					     strstr(c->reply, "\r\n\r\n") + 14 <= c->reply + n)) {
		ssize_t r = read(fd, c->reply + n, sizeof(c->reply) - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
		c->reply[n] = '\0';
	}
	(void)!write(fd, buf, frame(buf, true, 8, closing, 2, true));
	while (n < sizeof(c->reply) - 1) {
		ssize_t r = read(fd, c->reply + n, sizeof(c->reply) - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	c->reply[n] = '\0';
	close(fd);
	return NULL;
}

START_TEST(tcp_exchange_on_the_loop)
{
	struct tcp c = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	pthread_t th;
	const char *frames;

	c.t = (struct t){ .echo = true, .readyz = 200 };
	c.t.l = loop_new();
	c.t.cfd = -1;
	c.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ck_assert_int_eq(bind(c.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(c.lfd, 4), 0);
	ck_assert_int_eq(getsockname(c.lfd, (struct sockaddr *)&a, &alen), 0);
	c.port = ntohs(a.sin_port);
	ck_assert_ptr_nonnull(loop_io_add(c.t.l, c.lfd, LOOP_READ, tcp_accept_cb, &c));
	ck_assert_int_eq(pthread_create(&th, NULL, tcp_client, &c), 0);
	ck_assert_int_eq(loop_run(c.t.l), 0); /* until closed_cb */
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(c.err, 0);
	ck_assert_int_eq(c.t.messages, 1);
	ck_assert_int_eq(c.t.close_code, 1000);
	frames = strstr(c.reply, "\r\n\r\n");
	ck_assert_ptr_nonnull(frames);
	frames += 4;
	/* The echo (text, 8 bytes), then the close echoing 1000. */
	ck_assert_int_eq((uint8_t)frames[0], 0x81);
	ck_assert_int_eq(frames[1], 8);
	ck_assert_int_eq(memcmp(frames + 2, "{\"id\":7}", 8), 0);
	ck_assert_int_eq((uint8_t)frames[10], 0x88);
	close(c.lfd);
	t_done(&c.t);
}
END_TEST

START_TEST(new_rejects_bad_arguments)
{
	struct loop *l = loop_new();
	struct ws_config cfg = { .prefix_len = 3 };
	int err = 0, fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	ck_assert_ptr_null(ws_new(l, fd, &cfg, &ops, NULL, &err)); /* prefix_len, no prefix */
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* fd closed */
	ck_assert_ptr_null(ws_free(NULL));
	loop_free(l);
}
END_TEST

static Suite *ws_suite(void)
{
	Suite *s = suite_create("ws");
	TCase *tc = tcase_create("ws");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, upgrade_and_echo_text);
	tcase_add_test(tc, frame_right_after_the_head);
	tcase_add_test(tc, fragments_and_ping);
	tcase_add_test(tc, close_handshake_from_client);
	tcase_add_test(tc, server_close_with_code);
	tcase_add_test(tc, hostile_messages_get_their_close_codes);
	tcase_add_test(tc, unmasked_and_rsv_frames_are_protocol_errors);
	tcase_add_test(tc, message_over_the_maximum_is_1009);
	tcase_add_test(tc, peer_vanishes_is_1006);
	tcase_add_test(tc, plain_requests_get_plain_answers);
	tcase_add_test(tc, oversized_head_is_431);
	tcase_add_test(tc, prefix_from_sniffing);
	tcase_add_test(tc, backpressure_refuses_then_drains);
	tcase_add_test(tc, head_deadline_ends_idle_peer);
	tcase_add_test(tc, tcp_exchange_on_the_loop);
	tcase_add_test(tc, new_rejects_bad_arguments);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(ws_suite)
