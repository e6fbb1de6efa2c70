/* test_httpd.c - the loopback callback server on a real loop with real
 * sockets.
 *
 * The loop runs on the test's main thread; a client thread plays the
 * browser with blocking sockets, then stops the loop. The client thread
 * only records what it saw (check's assertions are not thread-safe when
 * CK_FORK=no): the main thread asserts after joining it.
 *
 * When the client must know what the server has done, it asks the loop:
 * srv_barrier() returns after the loop has handled everything the client
 * sent (accepted its connections and read their bytes), srv_wait_conns() once the server holds a
 * given number of connections. No sleeps, no timing thresholds.
 */
#include "httpd.h"
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>

#define MAX_STEPS 8
#define SAFETY_TIMEOUT_S 60 /* only so that a broken server cannot hang the suite */

struct reply {
	char *data; /* NUL-terminated copy of everything read */
	size_t len;
	int err; /* 0: the server closed cleanly; else errno of the failed read */
};

struct srv {
	struct loop *l;
	struct httpd *d;
	uint16_t port;
	int sync[2]; /* loop -> client thread: "your barrier has passed" */

	/* What the handler answers (set before the loop runs). */
	int status;
	const char *ctype;
	const char *body;
	size_t big; /* nonzero: answer paths under /big with this many bytes */

	/* What the handler saw (loop thread). */
	int calls;
	char *method, *path, *query;

	/* What the client saw (client thread; read after join). */
	void (*client)(struct srv *s);
	struct reply r[MAX_STEPS];
	long v[MAX_STEPS];
};

/* ---- server side ---- */

static void handler_cb(const struct httpd_request *rq, struct httpd_response *resp, void *arg)
{
	struct srv *s = arg;

	s->calls++;
	free(s->method);
	free(s->path);
	free(s->query);
	s->method = xstrdup(rq->method);
	s->path = xstrdup(rq->path);
	s->query = xstrdup(rq->query);
	ck_assert_int_eq(resp->status, 200);
	ck_assert_ptr_null(resp->content_type);
	ck_assert_ptr_null(resp->body);
	if (s->status)
		resp->status = s->status;
	resp->content_type = s->ctype;
	if (s->big && strncmp(rq->path, "/big", 4) == 0) {
		resp->body = xmalloc(s->big + 1);
		for (size_t i = 0; i < s->big; i++)
			resp->body[i] = (char)('a' + i % 26);
		resp->body[s->big] = '\0';
	} else if (s->body) {
		resp->body = xstrdup(s->body);
	}
}

static void srv_init(struct srv *s)
{
	int err = 0;

	*s = (struct srv){ 0 };
	s->l = loop_new();
	ck_assert_ptr_nonnull(s->l);
	s->d = httpd_new(s->l, "127.0.0.1", 0, handler_cb, s, &err);
	ck_assert_msg(s->d, "httpd_new: %d", err);
	s->port = httpd_port(s->d);
	ck_assert_uint_ne(s->port, 0);
	ck_assert_int_eq(pipe2(s->sync, O_CLOEXEC), 0);
	/* Tests of the head deadline set it; the others must not race it. */
	httpd_set_head_timeout_ms(s->d, 1000 * SAFETY_TIMEOUT_S);
}

static void srv_done(struct srv *s)
{
	httpd_free(s->d);
	loop_free(s->l);
	close(s->sync[0]);
	close(s->sync[1]);
	free(s->method);
	free(s->path);
	free(s->query);
	for (size_t i = 0; i < MAX_STEPS; i++)
		free(s->r[i].data);
}

static void *client_main(void *arg)
{
	struct srv *s = arg;

	s->client(s);
	loop_stop(s->l);
	return NULL;
}

