/* test_http.c - the loop-driven HTTP client against a tiny threaded
 * HTTP/1.1 server started in each test on 127.0.0.1:0.
 *
 * The server records what it received and answers by path:
 *   /echo            200, the request body back, X-Method and X-Got-Test
 *   /status/NNN      status NNN with a short body
 *   /headers         repeated, mixed-case, padded and empty headers
 *   /many-headers    more headers than the client keeps
 *   /interim         a 100 Continue (with a header) before the 200
 *   /redirect        302 to /echo
 *   /stream          three chunks; chunk i+1 waits for server_go(i), so the
 *                    client must have seen chunk i before the response ends
 *   /hang            headers, then nothing until the client leaves
 *   /silent          nothing at all until the client leaves
 *   /big/N           N bytes with Content-Length
 *   /big-chunked/N   N bytes chunked (no length known in advance)
 *   /short           Content-Length 100, 10 bytes, then close
 * Connections are kept alive, so reuse can be counted (server.nconn).
 * The last request's header block is kept (server.raw), so that a test can
 * tell a header that arrived empty from one that never arrived.
 *
 * Relay mode has no server: a fake carrier (struct fake) records what
 * relay.start and relay.cancel were given, and the tests feed the far
 * side's answers through http_relay_head/data/done/fail_all.
 */
#include "http.h"
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the server ---- */

#define MAX_CONNS 64
#define REQ_BUF (2 * 1024 * 1024)

struct server {
	int lfd, port;
	int stop[2]; /* readable once the server stops */
	pthread_t acceptor;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t threads[MAX_CONNS];
	int fds[MAX_CONNS];
	int nconn;   /* connections accepted */
	int go;      /* /stream gate */
	int closed;  /* waits ended because the client went away */
	int nreq;    /* requests read */
	char method[16], got_test[128], content_type[128], expect[64];
	char *body;  /* last request's body */
	size_t body_len;
	char *raw;   /* last request's header lines, after the request line */
};

struct conn {
	struct server *s;
	int fd;
	char *buf;
	size_t have;
};

struct request {
	char method[16], path[256];
	size_t hdr_len, body_len;
	char x_test[128], content_type[128], expect[64];
};

static int send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sendf(int fd, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return send_all(fd, buf, (size_t)n);
}

/* 1 when fd is readable, 0 when the server stops. */
static int wait_readable(struct conn *c, int timeout_ms)
{
	struct pollfd p[2] = { { c->fd, POLLIN, 0 }, { c->s->stop[0], POLLIN, 0 } };
	int r = poll(p, 2, timeout_ms);

	if (r < 0 || (p[1].revents & POLLIN))
		return 0;
	return (p[0].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : -1;
}

/* Waits for the client to close (or the server to stop); counts it. */
static void wait_client_gone(struct conn *c)
{
	for (;;) {
		char b;
		int r = wait_readable(c, -1);

		if (r == 0)
			return;
		if (recv(c->fd, &b, 1, MSG_PEEK) <= 0)
			break;
		c->have = 0; /* a client sends nothing more here: drop it */
		if (recv(c->fd, c->buf, REQ_BUF, 0) <= 0)
			break;
	}
	pthread_mutex_lock(&c->s->mu);
	c->s->closed++;
	pthread_cond_broadcast(&c->s->cv);
	pthread_mutex_unlock(&c->s->mu);
}

/* Waits until the test released chunk i; false if the client left. */
static bool wait_go(struct conn *c, int i)
{
	struct server *s = c->s;

	for (;;) {
		char b;
		bool ok;

		pthread_mutex_lock(&s->mu);
		ok = s->go >= i;
		pthread_mutex_unlock(&s->mu);
		if (ok)
			return true;
		if (wait_readable(c, 10) == 0)
			return false;
		if (wait_readable(c, 0) == 1 && recv(c->fd, &b, 1, MSG_PEEK) <= 0) {
			pthread_mutex_lock(&s->mu);
			s->closed++;
			pthread_cond_broadcast(&s->cv);
			pthread_mutex_unlock(&s->mu);
			return false;
		}
	}
}

/* The value of header `name` in a "\r\n"-separated block (the last line
 * may lack its "\r\n"); false, with out "", when absent. */
static bool header_value(const char *hdrs, const char *name, char *out, size_t outlen)
{
	size_t n = strlen(name);
	bool found = false;

	out[0] = '\0';
	for (const char *l = hdrs; l && *l; l = strstr(l, "\r\n") ? strstr(l, "\r\n") + 2 : NULL) {
		if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
			const char *v = l + n + 1, *e = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(out, outlen, "%.*s", e ? (int)(e - v) : (int)strlen(v), v);
			found = true;
		}
	}
	return found;
}

/* Reads one request into c->buf. 0, or -1 when the client or server is
 * gone. */
static int read_request(struct conn *c, struct request *q)
{
	char *end, cl[32];

	while (!(end = memmem(c->buf, c->have, "\r\n\r\n", 4))) {
		ssize_t n;

		if (c->have == REQ_BUF || wait_readable(c, -1) != 1)
			return -1;
		n = recv(c->fd, c->buf + c->have, REQ_BUF - c->have, 0);
		if (n <= 0)
			return -1;
		c->have += (size_t)n;
	}
	*end = '\0';
	q->hdr_len = (size_t)(end - c->buf) + 4;
	if (sscanf(c->buf, "%15s %255s", q->method, q->path) != 2)
		return -1;
	header_value(strstr(c->buf, "\r\n") + 2, "Content-Length", cl, sizeof(cl));
	q->body_len = strtoul(cl, NULL, 10);
	header_value(strstr(c->buf, "\r\n") + 2, "X-Test", q->x_test, sizeof(q->x_test));
	header_value(strstr(c->buf, "\r\n") + 2, "Content-Type", q->content_type,
		     sizeof(q->content_type));
	header_value(strstr(c->buf, "\r\n") + 2, "Expect", q->expect, sizeof(q->expect));
	if (q->body_len > REQ_BUF - q->hdr_len)
		return -1;
	while (c->have < q->hdr_len + q->body_len) {
		ssize_t n;

		if (wait_readable(c, -1) != 1)
			return -1;
		n = recv(c->fd, c->buf + c->have, REQ_BUF - c->have, 0);
		if (n <= 0)
			return -1;
		c->have += (size_t)n;
	}
	return 0;
}

static void record(struct server *s, const struct request *q, const char *hdrs,
		   const char *body)
{
	const char *lines = strstr(hdrs, "\r\n");

	pthread_mutex_lock(&s->mu);
	s->nreq++;
	free(s->raw);
	s->raw = xstrdup(lines ? lines + 2 : "");
	snprintf(s->method, sizeof(s->method), "%s", q->method);
	snprintf(s->got_test, sizeof(s->got_test), "%s", q->x_test);
	snprintf(s->content_type, sizeof(s->content_type), "%s", q->content_type);
	snprintf(s->expect, sizeof(s->expect), "%s", q->expect);
	free(s->body);
	s->body = xmalloc(q->body_len + 1);
	memcpy(s->body, body, q->body_len);
	s->body[q->body_len] = '\0';
	s->body_len = q->body_len;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int send_chunk(int fd, const char *p, size_t n)
{
	return sendf(fd, "%zx\r\n", n) || send_all(fd, p, n) || send_all(fd, "\r\n", 2) ? -1 : 0;
}

static int serve_stream(struct conn *c)
{
	char part[32];

	pthread_mutex_lock(&c->s->mu);
	c->s->go = 0;
	pthread_mutex_unlock(&c->s->mu);
	if (sendf(c->fd, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"))
		return -1;
	for (int i = 1; i <= 3; i++) {
		snprintf(part, sizeof(part), "part %d\n", i);
		if (send_chunk(c->fd, part, strlen(part)) || !wait_go(c, i))
			return -1;
	}
	return sendf(c->fd, "0\r\n\r\n");
}

static int serve_big(struct conn *c, size_t n, bool chunked)
{
	char block[4096];

	memset(block, 'x', sizeof(block));
	if (sendf(c->fd, "HTTP/1.1 200 OK\r\n") ||
	    (chunked ? sendf(c->fd, "Transfer-Encoding: chunked\r\n\r\n")
		     : sendf(c->fd, "Content-Length: %zu\r\n\r\n", n)))
		return -1;
	while (n > 0) {
		size_t k = MIN(n, sizeof(block));

		if (chunked ? send_chunk(c->fd, block, k) : send_all(c->fd, block, k))
			return -1;
		n -= k;
	}
	return chunked ? sendf(c->fd, "0\r\n\r\n") : 0;
}

static int serve_many_headers(struct conn *c)
{
	if (sendf(c->fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"))
		return -1;
	for (unsigned i = 0; i < HTTP_MAX_HEADERS + 10; i++)
		if (sendf(c->fd, "X-H%u: %u\r\n", i, i))
			return -1;
	return sendf(c->fd, "\r\n");
}

/* Answers one request; -1 ends the connection. */
static int serve(struct conn *c, const struct request *q, const char *body)
{
	int fd = c->fd;

	if (strcmp(q->path, "/echo") == 0) {
		if (sendf(fd, "HTTP/1.1 200 OK\r\nX-Method: %s\r\nX-Got-Test: %s\r\n"
			      "Content-Length: %zu\r\n\r\n",
			  q->method, q->x_test, q->body_len))
			return -1;
		return send_all(fd, body, q->body_len);
	}
	if (strncmp(q->path, "/status/", 8) == 0)
		return sendf(fd, "HTTP/1.1 %s Whatever\r\nContent-Length: 6\r\n\r\n%s", q->path + 8,
			     strcmp(q->method, "HEAD") ? "status" : "");
	if (strcmp(q->path, "/headers") == 0)
		return sendf(fd, "HTTP/1.1 200 OK\r\nX-Multi: one\r\nx-case: MiXed\r\n"
				 "X-Multi: two\r\nX-Empty:\r\nX-Padded:   a b  \t\r\n"
				 "Content-Length: 0\r\n\r\n");
	if (strcmp(q->path, "/many-headers") == 0)
		return serve_many_headers(c);
	if (strcmp(q->path, "/interim") == 0)
		return sendf(fd, "HTTP/1.1 100 Continue\r\nX-Interim: yes\r\n\r\n"
				 "HTTP/1.1 200 OK\r\nX-Final: yes\r\nContent-Length: 2\r\n\r\nok");
	if (strcmp(q->path, "/redirect") == 0)
		return sendf(fd, "HTTP/1.1 302 Found\r\nLocation: /echo\r\n"
				 "Content-Length: 0\r\n\r\n");
	if (strcmp(q->path, "/stream") == 0)
		return serve_stream(c);
	if (strncmp(q->path, "/big/", 5) == 0)
		return serve_big(c, strtoul(q->path + 5, NULL, 10), false);
	if (strncmp(q->path, "/big-chunked/", 13) == 0)
		return serve_big(c, strtoul(q->path + 13, NULL, 10), true);
	if (strcmp(q->path, "/short") == 0) {
		sendf(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
		return -1;
	}
	if (strcmp(q->path, "/hang") == 0 &&
	    sendf(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
		return -1;
	/* /hang and /silent */
	wait_client_gone(c);
	return -1;
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct request q;

	c->buf = xmalloc(REQ_BUF);
	while (read_request(c, &q) == 0) {
		size_t used = q.hdr_len + q.body_len;

		record(c->s, &q, c->buf, c->buf + q.hdr_len);
		if (serve(c, &q, c->buf + q.hdr_len) < 0)
			break;
		memmove(c->buf, c->buf + used, c->have - used);
		c->have -= used;
	}
	/* The client sees the end now; server_stop closes the fd. */
	shutdown(c->fd, SHUT_RDWR);
	free(c->buf);
	free(c);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct server *s = arg;

	for (;;) {
		struct pollfd p[2] = { { s->lfd, POLLIN, 0 }, { s->stop[0], POLLIN, 0 } };
		struct conn *c;
		int fd;

		if (poll(p, 2, -1) < 0 || (p[1].revents & POLLIN))
			return NULL;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&s->mu);
		if (s->nconn == MAX_CONNS) {
			pthread_mutex_unlock(&s->mu);
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		c->s = s;
		c->fd = fd;
		s->fds[s->nconn] = fd;
		ck_assert_int_eq(pthread_create(&s->threads[s->nconn], NULL, conn_main, c), 0);
		s->nconn++;
		pthread_mutex_unlock(&s->mu);
	}
}

static void server_start(struct server *s)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);

	*s = (struct server){ 0 };
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	ck_assert_int_eq(pipe2(s->stop, O_CLOEXEC), 0);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->lfd, 0);
	ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->lfd, 64), 0);
	ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
	s->port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&s->acceptor, NULL, accept_main, s), 0);
}

static void server_stop(struct server *s)
{
	ck_assert_int_eq(write(s->stop[1], "x", 1), 1);
	pthread_join(s->acceptor, NULL);
	for (int i = 0; i < s->nconn; i++) {
		pthread_join(s->threads[i], NULL);
		close(s->fds[i]);
	}
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
	free(s->body);
	free(s->raw);
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
}

static void server_go(struct server *s, int i)
{
	pthread_mutex_lock(&s->mu);
	s->go = i;
	pthread_mutex_unlock(&s->mu);
}

/* Waits (bounded, as a hang guard only) until the server counted n
 * client departures. */
static void server_wait_closed(struct server *s, int n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&s->mu);
	while (s->closed < n)
		if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
			break;
	ck_assert_int_ge(s->closed, n);
	pthread_mutex_unlock(&s->mu);
}

