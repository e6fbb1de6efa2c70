/* link_sock.c - see link_sock.h. */
#include "link_sock.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "loop.h"
#include "util.h"

#define ACCEPT_RETRY_MS 50u /* after an accept error such as EMFILE */
#define ACCEPT_BURST 64     /* accepts per wake-up: other sources get a turn */
#define BACKLOG 128
/* Resolutions in flight at once, for the whole process: a name server that
 * never answers must not pile up a thread per environment per retry. */
#define RESOLVE_MAX_DEFAULT 32

static atomic_uint resolving;
static unsigned resolve_max = RESOLVE_MAX_DEFAULT;

void link_sock_set_resolve_max(unsigned n)
{
	resolve_max = n;
}

bool link_sock_scheme(enum linkurl_scheme s)
{
	return s == LINKURL_TCP || s == LINKURL_IPC || s == LINKURL_UNIX || s == LINKURL_ABSTRACT;
}

static void tcp_nodelay(int fd)
{
	int one = 1;

	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* ipc://, unix:// (a path) and abstract:// (a name, no file). */
static int local_addr(const struct linkurl *u, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(u->path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (u->scheme == LINKURL_ABSTRACT) {
		if (n + 1 > sizeof(sa->sun_path))
			return -ENAMETOOLONG;
		memcpy(sa->sun_path + 1, u->path, n);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n);
		return 0;
	}
	if (n + 1 > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, u->path, n);
	*len = (socklen_t)sizeof(*sa);
	return 0;
}

static void port_string(unsigned port, char buf[8])
{
	snprintf(buf, 8, "%u", port);
}

/* ---- listener ------------------------------------------------------------- */

struct sock_listener {
	struct loop *loop;
	int fd;
	struct loop_io *io;
	struct loop_timer *retry;
	link_accept_cb cb;
	void *arg;
	char *path;      /* ipc/unix: the socket file, removed when freed */
	bool tcp;
	unsigned in_cb;  /* freed from inside cb: the accept loop frees it */
	bool freed;
};

static void listener_really_free(struct sock_listener *L)
{
	loop_timer_cancel(L->retry);
	loop_io_del(L->io);
	if (L->fd >= 0)
		close(L->fd);
	if (L->path)
		(void)unlink(L->path);
	free(L->path);
	free(L);
}

static void accept_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);

static void accept_retry_cb(struct loop_timer *t, void *arg)
{
	struct sock_listener *L = arg;

	(void)t;
	L->retry = NULL;
	L->io = loop_io_add(L->loop, L->fd, LOOP_READ, accept_io_cb, L);
	if (!L->io)
		L->retry = loop_timer_add(L->loop, ACCEPT_RETRY_MS, accept_retry_cb, L);
}

/* Out of descriptors or memory for a moment: stop watching (the backlog
 * stays readable, so watching would spin) and try again shortly. */
static void accept_pause(struct sock_listener *L)
{
	loop_io_del(L->io);
	L->io = NULL;
	L->retry = loop_timer_add(L->loop, ACCEPT_RETRY_MS, accept_retry_cb, L);
}

static void accept_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct sock_listener *L = arg;

	(void)io;
	(void)revents;
	for (int i = 0; i < ACCEPT_BURST; i++) {
		int c = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (c < 0) {
			switch (errno) {
			case EAGAIN:
				return;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				accept_pause(L);
				return;
			default: /* the connection's own trouble (ECONNABORTED...) */
				continue;
			}
		}
		if (L->tcp)
			tcp_nodelay(c);
		L->in_cb++;
		L->cb((struct link_conn){ .fd = c, .stream = NULL }, L->arg);
		L->in_cb--;
		if (L->freed) {
			if (!L->in_cb)
				listener_really_free(L);
			return;
		}
	}
}

/* A socket file nobody accepts on is stale (a daemon that died): it may
 * go; one that answers belongs to a live listener and stays. */
static void remove_stale(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return;
	if (connect(fd, (const struct sockaddr *)sa, len) < 0 && errno == ECONNREFUSED)
		(void)unlink(sa->sun_path);
	close(fd);
}