static void srv_run(struct srv *s, void (*client)(struct srv *))
{
	pthread_t th;

	s->client = client;
	ck_assert_int_eq(pthread_create(&th, NULL, client_main, s), 0);
	ck_assert_int_eq(loop_run(s->l), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
}

/* ---- synchronisation with the loop (called from the client thread) ---- */

struct barrier {
	struct srv *s;
	size_t want; /* SIZE_MAX: plain barrier */
	int calls;
	size_t nconns;
	int hops;
};

static void barrier_signal(struct barrier *b)
{
	b->calls = b->s->calls;
	b->nconns = b->s->d ? httpd_nconns(b->s->d) : 0;
	ck_assert_int_eq(write(b->s->sync[1], "x", 1), 1);
}

static void conns_recheck_cb(struct loop_timer *t, void *arg)
{
	struct barrier *b = arg;

	if (httpd_nconns(b->s->d) == b->want)
		barrier_signal(b);
	else
		loop_timer_rearm(t, 1);
}

static void barrier_last_cb(void *arg)
{
	struct barrier *b = arg;

	if (b->want == SIZE_MAX || httpd_nconns(b->s->d) == b->want)
		barrier_signal(b);
	else
		loop_timer_add(b->s->l, 1, conns_recheck_cb, b);
}

/* The first hop runs in an iteration that began after the client's last
 * action (posts only run when the eventfd wakes the loop). A new connection
 * needs one iteration to be accepted and the next to be read: a third hop
 * runs after both. */
static void barrier_hop_cb(void *arg)
{
	struct barrier *b = arg;

	ck_assert_int_eq(loop_post(b->s->l, ++b->hops == 3 ? barrier_last_cb : barrier_hop_cb, b),
			 0);
}

static void barrier_wait(struct barrier *b)
{
	char c;

	if (loop_post(b->s->l, barrier_hop_cb, b) == 0)
		(void)read(b->s->sync[0], &c, 1);
}

/* Returns the handler's call count once the loop has caught up. */
static int srv_barrier(struct srv *s)
{
	struct barrier b = { .s = s, .want = SIZE_MAX, .calls = -1 };

	barrier_wait(&b);
	return b.calls;
}

static void srv_wait_conns(struct srv *s, size_t want)
{
	struct barrier b = { .s = s, .want = want };

	barrier_wait(&b);
}

/* ---- client side ---- */

static int cli_connect(uint16_t port, int rcvbuf)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = SAFETY_TIMEOUT_S };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (rcvbuf)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int cli_send(int fd, const void *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

static void cli_read_all(int fd, struct reply *r)
{
	size_t cap = 4096;

	r->data = xmalloc(cap);
	r->len = 0;
	r->err = 0;
	for (;;) {
		ssize_t n;

		if (cap - r->len < 4096)
			r->data = xrealloc(r->data, cap *= 2);
		n = read(fd, r->data + r->len, cap - r->len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			r->err = errno;
		if (n <= 0)
			break;
		r->len += (size_t)n;
	}
	r->data[r->len] = '\0';
}

/* One complete exchange on a fresh connection. */
static void cli_exchange(struct srv *s, const char *req, size_t len, struct reply *r)
{
	int fd = cli_connect(s->port, 0);

	if (fd < 0) {
		*r = (struct reply){ .data = xstrdup(""), .err = -1 };
		return;
	}
	if (cli_send(fd, req, len) < 0)
		r->err = -2;
	cli_read_all(fd, r);
	close(fd);
}

static void cli_get(struct srv *s, const char *req, struct reply *r)
{
	cli_exchange(s, req, strlen(req), r);
}

/* ---- expectations ---- */

static char *response(const char *status, const char *ctype, const char *body, bool head)
{
	return xasprintf("HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
			 "Connection: close\r\nCache-Control: no-store\r\n\r\n%s",
			 status, ctype ? ctype : "text/plain; charset=utf-8", strlen(body),
			 strncmp(status, "405", 3) == 0 ? "Allow: GET, HEAD\r\n" : "",
			 head ? "" : body);
}

static void expect_reply(const struct reply *r, const char *status, const char *ctype,
			 const char *body, bool head)
{
	_cleanup_free_ char *want = response(status, ctype, body, head);

	ck_assert_int_eq(r->err, 0);
	ck_assert_str_eq(r->data, want);
}

static void expect_status(const struct reply *r, const char *status)
{
	_cleanup_free_ char *line = xasprintf("HTTP/1.1 %s\r\n", status);

	ck_assert_int_eq(r->err, 0);
	ck_assert_msg(strncmp(r->data, line, strlen(line)) == 0, "got \"%.40s\", want %s", r->data,
		      status);
}

/* ---- requests that reach the handler ---- */

static void get_callback_client(struct srv *s)
{
	cli_get(s, "GET /callback/x?code=a&state=b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", &s->r[0]);
}

START_TEST(get_reaches_handler)
{
	struct srv s;

	srv_init(&s);
	s.body = "done";
	srv_run(&s, get_callback_client);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.method, "GET");
	ck_assert_str_eq(s.path, "/callback/x");
	ck_assert_str_eq(s.query, "code=a&state=b");
	expect_reply(&s.r[0], "200 OK", NULL, "done", false);
	srv_done(&s);
}
END_TEST

static void lf_only_client(struct srv *s)
{
	cli_get(s, "GET /plain HTTP/1.0\nHost: x\n\nignored body", &s->r[0]);
}

START_TEST(bare_lf_no_query_no_body)
{
	struct srv s;

	srv_init(&s);
	srv_run(&s, lf_only_client);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/plain");
	ck_assert_str_eq(s.query, "");
	expect_reply(&s.r[0], "200 OK", NULL, "", false);
	srv_done(&s);
}
END_TEST

static void head_client(struct srv *s)
{
	cli_get(s, "HEAD /cb?x=1 HTTP/1.1\r\n\r\n", &s->r[0]);
}

START_TEST(head_has_no_body)
{
	struct srv s;

	srv_init(&s);
	s.body = "hello";
	srv_run(&s, head_client);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.method, "HEAD");
	ck_assert_str_eq(s.query, "x=1");
	expect_reply(&s.r[0], "200 OK", NULL, "hello", true);
	srv_done(&s);
}
END_TEST

