/* client_listen.c - the listeners: stdio, unix sockets (a connection
 * speaks lines when its first byte is '{', WebSocket otherwise), and ws://
 * on TCP (WebSocket only, Authorization checked).
 *
 * A unix connection is "sniffed" first: its first byte is peeked
 * (MSG_PEEK, nothing consumed) when it arrives, and the connection goes to
 * the line or the WebSocket transport whole. Sniffing connections count
 * towards max_sessions.
 */
#include "client_int.h"

#include "log.h"
#include "loop.h"
#include "util.h"
#include "wshttp.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define ACCEPT_BATCH 16     /* connections taken per wake-up */
#define ACCEPT_PAUSE_MS 100 /* after EMFILE and the like */
#define SNIFF_RETRY_MS 10   /* "GE": look again then (peeking does not consume) */
#define SNIFF_MAX_MS 10000  /* still undecided then: the line protocol */

struct sniff {
	struct sniff *next;
	struct client_srv *srv;
	int fd;
	struct loop_io *io;
	struct loop_timer *retry;
	uint64_t deadline;
};

/* The sniffing connections of all unix listeners (few, short-lived). */
static struct sniff *sniffs;

static struct client_srv *srv_new(struct loop *l, const struct client_ops *ops, void *arg)
{
	struct client_srv *s = xcalloc(1, sizeof(*s));

	s->l = l;
	s->ops = ops;
	s->arg = arg;
	s->max_line = ops->max_line ? ops->max_line : CLIENT_MAX_LINE;
	s->max_output = ops->max_output ? ops->max_output : CLIENT_MAX_OUTPUT;
	s->max_sessions = ops->max_sessions ? ops->max_sessions : CLIENT_MAX_SESSIONS;
	s->lfd = -1;
	client_srv_register(s);
	return s;
}

