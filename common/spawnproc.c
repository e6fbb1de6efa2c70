/* spawnproc.c - see spawn.h.
 *
 * fork() rather than posix_spawn(): the pre-exec hook (Landlock, rlimits,
 * namespaces), fchdir() to a checked directory fd and a reliable exec
 * status are not expressible as posix_spawn attributes. The cost is a
 * fork of the caller's page tables, small for tandem's daemons.
 */
#include "spawnproc.h"

#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

enum spawn_stage { STAGE_SETUP = 1, STAGE_CWD, STAGE_HOOK, STAGE_FDS, STAGE_EXEC };

struct spawn_report {
	int stage;
	int err;
	int step; /* the hook's own code */
};

/* Everything the forked child touches, computed before fork(). */
struct spawn_prep {
	const struct spawnproc_opts *o;
	char **paths; /* exec candidates, NULL-terminated */
	int src[SPAWNPROC_MAX_FDS];
	int top;      /* first descriptor above every child_fd (at least 3) */
	int maxfd;    /* for the close() fallback when close_range is missing */
	int status_w, status_r;
	int report_w; /* SPAWNPROC_INIT: the init's end of the report pipe */
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const char *env_get(const char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* The execve candidates for command: itself if it has a '/' (or no PATH
 * search was asked for), else each PATH entry (an empty one means cwd). */
static char **exec_candidates(const char *command, const char *const *envp, bool search)
{
	const char *path = env_get(envp, "PATH");
	size_t n = 1, i = 0;
	char **v;

	if (!search || strchr(command, '/')) {
		v = xcalloc(2, sizeof(*v));
		v[0] = xstrdup(command);
		return v;
	}
	if (!path)
		path = SPAWNPROC_DEFAULT_PATH;
	for (const char *p = path; *p; p++)
		n += *p == ':';
	v = xcalloc(n + 1, sizeof(*v));
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		int len = (int)(end - p);

		v[i++] = len ? xasprintf("%.*s/%s", len, p, command) : xasprintf("./%s", command);
		if (!*end)
			break;
		p = end;
	}
	return v;
}

int spawnproc_find(const char *command, const char *const *envp, char **out)
{
	char **c = exec_candidates(command, envp ? envp : (const char *const *)environ, true);
	int r = -ENOENT;

	for (char **p = c; *p; p++) {
		struct stat st;
		char *real;

		if (stat(*p, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (access(*p, X_OK) < 0) {
			r = -EACCES;
			continue;
		}
		real = realpath(*p, NULL);
		if (!real)
			continue;
		*out = real;
		r = 0;
		break;
	}
	strv_free(c);
	return r;
}

/* ---- the child ---- */

static _Noreturn void child_fail(int fd, int stage, int err, int step)
{
	struct spawn_report r = { stage, err, step };

	(void)!write(fd, &r, sizeof(r));
	_exit(127);
}

static int child_signals(const sigset_t *mask)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Ignored signals survive execve (SIGPIPE is ignored in the daemons). */
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)sigaction(s, &sa, NULL);
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, mask ? mask : &none, NULL);
}

static void close_from(const struct spawn_prep *p, int from, int to)
{
	if (from > to)
		return;
	if (syscall(SYS_close_range, (unsigned)from, (unsigned)to, 0u) == 0)
		return;
	for (int fd = from; fd <= to && fd < p->maxfd; fd++)
		close(fd);
}

/* Puts each source on its child_fd and closes everything else but st.
 * Copies go above every target first, so that no dup2 overwrites a source
 * not yet moved. */
static int child_fds(const struct spawn_prep *p, int st)
{
	const struct spawnproc_opts *o = p->o;
	int tmp[SPAWNPROC_MAX_FDS];

	for (size_t i = 0; i < o->n_fds; i++) {
		tmp[i] = fcntl(p->src[i], F_DUPFD_CLOEXEC, p->top);
		if (tmp[i] < 0)
			return -1;
	}
	for (size_t i = 0; i < o->n_fds; i++)
		if (dup2(tmp[i], o->fds[i].child_fd) < 0) /* clears CLOEXEC */
			return -1;
	for (int fd = 0; fd < p->top; fd++) {
		bool mapped = false;

		for (size_t i = 0; i < o->n_fds && !mapped; i++)
			mapped = o->fds[i].child_fd == fd;
		if (!mapped)
			close(fd);
	}
	close_from(p, p->top, st - 1);
	close_from(p, st + 1, INT_MAX);
	return 0;
}

static int child_cwd(const struct spawnproc_opts *o)
{
	if (o->cwd_fd > 0)
		return fchdir(o->cwd_fd);
	if (o->cwd)
		return chdir(o->cwd);
	return 0;
}

