/* httpd.c - see httpd.h.
 *
 * A connection is a small state machine driven by its loop_io:
 *   HEAD   read until the blank line ending the request head;
 *   WRITE  the whole answer is in `out`; send it, EPOLLOUT while the socket
 *          is full;
 *   DRAIN  answer sent and our side shut down; read and discard until the
 *          peer closes. Closing with unread input would make the kernel send
 *          a RST, which can destroy the answer before the peer reads it (a
 *          431 to a client still sending its head, a request with a body).
 * One timer per connection enforces two deadlines from accept: the request
 * head must be complete by head_timeout_ms, the connection closed by
 * timeout_ms. It first fires at the earlier one and re-arms for the rest of
 * the life when the head has arrived by then.
 *
 * The connection list is in accept order (oldest first), so that when every
 * slot is taken the oldest connection without a pending answer is the first
 * one found and closed for the newcomer (conn_evict).
 */
#include "httpd.h"

#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>

#define HTTPD_BACKLOG 128
#define HTTPD_ACCEPT_BATCH 32
/* After EMFILE and the like the listener stays readable: without a pause a
 * level-triggered loop would spin on it. */
#define HTTPD_ACCEPT_PAUSE_MS 100
/* What a peer may still send after its answer before we stop listening. */
#define HTTPD_MAX_DRAIN (64 * 1024)

enum conn_state { CONN_HEAD, CONN_WRITE, CONN_DRAIN };

struct httpd_conn {
	struct httpd *d;
	struct httpd_conn *prev, *next;
	int fd;
	enum conn_state state;
	struct loop_io *io;
	struct loop_timer *timer; /* NULL once it fired */
	uint64_t accepted;        /* loop time of accept */
	char *out;
	size_t outlen, outoff;
	size_t drained;
	size_t hlen;
	char head[HTTPD_MAX_HEAD];
};

struct httpd {
	struct loop *l;
	int fd;
	uint16_t port;
	uint64_t timeout_ms, head_timeout_ms;
	struct loop_io *io;
	struct loop_timer *pause; /* pending while accepting is paused */
	httpd_cb cb;
	void *arg;
	struct httpd_conn *conns, *last; /* oldest first */
	size_t nconns;
};

/* ---- connections ---- */

static void conn_close(struct httpd_conn *c)
{
	struct httpd *d = c->d;

	loop_io_del(c->io);
	safe_close(c->fd);
	loop_timer_cancel(c->timer);
	if (c->prev)
		c->prev->next = c->next;
	else
		d->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		d->last = c->prev;
	d->nconns--;
	free(c->out);
	/* The head held the OAuth code. */
	secure_wipe(c->head, sizeof(c->head));
	free(c);
}

static void conn_timeout_cb(struct loop_timer *t, void *arg)
{
	struct httpd_conn *c = arg;
	uint64_t now = loop_now_ms(c->d->l), end = c->accepted + c->d->timeout_ms;

	/* The head deadline passed with the head complete: the rest of the
	 * life is for writing the answer. */
	if (c->state != CONN_HEAD && now < end) {
		loop_timer_rearm(t, end - now);
		return;
	}
	c->timer = NULL; /* fired: no longer ours to cancel */
	conn_close(c);
}

static void conn_drain(struct httpd_conn *c)
{
	char buf[4096];
	ssize_t n = read(c->fd, buf, sizeof(buf));

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0 || (c->drained += (size_t)n) > HTTPD_MAX_DRAIN)
		conn_close(c);
}

