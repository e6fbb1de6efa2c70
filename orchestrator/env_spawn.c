/* env_spawn.c - the executor process of a spawned environment: its private
 * link socket, argv and environment, the one-time secret through an
 * inherited pipe, starting it through the spawner (spawner.h: the process
 * that starts executors outside the orchestrator's sandbox), restarting it
 * with backoff when it dies, stopping it. See env_priv.h.
 *
 * The link socket is ipc://<runtime>/<id>-XXXXXX/link. <runtime> is one
 * directory made by mkdtemp (mode 0700) under $XDG_RUNTIME_DIR or /tmp
 * before the orchestrator confines itself (the sandbox lets it write there
 * and not in /tmp; the spawner removes it at the end): only this user can
 * enter it, so no other uid can connect to an executor, block it, or bind
 * its name after it died (abstract:// names have no permissions: never
 * used here). Both ends also check the peer's uid (proto/link.h,
 * link_peer_uid).
 *
 * The executor's environment is cleared: it gets the variables named in
 * inherit_env() below from ours, those the user names in
 * $TANDEM_EXECUTOR_ENV, then the entry's `env` table, nothing else (README
 * "What an executor and a server inherit"). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "env_priv.h"
#include "log.h"
#include "loop.h"
#include "secret.h"
#include "spawner.h"
#include "spawnproc.h"
#include "util.h"

extern char **environ;

#define RESTART_MIN_MS 250u
#define EXECUTOR_ENV_LIST "TANDEM_EXECUTOR_ENV" /* more variables to pass on */
#define RESTART_MAX_MS 30000u

static char *executor_path;
static char *runtime_dir;

static void restart_cb(struct loop_timer *t, void *arg);
static int spawn_executor(struct env *e, char *err, size_t errlen);

/* The executor process is gone (reaped by the spawner); the link is lost;
 * restart with backoff. */
static void executor_exited_cb(pid_t pid, int wstatus, void *arg)
{
	struct env *e = arg;
	char why[128];

	if (WIFEXITED(wstatus))
		snprintf(why, sizeof(why), "the executor exited with status %d",
			 WEXITSTATUS(wstatus));
	else
		snprintf(why, sizeof(why), "the executor was killed by signal %d",
			 WTERMSIG(wstatus));
	e->pid = 0;
	log_warn("environment '%s': %s", e->id, why);
	env_link_redial(e, why);
	env_set_error(e, "%s; restarting", why);
	e->backoff_ms = e->backoff_ms ? MIN(e->backoff_ms * 2, RESTART_MAX_MS) : RESTART_MIN_MS;
	e->restart_timer = loop_timer_add(e->loop, e->backoff_ms, restart_cb, e);
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
		e->backoff_ms = MIN(MAX(e->backoff_ms, RESTART_MIN_MS) * 2, RESTART_MAX_MS);
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

/* What an executor gets from our environment: where things are, who runs
 * it, its locale, time zone and temporary directory, how to log, and the
 * sanitizer runtimes' options of a test build. None of it is a secret;
 * everything else (keys, tokens, cloud credentials, TANDEM_* settings) stays
 * here. */
static bool inherit_env(const char *kv)
{
	static const char *const names[] = {
		"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "LANG", "LANGUAGE", "TZ",
		"TMPDIR", "XDG_RUNTIME_DIR", "TANDEM_LOG", "TANDEM_LOG_FORMAT", "ASAN_OPTIONS",
		"LSAN_OPTIONS", "UBSAN_OPTIONS",
	};
	size_t k = strcspn(kv, "=");

	if (kv[k] != '=')
		return false;
	if (k > 3 && strncmp(kv, "LC_", 3) == 0)
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == k && strncmp(kv, names[i], k) == 0)
			return true;
	return false;
}

static bool set_by(char **extra, const char *kv)
{
	size_t k = strcspn(kv, "=");

	for (char **x = extra; x && *x; x++)
		if (strncmp(*x, kv, k + 1) == 0)
			return true;
	return false;
}

/* Named by the user in $TANDEM_EXECUTOR_ENV (names separated by commas or
 * spaces): passed on as well. A variable the orchestrator holds as a
 * secret never is: it left the environment at start-up. */
static bool named_env(const char *kv)
{
	const char *list = getenv(EXECUTOR_ENV_LIST);
	size_t k = strcspn(kv, "=");

	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ", ");

		if (len == k && strncmp(p, kv, k) == 0)
			return true; /* held secrets are gone from environ */
		p += len;
		p += strspn(p, ", ");
	}
	return false;
}

/* A cleared environment: the inherited variables and the named ones, then
 * the entry's env table (which wins). */