static int listen_local(struct sock_listener *L, const struct linkurl *u, char *err,
			size_t errlen)
{
	struct sockaddr_un sa;
	socklen_t len;
	int r = local_addr(u, &sa, &len);

	if (r < 0) {
		snprintf(err, errlen, "socket path too long (at most %zu bytes)",
			 sizeof(sa.sun_path) - 1);
		return r;
	}
	L->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (L->fd < 0)
		return -errno;
	r = bind(L->fd, (struct sockaddr *)&sa, len);
	if (r < 0 && errno == EADDRINUSE && u->scheme != LINKURL_ABSTRACT) {
		remove_stale(&sa, len);
		r = bind(L->fd, (struct sockaddr *)&sa, len);
	}
	if (r < 0)
		return -errno;
	if (u->scheme != LINKURL_ABSTRACT) {
		L->path = xstrdup(u->path);
		/* Only this user: other users must not even connect (the
		 * spawned executor's directory is private as well). */
		if (chmod(u->path, 0600) < 0)
			return -errno;
	}
	return 0;
}

static int listen_tcp(struct sock_listener *L, const struct linkurl *u, char *err,
		      size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
	struct addrinfo *ai = NULL;
	char port[8];
	int one = 1, r;

	port_string(u->port, port);
	r = getaddrinfo(u->host[0] ? u->host : NULL, port, &hints, &ai);
	if (r != 0) {
		snprintf(err, errlen, "cannot resolve '%.100s': %s", u->host, gai_strerror(r));
		return -EADDRNOTAVAIL;
	}
	L->tcp = true;
	L->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (L->fd < 0 ||
	    setsockopt(L->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(L->fd, ai->ai_addr, ai->ai_addrlen) < 0)
		r = -errno;
	freeaddrinfo(ai);
	return r;
}

int sock_listener_new(struct loop *loop, const char *url, const struct linkurl *u,
		      link_accept_cb cb, void *arg, struct sock_listener **out, char *err,
		      size_t errlen)
{
	struct sock_listener *L = xcalloc(1, sizeof(*L));
	char why[200] = "";
	int r;

	L->loop = loop;
	L->fd = -1;
	L->cb = cb;
	L->arg = arg;
	r = u->scheme == LINKURL_TCP ? listen_tcp(L, u, why, sizeof(why))
				     : listen_local(L, u, why, sizeof(why));
	if (r == 0 && listen(L->fd, BACKLOG) < 0)
		r = -errno;
	if (r == 0) {
		L->io = loop_io_add(loop, L->fd, LOOP_READ, accept_io_cb, L);
		if (!L->io)
			r = -errno;
	}
	if (r < 0) {
		snprintf(err, errlen, "cannot listen on %s: %s", url, why[0] ? why : strerror(-r));
		listener_really_free(L);
		return r;
	}
	*out = L;
	return 0;
}

int sock_listener_port(const struct sock_listener *L)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (!L->tcp || getsockname(L->fd, (struct sockaddr *)&ss, &len) < 0)
		return 0;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

void sock_listener_free(struct sock_listener *L)
{
	if (!L)
		return;
	if (L->in_cb) {
		L->freed = true;
		loop_io_del(L->io); /* nothing more is accepted */
		L->io = NULL;
		loop_timer_cancel(L->retry);
		L->retry = NULL;
		return;
	}
	listener_really_free(L);
}

/* ---- resolving a host name, off the loop ---------------------------------- */

/* One getaddrinfo on a thread of its own. The thread never touches the
 * loop: it says it is done with a byte on a socket pair that the loop
 * watches, so that a dialer (or a whole daemon) going away meanwhile
 * needs no coordination with it. Two references: the thread's and the
 * dialer's; the last one frees (and frees an answer nobody took). */
struct resolve {
	atomic_int refs;
	atomic_bool done;
	int wake[2]; /* [0] the loop's, [1] the thread's */
	char host[LINKURL_HOST_MAX];
	char port[8];
	struct addrinfo *ai;
	int gai;
	struct loop_io *io; /* loop side */
	struct sock_dialer *D;
};

static void resolve_unref(struct resolve *R)
{
	if (atomic_fetch_sub(&R->refs, 1) != 1)
		return;
	if (R->ai)
		freeaddrinfo(R->ai);
	free(R);
}

static void *resolve_main(void *arg)
{
	struct resolve *R = arg;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };

	R->gai = getaddrinfo(R->host, R->port, &hints, &R->ai);
	atomic_fetch_sub(&resolving, 1);
	atomic_store_explicit(&R->done, true, memory_order_release);
	(void)send(R->wake[1], "", 1, MSG_NOSIGNAL | MSG_DONTWAIT); /* EPIPE: nobody waits */
	close(R->wake[1]);
	resolve_unref(R);
	return NULL;
}