static void one_get_client(struct srv *s)
{
	cli_get(s, "GET / HTTP/1.1\r\n\r\n", &s->r[0]);
}

START_TEST(handler_status_and_type)
{
	struct srv s;

	srv_init(&s);
	s.status = 404;
	s.ctype = "text/html; charset=utf-8";
	s.body = "<p>no</p>";
	srv_run(&s, one_get_client);
	ck_assert_str_eq(s.path, "/");
	expect_reply(&s.r[0], "404 Not Found", "text/html; charset=utf-8", "<p>no</p>", false);
	srv_done(&s);
}
END_TEST

START_TEST(handler_bad_answers_become_500)
{
	static const struct {
		int status;
		const char *ctype;
	} bad[] = { { 42, NULL }, { 600, NULL }, { 200, "text/plain\r\nSet-Cookie: x=1" } };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct srv s;

		srv_init(&s);
		s.status = bad[i].status;
		s.ctype = bad[i].ctype;
		s.body = "leaked?";
		srv_run(&s, one_get_client);
		ck_assert_int_eq(s.calls, 1);
		expect_reply(&s.r[0], "500 Internal Server Error", NULL, "internal error\n", false);
		srv_done(&s);
	}
}
END_TEST

START_TEST(no_content_has_no_length)
{
	struct srv s;

	srv_init(&s);
	s.status = 204;
	s.body = "dropped";
	srv_run(&s, one_get_client);
	ck_assert_int_eq(s.r[0].err, 0);
	ck_assert_str_eq(s.r[0].data, "HTTP/1.1 204 No Content\r\n"
				      "Content-Type: text/plain; charset=utf-8\r\n"
				      "Connection: close\r\nCache-Control: no-store\r\n\r\n");
	srv_done(&s);
}
END_TEST

/* The head arrives in pieces; the handler must wait for all of it. */
static void split_client(struct srv *s)
{
	static const char *parts[] = { "GET /cb?code=", "abc HTTP/1.1\r", "\nHost: x\r\n\r",
				       "\n" };
	int fd = cli_connect(s->port, 0), one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
		s->v[i] = cli_send(fd, parts[i], strlen(parts[i]));
		if (i + 1 < ARRAY_SIZE(parts))
			s->v[4 + i] = srv_barrier(s);
	}
	cli_read_all(fd, &s->r[0]);
	close(fd);
}

START_TEST(head_in_pieces)
{
	struct srv s;

	srv_init(&s);
	s.body = "ok";
	srv_run(&s, split_client);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(s.v[i], 0);
	for (size_t i = 4; i < 7; i++)
		ck_assert_int_eq(s.v[i], 0); /* no call before the blank line */
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.query, "code=abc");
	expect_reply(&s.r[0], "200 OK", NULL, "ok", false);
	srv_done(&s);
}
END_TEST

/* A head of exactly HTTPD_MAX_HEAD bytes is still a request. */
static void max_head_client(struct srv *s)
{
	char *req = xmalloc(HTTPD_MAX_HEAD + 1);
	size_t fill = HTTPD_MAX_HEAD - strlen("GET /big HTTP/1.1\r\nX: ") - strlen("\r\n\r\n");

	snprintf(req, HTTPD_MAX_HEAD + 1, "GET /big HTTP/1.1\r\nX: %0*d\r\n\r\n", (int)fill, 0);
	s->v[0] = (long)strlen(req);
	cli_get(s, req, &s->r[0]);
	free(req);
}