/* Header `name` of the last request the server read. */
static bool server_header(struct server *s, const char *name, char *out, size_t outlen)
{
	bool found;

	pthread_mutex_lock(&s->mu);
	found = header_value(s->raw, name, out, outlen);
	pthread_mutex_unlock(&s->mu);
	return found;
}

static int server_nconn(struct server *s)
{
	int n;

	pthread_mutex_lock(&s->mu);
	n = s->nconn;
	pthread_mutex_unlock(&s->mu);
	return n;
}

/* ---- the client side ---- */

struct ctx;

struct rr {
	struct ctx *x;
	struct http_req *r;
	int headers_calls, data_calls, done_calls;
	long hstatus, status;
	int err;
	char msg[256];
	char *data;
	size_t len;
	/* behaviour */
	bool cancel_in_headers, cancel_in_data, go_on_data, stop_on_headers;
	struct rr *cancel_other; /* cancelled from this one's first data_cb */
	struct rr *cancel_other_in_headers; /* cancelled from this one's headers_cb */
	struct rr *start_other;  /* started from this one's first data_cb */
	const char *start_url;
	/* response headers copied in done_cb */
	char hdr[6][64];
	bool hdr_null[6];
	const char *const *lookup;
	/* every response header, "name=value", by http_req_header_at in done_cb */
	size_t nheaders;
	char all[8][96];
	size_t pending_in_done; /* http_pending() seen from done_cb */
};

struct ctx {
	struct loop *l;
	struct http *h;
	struct server srv;
	int outstanding;
	bool hung;
	char url[128];
};

static const char *url(struct ctx *x, const char *path)
{
	snprintf(x->url, sizeof(x->url), "http://127.0.0.1:%d%s", x->srv.port, path);
	return x->url;
}

static void setup(struct ctx *x)
{
	*x = (struct ctx){ 0 };
	server_start(&x->srv);
	x->l = loop_new();
	ck_assert_ptr_nonnull(x->l);
	x->h = http_new(x->l);
	ck_assert_ptr_nonnull(x->h);
}

static void teardown(struct ctx *x)
{
	x->h = http_free(x->h);
	x->l = loop_free(x->l);
	server_stop(&x->srv);
}

static void rr_free(struct rr *q)
{
	free(q->data);
	q->data = NULL;
}

static void one_done(struct ctx *x)
{
	if (--x->outstanding == 0)
		loop_stop(x->l);
}

static void rr_headers_cb(struct http_req *r, long status, void *arg)
{
	struct rr *q = arg;

	ck_assert_ptr_eq(r, q->r);
	ck_assert_int_eq(q->data_calls, 0);
	q->headers_calls++;
	q->hstatus = status;
	if (q->cancel_other_in_headers) {
		http_cancel(q->cancel_other_in_headers->r);
		one_done(q->x);
	}
	if (q->cancel_in_headers) {
		http_cancel(r);
		one_done(q->x);
	}
	if (q->stop_on_headers)
		loop_stop(q->x->l);
}

static void start(struct ctx *x, struct rr *q, const struct http_opts *o);

static void rr_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct rr *q = arg;

	ck_assert_int_eq(q->headers_calls, 1);
	ck_assert_int_eq(q->done_calls, 0);
	q->data = xrealloc(q->data, q->len + len + 1);
	memcpy(q->data + q->len, data, len);
	q->len += len;
	q->data[q->len] = '\0';
	q->data_calls++;
	if (q->cancel_other && q->data_calls == 1) {
		http_cancel(q->cancel_other->r);
		one_done(q->x);
	}
	if (q->start_other && q->data_calls == 1) {
		struct http_opts o = { .method = "GET", .url = q->start_url };

		start(q->x, q->start_other, &o);
	}
	if (q->cancel_in_data) {
		http_cancel(r);
		one_done(q->x);
		return;
	}
	if (q->go_on_data)
		server_go(&q->x->srv, q->data_calls);
}

static void rr_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct rr *q = arg;

	ck_assert_ptr_eq(r, q->r);
	ck_assert_ptr_nonnull(msg);
	q->done_calls++;
	q->err = err;
	q->status = status;
	snprintf(q->msg, sizeof(q->msg), "%s", msg);
	for (size_t i = 0; q->lookup && i < ARRAY_SIZE(q->hdr) && q->lookup[i]; i++) {
		const char *v = http_req_header(r, q->lookup[i]);

		q->hdr_null[i] = v == NULL;
		snprintf(q->hdr[i], sizeof(q->hdr[i]), "%s", v ? v : "");
	}
	q->nheaders = http_req_nheaders(r);
	for (size_t i = 0; i < q->nheaders && i < ARRAY_SIZE(q->all); i++) {
		const char *v = NULL, *name = http_req_header_at(r, i, &v);

		ck_assert_ptr_nonnull(name);
		ck_assert_ptr_nonnull(v);
		snprintf(q->all[i], sizeof(q->all[i]), "%s=%s", name, v);
	}
	q->pending_in_done = http_pending(q->x->h);
	http_cancel(r); /* does nothing from done_cb */
	one_done(q->x);
}

static const struct http_cbs rr_cbs = {
	.headers_cb = rr_headers_cb,
	.data_cb = rr_data_cb,
	.done_cb = rr_done_cb,
};

static void start(struct ctx *x, struct rr *q, const struct http_opts *o)
{
	q->x = x;
	q->r = http_start(x->h, o, &rr_cbs, q);
	ck_assert_ptr_nonnull(q->r);
	x->outstanding++;
}

static void hang_cb(struct loop_timer *t, void *arg)
{
	struct ctx *x = arg;

	x->hung = true;
	loop_stop(x->l);
}

/* Runs the loop until every started request is accounted for. The timer is
 * a hang guard, not a measurement. */
static void run(struct ctx *x)
{
	struct loop_timer *guard = loop_timer_add(x->l, 60000, hang_cb, x);

	ck_assert_int_eq(loop_run(x->l), 0);
	ck_assert_msg(!x->hung, "requests did not finish");
	loop_timer_cancel(guard);
}

/* One request, run to its end. */
static void fetch(struct ctx *x, struct rr *q, const struct http_opts *o)
{
	start(x, q, o);
	run(x);
}

/* ---- tests ---- */