/* The loop side lets go (answer taken, or the attempt given up). */
static void resolve_drop(struct resolve *R)
{
	loop_io_del(R->io);
	close(R->wake[0]);
	resolve_unref(R);
}

/* ---- dialer --------------------------------------------------------------- */

struct sock_dialer {
	struct loop *loop;
	struct linkurl u;
	char *path;      /* local schemes: u.path points here */
	link_dial_cb cb;
	void *arg;
	/* the attempt in progress */
	struct loop_timer *deadline;
	struct loop_timer *deliver;
	struct resolve *res;
	struct addrinfo *ai, *next;
	int fd;          /* connecting */
	struct loop_io *io;
	int result_fd;   /* connected, waiting for deliver */
	int err;
	char why[160];
};

static void deliver_cb(struct loop_timer *t, void *arg)
{
	struct sock_dialer *D = arg;
	struct link_conn c = LINK_CONN_NONE;
	link_dial_cb cb = D->cb;
	char why[sizeof(D->why)];

	(void)t;
	D->deliver = NULL;
	D->cb = NULL;
	c.fd = D->result_fd;
	D->result_fd = -1;
	snprintf(why, sizeof(why), "%s", D->why);
	cb(c, c.fd >= 0 ? 0 : D->err, c.fd >= 0 ? NULL : why, D->arg); /* may free D */
}

/* Ends the attempt: everything it held goes; the owner hears of it from a
 * zero timer (never inside sock_dial). */
static void finish(struct sock_dialer *D, int fd, int err, const char *why)
{
	loop_timer_cancel(D->deadline);
	D->deadline = NULL;
	if (D->res) {
		D->res->D = NULL;
		resolve_drop(D->res);
		D->res = NULL;
	}
	loop_io_del(D->io);
	D->io = NULL;
	if (D->fd >= 0)
		close(D->fd);
	D->fd = -1;
	if (D->ai)
		freeaddrinfo(D->ai);
	D->ai = D->next = NULL;
	D->result_fd = fd;
	D->err = err;
	if (why != D->why)
		snprintf(D->why, sizeof(D->why), "%s", why ? why : "");
	D->deliver = loop_timer_add(D->loop, 0, deliver_cb, D);
}

static void finish_errno(struct sock_dialer *D, int err)
{
	finish(D, -1, -err, strerror(err));
}

static void try_next(struct sock_dialer *D);

static void connect_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct sock_dialer *D = arg;
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	(void)io;
	(void)revents;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	loop_io_del(D->io);
	D->io = NULL;
	if (soerr == 0) {
		D->fd = -1;
		finish(D, fd, 0, NULL);
		return;
	}
	close(D->fd);
	D->fd = -1;
	D->err = soerr;
	try_next(D);
}

/* Connects to the next address of the list; the last one's error is the
 * attempt's when none answers. */
static void try_next(struct sock_dialer *D)
{
	while (D->next) {
		struct addrinfo *a = D->next;
		int fd;

		D->next = a->ai_next;
		fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			D->err = errno;
			continue;
		}
		tcp_nodelay(fd);
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) {
			finish(D, fd, 0, NULL);
			return;
		}
		if (errno == EINPROGRESS) {
			D->fd = fd;
			D->io = loop_io_add(D->loop, fd, LOOP_WRITE, connect_io_cb, D);
			if (D->io)
				return;
		}
		D->err = errno;
		close(fd);
		D->fd = -1;
	}
	finish_errno(D, D->err ? D->err : EHOSTUNREACH);
}

static void resolved_io_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct resolve *R = arg;
	struct sock_dialer *D = R->D;
	char b;

	(void)io;
	(void)revents;
	(void)read(fd, &b, 1);
	if (!atomic_load_explicit(&R->done, memory_order_acquire))
		return; /* not yet (a spurious wake-up) */
	D->res = NULL;
	if (R->gai != 0) {
		snprintf(D->why, sizeof(D->why), "cannot resolve '%.100s': %s", R->host,
			 gai_strerror(R->gai));
		resolve_drop(R);
		finish(D, -1, -EHOSTUNREACH, D->why);
		return;
	}
	D->ai = D->next = R->ai;
	R->ai = NULL;
	resolve_drop(R);
	D->err = 0;
	try_next(D);
}