START_TEST(head_at_limit)
{
	struct srv s;

	srv_init(&s);
	srv_run(&s, max_head_client);
	ck_assert_int_eq(s.v[0], HTTPD_MAX_HEAD);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/big");
	expect_status(&s.r[0], "200 OK");
	srv_done(&s);
}
END_TEST

/* Large answer to a client with a tiny receive window: many partial sends. */
static void big_client(struct srv *s)
{
	int fd = cli_connect(s->port, 4096);

	s->v[0] = cli_send(fd, "GET /big HTTP/1.1\r\n\r\n", 21);
	cli_read_all(fd, &s->r[0]);
	close(fd);
}

START_TEST(big_body_partial_writes)
{
	struct srv s;
	const size_t big = 8u << 20;
	const char *body;
	_cleanup_free_ char *clen = xasprintf("Content-Length: %zu\r\n", big);

	srv_init(&s);
	s.big = big;
	srv_run(&s, big_client);
	ck_assert_int_eq(s.v[0], 0);
	expect_status(&s.r[0], "200 OK");
	ck_assert_ptr_nonnull(strstr(s.r[0].data, clen));
	body = strstr(s.r[0].data, "\r\n\r\n");
	ck_assert_ptr_nonnull(body);
	body += 4;
	ck_assert_uint_eq(s.r[0].len - (size_t)(body - s.r[0].data), big);
	for (size_t i = 0; i < big; i++)
		if (body[i] != (char)('a' + i % 26))
			ck_abort_msg("body differs at %zu", i);
	srv_done(&s);
}
END_TEST

/* ---- automatic answers ---- */

static void post_client(struct srv *s)
{
	cli_get(s, "POST /cb HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", &s->r[0]);
	cli_get(s, "DELETE /cb HTTP/1.1\r\n\r\n", &s->r[1]);
}

START_TEST(post_is_405)
{
	struct srv s;

	srv_init(&s);
	srv_run(&s, post_client);
	ck_assert_int_eq(s.calls, 0);
	expect_reply(&s.r[0], "405 Method Not Allowed", NULL, "method not allowed\n", false);
	expect_reply(&s.r[1], "405 Method Not Allowed", NULL, "method not allowed\n", false);
	srv_done(&s);
}
END_TEST

/* More than HTTPD_MAX_HEAD bytes without a blank line, sent in full: the
 * answer must survive the bytes the server never reads. */
static void oversized_client(struct srv *s)
{
	size_t n = 3 * HTTPD_MAX_HEAD;
	char *req = xmalloc(n);

	memset(req, 'a', n);
	memcpy(req, "GET /", 5);
	cli_exchange(s, req, n, &s->r[0]);
	free(req);
	cli_get(s, "GET /after HTTP/1.1\r\n\r\n", &s->r[1]);
}

START_TEST(oversized_head_is_431)
{
	struct srv s;

	srv_init(&s);
	srv_run(&s, oversized_client);
	expect_reply(&s.r[0], "431 Request Header Fields Too Large", NULL,
		     "request head too large\n", false);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/after");
	expect_status(&s.r[1], "200 OK");
	srv_done(&s);
}
END_TEST

#define RAW(s) { s, sizeof(s) - 1 }
static const struct {
	const char *req;
	size_t len;
} garbage[] = {
	RAW("garbage\r\n\r\n"),
	RAW("\r\n\r\n"),
	RAW("GET /x\r\n\r\n"),
	RAW("GET  /x HTTP/1.1\r\n\r\n"),
	RAW("GET /x  HTTP/1.1\r\n\r\n"),
	RAW("GET /x HTTP/1.1 \r\n\r\n"),
	RAW(" GET /x HTTP/1.1\r\n\r\n"),
	RAW("GET http://h/x HTTP/1.1\r\n\r\n"),
	RAW("GET * HTTP/1.1\r\n\r\n"),
	RAW("GET x HTTP/1.1\r\n\r\n"),
	RAW("GET /x HTTP/2.0\r\n\r\n"),
	RAW("GET /x HTTP/1.10\r\n\r\n"),
	RAW("GET /x http/1.1\r\n\r\n"),
	RAW("GET /x#frag HTTP/1.1\r\n\r\n"),
	RAW("GET /\x01 HTTP/1.1\r\n\r\n"),
	RAW("GET /\xc3\xa9 HTTP/1.1\r\n\r\n"),
	RAW("G(T /x HTTP/1.1\r\n\r\n"),
	RAW("GET /x HTTP/1.1\rX\r\n\r\n"),
	RAW("GET /x HTTP/1.1\r\nA: \0b\r\n\r\n"),
	RAW("GET /x\0 HTTP/1.1\r\n\r\n"),
};