START_TEST(get_and_post)
{
	struct ctx x;
	struct rr g = { 0 }, p = { 0 };
	const char *hdrs[] = { "X-Test: hello there", "Content-Type: application/json", NULL };
	char *body = xstrdup("{\"a\":1}");
	static const char *const look[] = { "X-Method", "x-got-test", NULL };

	setup(&x);
	fetch(&x, &g, &(struct http_opts){ .method = "GET", .url = url(&x, "/echo") });
	ck_assert_int_eq(g.done_calls, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_int_eq(g.headers_calls, 1);
	ck_assert_int_eq(g.hstatus, 200);
	ck_assert_uint_eq(g.len, 0);
	ck_assert_str_eq(x.srv.method, "GET");
	ck_assert_str_eq(g.msg, "ok");

	p.lookup = look;
	start(&x, &p, &(struct http_opts){ .method = "POST", .url = url(&x, "/echo"),
					    .headers = hdrs, .body = body,
					    .body_len = strlen(body) });
	/* The body was copied: the caller may free it at once. */
	memset(body, '#', strlen(body));
	free(body);
	run(&x);
	ck_assert_int_eq(p.err, 0);
	ck_assert_int_eq(p.status, 200);
	ck_assert_str_eq(p.data, "{\"a\":1}");
	ck_assert_str_eq(x.srv.method, "POST");
	ck_assert_str_eq(x.srv.got_test, "hello there");
	ck_assert_str_eq(x.srv.content_type, "application/json");
	ck_assert_str_eq(x.srv.body, "{\"a\":1}");
	ck_assert_str_eq(p.hdr[0], "POST");
	ck_assert_str_eq(p.hdr[1], "hello there");
	rr_free(&g);
	rr_free(&p);
	teardown(&x);
}
END_TEST

/* A large body goes out at once, without asking "Expect: 100-continue"
 * first (a round trip, or a one-second wait with servers that ignore it). */
START_TEST(large_body_no_expect)
{
	struct ctx x;
	struct rr q = { 0 };
	size_t n = 1536 * 1024;
	char *body = xmalloc(n);

	for (size_t i = 0; i < n; i++)
		body[i] = (char)('a' + i % 26);
	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "POST", .url = url(&x, "/echo"), .body = body,
					    .body_len = n });
	ck_assert_int_eq(q.err, 0);
	ck_assert_uint_eq(q.len, n);
	ck_assert_mem_eq(q.data, body, n);
	ck_assert_uint_eq(x.srv.body_len, n);
	ck_assert_str_eq(x.srv.expect, "");
	free(body);
	rr_free(&q);
	teardown(&x);
}
END_TEST

START_TEST(other_methods)
{
	struct ctx x;
	struct rr d = { 0 }, u = { 0 }, hd = { 0 };

	setup(&x);
	fetch(&x, &d, &(struct http_opts){ .method = "DELETE", .url = url(&x, "/echo") });
	ck_assert_int_eq(d.err, 0);
	ck_assert_str_eq(x.srv.method, "DELETE");
	fetch(&x, &u, &(struct http_opts){ .method = "PUT", .url = url(&x, "/echo"),
					    .body = "xyz", .body_len = 3 });
	ck_assert_str_eq(x.srv.method, "PUT");
	ck_assert_str_eq(x.srv.body, "xyz");
	ck_assert_str_eq(u.data, "xyz");
	fetch(&x, &hd, &(struct http_opts){ .method = "HEAD", .url = url(&x, "/status/204") });
	ck_assert_str_eq(x.srv.method, "HEAD");
	ck_assert_int_eq(hd.status, 204);
	ck_assert_int_eq(hd.data_calls, 0);
	rr_free(&d);
	rr_free(&u);
	rr_free(&hd);
	teardown(&x);
}
END_TEST

START_TEST(status_is_not_an_error)
{
	struct ctx x;
	struct rr q = { 0 }, red = { 0 };
	static const char *const look[] = { "Location", NULL };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/status/503") });
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.status, 503);
	ck_assert_int_eq(q.hstatus, 503);
	ck_assert_str_eq(q.data, "status");
	/* Redirects are not followed. */
	red.lookup = look;
	fetch(&x, &red, &(struct http_opts){ .method = "GET", .url = url(&x, "/redirect") });
	ck_assert_int_eq(red.err, 0);
	ck_assert_int_eq(red.status, 302);
	ck_assert_str_eq(red.hdr[0], "/echo");
	ck_assert_int_eq(x.srv.nreq, 2);
	rr_free(&q);
	rr_free(&red);
	teardown(&x);
}
END_TEST

START_TEST(response_headers)
{
	struct ctx x;
	struct rr q = { 0 }, i = { 0 };
	static const char *const look[] = { "x-multi", "X-CASE", "x-empty", "X-Padded",
					    "X-Missing", "content-length" };
	static const char *const look2[] = { "X-Interim", "X-Final", NULL };

	setup(&x);
	q.lookup = look;
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/headers") });
	ck_assert_int_eq(q.err, 0);
	ck_assert_str_eq(q.hdr[0], "two"); /* the last one */
	ck_assert_str_eq(q.hdr[1], "MiXed");
	ck_assert(!q.hdr_null[2]);
	ck_assert_str_eq(q.hdr[2], "");
	ck_assert_str_eq(q.hdr[3], "a b");
	ck_assert(q.hdr_null[4]);
	ck_assert_str_eq(q.hdr[5], "0");
	/* A 100 Continue is skipped: one headers_cb, with the final status
	 * and only the final response's headers. */
	i.lookup = look2;
	fetch(&x, &i, &(struct http_opts){ .method = "GET", .url = url(&x, "/interim") });
	ck_assert_int_eq(i.err, 0);
	ck_assert_int_eq(i.headers_calls, 1);
	ck_assert_int_eq(i.hstatus, 200);
	ck_assert(i.hdr_null[0]);
	ck_assert_str_eq(i.hdr[1], "yes");
	ck_assert_str_eq(i.data, "ok");
	rr_free(&q);
	rr_free(&i);
	teardown(&x);
}
END_TEST

START_TEST(header_bounds)
{
	struct ctx x;
	struct rr q = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/many-headers") });
	ck_assert_int_eq(q.err, -E2BIG);
	ck_assert_int_eq(q.headers_calls, 0);
	ck_assert_ptr_nonnull(strstr(q.msg, "headers"));
	rr_free(&q);
	teardown(&x);
}
END_TEST

/* Each chunk is released by the client's data_cb: the pieces must reach
 * the caller while the response is still open. */
START_TEST(streaming_in_pieces)
{
	struct ctx x;
	struct rr q = { .go_on_data = true };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/stream"),
					    .idle_timeout_ms = 60000 });
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.data_calls, 3);
	ck_assert_str_eq(q.data, "part 1\npart 2\npart 3\n");
	rr_free(&q);
	teardown(&x);
}
END_TEST

START_TEST(whole_timeout)
{
	struct ctx x;
	struct rr q = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/silent"),
					    .timeout_ms = 200 });
	ck_assert_int_eq(q.err, -ETIMEDOUT);
	ck_assert_int_eq(q.status, 0);
	ck_assert_int_eq(q.headers_calls, 0);
	server_wait_closed(&x.srv, 1);
	rr_free(&q);
	teardown(&x);
}
END_TEST

START_TEST(idle_timeout)
{
	struct ctx x;
	struct rr q = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/hang"),
					    .idle_timeout_ms = 200 });
	ck_assert_int_eq(q.err, -ETIMEDOUT);
	ck_assert_int_eq(q.headers_calls, 1);
	ck_assert_int_eq(q.status, 200);
	ck_assert_str_eq(q.msg, "no data for 200 ms");
	server_wait_closed(&x.srv, 1);
	rr_free(&q);
	teardown(&x);
}
END_TEST

/* The idle clock restarts with every chunk: three gaps of 600 ms each under
 * an idle limit of 1500 ms add up to more than the limit, yet succeed. */
struct slow_go {
	struct ctx *x;
	int i;
};

static void slow_go_cb(struct loop_timer *t, void *arg)
{
	struct slow_go *g = arg;

	server_go(&g->x->srv, g->i);
}

static struct slow_go slow;

static void slow_data_cb(struct http_req *r, const char *data, size_t len, void *arg)
{
	struct rr *q = arg;

	q->data_calls++;
	slow.x = q->x;
	slow.i = q->data_calls;
	loop_timer_add(q->x->l, 600, slow_go_cb, &slow);
}

START_TEST(idle_restarts_with_data)
{
	struct ctx x;
	struct rr q = { 0 };
	struct http_cbs cbs = rr_cbs;

	setup(&x);
	cbs.data_cb = slow_data_cb;
	q.x = &x;
	q.r = http_start(x.h,
			 &(struct http_opts){ .method = "GET", .url = url(&x, "/stream"),
					      .idle_timeout_ms = 1500 },
			 &cbs, &q);
	ck_assert_ptr_nonnull(q.r);
	x.outstanding = 1;
	run(&x);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.data_calls, 3);
	teardown(&x);
}
END_TEST

START_TEST(connection_refused)
{
	struct ctx x;
	struct rr q = { 0 };
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char u[64];

	/* A port that was just free and has no listener. */
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
	close(fd);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/", ntohs(a.sin_port));
	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = u });
	ck_assert_int_eq(q.err, -ECONNREFUSED);
	ck_assert_int_eq(q.headers_calls, 0);
	ck_assert_int_eq(q.status, 0);
	ck_assert_str_ne(q.msg, "");
	teardown(&x);
}
END_TEST