int client_srv_stdio(struct loop *l, int in_fd, int out_fd, const struct client_ops *ops,
		     void *arg, struct client_srv **out)
{
	struct client_srv *s;
	int r;

	if (!ops || !ops->request_cb || in_fd < 0 || out_fd < 0)
		return -EINVAL;
	s = srv_new(l, ops, arg);
	s->name = xstrdup("stdio://");
	r = client_line_new(s, in_fd, out_fd, false);
	if (r < 0) {
		client_srv_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- accepting ---- */

static size_t srv_sniffing(const struct client_srv *s)
{
	size_t n = 0;

	for (const struct sniff *k = sniffs; k; k = k->next)
		n += k->srv == s;
	return n;
}

static void sniff_free(struct sniff *k, bool close_fd)
{
	for (struct sniff **pp = &sniffs; *pp; pp = &(*pp)->next) {
		if (*pp == k) {
			*pp = k->next;
			break;
		}
	}
	loop_io_del(k->io);
	loop_timer_cancel(k->retry);
	if (close_fd)
		safe_close(k->fd);
	free(k);
}

static void start_session(struct client_srv *s, int fd, bool ws)
{
	int r = ws ? client_ws_new(s, fd) : client_line_new(s, fd, fd, true);

	if (r < 0) {
		log_warn("cannot serve a client connection on %s: %s", s->name, strerror(-r));
		if (!ws)
			close(fd); /* client_ws_new closes it itself */
	}
}

static void sniff_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);

static void sniff_retry_cb(struct loop_timer *t, void *arg)
{
	struct sniff *k = arg;

	(void)t;
	k->retry = NULL;
	if (loop_io_mod(k->io, LOOP_READ) < 0)
		sniff_free(k, true);
}

static void sniff_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct sniff *k = arg;
	struct client_srv *s = k->srv;
	char b[17];
	enum wshttp_sniff what;
	ssize_t n;

	(void)io;
	(void)revents;
	do
		n = recv(fd, b, sizeof(b), MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	if (n <= 0) {
		sniff_free(k, true);
		return;
	}
	what = wshttp_sniff(b, (size_t)n);
	if (what == WSHTTP_SNIFF_MORE && loop_now_ms(s->l) < k->deadline) {
		/* Level-triggered epoll would report the same bytes again. */
		if (loop_io_mod(k->io, 0) < 0)
			sniff_free(k, true);
		else
			k->retry = loop_timer_add(s->l, SNIFF_RETRY_MS, sniff_retry_cb, k);
		return;
	}
	sniff_free(k, false);
	/* An HTTP request line: WebSocket (Codex's clients). Anything else,
	 * '{' first of all (the tandem CLI, scripts), keeps the line protocol,
	 * which answers what is not JSON with parse errors. */
	start_session(s, fd, what == WSHTTP_SNIFF_HTTP);
}

static void srv_resume_cb(struct loop_timer *t, void *arg)
{
	struct client_srv *s = arg;

	(void)t;
	s->pause = NULL;
	if (loop_io_mod(s->lio, LOOP_READ) < 0)
		log_error("cannot resume accepting on %s", s->name);
}

/* One best-effort answer so the client knows why, then close: a JSON line
 * on unix (the protocol is not known yet; the CLI reads lines), 503 on
 * ws://. */
static void srv_refuse(struct client_srv *s, int fd)
{
	char msg[160];
	char *http = NULL;
	size_t len;
	int n = snprintf(msg, sizeof(msg),
			 "{\"id\":null,\"error\":{\"code\":%d,\"message\":"
			 "\"Server overloaded: too many sessions; retry later\"}}\n",
			 CLIENT_OVERLOADED);

	if (!s->refusing) {
		s->refusing = true;
		log_warn("%u client sessions open on %s: refusing new connections", s->max_sessions,
			 s->name);
	}
	if (s->ws_only) {
		http = wshttp_answer(503, NULL, "too many sessions; retry later\n", false, &len);
		(void)!send(fd, http, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(http);
	} else {
		(void)!send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
	}
	close(fd);
}

static void srv_accept_failed(struct client_srv *s, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
		return;
	/* EMFILE & co. leave the connection pending: level-triggered epoll
	 * would spin, so stop listening for a moment. */
	log_warn("accept on %s: %s; pausing %d ms", s->name, strerror(err), ACCEPT_PAUSE_MS);
	if (loop_io_mod(s->lio, 0) == 0 && !s->pause)
		s->pause = loop_timer_add(s->l, ACCEPT_PAUSE_MS, srv_resume_cb, s);
}

static void srv_accept_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct client_srv *s = arg;

	(void)io;
	(void)revents;
	for (int i = 0; i < ACCEPT_BATCH; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct sniff *k;

		if (cfd < 0) {
			srv_accept_failed(s, errno);
			return;
		}
		if (s->count + srv_sniffing(s) >= s->max_sessions) {
			srv_refuse(s, cfd);
			continue;
		}
		if (s->ws_only) {
			int one = 1;

			/* Small frames in a row (deltas, notifications) must not wait
			 * for the peer's delayed ACK (Nagle). */
			(void)setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			start_session(s, cfd, true);
			continue;
		}
		k = xcalloc(1, sizeof(*k));
		*k = (struct sniff){ .srv = s, .fd = cfd, .next = sniffs,
				     .deadline = loop_now_ms(s->l) + SNIFF_MAX_MS };
		k->io = loop_io_add(s->l, cfd, LOOP_READ, sniff_cb, k);
		if (!k->io) {
			log_warn("cannot watch a client connection: %s", strerror(errno));
			close(cfd);
			free(k);
			continue;
		}
		sniffs = k;
	}
}

static int srv_watch(struct client_srv *s, char *err, size_t errlen)
{
	s->lio = loop_io_add(s->l, s->lfd, LOOP_READ, srv_accept_cb, s);
	if (s->lio)
		return 0;
	snprintf(err, errlen, "cannot watch %s: %s", s->name, strerror(errno));
	return -errno;
}

/* ---- unix ---- */

/* Clears the way for bind: nothing there, or a stale socket we remove. */
static int unix_clear_path(const char *path, const struct sockaddr_un *sa, char *err,
			   size_t errlen)
{
	struct stat st;
	int fd, r;

	if (lstat(path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -EEXIST;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0 ? -errno : 0;
	close(fd);
	if (r == -ENOENT)
		return 0;
	if (r == 0 || r == -EAGAIN) { /* EAGAIN: a live server with a full backlog */
		snprintf(err, errlen, "%s: another server is listening there", path);
		return -EADDRINUSE;
	}
	if (r != -ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	if (unlink(path) < 0 && errno != ENOENT) {
		r = -errno;
		snprintf(err, errlen, "cannot remove stale socket %s: %s", path, strerror(-r));
		return r;
	}
	return 0;
}

/* Binds under a temporary name in the same directory (mode 0600 from the
 * start), listens, then renames the socket into place: a client that sees
 * the path can connect at once (a bind at the final path would show it
 * before listen()). Returns the fd. */
static int unix_listen(const char *path, const struct sockaddr_un *sa, struct stat *st, char *err,
		       size_t errlen)
{
	_cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	struct sockaddr_un tmp = *sa;
	mode_t old;
	int r, n;

	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	n = snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d.tmp", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof(tmp.sun_path))
		tmp = *sa; /* no room for a temporary name: bind in place */
	unlink(tmp.sun_path);
	/* umask is per process; it only tightens the mode of whatever another
	 * thread might create in this instant. */
	old = umask(0177);
	r = bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp)) < 0 ? -errno : 0;
	umask(old);
	if (r < 0) {
		snprintf(err, errlen, "bind %s: %s", tmp.sun_path, strerror(-r));
		return r;
	}
	if (listen(fd, SOMAXCONN) < 0 ||
	    (strcmp(tmp.sun_path, path) != 0 && rename(tmp.sun_path, path) < 0) ||
	    lstat(path, st) < 0) {
		r = -errno;
		snprintf(err, errlen, "listen %s: %s", path, strerror(-r));
		unlink(tmp.sun_path);
		return r;
	}
	r = fd;
	fd = -1;
	return r;
}

int client_srv_unix(struct loop *l, const char *path, const struct client_ops *ops, void *arg,
		    struct client_srv **out, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct client_srv *s;
	struct stat st;
	int fd, r;

	if (!ops || !ops->request_cb || !path || !*path) {
		snprintf(err, errlen, "missing socket path or request callback");
		return -EINVAL;
	}
	if (strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "socket path longer than %zu bytes: %s",
			 sizeof(sa.sun_path) - 1, path);
		return -ENAMETOOLONG;
	}
	memcpy(sa.sun_path, path, strlen(path));
	r = unix_clear_path(path, &sa, err, errlen);
	if (r < 0)
		return r;
	fd = unix_listen(path, &sa, &st, err, errlen);
	if (fd < 0)
		return fd;
	s = srv_new(l, ops, arg);
	s->lfd = fd;
	s->path = xstrdup(path);
	s->name = xasprintf("unix://%s", path);
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	r = srv_watch(s, err, errlen);
	if (r < 0) {
		client_srv_free(s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- ws:// ---- */

/* "IP:PORT", "[IPv6]:PORT" or "localhost:PORT" into sa. */
static int parse_hostport(const char *hp, struct sockaddr_storage *sa, socklen_t *salen,
			  bool *loopback)
{
	const char *colon = strrchr(hp, ':');
	char host[64], *end;
	unsigned long port;
	size_t hl;

	if (!colon || !colon[1])
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535 || colon[1] == '-' || colon[1] == '+')
		return -EINVAL;
	hl = (size_t)(colon - hp);
	if (hl >= 2 && hp[0] == '[' && hp[hl - 1] == ']') {
		hp++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, hp, hl);
	host[hl] = '\0';
	memset(sa, 0, sizeof(*sa));
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof(host), "127.0.0.1");
	struct sockaddr_in *in4 = (struct sockaddr_in *)sa;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

	if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
		in4->sin_family = AF_INET;
		in4->sin_port = htons((uint16_t)port);
		*salen = sizeof(*in4);
		*loopback = (ntohl(in4->sin_addr.s_addr) >> 24) == 127;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		*salen = sizeof(*in6);
		*loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
			    (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) &&
			     in6->sin6_addr.s6_addr[12] == 127);
		return 0;
	}
	return -EINVAL;
}

