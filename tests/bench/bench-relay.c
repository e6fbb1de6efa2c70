/* bench-relay.c - a forwarding process that does nothing else, for
 * tandem-bench's relay floor (bhops.h says why that floor exists).
 *
 *   bench-relay unix-tcp PORT         stdin is a listening unix socket: accepts
 *                                     one connection, then connects to
 *                                     127.0.0.1:PORT
 *   bench-relay tcp-pipe -- ARGV...   stdin is a listening TCP socket: starts
 *                                     ARGV with pipes on its stdin and stdout,
 *                                     then accepts one connection
 *
 * Then it forwards bytes both ways as they come (one read of what is there,
 * written on at once), without looking at them: no framing, no parsing, no
 * crypto, TCP_NODELAY on the TCP side, all non-blocking in one epoll loop.
 * It ends when either side does (EOF or an error): the tcp-pipe relay then
 * closes the server's stdin and waits for it (SIGKILL after 5 s), so nothing
 * it started outlives it. Exit 0 after an EOF (and the server's exit 0),
 * else 1 with the reason on stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4, pipe2 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BUF_LEN 65536u
#define ACCEPT_TIMEOUT_MS 10000
#define SERVER_EXIT_MS 5000

extern char **environ;

/* One direction: what was read from `in` and not yet written to `out`. */
struct dir {
	int in, out;
	size_t off, len;
	char buf[BUF_LEN];
};

static void die(const char *what)
{
	fprintf(stderr, "bench-relay: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		die("fcntl");
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("TCP_NODELAY");
}

/* The one connection on the listening socket `lfd` (bounded: the benchmark
 * connects right after starting us, or has failed). */
static int accept_one(int lfd)
{
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	int fd, r;

	do
		r = poll(&p, 1, ACCEPT_TIMEOUT_MS);
	while (r < 0 && errno == EINTR);
	if (r == 0) {
		fprintf(stderr, "bench-relay: nobody connected within %d ms\n", ACCEPT_TIMEOUT_MS);
		exit(1);
	}
	fd = r < 0 ? -1 : accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		die("accept");
	close(lfd);
	return fd;
}

static int connect_tcp(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	return fd;
}

/* The events fd wants given both directions' state: readable while its
 * direction has nothing pending, writable while the other has. */
static uint32_t interest(int fd, const struct dir *d)
{
	uint32_t ev = 0;

	for (int i = 0; i < 2; i++) {
		if (d[i].in == fd && d[i].len == 0)
			ev |= EPOLLIN;
		if (d[i].out == fd && d[i].len > 0)
			ev |= EPOLLOUT;
	}
	return ev;
}

/* Writes what d holds; false on an error (the peer is gone). */
static bool flush(struct dir *d)
{
	while (d->len) {
		ssize_t w = write(d->out, d->buf + d->off, d->len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return true; /* EPOLLOUT says when to go on */
		if (w < 0)
			return false;
		d->off += (size_t)w;
		d->len -= (size_t)w;
	}
	return true;
}

/* Forwards until one side ends: 0 on EOF, -1 on an error. fds[] are the
 * distinct fds of d[] (2 or 3). */
static int pump(struct dir *d, const int *fds, int nfds)
{
	uint32_t want[3];
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0)
		die("epoll_create1");
	for (int i = 0; i < nfds; i++) {
		struct epoll_event ev = { .events = want[i] = interest(fds[i], d), .data.u32 = i };

		set_nonblock(fds[i]);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl");
	}
	for (;;) {
		struct epoll_event evs[3];
		int n = epoll_wait(ep, evs, 3, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("epoll_wait");
		for (int e = 0; e < n; e++) {
			int fd = fds[evs[e].data.u32];

			for (int i = 0; i < 2; i++) {
				ssize_t r;

				if (d[i].out == fd && d[i].len && !flush(&d[i]))
					return -1;
				if (d[i].in != fd || d[i].len)
					continue;
				/* One read: a short one means the socket is empty,
				 * so no second read only to see EAGAIN. */
				r = read(fd, d[i].buf, BUF_LEN);
				if (r == 0)
					return 0;
				if (r < 0 && (errno == EAGAIN || errno == EINTR))
					continue;
				if (r < 0)
					return -1;
				d[i].off = 0;
				d[i].len = (size_t)r;
				if (!flush(&d[i]))
					return -1;
			}
		}
		for (int i = 0; i < nfds; i++) {
			struct epoll_event ev = { .events = interest(fds[i], d), .data.u32 = i };

			if (ev.events != want[i] && epoll_ctl(ep, EPOLL_CTL_MOD, fds[i], &ev) < 0)
				die("epoll_ctl");
			want[i] = ev.events;
		}
	}
}

static int unix_tcp(int port)
{
	static struct dir d[2];
	int u = accept_one(0), t = connect_tcp(port);

	nodelay(t);
	d[0].in = d[1].out = u;
	d[0].out = d[1].in = t;
	return pump(d, (const int[]){ u, t }, 2);
}

/* The server with pipes on its stdin and stdout (its stderr is ours), in
 * SIGPIPE's default disposition like any server the executor starts. */
static pid_t start_server(char **argv, int *to_fd, int *from_fd)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t defaults;
	int to[2], from[2], r;
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) < 0 || pipe2(from, O_CLOEXEC) < 0)
		die("pipe2");
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, to[0], 0);
	posix_spawn_file_actions_adddup2(&fa, from[1], 1);
	posix_spawnattr_init(&at);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	posix_spawnattr_setsigdefault(&at, &defaults);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0) {
		errno = r;
		die(argv[0]);
	}
	close(to[0]);
	close(from[1]);
	*to_fd = to[1];
	*from_fd = from[0];
	return pid;
}

/* The server's wait status once it has exited (SIGKILL after
 * SERVER_EXIT_MS). */
static int reap_server(pid_t pid)
{
	struct timespec ms = { .tv_nsec = 1000000 };
	int st;

	for (int i = 0; i < SERVER_EXIT_MS; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		nanosleep(&ms, NULL);
	}
	fprintf(stderr, "bench-relay: the server did not exit at EOF; killing it\n");
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return st;
}

static int tcp_pipe(char **argv)
{
	static struct dir d[2];
	int to, from, t, r, st;
	pid_t pid = start_server(argv, &to, &from);

	t = accept_one(0);
	nodelay(t);
	d[0].in = d[1].out = t;
	d[0].out = to;
	d[1].in = from;
	r = pump(d, (const int[]){ t, to, from }, 3);
	close(t);
	close(to); /* EOF on the server's stdin: it exits */
	close(from);
	st = reap_server(pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "bench-relay: the server ended with wait status %#x\n", (unsigned)st);
		return -1;
	}
	return r;
}

int main(int argc, char **argv)
{
	int r;

	signal(SIGPIPE, SIG_IGN); /* a peer gone shows as EPIPE */
	if (argc == 3 && strcmp(argv[1], "unix-tcp") == 0 && atoi(argv[2]) > 0)
		r = unix_tcp(atoi(argv[2]));
	else if (argc >= 4 && strcmp(argv[1], "tcp-pipe") == 0 && strcmp(argv[2], "--") == 0)
		r = tcp_pipe(argv + 3);
	else {
		fprintf(stderr, "usage: bench-relay unix-tcp PORT | tcp-pipe -- ARGV...\n"
				"(stdin: the listening socket)\n");
		return 2;
	}
	if (r < 0)
		fprintf(stderr, "bench-relay %s: a side failed: %s\n", argv[1], strerror(errno));
	return r < 0 ? 1 : 0;
}