START_TEST(max_body)
{
	struct ctx x;
	struct rr a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };

	setup(&x);
	/* Known in advance (Content-Length). */
	fetch(&x, &a, &(struct http_opts){ .method = "GET", .url = url(&x, "/big/100000"),
					    .max_body = 1000 });
	ck_assert_int_eq(a.err, -E2BIG);
	ck_assert_uint_le(a.len, 1000);
	/* Found while reading (chunked). */
	fetch(&x, &b, &(struct http_opts){ .method = "GET", .url = url(&x, "/big-chunked/100000"),
					    .max_body = 1000 });
	ck_assert_int_eq(b.err, -E2BIG);
	ck_assert_uint_le(b.len, 1000);
	ck_assert_ptr_nonnull(strstr(b.msg, "1000"));
	/* Exactly at the limit is fine. */
	fetch(&x, &c, &(struct http_opts){ .method = "GET", .url = url(&x, "/big-chunked/1000"),
					    .max_body = 1000 });
	ck_assert_int_eq(c.err, 0);
	ck_assert_uint_eq(c.len, 1000);
	/* 0 means no limit. */
	fetch(&x, &d, &(struct http_opts){ .method = "GET", .url = url(&x, "/big/300000") });
	ck_assert_int_eq(d.err, 0);
	ck_assert_uint_eq(d.len, 300000);
	rr_free(&a);
	rr_free(&b);
	rr_free(&c);
	rr_free(&d);
	teardown(&x);
}
END_TEST

START_TEST(truncated_response)
{
	struct ctx x;
	struct rr q = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/short") });
	ck_assert_int_eq(q.err, -EIO);
	ck_assert_int_eq(q.status, 200);
	ck_assert_str_eq(q.data, "0123456789");
	rr_free(&q);
	teardown(&x);
}
END_TEST

START_TEST(cancel_in_data)
{
	struct ctx x;
	struct rr q = { .cancel_in_data = true }, after = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/stream") });
	ck_assert_int_eq(q.data_calls, 1);
	/* The server sees the connection go away, and nothing more arrives
	 * for the cancelled request while another one runs. */
	server_wait_closed(&x.srv, 1);
	fetch(&x, &after, &(struct http_opts){ .method = "GET", .url = url(&x, "/echo") });
	ck_assert_int_eq(after.err, 0);
	ck_assert_int_eq(q.data_calls, 1);
	ck_assert_int_eq(q.done_calls, 0);
	rr_free(&q);
	rr_free(&after);
	teardown(&x);
}
END_TEST

START_TEST(cancel_in_headers)
{
	struct ctx x;
	struct rr q = { .cancel_in_headers = true }, after = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/big/100000") });
	fetch(&x, &after, &(struct http_opts){ .method = "GET", .url = url(&x, "/echo") });
	ck_assert_int_eq(after.err, 0);
	ck_assert_int_eq(q.headers_calls, 1);
	ck_assert_int_eq(q.data_calls, 0);
	ck_assert_int_eq(q.done_calls, 0);
	rr_free(&q);
	rr_free(&after);
	teardown(&x);
}
END_TEST

/* From inside data_cb (inside libcurl): cancel another request and start a
 * new one; both take effect once libcurl returns. */
START_TEST(reentrant_from_data)
{
	struct ctx x;
	struct rr silent = { 0 }, child = { 0 }, s = { .go_on_data = true };
	char u[128];

	setup(&x);
	snprintf(u, sizeof(u), "http://127.0.0.1:%d/echo", x.srv.port);
	start(&x, &silent, &(struct http_opts){ .method = "GET", .url = url(&x, "/silent") });
	s.cancel_other = &silent;
	s.start_other = &child;
	s.start_url = u;
	start(&x, &s, &(struct http_opts){ .method = "GET", .url = url(&x, "/stream") });
	run(&x);
	ck_assert_int_eq(s.err, 0);
	ck_assert_str_eq(s.data, "part 1\npart 2\npart 3\n");
	ck_assert_int_eq(child.done_calls, 1);
	ck_assert_int_eq(child.err, 0);
	ck_assert_int_eq(child.status, 200);
	ck_assert_int_eq(silent.done_calls, 0);
	server_wait_closed(&x.srv, 1);
	rr_free(&s);
	rr_free(&child);
	teardown(&x);
}
END_TEST

/* From done_cb (outside libcurl): cancel another request at once. */
static struct rr *victim;

static void cancel_other_done_cb(struct http_req *r, int err, long status, const char *msg,
				 void *arg)
{
	rr_done_cb(r, err, status, msg, arg);
	http_cancel(victim->r);
	one_done(victim->x);
}

START_TEST(cancel_from_done)
{
	struct ctx x;
	struct rr silent = { 0 }, q = { 0 };
	struct http_cbs cbs = rr_cbs;

	setup(&x);
	start(&x, &silent, &(struct http_opts){ .method = "GET", .url = url(&x, "/silent") });
	victim = &silent;
	cbs.done_cb = cancel_other_done_cb;
	q.x = &x;
	q.r = http_start(x.h, &(struct http_opts){ .method = "GET", .url = url(&x, "/echo") }, &cbs,
			 &q);
	x.outstanding++;
	run(&x);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(silent.done_calls, 0);
	server_wait_closed(&x.srv, 1);
	teardown(&x);
}
END_TEST

START_TEST(concurrent_20)
{
	struct ctx x;
	struct rr q[20];
	char bodies[20][32];

	setup(&x);
	memset(q, 0, sizeof(q));
	for (int i = 0; i < 20; i++) {
		snprintf(bodies[i], sizeof(bodies[i]), "request number %d", i);
		start(&x, &q[i], &(struct http_opts){ .method = "POST", .url = url(&x, "/echo"),
						       .body = bodies[i],
						       .body_len = strlen(bodies[i]) });
	}
	run(&x);
	for (int i = 0; i < 20; i++) {
		ck_assert_int_eq(q[i].done_calls, 1);
		ck_assert_int_eq(q[i].err, 0);
		ck_assert_int_eq(q[i].status, 200);
		ck_assert_str_eq(q[i].data, bodies[i]);
		rr_free(&q[i]);
	}
	ck_assert_int_eq(x.srv.nreq, 20);
	teardown(&x);
}
END_TEST

/* Sequential requests, each started from the previous one's done_cb,
 * share one kept-alive connection. */
static void chain_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg);

static const struct http_cbs chain_cbs = { .done_cb = chain_done_cb };
static int chain_left, chain_errs;

static void chain_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct ctx *x = arg;

	chain_errs += err != 0 || status != 200;
	if (--chain_left == 0) {
		loop_stop(x->l);
		return;
	}
	ck_assert_ptr_nonnull(
		http_start(x->h, &(struct http_opts){ .method = "GET", .url = x->url }, &chain_cbs,
			   x));
}

START_TEST(keepalive_reuse)
{
	struct ctx x;

	setup(&x);
	chain_left = 5;
	chain_errs = 0;
	ck_assert_ptr_nonnull(http_start(x.h, &(struct http_opts){ .url = url(&x, "/echo") },
					 &chain_cbs, &x));
	run(&x);
	ck_assert_int_eq(chain_left, 0);
	ck_assert_int_eq(chain_errs, 0);
	ck_assert_int_eq(x.srv.nreq, 5);
	ck_assert_int_eq(server_nconn(&x.srv), 1);
	teardown(&x);
}
END_TEST

START_TEST(bad_arguments)
{
	struct ctx x;
	const char *crlf[] = { "X-A: b\r\nX-Injected: 1", NULL };
	const char *noname[] = { ": v", NULL };
	const char *nocolon[] = { "X-A b", NULL };

	setup(&x);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = "ftp://127.0.0.1/" },
				      &rr_cbs, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(http_start(
		x.h, &(struct http_opts){ .method = "BREW", .url = url(&x, "/") }, &rr_cbs, NULL));
	ck_assert_ptr_null(http_start(
		x.h, &(struct http_opts){ .url = url(&x, "/"), .headers = crlf }, &rr_cbs, NULL));
	ck_assert_ptr_null(http_start(
		x.h, &(struct http_opts){ .url = url(&x, "/"), .headers = noname }, &rr_cbs, NULL));
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/"),
							.headers = nocolon },
				      &rr_cbs, NULL));
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/") },
				      &(struct http_cbs){ 0 }, NULL));
	ck_assert_int_eq(errno, EINVAL);
	http_cancel(NULL);
	ck_assert_ptr_null(http_free(NULL));
	teardown(&x);
}
END_TEST

/* http_free with requests in flight: no callbacks, nothing leaked, the
 * server sees its clients go. */
START_TEST(free_with_requests_in_flight)
{
	struct ctx x;
	struct rr a = { 0 }, b = { .stop_on_headers = true };

	setup(&x);
	start(&x, &a, &(struct http_opts){ .method = "GET", .url = url(&x, "/silent") });
	start(&x, &b, &(struct http_opts){ .method = "GET", .url = url(&x, "/hang"),
					    .idle_timeout_ms = 60000 });
	/* Until /hang's headers arrived, so that both are mid-exchange. */
	run(&x);
	ck_assert_int_eq(b.headers_calls, 1);
	x.h = http_free(x.h);
	server_wait_closed(&x.srv, 2);
	ck_assert_int_eq(a.done_calls + b.done_calls, 0);
	teardown(&x);
}
END_TEST

/* ---- response headers in order, pending count (curl) ---- */

START_TEST(headers_in_order)
{
	struct ctx x;
	struct rr q = { 0 }, i = { 0 };

	setup(&x);
	fetch(&x, &q, &(struct http_opts){ .method = "GET", .url = url(&x, "/headers") });
	ck_assert_int_eq(q.err, 0);
	/* Arrival order, repeats kept, names as sent, values trimmed. */
	ck_assert_uint_eq(q.nheaders, 6);
	ck_assert_str_eq(q.all[0], "X-Multi=one");
	ck_assert_str_eq(q.all[1], "x-case=MiXed");
	ck_assert_str_eq(q.all[2], "X-Multi=two");
	ck_assert_str_eq(q.all[3], "X-Empty=");
	ck_assert_str_eq(q.all[4], "X-Padded=a b");
	ck_assert_str_eq(q.all[5], "Content-Length=0");
	/* Only the final response's block, not the 100 Continue's. */
	fetch(&x, &i, &(struct http_opts){ .method = "GET", .url = url(&x, "/interim") });
	ck_assert_int_eq(i.err, 0);
	ck_assert_uint_eq(i.nheaders, 2);
	ck_assert_str_eq(i.all[0], "X-Final=yes");
	ck_assert_str_eq(i.all[1], "Content-Length=2");
	rr_free(&q);
	rr_free(&i);
	teardown(&x);
}
END_TEST