int client_srv_ws(struct loop *l, const char *hostport, const struct client_auth *auth,
		  const struct client_ops *ops, void *arg, struct client_srv **out, char *err,
		  size_t errlen)
{
	struct sockaddr_storage sa;
	socklen_t salen;
	bool loopback = false;
	struct client_srv *s;
	int fd, r, one = 1;

	if (!ops || !ops->request_cb || !hostport ||
	    parse_hostport(hostport, &sa, &salen, &loopback) < 0) {
		snprintf(err, errlen, "ws:// takes IP:PORT, [IPv6]:PORT or localhost:PORT");
		return -EINVAL;
	}
	if (!loopback && !auth) {
		snprintf(err, errlen,
			 "ws://%s is not a loopback address: refusing to listen without "
			 "--ws-auth",
			 hostport);
		return -EPERM;
	}
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "socket: %s", strerror(-r));
		return r;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, salen) < 0 || listen(fd, SOMAXCONN) < 0) {
		r = -errno;
		snprintf(err, errlen, "listen ws://%s: %s", hostport, strerror(-r));
		close(fd);
		return r;
	}
	s = srv_new(l, ops, arg);
	s->lfd = fd;
	s->ws_only = true;
	s->auth = auth;
	s->name = xasprintf("ws://%s", hostport);
	r = srv_watch(s, err, errlen);
	if (r < 0) {
		client_srv_free(s);
		return r;
	}
	*out = s;
	return 0;
}