static void garbage_client(struct srv *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(garbage); i++) {
		struct reply r;
		cli_exchange(s, garbage[i].req, garbage[i].len, &r);
		/* v[0]: the first request that did not get a clean 400. */
		if (!s->v[0] && (r.err || strcmp(r.data, s->r[1].data) != 0))
			s->v[0] = (long)i + 1;
		free(r.data);
	}
	cli_get(s, "GET /good HTTP/1.1\r\n\r\n", &s->r[0]);
}

START_TEST(garbage_is_400)
{
	struct srv s;

	srv_init(&s);
	s.r[1].data = response("400 Bad Request", NULL, "bad request\n", false);
	srv_run(&s, garbage_client);
	ck_assert_msg(s.v[0] == 0, "request %ld did not get 400", s.v[0] - 1);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/good");
	expect_status(&s.r[0], "200 OK");
	srv_done(&s);
}
END_TEST

/* ---- misbehaving peers ---- */

static void timeout_client(struct srv *s)
{
	int idle = cli_connect(s->port, 0), partial = cli_connect(s->port, 0);

	s->v[0] = cli_send(partial, "GET /slow HTTP/1.1\r\n", 20);
	cli_read_all(idle, &s->r[0]);
	cli_read_all(partial, &s->r[1]);
	close(idle);
	close(partial);
	srv_wait_conns(s, 0);
	cli_get(s, "GET /after HTTP/1.1\r\n\r\n", &s->r[2]);
}

START_TEST(idle_connection_times_out)
{
	struct srv s;

	srv_init(&s);
	httpd_set_timeout_ms(s.d, 50);
	srv_run(&s, timeout_client);
	ck_assert_int_eq(s.v[0], 0);
	/* Closed by the server, with nothing said. */
	ck_assert_int_eq(s.r[0].err, 0);
	ck_assert_uint_eq(s.r[0].len, 0);
	ck_assert_int_eq(s.r[1].err, 0);
	ck_assert_uint_eq(s.r[1].len, 0);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/after");
	srv_done(&s);
}
END_TEST

/* Full: each newcomer is accepted and the oldest connection without an
 * answer in progress is closed for it. */
static void max_conns_client(struct srv *s)
{
	int fds[HTTPD_MAX_CONNS], extra;
	long opened = 0;
	char c;

	for (size_t i = 0; i < HTTPD_MAX_CONNS; i++)
		opened += (fds[i] = cli_connect(s->port, 0)) >= 0;
	s->v[0] = opened;
	srv_wait_conns(s, HTTPD_MAX_CONNS);
	/* The newcomer is served... */
	extra = cli_connect(s->port, 0);
	s->v[1] = cli_send(extra, "GET /new HTTP/1.1\r\n\r\n", 21);
	cli_read_all(extra, &s->r[0]);
	close(extra);
	/* ...the oldest was closed for it without an answer... */
	s->v[2] = read(fds[0], &c, 1);
	/* ...and the second oldest is untouched: it still gets an answer. */
	s->v[3] = cli_send(fds[1], "GET /held HTTP/1.1\r\n\r\n", 22);
	cli_read_all(fds[1], &s->r[1]);
	s->v[4] = (long)srv_barrier(s);
	for (size_t i = 0; i < HTTPD_MAX_CONNS; i++)
		close(fds[i]);
	srv_wait_conns(s, 0);
}