static bool parent_gone(int st)
{
	struct pollfd pfd = { .fd = st, .events = POLLOUT };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

static int child_group(const struct spawn_prep *p, int st)
{
	unsigned f = p->o->flags;

	if ((f & SPAWNPROC_NEW_SESSION) && setsid() < 0)
		return -1;
	if ((f & SPAWNPROC_NEW_PGROUP) && !(f & SPAWNPROC_NEW_SESSION) && setpgid(0, 0) < 0)
		return -1;
	if (f & SPAWNPROC_PDEATHSIG) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			return -1;
		/* The parent may have died before the death signal was armed:
		 * then nobody holds the read end of the status pipe (getppid()
		 * cannot tell from inside a new PID namespace). */
		if (parent_gone(st))
			_exit(127);
	}
	return 0;
}

/* SPAWNPROC_INIT: this process stays behind as the program's parent (the
 * init of its PID namespace, with CLONE_NEWPID): it reaps whatever is
 * re-parented to it, and when the program ends writes its wait status to
 * the report pipe and exits, which (as a namespace init) makes the kernel
 * kill everything left in the namespace. It holds no descriptor of the
 * program's (pipe EOFs stay the program's) and ignores every signal but
 * SIGKILL (a namespace init gets only those it handles). */
static _Noreturn void init_main(const struct spawn_prep *p, pid_t prog, int st)
{
	int wstatus = 0, s;
	sigset_t all;
	pid_t r;

	close(st); /* the program's copy alone says whether exec worked */
	/* ps shows it as what it is, not as a second copy of the parent. */
	(void)prctl(PR_SET_NAME, (unsigned long)(p->o->init_name ? p->o->init_name : "spawn-init"));
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	(void)!chdir("/");
	close_from(p, 0, p->report_w - 1);
	close_from(p, p->report_w + 1, INT_MAX);
	for (;;) {
		r = waitpid(-1, &s, 0);
		if (r == prog) {
			wstatus = s;
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
	}
	(void)!write(p->report_w, &wstatus, sizeof(wstatus));
	_exit(WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + (wstatus & 0x7f));
}

/* Runs in the forked child: async-signal-safe calls only. */
static _Noreturn void child_main(const struct spawn_prep *p)
{
	const struct spawnproc_opts *o = p->o;
	int err = ENOENT, step = 0, st = fcntl(p->status_w, F_DUPFD_CLOEXEC, p->top);

	if (st < 0)
		child_fail(p->status_w, STAGE_SETUP, errno, 0);
	close(p->status_r); /* our copy: see parent_gone() */
	close(p->status_w);
	if (child_group(p, st) < 0)
		child_fail(st, STAGE_SETUP, errno, 0);
	if (o->flags & SPAWNPROC_INIT) {
		/* vfork: the program borrows this copy's memory until its
		 * execve (no page tables copied, no copy-on-write faults on its
		 * way there, ~1 ms each on a paravirtualized VM), and we wait
		 * meanwhile. What runs before the execve already follows the
		 * rules such a child needs: system calls on its own stack, no
		 * allocation, _exit on failure, never a return from here. */
		pid_t prog = vfork();

		if (prog < 0)
			child_fail(st, STAGE_SETUP, errno, 0);
		if (prog > 0)
			init_main(p, prog, st);
		close(p->report_w);
		/* The init dying kills us with the namespace; without one, the
		 * death signal does. */
		if ((o->flags & SPAWNPROC_PDEATHSIG) && prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
			child_fail(st, STAGE_SETUP, errno, 0);
	}
	if (child_signals(o->sigmask) < 0)
		child_fail(st, STAGE_SETUP, errno, 0);
	if (child_cwd(o) < 0)
		child_fail(st, STAGE_CWD, errno, 0);
	if (o->hook && o->hook->run && (err = o->hook->run(o->hook->arg, &step)) != 0)
		child_fail(st, STAGE_HOOK, err, step);
	if (child_fds(p, st) < 0)
		child_fail(st, STAGE_FDS, errno, 0);
	/* Like execvp: keep looking past entries that do not hold it, but
	 * remember a permission problem to report it. */
	err = ENOENT;
	for (char **c = p->paths; *c; c++) {
		execve(*c, (char *const *)o->argv,
		       (char *const *)(o->envp ? o->envp : (const char *const *)environ));
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR) {
			err = errno;
			break;
		}
	}
	child_fail(st, STAGE_EXEC, err, 0);
}

/* ---- the parent ---- */

/* fork(), or clone() into new namespaces. The raw clone skips glibc's
 * fork handlers, which is fine for a child that only makes
 * async-signal-safe calls until execve (the same rule as after fork()). */
static pid_t do_fork(unsigned long namespaces)
{
	if (!namespaces)
		return fork();
	return (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD | namespaces, NULL, NULL, NULL,
			      NULL);
}

static void report_error(const struct spawnproc_opts *o, const struct spawn_report *r, char *err,
			 size_t errlen)
{
	const char *what;

	switch (r->stage) {
	case STAGE_CWD:
		seterr(err, errlen, "cannot change directory to '%s': %s",
		       o->cwd ? o->cwd : "(directory descriptor)", strerror(r->err));
		break;
	case STAGE_HOOK:
		what = o->hook->describe ? o->hook->describe(r->step, o->hook->arg) : NULL;
		seterr(err, errlen, "cannot %s for '%s': %s", what ? what : "prepare the process",
		       o->command, strerror(r->err));
		break;
	case STAGE_EXEC:
		seterr(err, errlen, "cannot execute '%s': %s", o->command, strerror(r->err));
		break;
	default:
		seterr(err, errlen, "cannot set up the process for '%s': %s", o->command,
		       strerror(r->err));
	}
}

static void reap_blocking(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/* Waits for the status pipe: 0 once execve succeeded, else the child's
 * failure (it has already _exit()ed; reap it). */
static int wait_exec(pid_t pid, int status_r, struct spawn_report *r)
{
	ssize_t n;

	do
		n = read(status_r, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*r))
		*r = (struct spawn_report){ STAGE_SETUP, n < 0 ? errno : EIO, 0 };
	reap_blocking(pid);
	return r->err > 0 ? -r->err : -EIO;
}

static int check_opts(const struct spawnproc_opts *o, char *err, size_t errlen)
{
	if (!o->command || !*o->command || !o->argv || !o->argv[0]) {
		seterr(err, errlen, "no command to run");
		return -EINVAL;
	}
	if ((o->flags & SPAWNPROC_INIT) && !o->report_fd) {
		seterr(err, errlen, "SPAWNPROC_INIT without a report_fd for '%s'", o->command);
		return -EINVAL;
	}
	if (o->n_fds > SPAWNPROC_MAX_FDS) {
		seterr(err, errlen, "more than %d descriptors for '%s'", SPAWNPROC_MAX_FDS,
		       o->command);
		return -EINVAL;
	}
	for (size_t i = 0; i < o->n_fds; i++) {
		if (o->fds[i].child_fd < 0 || o->fds[i].child_fd > 1023 ||
		    (o->fds[i].fd < 0 && o->fds[i].fd != SPAWNPROC_DEVNULL)) {
			seterr(err, errlen, "bad descriptor map for '%s'", o->command);
			return -EINVAL;
		}
	}
	return 0;
}

/* Fills the parts of p that need no cleanup except paths and devnull. */
static int prepare(struct spawn_prep *p, const struct spawnproc_opts *o, int *devnull)
{
	struct rlimit rl;

	p->o = o;
	p->top = 3;
	p->maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur
									 : 65536;
	for (size_t i = 0; i < o->n_fds; i++) {
		p->top = MAX(p->top, o->fds[i].child_fd + 1);
		if (o->fds[i].fd == SPAWNPROC_DEVNULL && *devnull < 0 &&
		    (*devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
			return -errno;
		p->src[i] = o->fds[i].fd == SPAWNPROC_DEVNULL ? *devnull : o->fds[i].fd;
	}
	p->paths = exec_candidates(o->command, o->envp ? o->envp : (const char *const *)environ,
				   o->flags & SPAWNPROC_SEARCH_PATH);
	return 0;
}

int spawnproc_start(const struct spawnproc_opts *o, pid_t *pid, char *err, size_t errlen)
{
	struct spawn_prep p = { 0 };
	int status[2] = { -1, -1 }, report[2] = { -1, -1 }, devnull = -1, r;
	struct spawn_report rep;
	sigset_t all, old;
	pid_t child;

	if ((r = check_opts(o, err, errlen)) < 0)
		return r;
	if ((r = prepare(&p, o, &devnull)) < 0 || pipe2(status, O_CLOEXEC) < 0) {
		r = r < 0 ? r : -errno;
		seterr(err, errlen, "cannot prepare to start '%s': %s", o->command, strerror(-r));
		goto out;
	}
	if ((o->flags & SPAWNPROC_INIT) && pipe2(report, O_CLOEXEC) < 0) {
		r = -errno;
		seterr(err, errlen, "cannot prepare to start '%s': %s", o->command, strerror(-r));
		goto out;
	}
	p.status_w = status[1];
	p.status_r = status[0];
	p.report_w = report[1];
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	child = do_fork(o->namespaces);
	if (child == 0)
		child_main(&p);
	r = child < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		seterr(err, errlen, "cannot fork to start '%s': %s", o->command, strerror(-r));
		goto out;
	}
	status[1] = safe_close(status[1]);
	report[1] = safe_close(report[1]);
	r = wait_exec(child, status[0], &rep);
	if (r < 0) {
		report_error(o, &rep, err, errlen);
		goto out;
	}
	*pid = child;
	if (o->flags & SPAWNPROC_INIT)
		*o->report_fd = TAKE_FD(report[0]);
out:
	safe_close(report[0]);
	safe_close(report[1]);
	strv_free(p.paths);
	safe_close(devnull);
	safe_close(status[0]);
	safe_close(status[1]);
	return r;
}