/* Past the end: NULL, and *value is left alone. Checked from headers_cb,
 * while the request is alive. */
static void past_end_headers_cb(struct http_req *r, long status, void *arg)
{
	struct rr *q = arg;
	const char *v = "untouched";
	size_t n = http_req_nheaders(r);

	rr_headers_cb(r, status, arg);
	q->nheaders = n;
	ck_assert_ptr_nonnull(http_req_header_at(r, n - 1, &v));
	ck_assert_str_eq(v, "0"); /* Content-Length: 0, the last one */
	v = "untouched";
	ck_assert_ptr_null(http_req_header_at(r, n, &v));
	ck_assert_ptr_null(http_req_header_at(r, SIZE_MAX, &v));
	ck_assert_str_eq(v, "untouched");
}

START_TEST(header_at_past_end)
{
	struct ctx x;
	struct rr q = { 0 };
	struct http_cbs cbs = rr_cbs;

	setup(&x);
	cbs.headers_cb = past_end_headers_cb;
	q.x = &x;
	q.r = http_start(x.h, &(struct http_opts){ .url = url(&x, "/headers") }, &cbs, &q);
	ck_assert_ptr_nonnull(q.r);
	x.outstanding = 1;
	run(&x);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.headers_calls, 1);
	ck_assert_uint_eq(q.nheaders, 6);
	rr_free(&q);
	teardown(&x);
}
END_TEST

START_TEST(pending_count)
{
	struct ctx x;
	struct rr a = { 0 }, b = { 0 };

	setup(&x);
	ck_assert_uint_eq(http_pending(NULL), 0);
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert(!http_is_relay(x.h));
	start(&x, &a, &(struct http_opts){ .url = url(&x, "/silent") });
	start(&x, &b, &(struct http_opts){ .url = url(&x, "/echo") });
	ck_assert_uint_eq(http_pending(x.h), 2);
	http_cancel(a.r);
	x.outstanding--;
	ck_assert_uint_eq(http_pending(x.h), 1);
	run(&x);
	ck_assert_int_eq(b.err, 0);
	ck_assert_uint_eq(b.pending_in_done, 0); /* a request ending is not pending */
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert_int_eq(a.done_calls, 0);
	rr_free(&b);
	teardown(&x);
}
END_TEST

/* ---- env_headers (curl) ---- */

static const char *const token_spec[] = { "TEST_VAR=X-Token: pre-", NULL };

/* One GET /echo with env_headers; the server's view of X-Token. */
static bool fetch_token(struct ctx *x, const char *const *env, char *out, size_t outlen)
{
	struct rr q = { 0 };
	static const char *const hdrs[] = { "X-Test: plain", NULL };

	fetch(x, &q, &(struct http_opts){ .url = url(x, "/echo"), .headers = hdrs,
					   .env_headers = env });
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.status, 200);
	ck_assert_str_eq(x->srv.got_test, "plain"); /* the ordinary headers still go */
	rr_free(&q);
	return server_header(&x->srv, "X-Token", out, outlen);
}

START_TEST(env_headers_curl)
{
	struct ctx x;
	char v[128];
	static const char *const required[] = { "!TEST_VAR=X-Token: pre-", NULL };
	static const char *const bare[] = { "TEST_VAR=X-Token:", NULL };

	setup(&x);
	ck_assert_int_eq(setenv("TEST_VAR", "s3cret", 1), 0);
	ck_assert(fetch_token(&x, token_spec, v, sizeof(v)));
	ck_assert_str_eq(v, "pre-s3cret");
	ck_assert(fetch_token(&x, required, v, sizeof(v)));
	ck_assert_str_eq(v, "pre-s3cret");
	ck_assert(fetch_token(&x, bare, v, sizeof(v)));
	ck_assert_str_eq(v, "s3cret");
	/* Unset or empty: the header is left out, the request still goes. */
	ck_assert_int_eq(unsetenv("TEST_VAR"), 0);
	ck_assert(!fetch_token(&x, token_spec, v, sizeof(v)));
	ck_assert_int_eq(setenv("TEST_VAR", "", 1), 0);
	ck_assert(!fetch_token(&x, token_spec, v, sizeof(v)));
	ck_assert_int_eq(x.srv.nreq, 5);
	ck_assert_int_eq(unsetenv("TEST_VAR"), 0);
	teardown(&x);
}
END_TEST

START_TEST(env_headers_required_missing)
{
	struct ctx x;
	static const char *const unset[] = { "!UNSET_VAR=X-Token: a", NULL };
	static const char *const empty[] = { "TEST_VAR=X-Other: b", "!TEST_VAR=X-Token: a", NULL };

	setup(&x);
	ck_assert_int_eq(unsetenv("UNSET_VAR"), 0);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/echo"),
							.env_headers = unset },
				      &rr_cbs, NULL));
	ck_assert_int_eq(errno, ENOKEY);
	/* Set but empty counts as missing. */
	ck_assert_int_eq(setenv("TEST_VAR", "", 1), 0);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/echo"),
							.env_headers = empty },
				      &rr_cbs, NULL));
	ck_assert_int_eq(errno, ENOKEY);
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert_int_eq(unsetenv("TEST_VAR"), 0);
	teardown(&x);
	/* Nothing reached the server. */
	ck_assert_int_eq(x.srv.nreq, 0);
}
END_TEST

static const char *const bad_specs[] = {
	"=X: y", "1A=X: y", "A=bad header", "!=X: y", "A=", "A B=X: y",
	"A-B=X: y", "A=: y", "A=X y", "A=X: y\r\nX-Evil: 1", "X: y", "", "!",
};
static const char *const good_specs[] = {
	"A=X: y", "!_A1=X-Y:", "a1=X: ", "TEST_VAR=X-Token: pre-",
};

START_TEST(env_header_spec_form)
{
	struct ctx x;

	for (size_t i = 0; i < ARRAY_SIZE(bad_specs); i++)
		ck_assert_msg(!http_env_header_valid(bad_specs[i]), "\"%s\" accepted",
			      bad_specs[i]);
	for (size_t i = 0; i < ARRAY_SIZE(good_specs); i++)
		ck_assert_msg(http_env_header_valid(good_specs[i]), "\"%s\" refused",
			      good_specs[i]);
	setup(&x);
	ck_assert_int_eq(setenv("A", "1", 1), 0);
	for (size_t i = 0; i < ARRAY_SIZE(bad_specs); i++) {
		const char *env[] = { bad_specs[i], NULL };

		errno = 0;
		ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/echo"),
								.env_headers = env },
					      &rr_cbs, NULL));
		ck_assert_int_eq(errno, EINVAL);
	}
	ck_assert_int_eq(unsetenv("A"), 0);
	teardown(&x);
	ck_assert_int_eq(x.srv.nreq, 0);
}
END_TEST

/* A value carrying CR/LF would inject headers: refused like a bad header. */
START_TEST(env_header_value_crlf)
{
	struct ctx x;

	setup(&x);
	ck_assert_int_eq(setenv("TEST_VAR", "a\r\nX-Evil: 1", 1), 0);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = url(&x, "/echo"),
							.env_headers = token_spec },
				      &rr_cbs, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(unsetenv("TEST_VAR"), 0);
	teardown(&x);
	ck_assert_int_eq(x.srv.nreq, 0);
}
END_TEST

/* ---- relay mode ---- */

#define FAKE_MAX 32

/* The carrier: what relay.start and relay.cancel were given. */
struct fake {
	int start_err; /* relay.start's answer */
	size_t starts, cancels;
	uint64_t start_ids[FAKE_MAX], cancel_ids[FAKE_MAX];
	/* deep copies of the last opts seen by relay.start */
	char method[16], url[128], proxy[64], body[64];
	size_t body_len, max_body, nheaders, nenv;
	uint64_t timeout_ms, idle_ms;
	char headers[4][64], env[4][64];
};

static int fake_start(void *ctx, uint64_t id, const struct http_opts *o)
{
	struct fake *f = ctx;

	ck_assert_uint_lt(f->starts, FAKE_MAX);
	f->start_ids[f->starts++] = id;
	snprintf(f->method, sizeof(f->method), "%s", o->method ? o->method : "(null)");
	snprintf(f->url, sizeof(f->url), "%s", o->url);
	snprintf(f->proxy, sizeof(f->proxy), "%s", o->proxy ? o->proxy : "");
	snprintf(f->body, sizeof(f->body), "%.*s", (int)o->body_len, o->body ? o->body : "");
	f->body_len = o->body_len;
	f->max_body = o->max_body;
	f->timeout_ms = o->timeout_ms;
	f->idle_ms = o->idle_timeout_ms;
	for (f->nheaders = 0; o->headers && o->headers[f->nheaders]; f->nheaders++)
		if (f->nheaders < ARRAY_SIZE(f->headers))
			snprintf(f->headers[f->nheaders], sizeof(f->headers[0]), "%s",
				 o->headers[f->nheaders]);
	for (f->nenv = 0; o->env_headers && o->env_headers[f->nenv]; f->nenv++)
		if (f->nenv < ARRAY_SIZE(f->env))
			snprintf(f->env[f->nenv], sizeof(f->env[0]), "%s", o->env_headers[f->nenv]);
	return f->start_err;
}

static void fake_cancel(void *ctx, uint64_t id)
{
	struct fake *f = ctx;

	ck_assert_uint_lt(f->cancels, FAKE_MAX);
	/* Once per request. */
	for (size_t i = 0; i < f->cancels; i++)
		ck_assert_msg(f->cancel_ids[i] != id, "request %llu cancelled twice",
			      (unsigned long long)id);
	f->cancel_ids[f->cancels++] = id;
}

static const struct http_relay_ops fake_ops = { fake_start, fake_cancel };

static bool fake_cancelled(const struct fake *f, uint64_t id)
{
	for (size_t i = 0; i < f->cancels; i++)
		if (f->cancel_ids[i] == id)
			return true;
	return false;
}