static void conn_flush(struct httpd_conn *c)
{
	while (c->outoff < c->outlen) {
		ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return; /* LOOP_WRITE brings us back */
		if (n < 0) {
			conn_close(c);
			return;
		}
		c->outoff += (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->state = CONN_DRAIN;
	if (shutdown(c->fd, SHUT_WR) < 0 || loop_io_mod(c->io, LOOP_READ) < 0)
		conn_close(c);
}

static const char *status_reason(int status)
{
	static const struct {
		int status;
		const char *reason;
	} reasons[] = {
		{ 200, "OK" },
		{ 204, "No Content" },
		{ 301, "Moved Permanently" },
		{ 302, "Found" },
		{ 303, "See Other" },
		{ 307, "Temporary Redirect" },
		{ 400, "Bad Request" },
		{ 403, "Forbidden" },
		{ 404, "Not Found" },
		{ 405, "Method Not Allowed" },
		{ 408, "Request Timeout" },
		{ 410, "Gone" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" },
		{ 503, "Service Unavailable" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(reasons); i++)
		if (reasons[i].status == status)
			return reasons[i].reason;
	return "Unknown";
}

/* Queues the whole answer and starts sending it. Takes body. */
static void conn_respond(struct httpd_conn *c, int status, const char *ctype, char *body,
			 bool head_only)
{
	/* 204 and 304 carry neither a body nor a Content-Length (RFC 9110). */
	bool bodyless = status == 204 || status == 304;
	size_t blen = body && !bodyless ? strlen(body) : 0;
	char clen[48] = "";
	char *hdr;
	size_t hlen;

	if (!bodyless)
		snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", blen);
	hdr = xasprintf("HTTP/1.1 %d %s\r\n"
			"Content-Type: %s\r\n"
			"%s%s"
			"Connection: close\r\n"
			"Cache-Control: no-store\r\n"
			"\r\n",
			status, status_reason(status), ctype ? ctype : "text/plain; charset=utf-8",
			clen, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	hlen = strlen(hdr);
	if (head_only)
		blen = 0;
	c->out = xrealloc(hdr, hlen + blen);
	if (blen)
		memcpy(c->out + hlen, body, blen);
	free(body);
	c->outlen = hlen + blen;
	c->outoff = 0;
	c->state = CONN_WRITE;
	if (loop_io_mod(c->io, LOOP_WRITE) < 0) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

static bool is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Splits the request line in place (head is NUL-free and holds a '\n').
 * The target must be origin-form: "/" then visible ASCII, no fragment. */
static int parse_request_line(char *head, struct httpd_request *rq)
{
	char *nl = strchr(head, '\n'), *target, *version, *q;

	*nl = '\0';
	if (nl > head && nl[-1] == '\r')
		nl[-1] = '\0';
	target = strchr(head, ' ');
	if (!target || target == head)
		return -EINVAL;
	*target++ = '\0';
	version = strchr(target, ' ');
	if (!version)
		return -EINVAL;
	*version++ = '\0';
	for (const char *p = head; *p; p++)
		if (!is_tchar(*p))
			return -EINVAL;
	if (strlen(version) != 8 || strncmp(version, "HTTP/1.", 7) != 0 || version[7] < '0' ||
	    version[7] > '9')
		return -EINVAL;
	if (target[0] != '/')
		return -EINVAL;
	for (const char *p = target; *p; p++)
		if (*p < 0x21 || *p > 0x7e || *p == '#')
			return -EINVAL;
	q = strchr(target, '?');
	if (q)
		*q++ = '\0';
	*rq = (struct httpd_request){ .method = head, .path = target, .query = q ? q : "",
				      .version = version };
	return 0;
}

static bool ctype_ok(const char *ctype)
{
	for (const char *p = ctype; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	return true;
}

static void conn_dispatch(struct httpd_conn *c, size_t end)
{
	struct httpd_request rq;
	struct httpd_response resp = { .status = 200 };
	bool head_only;

	if (httpd_parse_request(c->head, end, &rq) < 0) {
		conn_respond(c, 400, NULL, xstrdup("bad request\n"), false);
		return;
	}
	head_only = strcmp(rq.method, "HEAD") == 0;
	if (!head_only && strcmp(rq.method, "GET") != 0) {
		conn_respond(c, 405, NULL, xstrdup("method not allowed\n"), false);
		return;
	}
	c->d->cb(&rq, &resp, c->d->arg);
	if (resp.status < 200 || resp.status > 599 ||
	    (resp.content_type && !ctype_ok(resp.content_type))) {
		free(resp.body);
		conn_respond(c, 500, NULL, xstrdup("internal error\n"), head_only);
		return;
	}
	conn_respond(c, resp.status, resp.content_type, resp.body, head_only);
}

int httpd_parse_request(char *buf, size_t end, struct httpd_request *rq)
{
	if (end == 0 || memchr(buf, '\0', end) || !memchr(buf, '\n', end))
		return -EINVAL;
	return parse_request_line(buf, rq);
}

size_t httpd_head_end(const char *buf, size_t len, size_t from)
{
	for (size_t i = from ? from : 1; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i - 1] == '\n' || (i >= 2 && buf[i - 1] == '\r' && buf[i - 2] == '\n'))
			return i + 1;
	}
	return 0;
}

static void conn_read_head(struct httpd_conn *c)
{
	ssize_t n = read(c->fd, c->head + c->hlen, sizeof(c->head) - c->hlen);
	size_t old = c->hlen, end;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_close(c); /* gone before asking anything: nobody to answer */
		return;
	}
	c->hlen += (size_t)n;
	end = httpd_head_end(c->head, c->hlen, old);
	if (end)
		conn_dispatch(c, end);
	else if (c->hlen == sizeof(c->head))
		conn_respond(c, 431, NULL, xstrdup("request head too large\n"), false);
}

static void conn_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct httpd_conn *c = arg;

	(void)io;
	(void)fd;
	(void)revents; /* errors and hangups show up in read/send */
	switch (c->state) {
	case CONN_HEAD:
		conn_read_head(c);
		break;
	case CONN_WRITE:
		conn_flush(c);
		break;
	case CONN_DRAIN:
		conn_drain(c);
		break;
	}
}

static void conn_new(struct httpd *d, int fd)
{
	struct httpd_conn *c = xcalloc(1, sizeof(*c));

	c->d = d;
	c->fd = fd;
	c->io = loop_io_add(d->l, fd, LOOP_READ, conn_cb, c);
	if (!c->io) {
		close(fd);
		free(c);
		return;
	}
	c->accepted = loop_now_ms(d->l);
	c->timer = loop_timer_add(d->l, MIN(d->head_timeout_ms, d->timeout_ms), conn_timeout_cb,
				  c);
	c->prev = d->last;
	if (d->last)
		d->last->next = c;
	else
		d->conns = c;
	d->last = c;
	d->nconns++;
	/* A browser has usually sent its request by now: read it before the
	 * next accept batch can evict this connection. */
	conn_read_head(c);
}

/* Makes room for one more connection: closes the oldest one that is not
 * writing an answer (still in its head, or answered and draining). False
 * when every connection is writing an answer. */
static bool conn_evict(struct httpd *d)
{
	for (struct httpd_conn *c = d->conns; c; c = c->next) {
		if (c->state != CONN_WRITE) {
			conn_close(c);
			return true;
		}
	}
	return false;
}

/* ---- listener ---- */

static void listen_resume_cb(struct loop_timer *t, void *arg)
{
	struct httpd *d = arg;

	(void)t;
	d->pause = NULL;
	(void)loop_io_mod(d->io, LOOP_READ);
}

static bool accept_transient(int e)
{
	/* Errors of the one connection being accepted (accept(2) passes
	 * pending network errors through); the listener is fine. */
	return e == EINTR || e == ECONNABORTED || e == EPROTO || e == EPERM || e == ENETDOWN ||
	       e == ENOPROTOOPT || e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH ||
	       e == EOPNOTSUPP || e == ENETUNREACH;
}

static void listen_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct httpd *d = arg;

	(void)revents;
	for (int i = 0; i < HTTPD_ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (cfd < 0 && accept_transient(errno))
			continue;
		if (cfd < 0) {
			/* Out of descriptors or memory: retry later. */
			if (loop_io_mod(io, 0) == 0)
				d->pause = loop_timer_add(d->l, HTTPD_ACCEPT_PAUSE_MS,
							  listen_resume_cb, d);
			return;
		}
		if (d->nconns >= HTTPD_MAX_CONNS && !conn_evict(d))
			close(cfd);
		else
			conn_new(d, cfd);
	}
}

static int parse_host(const char *host, uint16_t port, struct sockaddr_storage *ss,
		      socklen_t *len)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(port);
		*len = sizeof(*in4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof(*in6);
		return 0;
	}
	return -EINVAL;
}

static int listen_socket(const char *host, uint16_t port, uint16_t *bound)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int one = 1, r;
	_cleanup_close_ int fd = -1;

	r = parse_host(host, port, &ss, &len);
	if (r < 0)
		return r;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return -errno;
	/* "::1" means exactly that, not IPv4 too. */
	if (ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, HTTPD_BACKLOG) < 0)
		return -errno;
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	*bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					       : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return TAKE_FD(fd);
}

