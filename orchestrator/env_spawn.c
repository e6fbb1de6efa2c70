/* env_spawn.c - the executor process of a spawned environment: its private
 * link socket, argv and environment, the one-time secret through an
 * inherited pipe, watching it (pidfd, or polling), restarting it with
 * backoff, stopping it. See env_priv.h.
 *
 * The link socket is ipc://<dir>/link, <dir> made by mkdtemp (mode 0700)
 * under $XDG_RUNTIME_DIR or /tmp: only this user can enter the directory,
 * so no other uid can connect to the executor, block it, or bind the name
 * after it died (abstract:// names have no permissions: never used here).
 * Both ends also check the peer's uid (proto/link.h, link_peer_uid). */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env_priv.h"
#include "log.h"
#include "loop.h"
#include "secret.h"
#include "util.h"

extern char **environ;

#define RESTART_MIN_MS 250u
#define RESTART_MAX_MS 30000u
#define STOP_GRACE_MS 2000u

static char *executor_path;

static void restart_cb(struct loop_timer *t, void *arg);
static int spawn_executor(struct env *e, char *err, size_t errlen);

/* The executor process is gone: reaped; the link is lost; restart with
 * backoff. */
static void executor_gone(struct env *e, const siginfo_t *si)
{
	char why[128];

	if (si->si_code == CLD_EXITED)
		snprintf(why, sizeof(why), "the executor exited with status %d", si->si_status);
	else
		snprintf(why, sizeof(why), "the executor was killed by signal %d", si->si_status);
	if (e->pid_io)
		loop_io_del(e->pid_io);
	e->pid_io = NULL;
	loop_timer_cancel(e->pid_poll);
	e->pid_poll = NULL;
	e->pidfd = safe_close(e->pidfd);
	e->pid = 0;
	log_warn("environment '%s': %s", e->id, why);
	env_link_redial(e, why);
	env_set_error(e, "%s; restarting", why);
	e->backoff_ms = e->backoff_ms ? MIN(e->backoff_ms * 2, RESTART_MAX_MS) : RESTART_MIN_MS;
	e->restart_timer = loop_timer_add(e->loop, e->backoff_ms, restart_cb, e);
}

static void executor_exited_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct env *e = arg;
	siginfo_t si = { 0 };

	if (waitid(P_PIDFD, (id_t)e->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0)
		executor_gone(e, &si);
}

/* Without pidfd_open (old kernels, valgrind): look every 100 ms. */
#define PID_POLL_MS 100

static void pid_poll_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0) {
		e->pid_poll = NULL;
		executor_gone(e, &si);
		return;
	}
	loop_timer_rearm(t, PID_POLL_MS);
}

static void restart_cb(struct loop_timer *t, void *arg)
{
	struct env *e = arg;
	char err[512];

	e->restart_timer = NULL;
	e->restarts++;
	if (spawn_executor(e, err, sizeof(err)) < 0) {
		env_set_error(e, "%s", err);
		log_error("environment '%s': %s", e->id, err);
		e->backoff_ms = MIN(e->backoff_ms * 2, RESTART_MAX_MS);
		e->restart_timer = loop_timer_add(e->loop, e->backoff_ms, restart_cb, e);
	}
}

/* argv: program, the entry's args, then the link args the orchestrator owns. */
static char **executor_argv(struct env *e)
{
	size_t n = 0, cap = 12;
	char **v;

	for (char **a = e->args; a && *a; a++)
		cap++;
	v = xcalloc(cap, sizeof(*v));
	v[n++] = xstrdup(e->program);
	for (char **a = e->args; a && *a; a++)
		v[n++] = xstrdup(*a);
	v[n++] = xstrdup("--listen");
	v[n++] = xstrdup(e->url);
	v[n++] = xstrdup("--secret-fd");
	v[n++] = xstrdup("3");
	v[n++] = xstrdup("--exit-with-parent");
	v[n++] = xstrdup("--id");
	v[n++] = xstrdup(e->id);
	return v;
}

/* The orchestrator's environment plus the entry's env table, minus link
 * tokens that are not the executor's business. */
static char **executor_envp(struct env *e)
{
	size_t n = 0, cap = 1;
	char **v;

	for (char **p = environ; *p; p++)
		cap++;
	for (char **p = e->extra_env; p && *p; p++)
		cap++;
	v = xcalloc(cap, sizeof(*v));
	for (char **p = environ; *p; p++) {
		bool overridden = strncmp(*p, "TANDEM_EXECUTOR_TOKEN=", 22) == 0;

		for (char **x = e->extra_env; x && *x && !overridden; x++) {
			size_t k = strcspn(*x, "=");

			overridden = strncmp(*p, *x, k + 1) == 0;
		}
		if (!overridden)
			v[n++] = xstrdup(*p);
	}
	for (char **x = e->extra_env; x && *x; x++)
		v[n++] = xstrdup(*x);
	return v;
}

