/* mhdloop.c - see mhdloop.h. */
#include "mhdloop.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"

#define MAX_WAIT_MS 60000u
#define MAX_RUNS 8u /* MHD_run calls in a row while MHD has work at once */

struct mhdloop {
	struct loop *loop;
	struct MHD_Daemon *mhd;
	struct loop_io *io;
	struct loop_timer *timer; /* MHD's own timeout, when it has one */
	struct loop_timer *kick;  /* a run asked for by mhdloop_kick */
};

int mhdloop_listen(const struct sockaddr_storage *ss, socklen_t len, char *err, size_t errlen)
{
	int one = 1, fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -errno;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ss->ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		close(fd);
		snprintf(err, errlen, "bind: %s", strerror(e));
		return -e;
	}
	return fd;
}

void mhdloop_bound_address(int fd, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
		if (ss.ss_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
			port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
			port = ntohs(s4->sin_port);
		}
	}
	snprintf(buf, len, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
}

bool mhdloop_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

static void timer_cb(struct loop_timer *t, void *arg);

/* Runs MHD once, then arms the timer for MHD's next deadline. fired is the
 * timer that just fired (re-armable) or NULL. */
static void run(struct mhdloop *m, struct loop_timer *fired)
{
	MHD_UNSIGNED_LONG_LONG ms;
	bool has_timeout;
	unsigned runs = 0;

	/* MHD says 0 when it has more to do now (a resumed connection, a
	 * response to send): do it now rather than after a turn of the loop. */
	do
		MHD_run(m->mhd);
	while ((has_timeout = MHD_get_timeout(m->mhd, &ms) == MHD_YES) && ms == 0 &&
	       ++runs < MAX_RUNS);
	if (has_timeout && ms > MAX_WAIT_MS)
		ms = MAX_WAIT_MS;
	if (fired) {
		m->timer = has_timeout ? fired : NULL;
		if (has_timeout)
			loop_timer_rearm(fired, ms);
		return;
	}
	if (!has_timeout) {
		loop_timer_cancel(m->timer);
		m->timer = NULL;
	} else if (m->timer) {
		loop_timer_rearm(m->timer, ms);
	} else {
		m->timer = loop_timer_add(m->loop, ms, timer_cb, m);
	}
}

static void timer_cb(struct loop_timer *t, void *arg)
{
	run(arg, t);
}

static void io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	run(arg, NULL);
}

static void kick_cb(struct loop_timer *t, void *arg)
{
	struct mhdloop *m = arg;

	m->kick = NULL;
	run(m, NULL);
}

/* Never MHD_run from here: the caller may be walking its own lists, which
 * MHD's callbacks (new requests) could change under it. */
void mhdloop_kick(struct mhdloop *m)
{
	if (!m->kick)
		m->kick = loop_timer_add(m->loop, 0, kick_cb, m);
}

struct mhdloop *mhdloop_attach(struct loop *l, struct MHD_Daemon *d, char *err, size_t errlen)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	struct mhdloop *m = xcalloc(1, sizeof(*m));

	m->loop = l;
	m->mhd = d;
	m->io = info ? loop_io_add(l, info->epoll_fd, LOOP_READ, io_cb, m) : NULL;
	if (!m->io) {
		snprintf(err, errlen, "cannot watch libmicrohttpd's epoll descriptor");
		return mhdloop_free(m);
	}
	return m;
}

struct mhdloop *mhdloop_free(struct mhdloop *m)
{
	if (!m)
		return NULL;
	loop_io_del(m->io);
	loop_timer_cancel(m->timer);
	loop_timer_cancel(m->kick);
	if (m->mhd)
		MHD_stop_daemon(m->mhd);
	free(m);
	return NULL;
}