struct httpd *httpd_new(struct loop *l, const char *host, uint16_t port, httpd_cb cb, void *arg,
			int *err)
{
	struct httpd *d;
	uint16_t bound = 0;
	int fd;

	if (!l || !host || !cb) {
		*err = -EINVAL;
		return NULL;
	}
	fd = listen_socket(host, port, &bound);
	if (fd < 0) {
		*err = fd;
		return NULL;
	}
	d = xcalloc(1, sizeof(*d));
	*d = (struct httpd){ .l = l, .fd = fd, .port = bound, .cb = cb, .arg = arg,
			     .timeout_ms = HTTPD_CONN_TIMEOUT_MS,
			     .head_timeout_ms = HTTPD_HEAD_TIMEOUT_MS };
	d->io = loop_io_add(l, fd, LOOP_READ, listen_cb, d);
	if (!d->io) {
		*err = -errno;
		close(fd);
		free(d);
		return NULL;
	}
	return d;
}

uint16_t httpd_port(const struct httpd *d)
{
	return d->port;
}

size_t httpd_nconns(const struct httpd *d)
{
	return d->nconns;
}

void httpd_set_timeout_ms(struct httpd *d, uint64_t ms)
{
	d->timeout_ms = ms;
}

void httpd_set_head_timeout_ms(struct httpd *d, uint64_t ms)
{
	d->head_timeout_ms = ms;
}

struct httpd *httpd_free(struct httpd *d)
{
	if (!d)
		return NULL;
	while (d->conns)
		conn_close(d->conns);
	loop_timer_cancel(d->pause);
	loop_io_del(d->io);
	safe_close(d->fd);
	free(d);
	return NULL;
}