int client_srv_port(const struct client_srv *s)
{
	struct sockaddr_storage sa;
	socklen_t len = sizeof(sa);

	if (!s || !s->ws_only || getsockname(s->lfd, (struct sockaddr *)&sa, &len) < 0)
		return 0;
	if (sa.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&sa)->sin_port);
	return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
}

int client_srv_listen(struct loop *l, const char *url, const struct client_auth *auth,
		      const struct client_ops *ops, void *arg, struct client_srv **out, char *err,
		      size_t errlen)
{
	if (strcmp(url, "stdio://") == 0) {
		int r = client_srv_stdio(l, 0, 1, ops, arg, out);

		if (r < 0)
			snprintf(err, errlen, "stdio://: %s", strerror(-r));
		return r;
	}
	if (strncmp(url, "unix://", 7) == 0)
		return client_srv_unix(l, url + 7, ops, arg, out, err, errlen);
	if (strncmp(url, "ws://", 5) == 0)
		return client_srv_ws(l, url + 5, auth, ops, arg, out, err, errlen);
	snprintf(err, errlen, "%s: the client API listens on stdio://, unix://PATH or ws://IP:PORT",
		 url);
	return -EINVAL;
}

void client_srv_set_ready(struct client_srv *s, int (*cb)(char *reason, size_t len, void *arg),
			  void *arg)
{
	s->ready_cb = cb;
	s->ready_arg = arg;
}

/* Removes the socket file only if it is still the one we bound: a newer
 * server may have replaced a path it found stale. */
static void srv_unlink(struct client_srv *s)
{
	struct stat st;

	if (s->path && lstat(s->path, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino)
		unlink(s->path);
}

struct client_srv *client_srv_free(struct client_srv *s)
{
	if (!s)
		return NULL;
	/* A session callback up the stack would return into freed memory. */
	assert(s->in_cb == 0);
	loop_io_del(s->lio);
	loop_timer_cancel(s->pause);
	for (struct sniff *k = sniffs, *next; k; k = next) {
		next = k->next;
		if (k->srv == s)
			sniff_free(k, true);
	}
	client_srv_end_all(s);
	safe_close(s->lfd);
	srv_unlink(s);
	client_srv_unregister(s);
	free(s->path);
	free(s->name);
	free(s->buf);
	free(s);
	return NULL;
}

size_t client_srv_count(const struct client_srv *s) { return s->count; }
