/* bsys.c - see bsys.h. */
#include "bsys.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bproc.h"
#include "util.h"

extern char **environ;

#define STOP_GRACE_MS 3000u

static volatile sig_atomic_t interrupted;
static pid_t *pids; /* started and not reaped yet */
static size_t n_pids, cap_pids;
static char *tmpdir;
static char *logs[16];
static size_t n_logs;
static bool cleaning;

static void on_signal(int sig)
{
	interrupted = sig;
}

void bsys_init(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN); /* a dead peer is an error return, not a death */
	/* Orphaned MCP servers become ours, so nothing can outlive the run. */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	atexit(bsys_cleanup);
}

uint64_t bsys_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bsys_check_interrupt(void)
{
	if (interrupted && !cleaning) {
		fprintf(stderr, "tandem-bench: interrupted (signal %d), cleaning up\n",
			(int)interrupted);
		bsys_cleanup();
		_exit(130);
	}
}

void bsys_sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		bsys_check_interrupt();
	bsys_check_interrupt();
}

void bsys_progress(const char *fmt, ...)
{
	va_list ap;

	fputs("tandem-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void bsys_show_on_fail(const char *path)
{
	if (n_logs < ARRAY_SIZE(logs))
		logs[n_logs++] = xstrdup(path);
}

void bsys_forget_on_fail(const char *path)
{
	for (size_t i = 0; i < n_logs; i++) {
		if (strcmp(logs[i], path) == 0) {
			free(logs[i]);
			logs[i] = logs[--n_logs];
			return;
		}
	}
}

#define LOG_TAIL_BYTES 3000

static void show_logs(void)
{
	for (size_t i = 0; i < n_logs; i++) {
		size_t len;
		char *text = bsys_read_file(logs[i], &len);

		if (!text || len == 0) {
			free(text);
			continue;
		}
		fprintf(stderr, "--- %s (end) ---\n%s", logs[i],
			text + (len > LOG_TAIL_BYTES ? len - LOG_TAIL_BYTES : 0));
		free(text);
	}
}

_Noreturn void bsys_fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("tandem-bench: FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (!cleaning)
		show_logs();
	bsys_cleanup();
	_exit(1);
}

/* ---- files ------------------------------------------------------------- */

const char *bsys_tmpdir(void)
{
	const char *base = getenv("TMPDIR");

	if (!tmpdir) {
		tmpdir = xasprintf("%s/tandem-bench-XXXXXX", base && *base ? base : "/tmp");
		if (!mkdtemp(tmpdir)) {
			free(tmpdir);
			tmpdir = NULL;
			bsys_fail("mkdtemp: %s", strerror(errno));
		}
	}
	return tmpdir;
}

void bsys_mkdir(const char *path)
{
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		bsys_fail("mkdir %s: %s", path, strerror(errno));
}

void bsys_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0)
		bsys_fail("open %s: %s", path, strerror(errno));
	if (write_all(fd, text, strlen(text)) < 0)
		bsys_fail("write %s: %s", path, strerror(errno));
	close(fd);
}

char *bsys_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		if (cap - n < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = xrealloc(buf, cap + 1);
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	if (len)
		*len = n;
	return buf;
}

static int remove_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)remove(path);
	return 0;
}

/* ---- processes --------------------------------------------------------- */

static void remember(pid_t pid)
{
	if (n_pids == cap_pids) {
		cap_pids = cap_pids ? cap_pids * 2 : 16;
		pids = xrealloc(pids, cap_pids * sizeof(*pids));
	}
	pids[n_pids++] = pid;
}

static void forget(pid_t pid)
{
	for (size_t i = 0; i < n_pids; i++) {
		if (pids[i] == pid) {
			pids[i] = pids[--n_pids];
			return;
		}
	}
}

static char **make_env(const char *const *extra)
{
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	while (extra && extra[k])
		k++;
	env = xcalloc(n + k + 1, sizeof(*env));
	memcpy(env, environ, n * sizeof(*env));
	for (size_t i = 0; i < k; i++)
		env[n + i] = (char *)extra[i];
	return env;
}

static void add_stdio(posix_spawn_file_actions_t *fa, int fd, int target, int flags)
{
	if (fd < 0)
		posix_spawn_file_actions_addopen(fa, target, "/dev/null", flags, 0);
	else
		posix_spawn_file_actions_adddup2(fa, fd, target); /* dup2 clears CLOEXEC */
}

pid_t bsys_spawn(const char *const *argv, int in_fd, int out_fd, int err_fd,
		 const char *const *extra_env)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, defaults;
	char **env = make_env(extra_env);
	pid_t pid;
	int r;

	posix_spawn_file_actions_init(&fa);
	add_stdio(&fa, in_fd, 0, O_RDONLY);
	add_stdio(&fa, out_fd, 1, O_WRONLY);
	add_stdio(&fa, err_fd, 2, O_WRONLY);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigemptyset(&defaults);
	sigaddset(&defaults, SIGPIPE);
	sigaddset(&defaults, SIGINT);
	sigaddset(&defaults, SIGTERM);
	sigaddset(&defaults, SIGHUP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &defaults);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawn(&pid, argv[0], &fa, &at, (char *const *)argv, env);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	free(env);
	if (r != 0)
		bsys_fail("spawn %s: %s", argv[0], strerror(r));
	remember(pid);
	return pid;
}

/* Returns the status, or -1 when the process is still running at the
 * deadline. */
static int wait_until(pid_t pid, uint64_t deadline_ns, bool check_intr)
{
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD)) {
			forget(pid);
			return r == pid ? st : 0;
		}
		if (bsys_now_ns() >= deadline_ns)
			return -1;
		if (check_intr)
			bsys_check_interrupt();
		usleep(1000);
	}
}

int bsys_wait(pid_t pid, unsigned timeout_ms)
{
	int st = wait_until(pid, bsys_now_ns() + (uint64_t)timeout_ms * 1000000u, true);

	if (st == -1)
		bsys_fail("pid %d did not exit within %u ms", (int)pid, timeout_ms);
	return st;
}

int bsys_stop(pid_t pid, unsigned grace_ms)
{
	int st;

	kill(pid, SIGTERM);
	st = wait_until(pid, bsys_now_ns() + (uint64_t)grace_ms * 1000000u, !cleaning);
	if (st == -1) {
		kill(pid, SIGKILL);
		st = wait_until(pid, bsys_now_ns() + 5000000000u, false);
	}
	return st;
}

void bsys_cleanup(void)
{
	if (cleaning)
		return;
	cleaning = true;
	for (size_t i = 0; i < n_pids; i++)
		kill(pids[i], SIGTERM);
	while (n_pids > 0)
		bsys_stop(pids[0], STOP_GRACE_MS);
	bproc_kill_children(getpid());
	free(pids);
	pids = NULL;
	cap_pids = 0;
	for (size_t i = 0; i < n_logs; i++)
		free(logs[i]);
	n_logs = 0;
	if (tmpdir && !getenv("BENCH_KEEP")) {
		nftw(tmpdir, remove_cb, 16, FTW_DEPTH | FTW_PHYS);
		free(tmpdir);
		tmpdir = NULL;
	}
	cleaning = false;
}

char *bsys_which(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = xstrdup(path && *path ? path : "/usr/bin:/bin");
	char *save = NULL;

	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, name);

		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}