START_TEST(full_server_evicts_oldest)
{
	struct srv s;

	srv_init(&s);
	httpd_set_timeout_ms(s.d, 1000 * SAFETY_TIMEOUT_S);
	s.body = "ok";
	srv_run(&s, max_conns_client);
	ck_assert_int_eq(s.v[0], HTTPD_MAX_CONNS);
	ck_assert_int_eq(s.v[1], 0);
	expect_reply(&s.r[0], "200 OK", NULL, "ok", false);
	ck_assert_int_eq(s.v[2], 0); /* EOF: closed, nothing said */
	ck_assert_int_eq(s.v[3], 0);
	expect_reply(&s.r[1], "200 OK", NULL, "ok", false);
	ck_assert_int_eq(s.v[4], 2);
	ck_assert_str_eq(s.path, "/held");
	srv_done(&s);
}
END_TEST

/* Reads until EOF or an error; true when the server closed the connection
 * without sending anything. Meanwhile trickles one byte of a request head
 * every poll round when trickle is set (slowloris). Bounded by the socket's
 * SAFETY_TIMEOUT_S receive timeout and MAX_TRICKLE rounds. */
#define MAX_TRICKLE 20000
static bool closed_silently(int fd, bool trickle)
{
	static const char req[] = "GET /slow HTTP/1.1\r\nX: ";
	char buf[64];

	for (size_t i = 0; i < MAX_TRICKLE; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (trickle && send(fd, &req[i % (sizeof(req) - 1)], 1, MSG_NOSIGNAL) < 0)
			trickle = false; /* closed under us: read what is left */
		if (trickle && poll(&p, 1, 5) == 0)
			continue;
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		return n == 0 || (n < 0 && errno == ECONNRESET);
	}
	return false;
}

/* Idle, slowloris and half-open peers are all closed at the head deadline
 * (the life deadline is far away), without an answer. */
static void slow_peers_client(struct srv *s)
{
	int idle = cli_connect(s->port, 0), slow = cli_connect(s->port, 0);
	int half = cli_connect(s->port, 0);

	/* Half-open: our side closed, theirs is kept; the server must not
	 * wait for a head that can no longer come. */
	s->v[0] = cli_send(half, "GET /half HT", 12);
	s->v[1] = shutdown(half, SHUT_WR);
	s->v[2] = closed_silently(idle, false);
	s->v[3] = closed_silently(slow, true);
	s->v[4] = closed_silently(half, false);
	close(idle);
	close(slow);
	close(half);
	srv_wait_conns(s, 0);
	cli_get(s, "GET /after HTTP/1.1\r\n\r\n", &s->r[0]);
}

START_TEST(head_deadline_closes_slow_peers)
{
	struct srv s;

	srv_init(&s);
	httpd_set_timeout_ms(s.d, 1000 * SAFETY_TIMEOUT_S);
	httpd_set_head_timeout_ms(s.d, 100);
	s.body = "ok";
	srv_run(&s, slow_peers_client);
	ck_assert_int_eq(s.v[0], 0);
	ck_assert_int_eq(s.v[1], 0);
	ck_assert_msg(s.v[2], "idle peer not closed");
	ck_assert_msg(s.v[3], "slowloris peer not closed");
	ck_assert_msg(s.v[4], "half-open peer not closed");
	ck_assert_int_eq(s.calls, 1);
	ck_assert_str_eq(s.path, "/after");
	expect_reply(&s.r[0], "200 OK", NULL, "ok", false);
	srv_done(&s);
}
END_TEST

/* The OAuth case: another local user holds more junk connections than
 * there are slots (idle, trickling, half-open, never reading a large
 * answer) and keeps trickling; the browser's callback still gets through,
 * on the first try. */
#define JUNK (HTTPD_MAX_CONNS + 24)
static void flood_client(struct srv *s)
{
	int junk[JUNK];
	long opened = 0;

	for (size_t i = 0; i < JUNK; i++) {
		junk[i] = cli_connect(s->port, i % 4 == 3 ? 4096 : 0);
		if (junk[i] < 0)
			continue;
		opened++;
		if (i % 4 == 1)
			(void)cli_send(junk[i], "GET /", 5);
		else if (i % 4 == 2)
			(void)shutdown(junk[i], SHUT_WR);
		else if (i % 4 == 3)
			(void)cli_send(junk[i], "GET /big HTTP/1.1\r\n\r\n", 21);
	}
	s->v[0] = opened;
	s->v[1] = (long)srv_barrier(s);
	/* Slowloris keeps going while the callback arrives. */
	for (size_t i = 1; i < JUNK; i += 4)
		(void)send(junk[i], "c", 1, MSG_NOSIGNAL);
	cli_get(s, "GET /callback/x?code=c0de&state=st HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
		&s->r[0]);
	for (size_t i = 1; i < JUNK; i += 4)
		(void)send(junk[i], "d", 1, MSG_NOSIGNAL);
	s->v[2] = (long)srv_barrier(s);
	for (size_t i = 0; i < JUNK; i++)
		if (junk[i] >= 0)
			close(junk[i]);
	srv_wait_conns(s, 0);
}

