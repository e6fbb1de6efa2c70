/* bfleet.c - see bfleet.h.
 *
 * Each point: N token files, N/2 executors listening on abstract sockets
 * (url entries of environments.toml) and the rest dialling a tcp port
 * chosen for the orchestrator's --executor-listen, all started first: the
 * url ones until they listen, the dialling ones until a first attempt
 * failed (nobody listens yet: they back off, as a fleet waiting for its
 * orchestrator does). The clock starts when the orchestrator is spawned
 * and stops when environment/list shows every environment ready: it
 * measures the orchestrator taking over a running fleet, not 100 process
 * start-ups on a small machine. Then one thread per
 * executor (a root there, so one live server each), calls round robin over
 * all of them with 32 in flight, and SIGTERM. */
#include "bfleet.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bconn.h"
#include "bload.h"
#include "borch.h"
#include "bproc.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define READY_TIMEOUT_MS 60000u
#define TARGET_READY_NS (3000ull * 1000000ull) /* 100 executors ready */
#define TARGET_RSS_KIB (40l * 1024l)           /* orchestrator RSS at 100 */
#define TARGET_STOP_NS (3000ull * 1000000ull)  /* SIGTERM to exit at 100 */
#define INFLIGHT 32u

struct fleet {
	size_t n;
	char *dir;
	pid_t *pids;
	size_t npids;
};

static void write_token(const char *path)
{
	uint8_t raw[32];
	char hex[65];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
	bsys_write_file(path, hex);
	chmod(path, 0600);
}

/* exe, then how (NULL-terminated: --listen URL or --connect URL). */
static pid_t spawn_executor(struct fleet *f, const char *exe, const char *id,
			    const char *const *how)
{
	_cleanup_free_ char *log = xasprintf("%s/%s.log", f->dir, id);
	_cleanup_free_ char *tok = xasprintf("%s/home/executor-tokens/%s", f->dir, id);
	const char *argv[16] = { NULL };
	size_t n = 0;
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid_t pid;

	if (fd < 0)
		bsys_fail("open %s: %s", log, strerror(errno));
	argv[n++] = exe;
	for (size_t i = 0; how[i]; i++)
		argv[n++] = how[i];
	argv[n++] = "--auth-token-file";
	argv[n++] = tok;
	argv[n++] = "--id";
	argv[n++] = id;
	argv[n++] = "--log-level";
	argv[n++] = "info";
	argv[n] = NULL;
	pid = bsys_spawn(argv, -1, -1, fd, NULL);
	close(fd);
	f->pids[f->npids++] = pid;
	return pid;
}

static char *url_of(size_t n, size_t i)
{
	return xasprintf("abstract://tandem-bench-fleet-%d-%zu-%zu", (int)getpid(), n, i);
}

/* A loopback port free now (bound, then closed). */
static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		bsys_fail("fleet: no free port: %s", strerror(errno));
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Waits until the executor's log says `what`. */
static void wait_log(struct fleet *f, const char *id, const char *what)
{
	_cleanup_free_ char *log = xasprintf("%s/%s.log", f->dir, id);
	uint64_t deadline = bsys_now_ns() + READY_TIMEOUT_MS * 1000000ull;

	for (;;) {
		_cleanup_free_ char *text = bsys_read_file(log, NULL);

		if (text && strstr(text, what))
			return;
		if (bsys_now_ns() > deadline)
			bsys_fail("executor %s: no '%s' in %s", id, what, log);
		bsys_sleep_ms(5);
	}
}

/* Ready environments whose id starts with prefix ('u', 'd'; 0: any). */
static size_t count_ready(struct bconn *c, char prefix)
{
	json_t *r = bconn_call_ok(c, "environment/list", json_object()), *e;
	size_t i, n = 0;

	json_array_foreach(json_object_get(r, "data"), i, e) {
		const char *st = json_string_value(json_object_get(e, "status"));
		const char *id = json_string_value(json_object_get(e, "environmentId"));

		n += st && strcmp(st, "ready") == 0 && id && (!prefix || id[0] == prefix);
	}
	json_decref(r);
	return n;
}

static unsigned nthreads(pid_t pid)
{
	_cleanup_free_ char *p = xasprintf("/proc/%d/status", (int)pid);
	_cleanup_free_ char *s = bsys_read_file(p, NULL);
	const char *t = s ? strstr(s, "\nThreads:") : NULL;

	return t ? (unsigned)atoi(t + 9) : 0;
}