static void relay_setup(struct ctx *x, struct fake *f)
{
	*x = (struct ctx){ 0 };
	*f = (struct fake){ 0 };
	x->l = loop_new();
	ck_assert_ptr_nonnull(x->l);
	x->h = http_new_relay(x->l, &fake_ops, f);
	ck_assert_ptr_nonnull(x->h);
}

static void relay_teardown(struct ctx *x)
{
	x->h = http_free(x->h);
	x->l = loop_free(x->l);
}

/* Starts q through the relay; returns the id relay.start was given. */
static uint64_t rstart(struct ctx *x, struct fake *f, struct rr *q, const struct http_opts *o)
{
	size_t before = f->starts;

	start(x, q, o);
	ck_assert_uint_eq(f->starts, before + 1);
	return f->start_ids[before];
}

static const struct http_opts plain = { .url = "http://far.example/x" };

START_TEST(relay_exchange)
{
	struct ctx x;
	struct fake f;
	struct rr q = { 0 };
	static const char *const look[] = { "x-a", "X-B", "not a header", NULL };
	static const char *const hdrs[] = { "X-Test: 1", "Authorization: Bearer t", NULL };
	static const char *const env[] = { "!TOKEN_VAR=X-Token: pre-", NULL };
	static const char *const head[] = { "X-A: 1", "x-b:  two \t", "not a header", "X-A: 3" };
	static const char *const again[] = { "X-A: again" };
	char body[] = "abc";
	uint64_t id;
	const char *v = NULL;

	relay_setup(&x, &f);
	ck_assert(http_is_relay(x.h));
	q.lookup = look;
	id = rstart(&x, &f, &q,
		    &(struct http_opts){ .method = "POST", .url = "https://far.example/p?q=1",
					 .headers = hdrs, .env_headers = env, .body = body,
					 .body_len = 3, .timeout_ms = 1234,
					 .idle_timeout_ms = 60000, .max_body = 100,
					 .proxy = "http://proxy:3128" });
	memset(body, 0, sizeof(body));
	ck_assert_uint_ne(id, 0);
	/* The opts went to the far side as given; env_headers unresolved
	 * (TOKEN_VAR is the executor's to read, required or not). */
	ck_assert_str_eq(f.method, "POST");
	ck_assert_str_eq(f.url, "https://far.example/p?q=1");
	ck_assert_uint_eq(f.nheaders, 2);
	ck_assert_str_eq(f.headers[0], "X-Test: 1");
	ck_assert_str_eq(f.headers[1], "Authorization: Bearer t");
	ck_assert_uint_eq(f.nenv, 1);
	ck_assert_str_eq(f.env[0], "!TOKEN_VAR=X-Token: pre-");
	ck_assert_str_eq(f.body, "abc");
	ck_assert_uint_eq(f.body_len, 3);
	ck_assert_uint_eq(f.timeout_ms, 1234);
	ck_assert_uint_eq(f.idle_ms, 60000);
	ck_assert_uint_eq(f.max_body, 100);
	ck_assert_str_eq(f.proxy, "http://proxy:3128");
	ck_assert_uint_eq(http_pending(x.h), 1);
	ck_assert_int_eq(q.headers_calls + q.data_calls + q.done_calls, 0);

	/* Unknown ids change nothing. */
	http_relay_head(x.h, id + 100, 500, head, 1);
	http_relay_data(x.h, id + 100, "zz", 2);
	http_relay_done(x.h, id + 100, 0, 500, "other");
	http_relay_head(x.h, 0, 500, head, 1);
	ck_assert_int_eq(q.headers_calls + q.data_calls + q.done_calls, 0);

	http_relay_head(x.h, id, 201, head, ARRAY_SIZE(head));
	ck_assert_int_eq(q.headers_calls, 1);
	ck_assert_int_eq(q.hstatus, 201);
	ck_assert_int_eq(q.data_calls, 0);
	ck_assert_uint_eq(http_req_nheaders(q.r), 3);
	ck_assert_str_eq(http_req_header_at(q.r, 0, &v), "X-A");
	ck_assert_str_eq(v, "1");
	ck_assert_str_eq(http_req_header_at(q.r, 1, &v), "x-b");
	ck_assert_str_eq(v, "two");
	ck_assert_str_eq(http_req_header_at(q.r, 2, &v), "X-A");
	ck_assert_str_eq(v, "3");
	ck_assert_ptr_null(http_req_header_at(q.r, 3, &v));
	ck_assert_str_eq(http_req_header(q.r, "x-a"), "3");
	/* A repeated head is ignored. */
	http_relay_head(x.h, id, 500, again, 1);
	ck_assert_int_eq(q.headers_calls, 1);
	ck_assert_str_eq(http_req_header(q.r, "X-A"), "3");

	http_relay_data(x.h, id, "hel", 3);
	http_relay_data(x.h, id, "", 0); /* nothing to report */
	http_relay_data(x.h, id, "lo", 2);
	ck_assert_int_eq(q.data_calls, 2);
	ck_assert_str_eq(q.data, "hello");
	ck_assert_int_eq(q.done_calls, 0);

	http_relay_done(x.h, id, 0, 201, "fine");
	ck_assert_int_eq(q.done_calls, 1);
	ck_assert_int_eq(q.err, 0);
	ck_assert_int_eq(q.status, 201);
	ck_assert_str_eq(q.msg, "fine");
	ck_assert_str_eq(q.hdr[0], "3");
	ck_assert_str_eq(q.hdr[1], "two");
	ck_assert(q.hdr_null[2]);
	ck_assert_uint_eq(q.nheaders, 3);
	ck_assert_uint_eq(q.pending_in_done, 0);
	ck_assert_uint_eq(http_pending(x.h), 0);
	/* The far side ended it: nothing to cancel. */
	ck_assert_uint_eq(f.cancels, 0);

	/* Anything late for a finished request is ignored (and must not
	 * touch freed memory). */
	http_relay_head(x.h, id, 200, head, 1);
	http_relay_data(x.h, id, "late", 4);
	http_relay_done(x.h, id, 0, 200, "again");
	ck_assert_int_eq(q.done_calls, 1);
	ck_assert_int_eq(q.data_calls, 2);
	rr_free(&q);
	relay_teardown(&x);
	ck_assert_uint_eq(f.cancels, 0);
}
END_TEST

/* Fresh ids, and what relay_done's err/status/msg turn into. */
START_TEST(relay_done_forms)
{
	struct ctx x;
	struct fake f;
	struct rr a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, e = { 0 };
	uint64_t ia, ib, ic, id, ie;

	relay_setup(&x, &f);
	ia = rstart(&x, &f, &a, &plain);
	ib = rstart(&x, &f, &b, &plain);
	ic = rstart(&x, &f, &c, &plain);
	id = rstart(&x, &f, &d, &plain);
	ie = rstart(&x, &f, &e, &plain);
	ck_assert_uint_ne(ia, ib);
	ck_assert_uint_ne(ib, ic);
	ck_assert_uint_ne(ic, id);
	ck_assert_uint_ne(id, ie);
	ck_assert_uint_ne(ia, ie);
	ck_assert_str_eq(f.method, "(null)"); /* left to the far side: GET */
	ck_assert_uint_eq(http_pending(x.h), 5);

	/* No head, a status and success: the status is still reported. */
	http_relay_done(x.h, ia, 0, 204, NULL);
	ck_assert_int_eq(a.done_calls, 1);
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(a.status, 204);
	ck_assert_str_eq(a.msg, "ok");
	ck_assert_int_eq(a.headers_calls, 0);
	/* A positive errno is made negative. */
	http_relay_done(x.h, ib, ECONNREFUSED, 0, "refused over there");
	ck_assert_int_eq(b.err, -ECONNREFUSED);
	ck_assert_str_eq(b.msg, "refused over there");
	ck_assert_int_eq(b.status, 0);
	/* An error with no reason still has one; a status without a head
	 * does not count on a failure. */
	http_relay_done(x.h, ic, -EIO, 502, NULL);
	ck_assert_int_eq(c.err, -EIO);
	ck_assert_int_eq(c.status, 0);
	ck_assert_str_eq(c.msg, "failed");
	http_relay_done(x.h, id, -ETIMEDOUT, 0, "");
	ck_assert_str_eq(d.msg, "failed");
	ck_assert_int_eq(d.err, -ETIMEDOUT);
	/* After a head, a failure keeps the head's status. */
	http_relay_head(x.h, ie, 200, NULL, 0);
	http_relay_done(x.h, ie, -EPROTO, 0, "tls");
	ck_assert_int_eq(e.err, -EPROTO);
	ck_assert_int_eq(e.status, 200);
	ck_assert_int_eq(e.headers_calls, 1);
	ck_assert_uint_eq(e.nheaders, 0);
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert_uint_eq(f.cancels, 0);
	relay_teardown(&x);
}
END_TEST