START_TEST(callback_gets_through_junk_flood)
{
	struct srv s;

	srv_init(&s);
	httpd_set_head_timeout_ms(s.d, 1000); /* the default is 500: slack for valgrind */
	s.big = 8u << 20;
	s.body = "logged in";
	srv_run(&s, flood_client);
	ck_assert_int_eq(s.v[0], JUNK);
	ck_assert_int_eq(s.v[1] + 1, s.v[2]);
	expect_reply(&s.r[0], "200 OK", NULL, "logged in", false);
	ck_assert_str_eq(s.path, "/callback/x");
	ck_assert_str_eq(s.query, "code=c0de&state=st");
	srv_done(&s);
}
END_TEST

static void hangup_client(struct srv *s)
{
	int fd = cli_connect(s->port, 0);

	/* Gone in the middle of the head. */
	s->v[0] = cli_send(fd, "GET /cb?code=x HT", 17);
	close(fd);
	srv_wait_conns(s, 0);
	/* Gone before the (large) answer could be written: sends fail. */
	fd = cli_connect(s->port, 0);
	s->v[1] = cli_send(fd, "GET /big HTTP/1.1\r\n\r\n", 21);
	s->v[2] = srv_barrier(s);
	close(fd);
	srv_wait_conns(s, 0);
	cli_get(s, "GET /after HTTP/1.1\r\n\r\n", &s->r[0]);
}

START_TEST(peer_hangups)
{
	struct srv s;

	srv_init(&s);
	s.big = 8u << 20;
	srv_run(&s, hangup_client);
	ck_assert_int_eq(s.v[0], 0);
	ck_assert_int_eq(s.v[1], 0);
	ck_assert_int_eq(s.v[2], 1);
	ck_assert_int_eq(s.calls, 2);
	ck_assert_str_eq(s.path, "/after");
	expect_reply(&s.r[0], "200 OK", NULL, "", false);
	srv_done(&s);
}
END_TEST

/* ---- teardown ---- */

static void free_now_cb(void *arg)
{
	struct srv *s = arg;

	s->d = httpd_free(s->d);
	ck_assert_int_eq(write(s->sync[1], "x", 1), 1);
}

static void free_busy_client(struct srv *s)
{
	int idle = cli_connect(s->port, 0), partial = cli_connect(s->port, 0);
	int stuck = cli_connect(s->port, 4096), drain = cli_connect(s->port, 0);
	char c;

	s->v[0] = cli_send(partial, "GET /x HTTP/1.1\r\n", 17);
	/* stuck: an 8 MiB answer it does not read waits in the out buffer. */
	s->v[1] = cli_send(stuck, "GET /big HTTP/1.1\r\n\r\n", 21);
	/* drain: its whole answer read, it keeps the connection open. */
	s->v[2] = cli_send(drain, "GET /small HTTP/1.1\r\n\r\n", 23);
	cli_read_all(drain, &s->r[3]);
	srv_wait_conns(s, 4);
	s->v[3] = srv_barrier(s);
	if (loop_post(s->l, free_now_cb, s) == 0)
		(void)read(s->sync[0], &c, 1);
	cli_read_all(idle, &s->r[0]);
	cli_read_all(partial, &s->r[1]);
	cli_read_all(stuck, &s->r[2]);
	close(idle);
	close(partial);
	close(stuck);
	close(drain);
}

/* Freed with connections in every state: all of them closed, nothing
 * leaked (the sanitizer and valgrind runs check the second part). */
START_TEST(free_with_open_connections)
{
	struct srv s;

	srv_init(&s);
	s.big = 8u << 20;
	s.body = "small";
	srv_run(&s, free_busy_client);
	ck_assert_ptr_null(s.d);
	for (size_t i = 0; i < 3; i++)
		ck_assert_int_eq(s.v[i], 0);
	ck_assert_int_eq(s.v[3], 2);
	expect_reply(&s.r[3], "200 OK", NULL, "small", false);
	/* Closed, without an answer or with a cut one. */
	ck_assert_int_eq(s.r[0].err, 0);
	ck_assert_uint_eq(s.r[0].len, 0);
	ck_assert_int_eq(s.r[1].err, 0);
	ck_assert_uint_eq(s.r[1].len, 0);
	expect_status(&s.r[2], "200 OK");
	ck_assert_uint_lt(s.r[2].len, s.big);
	srv_done(&s);
}
END_TEST