static void point(const struct bench_opts *o, size_t n)
{
	struct fleet f = { .n = n };
	size_t half = n == 1 ? 1 : n / 2;
	_cleanup_free_ char *home = NULL, *toks = NULL, *plugin = NULL, *name = NULL;
	_cleanup_free_ char *xurl = NULL;
	char *envs = xstrdup("");
	char **tids = xcalloc(n, sizeof(*tids));
	const char *exe = o->bins.executor;
	struct borch *orch;
	uint64_t t0, ready_ns, stop_ns, u_ns = 0, d_ns = 0;
	long rss;
	unsigned thr;
	double rate;
	int port, st;

	name = xasprintf("fleet-%zu", n);
	f.dir = xasprintf("%s/%s", bsys_tmpdir(), name);
	f.pids = xcalloc(n, sizeof(*f.pids));
	home = xasprintf("%s/home", f.dir);
	toks = xasprintf("%s/executor-tokens", home);
	bsys_mkdir(f.dir);
	bsys_mkdir(home);
	bsys_mkdir(toks);
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *id = xasprintf(i < half ? "u%zu" : "d%zu", i);
		_cleanup_free_ char *tok = xasprintf("%s/%s", toks, id);

		write_token(tok);
	}
	for (size_t i = 0; i < half; i++) {
		_cleanup_free_ char *id = xasprintf("u%zu", i), *url = url_of(n, i);
		char *more = xasprintf("%s[[environments]]\nid = \"%s\"\nurl = \"%s\"\n", envs, id,
				       url);
		const char *how[] = { "--listen", url, NULL };

		free(envs);
		envs = more;
		spawn_executor(&f, exe, id, how);
	}
	port = free_port();
	xurl = xasprintf("tcp://127.0.0.1:%d", port);
	for (size_t i = half; i < n; i++) {
		_cleanup_free_ char *id = xasprintf("d%zu", i);
		const char *how[] = { "--connect", xurl, NULL };

		spawn_executor(&f, exe, id, how);
	}
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *id = xasprintf(i < half ? "u%zu" : "d%zu", i);

		wait_log(&f, id, i < half ? "listening on" : "cannot reach the orchestrator");
	}
	t0 = bsys_now_ns();
	orch = borch_start_full(&o->bins, name, NULL, envs, NULL, NULL,
				(const char *const[]){ "--executor-listen", xurl, "--ephemeral",
						       NULL });
	for (;;) {
		size_t u = count_ready(orch->c, 'u'), d = count_ready(orch->c, 'd');

		if (!u_ns && u == half)
			u_ns = bsys_now_ns() - t0;
		if (!d_ns && d == n - half)
			d_ns = bsys_now_ns() - t0;
		if (u_ns && d_ns)
			break;
		if (bsys_now_ns() - t0 > READY_TIMEOUT_MS * 1000000ull)
			bsys_fail("fleet of %zu: not all ready after %u ms (see %s)", n,
				  READY_TIMEOUT_MS, orch->log);
		bsys_sleep_ms(2);
	}
	ready_ns = MAX(u_ns, d_ns);
	rss = bproc_rss_kib(orch->pid);
	thr = nthreads(orch->pid);
	btable_add(btable_fmt("fleet of %zu executors (%zu url, %zu dial-in): all ready", n, half,
			      n - half),
		   btable_ms(ready_ns), NULL,
		   btable_fmt("url %.0f ms, dial-in %.0f ms", (double)u_ns / 1e6,
			      (double)d_ns / 1e6),
		   n == 100 ? "<= 3 s at 100" : NULL,
		   n == 100 ? btable_check(ready_ns <= TARGET_READY_NS) : BTABLE_INFO);
	btable_add(btable_fmt("fleet of %zu: orchestrator RSS, threads", n),
		   btable_fmt("%.1f MiB", (double)rss / 1024.0), NULL,
		   btable_fmt("%u threads", thr), n == 100 ? "<= 40 MiB at 100" : NULL,
		   n == 100 ? btable_check(rss <= TARGET_RSS_KIB) : BTABLE_INFO);
	plugin = xasprintf("%s/plugin", f.dir);
	borch_make_plugin(&o->bins, plugin, "fx");
	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *id = xasprintf(i < half ? "u%zu" : "d%zu", i);
		const char *rid = "fleet", *path = plugin;

		tids[i] = borch_thread_start_env(orch->c, id, &rid, &path, 1);
		json_decref(borch_status_ok(orch->c, tids[i], 1));
	}
	rate = bload_inflight(&orch->c, 1,
			      &(struct bload_target){ .threads = (const char *const *)tids,
						      .n_threads = n, .server = "fx" },
			      INFLIGHT, o->quick ? 200 : 500, o->quick ? 1000 : 3000);
	btable_add(btable_fmt("fleet of %zu: calls/s spread over all", n),
		   btable_fmt("%.0f/s", rate), NULL, btable_fmt("%u in flight", INFLIGHT), NULL,
		   BTABLE_INFO);
	t0 = bsys_now_ns();
	orch->c = bconn_free(orch->c);
	st = bsys_stop(orch->pid, 30000);
	stop_ns = bsys_now_ns() - t0;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		bsys_fail("fleet of %zu: the orchestrator's SIGTERM ended it with %#x", n,
			  (unsigned)st);
	btable_add(btable_fmt("fleet of %zu: SIGTERM to exit", n), btable_ms(stop_ns), NULL,
		   "links closed in parallel", n == 100 ? "<= 3 s at 100" : NULL,
		   n == 100 ? btable_check(stop_ns <= TARGET_STOP_NS) : BTABLE_INFO);
	orch->pid = 0;
	for (size_t i = 0; i < f.npids; i++)
		bsys_stop(f.pids[i], 5000);
	bsys_forget_on_fail(orch->log);
	free(orch->log);
	free(orch->dir);
	free(orch->sock);
	free(orch);
	for (size_t i = 0; i < n; i++)
		free(tids[i]);
	free(tids);
	free(envs);
	free(f.pids);
	free(f.dir);
}

void bfleet_run(const struct bench_opts *o)
{
	static const size_t points[] = { 1, 10, 100 };

	for (size_t i = 0; i < ARRAY_SIZE(points); i++) {
		bsys_progress("fleet: %zu executors", points[i]);
		point(o, points[i]);
	}
}