static int spawn_executor(struct env *e, char *err, size_t errlen)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, def;
	char **argv, **envp;
	int p[2], r;
	pid_t pid;

	e->secret = secret_free(e->secret);
	r = secret_generate(32, &e->secret); /* one-time: new for every start */
	if (r < 0 || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot prepare the executor secret");
		return r < 0 ? r : -errno;
	}
	argv = executor_argv(e);
	envp = executor_envp(e);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, 2, 1); /* our stdout may be the client API */
	posix_spawn_file_actions_adddup2(&fa, p[0], 3);
	if (e->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, e->cwd);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	r = strchr(e->program, '/') ? posix_spawn(&pid, e->program, &fa, &at, argv, envp)
				    : posix_spawnp(&pid, e->program, &fa, &at, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	strv_free(argv);
	strv_free(envp);
	close(p[0]);
	if (r != 0) {
		close(p[1]);
		snprintf(err, errlen, "cannot start executor '%s': %s", e->program, strerror(r));
		return -r;
	}
	/* The secret goes through the pipe, never argv or the environment. */
	r = write_all(p[1], secret_data(e->secret), secret_len(e->secret));
	close(p[1]);
	e->pid = pid;
	e->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (e->pidfd >= 0)
		e->pid_io = loop_io_add(e->loop, e->pidfd, LOOP_READ, executor_exited_cb, e);
	else
		e->pid_poll = loop_timer_add(e->loop, PID_POLL_MS, pid_poll_cb, e);
	log_info("environment '%s': started executor %s (pid %d)", e->id, e->program, (int)pid);
	return r;
}

/* ---- lifecycle --------------------------------------------------------- */

/* A directory only we can enter, for the link socket. */
static int make_sock_dir(struct env *e, char *err, size_t errlen)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	char tmpl[256];
	struct stat st;

	if (!base || !*base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid() || (st.st_mode & 077) || strlen(base) > 64)
		base = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/tandem-%s-XXXXXX", base, e->id);
	if (strlen(tmpl) > 90) /* the socket path must fit sockaddr_un */
		snprintf(tmpl, sizeof(tmpl), "%s/tandem-XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create a private directory for the executor's "
				      "socket under %s: %s", base, strerror(errno));
		return -errno;
	}
	chmod(tmpl, 0700);
	e->sock_dir = xstrdup(tmpl);
	return 0;
}

static void remove_sock_dir(struct env *e)
{
	char path[300];

	if (!e->sock_dir)
		return;
	snprintf(path, sizeof(path), "%s/link", e->sock_dir);
	unlink(path);
	rmdir(e->sock_dir);
	free(e->sock_dir);
	e->sock_dir = NULL;
}

int env_spawn_start(struct env *e, char *err, size_t errlen)
{
	int r = make_sock_dir(e, err, errlen);

	if (r < 0)
		return r;
	free(e->url);
	e->url = xasprintf("ipc://%s/link", e->sock_dir);
	return spawn_executor(e, err, errlen);
}

static void stop_executor(struct env *e)
{
	uint64_t deadline;
	siginfo_t si;

	if (e->pid <= 0)
		return;
	kill(e->pid, SIGTERM);
	deadline = now_ms() + STOP_GRACE_MS;
	while (now_ms() < deadline) {
		memset(&si, 0, sizeof(si));
		if (waitid(P_PID, (id_t)e->pid, &si, WEXITED | WNOHANG) == 0 && si.si_pid)
			goto reaped;
		usleep(10 * 1000);
	}
	kill(e->pid, SIGKILL);
	waitid(P_PID, (id_t)e->pid, &si, WEXITED);
reaped:
	e->pid = 0;
}

void env_spawn_stop(struct env *e)
{
	if (e->pid_io)
		loop_io_del(e->pid_io);
	e->pid_io = NULL;
	loop_timer_cancel(e->pid_poll);
	e->pid_poll = NULL;
	stop_executor(e);
	loop_timer_cancel(e->restart_timer);
	e->restart_timer = NULL;
	e->pidfd = safe_close(e->pidfd);
	remove_sock_dir(e);
}

void env_set_executor_path(const char *path)
{
	free(executor_path);
	executor_path = path ? xstrdup(path) : NULL;
}

/* --executor, else next to this binary, else the name for a PATH search. */
const char *env_executor_path(void)
{
	static char beside[PATH_MAX];
	ssize_t n;

	if (executor_path)
		return executor_path;
	n = readlink("/proc/self/exe", beside, sizeof(beside) - 1);
	if (n > 0) {
		char *slash;

		beside[n] = '\0';
		slash = strrchr(beside, '/');
		if (slash && (size_t)(slash - beside) + 17 < sizeof(beside)) {
			strcpy(slash + 1, "tandem-executor");
			if (access(beside, X_OK) == 0)
				return beside;
			/* the build tree: orchestrator/ and executor/ are siblings */
			*slash = '\0';
			slash = strrchr(beside, '/');
			if (slash && (size_t)(slash - beside) + 26 < sizeof(beside)) {
				strcpy(slash + 1, "executor/tandem-executor");
				if (access(beside, X_OK) == 0)
					return beside;
			}
		}
	}
	return "tandem-executor";
}

