/* bhops.c - see bhops.h (why this floor exists). */
#include "bhops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bconn.h"
#include "bload.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define INFLIGHT 32u
#define CONNECT_TIMEOUT_MS 5000u
#define EXIT_TIMEOUT_MS 10000u /* relay B waits up to 5 s for the fixture */

/* bench-relay, in the directory of this program (both are built in
 * tests/bench). */
static char *relay_path(void)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash, *p;

	if (n < 0)
		bsys_fail("readlink /proc/self/exe: %s", strerror(errno));
	self[n] = '\0';
	slash = strrchr(self, '/');
	*slash = '\0';
	p = xasprintf("%s/bench-relay", self);
	if (access(p, X_OK) < 0)
		bsys_fail("%s: not an executable (build tests/bench)", p);
	return p;
}

/* A listening socket, handed to a relay as its stdin: it is listening
 * before the relay runs, so nothing waits for the relay to be ready. */
static int listen_unix(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(a.sun_path))
		bsys_fail("socket path too long: %s", path);
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0)
		bsys_fail("relay floor: unix listener %s: %s", path, strerror(errno));
	return fd;
}

static int listen_tcp(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bsys_fail("relay floor: tcp listener: %s", strerror(errno));
	*port = ntohs(a.sin_port);
	return fd;
}

static void wait_clean(pid_t pid, const char *what, const char *log)
{
	int st = bsys_wait(pid, EXIT_TIMEOUT_MS);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bsys_fail("relay floor: %s ended with wait status %#x (see %s)", what, (unsigned)st,
			  log);
}

void bhops_run(const struct bench_opts *o, const struct bench_floor *f, struct bhops_floor *h)
{
	_cleanup_free_ char *dir = xasprintf("%s/hops", bsys_tmpdir());
	_cleanup_free_ char *sock = xasprintf("%s/relay.sock", dir);
	_cleanup_free_ char *log = xasprintf("%s/relays.log", dir);
	_cleanup_free_ char *relay = relay_path();
	const struct bload_target t = { .mcp = true };
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat));
	double cpu[2] = { 0 };
	pid_t pids[2]; /* relay A (unix -> tcp), relay B (tcp -> pipe) */
	struct bconn *c;
	int ufd, tfd, lfd, port;

	bsys_progress("relay floor: 3 hops through do-nothing relays (unix, tcp, pipe)");
	bsys_mkdir(dir);
	lfd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (lfd < 0)
		bsys_fail("open %s: %s", log, strerror(errno));
	bsys_show_on_fail(log);
	ufd = listen_unix(sock);
	tfd = listen_tcp(&port);
	pids[1] = bsys_spawn((const char *const[]){ relay, "tcp-pipe", "--", o->bins.fixture,
						    "--mode", "echo", NULL },
			     tfd, -1, lfd, NULL);
	pids[0] = bsys_spawn((const char *const[]){ relay, "unix-tcp", btable_fmt("%d", port),
						    NULL },
			     ufd, -1, lfd, NULL);
	close(tfd);
	close(ufd);
	close(lfd);
	c = bconn_unix("relay floor", sock, CONNECT_TIMEOUT_MS);
	bench_mcp_open(c);
	bload_seq(c, &t, o->seq_warm, o->seq_n, lat);
	h->p50_ns = bstat_pct(lat, o->seq_n, 50);
	h->p99_ns = bstat_pct(lat, o->seq_n, 99);
	h->rate = bload_inflight_cpu(&c, 1, &t, INFLIGHT, o->tput_warm_ms, o->tput_ms, pids, 2, cpu);
	h->relay_cpu_us = cpu[0] + cpu[1];
	bconn_free(c); /* EOF: relay A ends, then relay B, which waits for the fixture */
	wait_clean(pids[0], "the unix-tcp relay", log);
	wait_clean(pids[1], "the tcp-pipe relay", log);
	bsys_forget_on_fail(log);
	btable_add("floor: 3 hops through do-nothing relays (unix, tcp, pipe)",
		   btable_fmt("p50 %s", btable_us(h->p50_ns)),
		   btable_fmt("pipe floor %s", btable_us(f->p50_ns)),
		   btable_fmt("p99 %s; %.0f/s at 32 in flight; relays %.1f us CPU",
			      btable_us(h->p99_ns), h->rate, h->relay_cpu_us),
		   NULL, BTABLE_INFO);
	free(lat);
}
