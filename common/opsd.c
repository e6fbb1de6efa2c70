/* opsd.c - see opsd.h. libmicrohttpd in its "external epoll" mode: no MHD
 * thread; its epoll fd sits in our loop and MHD_run runs on the loop thread. */
#include "opsd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "metrics.h"
#include "metrics_tandem.h"
#include "util.h"

struct opsd {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	struct loop_io *io;
	struct loop_timer *timer; /* MHD's own timeout, when it has one */
	struct loop_timer *lag_timer;
	uint64_t lag_due_ns;
	struct metrics *reg;
	opsd_ready_fn ready;
	void *arg;
	char address[INET6_ADDRSTRLEN + 16];
};

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return r;
}

/* Splits "HOST:PORT" / "[V6]:PORT" into host and port strings. */
static int split_hostport(const char *hp, char *host, size_t hostlen, const char **port)
{
	const char *colon;
	size_t n;

	if (hp[0] == '[') {
		const char *end = strchr(hp, ']');

		if (!end || end[1] != ':')
			return -EINVAL;
		n = (size_t)(end - hp - 1);
		hp++;
		colon = end + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || strchr(hp, ':') != colon)
			return -EINVAL;
		n = (size_t)(colon - hp);
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	memcpy(host, hp, n);
	host[n] = '\0';
	*port = colon + 1;
	return 0;
}

static int parse_port(const char *s)
{
	char *end;
	long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -1;
	v = strtol(s, &end, 10);
	return v > 65535 ? -1 : (int)v;
}

int opsd_parse_listen(const char *hostport, struct sockaddr_storage *ss, socklen_t *sslen,
		      char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res = NULL;
	char host[256];
	const char *port;
	int r;

	if (!hostport || split_hostport(hostport, host, sizeof(host), &port) < 0 ||
	    parse_port(port) < 0)
		return fail(err, errlen, -EINVAL, "'%s': want HOST:PORT (e.g. 127.0.0.1:9464, "
			    "[::1]:9464, 0.0.0.0:9464)", hostport ? hostport : "");
	r = getaddrinfo(host, port, &hints, &res);
	if (r != 0 || !res)
		return fail(err, errlen, -EINVAL, "'%s': %s", hostport,
			    r ? gai_strerror(r) : "no address");
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A non-blocking, close-on-exec listening socket (MHD owns it afterwards). */
static int listen_socket(const struct sockaddr_storage *ss, socklen_t len, char *err,
			 size_t errlen)
{
	int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return fail(err, errlen, -errno, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 64) < 0) {
		int e = errno;

		close(fd);
		return fail(err, errlen, -e, "bind: %s", strerror(e));
	}
	return fd;
}

static void bound_address(struct opsd *o, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET6) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		}
	}
	snprintf(o->address, sizeof(o->address), ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
		 host, port);
}

/* ---- answers ------------------------------------------------------------------ */

static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *type,
			      char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
	enum MHD_Result r;

	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				type ? type : "text/plain; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	r = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result answer_text(struct MHD_Connection *c, unsigned status, const char *text)
{
	char *body = xstrdup(text);

	return answer(c, status, NULL, body, strlen(body));
}

static enum MHD_Result serve_readyz(struct opsd *o, struct MHD_Connection *c)
{
	char reason[OPSD_REASON_MAX] = "";
	char *body;

	if (!o->ready || o->ready(reason, sizeof(reason), o->arg) == 0)
		return answer_text(c, MHD_HTTP_OK, "ready\n");
	reason[strcspn(reason, "\r\n")] = '\0';
	body = xasprintf("not ready: %s\n", reason[0] ? reason : "(no reason given)");
	return answer(c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, body, strlen(body));
}

static enum MHD_Result serve_metrics(struct opsd *o, struct MHD_Connection *c)
{
	char *body;
	size_t len;

	if (!o->reg)
		return answer_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no metrics\n");
	metrics_render(o->reg, &body, &len);
	return answer(c, MHD_HTTP_OK, METRICS_CONTENT_TYPE, body, len);
}

static enum MHD_Result handler_cb(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **con_cls)
{
	struct opsd *o = cls;

	if (*upload_size) {
		*upload_size = 0; /* a body is read and ignored */
		return MHD_YES;
	}
	metrics_ops_request(url);
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return answer_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed\n");
	if (!strcmp(url, "/livez"))
		return answer_text(c, MHD_HTTP_OK, "ok\n");
	if (!strcmp(url, "/readyz"))
		return serve_readyz(o, c);
	if (!strcmp(url, "/metrics"))
		return serve_metrics(o, c);
	return answer_text(c, MHD_HTTP_NOT_FOUND, "not found: try /livez, /readyz, /metrics\n");
}