START_TEST(free_null)
{
	ck_assert_ptr_null(httpd_free(NULL));
}
END_TEST

/* ---- setup errors and IPv6 ---- */

START_TEST(new_errors)
{
	struct loop *l = loop_new();
	struct httpd *a, *b;
	int err = 0;

	ck_assert_ptr_null(httpd_new(l, "localhost", 0, handler_cb, NULL, &err));
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_ptr_null(httpd_new(l, "127.0.0.1:80", 0, handler_cb, NULL, &err));
	ck_assert_int_eq(err, -EINVAL);
	ck_assert_ptr_null(httpd_new(l, "127.0.0.1", 0, NULL, NULL, &err));
	ck_assert_int_eq(err, -EINVAL);
	a = httpd_new(l, "127.0.0.1", 0, handler_cb, NULL, &err);
	ck_assert_ptr_nonnull(a);
	err = 0;
	b = httpd_new(l, "127.0.0.1", httpd_port(a), handler_cb, NULL, &err);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(err, -EADDRINUSE);
	ck_assert_ptr_null(httpd_free(a));
	loop_free(l);
}
END_TEST

static void v6_client(struct srv *s)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(s->port),
				  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		s->v[0] = -1;
	} else {
		s->v[0] = cli_send(fd, "GET /six HTTP/1.1\r\n\r\n", 21);
		cli_read_all(fd, &s->r[0]);
	}
	if (fd >= 0)
		close(fd);
}

START_TEST(ipv6_loopback)
{
	struct srv s = { 0 };
	int err = 0;

	s.l = loop_new();
	s.d = httpd_new(s.l, "::1", 0, handler_cb, &s, &err);
	if (!s.d) {
		/* No IPv6 in this sandbox: nothing to test. */
		ck_assert_msg(err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT, "httpd_new: %d", err);
		loop_free(s.l);
		return;
	}
	s.port = httpd_port(s.d);
	ck_assert_int_eq(pipe2(s.sync, O_CLOEXEC), 0);
	s.body = "v6";
	srv_run(&s, v6_client);
	ck_assert_int_eq(s.v[0], 0);
	ck_assert_str_eq(s.path, "/six");
	expect_reply(&s.r[0], "200 OK", NULL, "v6", false);
	srv_done(&s);
}
END_TEST

static Suite *httpd_suite(void)
{
	Suite *s = suite_create("httpd");
	TCase *ok = tcase_create("requests"), *bad = tcase_create("automatic");
	TCase *peers = tcase_create("peers"), *life = tcase_create("lifecycle");
	TCase *all[] = { ok, bad, peers, life };

	for (size_t i = 0; i < ARRAY_SIZE(all); i++) {
		tcase_set_timeout(all[i], 2 * SAFETY_TIMEOUT_S);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(ok, get_reaches_handler);
	tcase_add_test(ok, bare_lf_no_query_no_body);
	tcase_add_test(ok, head_has_no_body);
	tcase_add_test(ok, handler_status_and_type);
	tcase_add_test(ok, handler_bad_answers_become_500);
	tcase_add_test(ok, no_content_has_no_length);
	tcase_add_test(ok, head_in_pieces);
	tcase_add_test(ok, head_at_limit);
	tcase_add_test(ok, big_body_partial_writes);
	tcase_add_test(bad, post_is_405);
	tcase_add_test(bad, oversized_head_is_431);
	tcase_add_test(bad, garbage_is_400);
	tcase_add_test(peers, idle_connection_times_out);
	tcase_add_test(peers, full_server_evicts_oldest);
	tcase_add_test(peers, head_deadline_closes_slow_peers);
	tcase_add_test(peers, callback_gets_through_junk_flood);
	tcase_add_test(peers, peer_hangups);
	tcase_add_test(life, free_with_open_connections);
	tcase_add_test(life, free_null);
	tcase_add_test(life, new_errors);
	tcase_add_test(life, ipv6_loopback);
	return s;
}

TEST_MAIN(httpd_suite)