static char **executor_envp(struct env *e)
{
	size_t n = 0, cap = 2;
	char **v;

	for (char **p = environ; *p; p++)
		cap++;
	for (char **p = e->extra_env; p && *p; p++)
		cap++;
	v = xcalloc(cap, sizeof(*v));
	for (char **p = environ; *p; p++)
		if ((inherit_env(*p) || named_env(*p)) && !set_by(e->extra_env, *p))
			v[n++] = xstrdup(*p);
	for (char **x = e->extra_env; x && *x; x++)
		v[n++] = xstrdup(*x);
	if (!getenv("PATH") && !set_by(e->extra_env, "PATH="))
		v[n++] = xstrdup("PATH=" SPAWNPROC_DEFAULT_PATH);
	return v;
}

/* Through the spawner: stdin /dev/null, stdout and stderr our stderr
 * (our stdout may be the client API), the secret pipe's read end as fd 3. */
static int start_process(struct env *e, int secret_fd, pid_t *pid, char *err, size_t errlen)
{
	char **argv = executor_argv(e), **envp = executor_envp(e);
	struct spawnproc_fd fds[] = {
		{ SPAWNPROC_DEVNULL, 0 }, { 2, 1 }, { 2, 2 }, { secret_fd, 3 }
	};
	struct spawnproc_opts o = {
		.command = e->program,
		.argv = (const char *const *)argv,
		.envp = (const char *const *)envp,
		.fds = fds,
		.n_fds = ARRAY_SIZE(fds),
		.cwd = e->cwd,
		.flags = SPAWNPROC_SEARCH_PATH,
	};
	int r = spawner_start(&o, executor_exited_cb, e, pid, err, errlen);

	strv_free(argv);
	strv_free(envp);
	return r;
}

static int spawn_executor(struct env *e, char *err, size_t errlen)
{
	int p[2], r;
	pid_t pid;

	e->secret = secret_free(e->secret);
	r = secret_generate(32, &e->secret); /* one-time: new for every start */
	if (r < 0 || pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "cannot prepare the executor secret");
		return r < 0 ? r : -errno;
	}
	r = start_process(e, p[0], &pid, err, errlen);
	close(p[0]);
	if (r < 0) {
		close(p[1]);
		return r;
	}
	/* The secret goes through the pipe, never argv or the environment. */
	r = write_all(p[1], secret_data(e->secret), secret_len(e->secret));
	close(p[1]);
	e->pid = pid;
	log_info("environment '%s': started executor %s (pid %d)", e->id, e->program, (int)pid);
	return r;
}

/* ---- lifecycle --------------------------------------------------------- */

const char *env_spawn_runtime_dir(char *err, size_t errlen)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	char tmpl[128];
	struct stat st;

	if (runtime_dir)
		return runtime_dir;
	if (!base || !*base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid() || (st.st_mode & 077) || strlen(base) > 64)
		base = "/tmp";
	snprintf(tmpl, sizeof(tmpl), "%s/tandem-XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create a private directory for the executors' "
				      "sockets under %s: %s", base, strerror(errno));
		return NULL;
	}
	chmod(tmpl, 0700);
	runtime_dir = xstrdup(tmpl);
	return runtime_dir;
}

/* The executor's own directory, for its socket. */
static int make_sock_dir(struct env *e, char *err, size_t errlen)
{
	const char *base = env_spawn_runtime_dir(err, errlen);
	char tmpl[256];

	if (!base)
		return -EACCES;
	snprintf(tmpl, sizeof(tmpl), "%s/%s-XXXXXX", base, e->id);
	if (strlen(tmpl) > 90) /* the socket path must fit sockaddr_un */
		snprintf(tmpl, sizeof(tmpl), "%s/XXXXXX", base);
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create a directory for the executor's socket "
				      "under %s: %s", base, strerror(errno));
		return -errno;
	}
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

/* The spawner sends SIGTERM now and SIGKILL after a grace period, and
 * reaps it; the orchestrator waits for that at exit (spawner_shutdown). */
void env_spawn_stop(struct env *e)
{
	if (e->pid > 0)
		spawner_stop(e->pid, SPAWNER_STOP_GRACE_MS);
	e->pid = 0;
	loop_timer_cancel(e->restart_timer);
	e->restart_timer = NULL;
	remove_sock_dir(e);
}

void env_set_executor_path(const char *path)
{
	free(executor_path);
	executor_path = path ? xstrdup(path) : NULL;
}

const char *env_spawn_program(const char *configured)
{
	return strcmp(configured, "tandem-executor") == 0 ? env_executor_path() : configured;
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