/* ---- driving MHD from the loop ----------------------------------------------- */

static void mhd_timer_cb(struct loop_timer *t, void *arg);

/* Runs MHD once, then arms our timer for MHD's next deadline. t is the
 * timer that just fired (re-armable) or NULL. */
static void run_mhd(struct opsd *o, struct loop_timer *fired)
{
	MHD_UNSIGNED_LONG_LONG ms;
	bool has_timeout;

	MHD_run(o->mhd);
	has_timeout = MHD_get_timeout(o->mhd, &ms) == MHD_YES;
	if (has_timeout && ms > 60000)
		ms = 60000;
	if (fired) {
		o->timer = has_timeout ? fired : NULL;
		if (has_timeout)
			loop_timer_rearm(fired, ms);
		return;
	}
	if (!has_timeout) {
		loop_timer_cancel(o->timer);
		o->timer = NULL;
	} else if (o->timer) {
		loop_timer_rearm(o->timer, ms);
	} else {
		o->timer = loop_timer_add(o->loop, ms, mhd_timer_cb, o);
	}
}

static void mhd_timer_cb(struct loop_timer *t, void *arg)
{
	run_mhd(arg, t);
}

static void mhd_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	run_mhd(arg, NULL);
}

static void lag_cb(struct loop_timer *t, void *arg)
{
	struct opsd *o = arg;
	uint64_t now = now_ns();

	metrics_loop_lag(now > o->lag_due_ns ? (double)(now - o->lag_due_ns) / 1e9 : 0);
	o->lag_due_ns = now + OPSD_LAG_PERIOD_MS * 1000000ull;
	loop_timer_rearm(t, OPSD_LAG_PERIOD_MS);
}

static struct MHD_Daemon *mhd_start(struct opsd *o, int fd)
{
	return MHD_start_daemon(MHD_USE_EPOLL | MHD_USE_SUPPRESS_DATE_NO_CLOCK, 0, NULL, NULL,
				handler_cb, o,
				MHD_OPTION_LISTEN_SOCKET, fd,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)OPSD_MAX_CONNS,
				MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)OPSD_MAX_PER_IP,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)OPSD_TIMEOUT_SEC,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)OPSD_MEMORY_LIMIT,
				MHD_OPTION_END);
}

struct opsd *opsd_start(struct loop *l, const char *hostport, struct metrics *reg,
			opsd_ready_fn ready, void *arg, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const union MHD_DaemonInfo *info;
	struct opsd *o;
	int fd;

	if (opsd_parse_listen(hostport, &ss, &len, err, errlen) < 0)
		return NULL;
	fd = listen_socket(&ss, len, err, errlen);
	if (fd < 0)
		return NULL;
	o = xcalloc(1, sizeof(*o));
	*o = (struct opsd){ .loop = l, .reg = reg, .ready = ready, .arg = arg };
	bound_address(o, fd);
	o->mhd = mhd_start(o, fd);
	if (!o->mhd) {
		/* fd is not closed: MHD may have closed it already */
		free(o);
		fail(err, errlen, 0, "%s: libmicrohttpd refused to start", hostport);
		return NULL;
	}
	info = MHD_get_daemon_info(o->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	o->io = info ? loop_io_add(l, info->epoll_fd, LOOP_READ, mhd_io_cb, o) : NULL;
	if (!o->io) {
		fail(err, errlen, 0, "%s: cannot watch libmicrohttpd's epoll descriptor", hostport);
		return opsd_stop(o);
	}
	o->lag_due_ns = now_ns() + OPSD_LAG_PERIOD_MS * 1000000ull;
	o->lag_timer = loop_timer_add(l, OPSD_LAG_PERIOD_MS, lag_cb, o);
	return o;
}

const char *opsd_address(const struct opsd *o)
{
	return o->address;
}

struct opsd *opsd_stop(struct opsd *o)
{
	if (!o)
		return NULL;
	loop_io_del(o->io);
	loop_timer_cancel(o->timer);
	loop_timer_cancel(o->lag_timer);
	if (o->mhd)
		MHD_stop_daemon(o->mhd); /* closes the listening socket too */
	free(o);
	return NULL;
}