START_TEST(relay_start_refused)
{
	struct ctx x;
	struct fake f;
	struct rr q = { 0 };
	uint64_t failed, id;
	static const char *const bad_hdr[] = { "X-A b", NULL };
	static const char *const crlf[] = { "X-A: b\r\nX-B: c", NULL };
	static const char *const bad_env[] = { "1A=X: y", NULL };
	static const char *const bad_env2[] = { "A=bad header", NULL };
	static const char *const unset_req[] = { "!UNSET_VAR=X-Token: a", NULL };

	relay_setup(&x, &f);
	f.start_err = -ENOTCONN;
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &plain, &rr_cbs, &q));
	ck_assert_int_eq(errno, ENOTCONN);
	ck_assert_uint_eq(f.starts, 1);
	failed = f.start_ids[0];
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert_uint_eq(f.cancels, 0);
	f.start_err = -EPERM;
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &plain, &rr_cbs, &q));
	ck_assert_int_eq(errno, EPERM);

	/* Refused here: relay.start is not asked. */
	f.start_err = 0;
	f.starts = 0;
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = plain.url,
							.headers = bad_hdr },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = plain.url, .headers = crlf },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = plain.url,
							.env_headers = bad_env },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = plain.url,
							.env_headers = bad_env2 },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .method = "BREW",
							.url = plain.url },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = "ftp://far.example/" },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &(struct http_opts){ .url = plain.url, .body_len = 3 },
				      &rr_cbs, &q));
	ck_assert_int_eq(errno, EINVAL);
	errno = 0;
	ck_assert_ptr_null(http_start(x.h, &plain, &(struct http_cbs){ 0 }, &q));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(f.starts, 0);

	/* A required variable unset here is no reason to refuse: the far
	 * side resolves it in its own environment. */
	ck_assert_int_eq(unsetenv("UNSET_VAR"), 0);
	id = rstart(&x, &f, &q, &(struct http_opts){ .url = plain.url, .env_headers = unset_req });
	ck_assert_uint_ne(id, failed);
	ck_assert_str_eq(f.env[0], "!UNSET_VAR=X-Token: a");
	ck_assert_uint_eq(http_pending(x.h), 1);
	http_relay_done(x.h, id, -ENOKEY, 0, "UNSET_VAR is not set");
	ck_assert_int_eq(q.err, -ENOKEY);
	ck_assert_int_eq(q.done_calls, 1);
	relay_teardown(&x);
	ck_assert_uint_eq(f.cancels, 0);
}
END_TEST

START_TEST(relay_cancel)
{
	struct ctx x;
	struct fake f;
	struct rr a = { 0 }, b = { 0 };
	uint64_t ia, ib;
	static const char *const head[] = { "X-A: 1" };

	relay_setup(&x, &f);
	ia = rstart(&x, &f, &a, &plain);
	ib = rstart(&x, &f, &b, &plain);
	http_relay_head(x.h, ia, 200, head, 1);
	http_cancel(a.r);
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(f.cancel_ids[0], ia);
	ck_assert_uint_eq(http_pending(x.h), 1);
	/* The far side had not heard yet: whatever it still sends is dropped. */
	http_relay_data(x.h, ia, "x", 1);
	http_relay_done(x.h, ia, 0, 200, "ok");
	ck_assert_int_eq(a.headers_calls, 1);
	ck_assert_int_eq(a.data_calls + a.done_calls, 0);
	/* The other one is untouched. */
	http_relay_head(x.h, ib, 200, head, 1);
	http_relay_data(x.h, ib, "y", 1);
	http_relay_done(x.h, ib, 0, 200, "ok");
	ck_assert_int_eq(b.done_calls, 1);
	ck_assert_str_eq(b.data, "y");
	ck_assert_uint_eq(f.cancels, 1);
	rr_free(&a);
	rr_free(&b);
	relay_teardown(&x);
	ck_assert_uint_eq(f.cancels, 1);
}
END_TEST

/* From headers_cb: cancel the request itself, or another one. */
START_TEST(relay_cancel_in_headers)
{
	struct ctx x;
	struct fake f;
	struct rr self = { .cancel_in_headers = true }, other = { 0 }, canceller = { 0 };
	uint64_t is, io, ic;
	static const char *const head[] = { "X-A: 1" };

	relay_setup(&x, &f);
	is = rstart(&x, &f, &self, &plain);
	io = rstart(&x, &f, &other, &plain);
	canceller.cancel_other_in_headers = &other;
	ic = rstart(&x, &f, &canceller, &plain);

	http_relay_head(x.h, is, 200, head, 1);
	ck_assert_int_eq(self.headers_calls, 1);
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(f.cancel_ids[0], is);
	http_relay_data(x.h, is, "x", 1);
	http_relay_done(x.h, is, 0, 200, "ok");
	ck_assert_int_eq(self.data_calls + self.done_calls, 0);

	http_relay_head(x.h, ic, 200, head, 1);
	ck_assert_uint_eq(f.cancels, 2);
	ck_assert(fake_cancelled(&f, io));
	http_relay_head(x.h, io, 200, head, 1);
	http_relay_data(x.h, io, "x", 1);
	http_relay_done(x.h, io, 0, 200, "ok");
	ck_assert_int_eq(other.headers_calls + other.data_calls + other.done_calls, 0);

	http_relay_data(x.h, ic, "fine", 4);
	http_relay_done(x.h, ic, 0, 200, "ok");
	ck_assert_int_eq(canceller.done_calls, 1);
	ck_assert_str_eq(canceller.data, "fine");
	ck_assert_uint_eq(http_pending(x.h), 0);
	ck_assert_uint_eq(f.cancels, 2);
	rr_free(&canceller);
	relay_teardown(&x);
}
END_TEST

/* From data_cb: cancel the request itself; cancel another and start a new
 * one. */
START_TEST(relay_cancel_in_data)
{
	struct ctx x;
	struct fake f;
	struct rr self = { .cancel_in_data = true }, prey = { 0 }, child = { 0 }, s = { 0 };
	uint64_t is, iv, ich, iss;
	static const char *const head[] = { "X-A: 1" };

	relay_setup(&x, &f);
	is = rstart(&x, &f, &self, &plain);
	http_relay_head(x.h, is, 200, head, 1);
	http_relay_data(x.h, is, "one", 3);
	ck_assert_int_eq(self.data_calls, 1);
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(f.cancel_ids[0], is);
	http_relay_data(x.h, is, "two", 3);
	http_relay_done(x.h, is, 0, 200, "ok");
	ck_assert_int_eq(self.data_calls, 1);
	ck_assert_int_eq(self.done_calls, 0);

	iv = rstart(&x, &f, &prey, &plain);
	s.cancel_other = &prey;
	s.start_other = &child;
	s.start_url = "http://far.example/child";
	iss = rstart(&x, &f, &s, &plain);
	http_relay_head(x.h, iv, 200, head, 1);
	http_relay_head(x.h, iss, 200, head, 1);
	http_relay_data(x.h, iss, "a", 1);
	/* The prey is gone, the child started with its own id. */
	ck_assert_uint_eq(f.cancels, 2);
	ck_assert(fake_cancelled(&f, iv));
	ck_assert_uint_eq(f.starts, 4);
	ich = f.start_ids[3];
	ck_assert_str_eq(f.url, "http://far.example/child");
	ck_assert_uint_ne(ich, iv);
	ck_assert_uint_ne(ich, iss);
	http_relay_data(x.h, iv, "late", 4);
	http_relay_done(x.h, iv, 0, 200, "ok");
	ck_assert_int_eq(prey.data_calls + prey.done_calls, 0);
	ck_assert_uint_eq(http_pending(x.h), 2);

	http_relay_head(x.h, ich, 200, NULL, 0);
	http_relay_data(x.h, ich, "kid", 3);
	http_relay_done(x.h, ich, 0, 200, "ok");
	http_relay_data(x.h, iss, "b", 1);
	http_relay_done(x.h, iss, 0, 200, "ok");
	ck_assert_int_eq(child.done_calls, 1);
	ck_assert_str_eq(child.data, "kid");
	ck_assert_int_eq(s.done_calls, 1);
	ck_assert_str_eq(s.data, "ab");
	ck_assert_uint_eq(f.cancels, 2);
	ck_assert_uint_eq(http_pending(x.h), 0);
	rr_free(&self);
	rr_free(&child);
	rr_free(&s);
	relay_teardown(&x);
}
END_TEST

START_TEST(relay_max_body)
{
	struct ctx x;
	struct fake f;
	struct rr q = { 0 }, h = { 0 };
	uint64_t id, ih;
	const char **many = xcalloc(HTTP_MAX_HEADERS + 1, sizeof(*many));

	relay_setup(&x, &f);
	id = rstart(&x, &f, &q, &(struct http_opts){ .url = plain.url, .max_body = 10 });
	http_relay_head(x.h, id, 200, NULL, 0);
	http_relay_data(x.h, id, "123456", 6);
	http_relay_data(x.h, id, "7890", 4); /* exactly at the limit */
	ck_assert_int_eq(q.done_calls, 0);
	ck_assert_uint_eq(f.cancels, 0);
	http_relay_data(x.h, id, "!", 1);
	ck_assert_int_eq(q.done_calls, 1);
	ck_assert_int_eq(q.err, -E2BIG);
	ck_assert_int_eq(q.status, 200);
	ck_assert_ptr_nonnull(strstr(q.msg, "10"));
	ck_assert_str_eq(q.data, "1234567890"); /* the byte over is not passed on */
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(f.cancel_ids[0], id);
	http_relay_data(x.h, id, "x", 1);
	http_relay_done(x.h, id, 0, 200, "ok");
	ck_assert_int_eq(q.done_calls, 1);

	/* Header bounds: -E2BIG before headers_cb, and the far side is told. */
	for (size_t i = 0; i <= HTTP_MAX_HEADERS; i++)
		many[i] = "X-Many: v";
	ih = rstart(&x, &f, &h, &plain);
	http_relay_head(x.h, ih, 200, many, HTTP_MAX_HEADERS + 1);
	ck_assert_int_eq(h.done_calls, 1);
	ck_assert_int_eq(h.err, -E2BIG);
	ck_assert_int_eq(h.headers_calls, 0);
	ck_assert_int_eq(h.status, 0);
	ck_assert_uint_eq(f.cancels, 2);
	ck_assert(fake_cancelled(&f, ih));
	ck_assert_uint_eq(http_pending(x.h), 0);
	free(many);
	rr_free(&q);
	relay_teardown(&x);
}
END_TEST