static int resolve_start(struct sock_dialer *D)
{
	struct resolve *R;
	pthread_attr_t attr;
	pthread_t th;
	int r;

	if (atomic_fetch_add(&resolving, 1) >= resolve_max) {
		atomic_fetch_sub(&resolving, 1);
		return -EAGAIN;
	}
	R = xcalloc(1, sizeof(*R));
	snprintf(R->host, sizeof(R->host), "%s", D->u.host);
	port_string(D->u.port, R->port);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, R->wake) < 0) {
		r = -errno;
		free(R);
		atomic_fetch_sub(&resolving, 1);
		return r;
	}
	atomic_init(&R->refs, 2);
	R->D = D;
	R->io = loop_io_add(D->loop, R->wake[0], LOOP_READ, resolved_io_cb, R);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	r = R->io ? pthread_create(&th, &attr, resolve_main, R) : ENOMEM;
	pthread_attr_destroy(&attr);
	if (r != 0) {
		close(R->wake[1]);
		atomic_store(&R->refs, 1);
		resolve_drop(R);
		atomic_fetch_sub(&resolving, 1);
		return -r;
	}
	D->res = R;
	return 0;
}

static void deadline_cb(struct loop_timer *t, void *arg)
{
	struct sock_dialer *D = arg;

	(void)t;
	D->deadline = NULL;
	finish(D, -1, -ETIMEDOUT, "connect timed out");
}

struct sock_dialer *sock_dialer_new(struct loop *loop, const struct linkurl *u)
{
	struct sock_dialer *D = xcalloc(1, sizeof(*D));

	D->loop = loop;
	D->u = *u;
	if (u->path) {
		D->path = xstrdup(u->path);
		D->u.path = D->path;
	}
	D->fd = D->result_fd = -1;
	return D;
}

static void dial_local(struct sock_dialer *D)
{
	struct sockaddr_un sa;
	socklen_t len;
	int fd, r = local_addr(&D->u, &sa, &len);

	if (r < 0) {
		finish_errno(D, -r);
		return;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		finish_errno(D, errno);
		return;
	}
	/* A local connect completes or fails at once; EAGAIN is a listener
	 * whose backlog is full: refused for now, like nng said. */
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		r = errno == EAGAIN ? ECONNREFUSED : errno;
		close(fd);
		finish_errno(D, r);
		return;
	}
	finish(D, fd, 0, NULL);
}

void sock_dial(struct sock_dialer *D, unsigned timeout_ms, link_dial_cb cb, void *arg)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	char port[8];
	int r;

	D->cb = cb;
	D->arg = arg;
	D->err = 0;
	if (timeout_ms)
		D->deadline = loop_timer_add(D->loop, timeout_ms, deadline_cb, D);
	if (D->u.scheme != LINKURL_TCP) {
		dial_local(D);
		return;
	}
	/* An address literal needs no resolver (and no thread). */
	port_string(D->u.port, port);
	r = getaddrinfo(D->u.host, port, &hints, &D->ai);
	if (r == 0) {
		D->next = D->ai;
		try_next(D);
		return;
	}
	D->ai = NULL;
	if (r != EAI_NONAME) {
		snprintf(D->why, sizeof(D->why), "cannot resolve '%.100s': %s", D->u.host,
			 gai_strerror(r));
		finish(D, -1, -EHOSTUNREACH, D->why);
		return;
	}
	r = resolve_start(D);
	if (r == -EAGAIN) {
		snprintf(D->why, sizeof(D->why), "cannot resolve '%.60s' now: %u resolutions "
			 "already wait for the name server", D->u.host, resolve_max);
		finish(D, -1, -EAGAIN, D->why);
	} else if (r < 0) {
		finish_errno(D, -r);
	}
}

void sock_dialer_free(struct sock_dialer *D)
{
	if (!D)
		return;
	if (D->cb && !D->deliver)
		finish(D, -1, -ECANCELED, NULL); /* frees what the attempt holds */
	loop_timer_cancel(D->deliver);
	if (D->result_fd >= 0)
		close(D->result_fd);
	free(D->path);
	free(D);
}