START_TEST(relay_idle_timeout)
{
	struct ctx x;
	struct fake f;
	struct rr q = { 0 }, other = { 0 };
	uint64_t id, io;

	relay_setup(&x, &f);
	io = rstart(&x, &f, &other, &plain);
	id = rstart(&x, &f, &q, &(struct http_opts){ .url = plain.url, .idle_timeout_ms = 100 });
	http_relay_head(x.h, id, 200, NULL, 0);
	x.outstanding--; /* the loop stops when q ends; other has no timeout */
	run(&x);
	ck_assert_int_eq(q.done_calls, 1);
	ck_assert_int_eq(q.err, -ETIMEDOUT);
	ck_assert_int_eq(q.status, 200);
	ck_assert_str_eq(q.msg, "no data for 100 ms");
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(f.cancel_ids[0], id);
	http_relay_done(x.h, id, 0, 200, "late");
	ck_assert_int_eq(q.done_calls, 1);
	/* The one without a timeout is still there. */
	ck_assert_int_eq(other.done_calls, 0);
	ck_assert_uint_eq(http_pending(x.h), 1);
	http_relay_done(x.h, io, 0, 204, NULL);
	ck_assert_int_eq(other.done_calls, 1);
	relay_teardown(&x);
	ck_assert_uint_eq(f.cancels, 1);
}
END_TEST

/* A done_cb that starts one new request (during fail_all). */
static struct rr *restart_into;

static void restart_done_cb(struct http_req *r, int err, long status, const char *msg, void *arg)
{
	struct rr *q = arg, *next = restart_into;

	rr_done_cb(r, err, status, msg, arg);
	restart_into = NULL; /* once: an endless retry would never end */
	if (next)
		start(q->x, next, &plain);
}

/* A done_cb that cancels another request unless that one already ended. */
static struct rr *fail_victim;
static bool fail_victim_cancelled;

static void cancel_victim_done_cb(struct http_req *r, int err, long status, const char *msg,
				  void *arg)
{
	rr_done_cb(r, err, status, msg, arg);
	if (fail_victim->done_calls == 0) {
		http_cancel(fail_victim->r);
		fail_victim_cancelled = true;
	}
}

/* Every active request ends with the carrier's err, without relay.cancel
 * (there is no one to tell). A request a done_cb starts meanwhile is
 * accepted by relay.start and then ended by the same fail_all: once it
 * returns, nothing is pending. */
START_TEST(relay_fail_all)
{
	struct ctx x;
	struct fake f;
	struct rr a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 }, v = { 0 }, k = { 0 }, after = { 0 };
	struct http_cbs restart_cbs = rr_cbs, cancel_cbs = rr_cbs;
	uint64_t ia, ic, iv, ik, iafter;
	static const char *const head[] = { "X-A: 1" };

	relay_setup(&x, &f);
	restart_cbs.done_cb = restart_done_cb;
	cancel_cbs.done_cb = cancel_victim_done_cb;
	ia = rstart(&x, &f, &a, &plain);
	b.x = &x;
	b.r = http_start(x.h, &plain, &restart_cbs, &b);
	ck_assert_ptr_nonnull(b.r);
	ic = rstart(&x, &f, &c, &plain);
	iv = rstart(&x, &f, &v, &plain);
	k.x = &x;
	k.r = http_start(x.h, &plain, &cancel_cbs, &k);
	ck_assert_ptr_nonnull(k.r);
	ik = f.start_ids[f.starts - 1];
	http_relay_head(x.h, ia, 200, head, 1);
	http_relay_data(x.h, ia, "part", 4);
	http_cancel(c.r); /* not active: no callback from fail_all */
	ck_assert_uint_eq(f.cancels, 1);
	ck_assert_uint_eq(http_pending(x.h), 4);

	restart_into = &d;
	fail_victim = &v;
	fail_victim_cancelled = false;
	http_relay_fail_all(x.h, -ECONNRESET, "link lost");

	ck_assert_int_eq(a.done_calls, 1);
	ck_assert_int_eq(a.err, -ECONNRESET);
	ck_assert_str_eq(a.msg, "link lost");
	ck_assert_int_eq(a.status, 200);
	ck_assert_str_eq(a.data, "part");
	ck_assert_int_eq(b.done_calls, 1);
	ck_assert_int_eq(b.err, -ECONNRESET);
	ck_assert_int_eq(b.status, 0);
	ck_assert_int_eq(k.done_calls, 1);
	ck_assert_int_eq(k.err, -ECONNRESET);
	ck_assert_int_eq(c.done_calls, 0);
	/* The request started from b's done_cb went to relay.start, then
	 * ended with the same err. */
	ck_assert_ptr_null(restart_into);
	ck_assert_int_eq(d.done_calls, 1);
	ck_assert_int_eq(d.err, -ECONNRESET);
	ck_assert_str_eq(d.msg, "link lost");
	ck_assert_uint_eq(f.starts, 6);
	/* The victim either ended first or was cancelled from k's done_cb,
	 * never both, never neither. */
	ck_assert_int_eq(v.done_calls + (fail_victim_cancelled ? 1 : 0), 1);
	if (v.done_calls)
		ck_assert_int_eq(v.err, -ECONNRESET);
	/* relay.cancel only for c and a victim cancelled while still live. */
	ck_assert_uint_eq(f.cancels, fail_victim_cancelled ? 2u : 1u);
	ck_assert(fake_cancelled(&f, ic));
	ck_assert(!fake_cancelled(&f, ia));
	ck_assert(!fake_cancelled(&f, ik));
	ck_assert_uint_eq(http_pending(x.h), 0);

	/* Late reports are dropped; the handle still works afterwards. */
	http_relay_data(x.h, ia, "late", 4);
	http_relay_done(x.h, ia, 0, 200, "ok");
	ck_assert_int_eq(a.done_calls, 1);
	ck_assert_str_eq(a.data, "part");
	(void)iv;
	iafter = rstart(&x, &f, &after, &plain);
	http_relay_done(x.h, iafter, 0, 200, "ok");
	ck_assert_int_eq(after.done_calls, 1);
	ck_assert_int_eq(after.err, 0);
	/* Nothing active: a second fail_all does nothing. */
	http_relay_fail_all(x.h, -ECANCELED, "again");
	ck_assert_int_eq(a.done_calls, 1);
	rr_free(&a);
	relay_teardown(&x);
}
END_TEST

START_TEST(relay_free_cancels)
{
	struct ctx x;
	struct fake f;
	struct rr a = { 0 }, b = { 0 }, c = { 0 }, d = { 0 };
	uint64_t ia, ib, ic, id;
	static const char *const head[] = { "X-A: 1" };

	relay_setup(&x, &f);
	ck_assert_uint_eq(http_pending(x.h), 0);
	ia = rstart(&x, &f, &a, &plain);
	ib = rstart(&x, &f, &b, &(struct http_opts){ .url = plain.url, .idle_timeout_ms = 60000 });
	ic = rstart(&x, &f, &c, &plain);
	id = rstart(&x, &f, &d, &plain);
	ck_assert_uint_eq(http_pending(x.h), 4);
	http_relay_head(x.h, ib, 200, head, 1);
	http_relay_data(x.h, ib, "x", 1);
	http_relay_done(x.h, ic, 0, 200, "ok");
	ck_assert_uint_eq(c.pending_in_done, 3);
	ck_assert_uint_eq(http_pending(x.h), 3);
	http_cancel(d.r);
	ck_assert_uint_eq(http_pending(x.h), 2);
	ck_assert_uint_eq(f.cancels, 1);

	x.h = http_free(x.h);
	ck_assert_ptr_null(x.h);
	/* Each live request is cancelled once (d was already); no callbacks. */
	ck_assert_uint_eq(f.cancels, 3);
	ck_assert(fake_cancelled(&f, ia));
	ck_assert(fake_cancelled(&f, ib));
	ck_assert(fake_cancelled(&f, id));
	ck_assert(!fake_cancelled(&f, ic));
	ck_assert_int_eq(a.headers_calls + a.data_calls + a.done_calls, 0);
	ck_assert_int_eq(b.done_calls, 0);
	ck_assert_int_eq(b.data_calls, 1);
	ck_assert_int_eq(c.done_calls, 1);
	ck_assert_int_eq(d.done_calls, 0);
	rr_free(&b);
	relay_teardown(&x);
}
END_TEST

static Suite *http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("exchange");

	tcase_add_test(tc, get_and_post);
	tcase_add_test(tc, other_methods);
	tcase_add_test(tc, large_body_no_expect);
	tcase_add_test(tc, status_is_not_an_error);
	tcase_add_test(tc, response_headers);
	tcase_add_test(tc, header_bounds);
	tcase_add_test(tc, streaming_in_pieces);
	tcase_add_test(tc, max_body);
	tcase_add_test(tc, truncated_response);
	tcase_add_test(tc, bad_arguments);
	suite_add_tcase(s, tc);
	tc = tcase_create("failures");
	tcase_add_test(tc, whole_timeout);
	tcase_add_test(tc, idle_timeout);
	tcase_add_test(tc, idle_restarts_with_data);
	tcase_add_test(tc, connection_refused);
	suite_add_tcase(s, tc);
	tc = tcase_create("control");
	tcase_add_test(tc, cancel_in_data);
	tcase_add_test(tc, cancel_in_headers);
	tcase_add_test(tc, reentrant_from_data);
	tcase_add_test(tc, cancel_from_done);
	tcase_add_test(tc, concurrent_20);
	tcase_add_test(tc, keepalive_reuse);
	tcase_add_test(tc, free_with_requests_in_flight);
	tcase_add_test(tc, pending_count);
	suite_add_tcase(s, tc);
	tc = tcase_create("headers");
	tcase_add_test(tc, headers_in_order);
	tcase_add_test(tc, header_at_past_end);
	tcase_add_test(tc, env_headers_curl);
	tcase_add_test(tc, env_headers_required_missing);
	tcase_add_test(tc, env_header_spec_form);
	tcase_add_test(tc, env_header_value_crlf);
	suite_add_tcase(s, tc);
	tc = tcase_create("relay");
	tcase_add_test(tc, relay_exchange);
	tcase_add_test(tc, relay_done_forms);
	tcase_add_test(tc, relay_start_refused);
	tcase_add_test(tc, relay_cancel);
	tcase_add_test(tc, relay_cancel_in_headers);
	tcase_add_test(tc, relay_cancel_in_data);
	tcase_add_test(tc, relay_max_body);
	tcase_add_test(tc, relay_idle_timeout);
	tcase_add_test(tc, relay_fail_all);
	tcase_add_test(tc, relay_free_cancels);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(http_suite)
