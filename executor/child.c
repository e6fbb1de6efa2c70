/* child.c - see child.h.
 *
 * Spawning: everything the child needs (exec candidates, fds, the parent's
 * pid) is prepared before fork(), because the executor is multi-threaded
 * (nng) and the child may only make async-signal-safe calls until execve.
 * All signals are blocked around fork() so no handler of ours can run in
 * the child before it has reset the dispositions. A CLOEXEC status pipe
 * tells the parent whether execve happened: EOF means it did, otherwise the
 * child wrote {stage, errno} and _exit()ed, and child_start fails with a
 * message instead of reporting an exit later.
 *
 * Lifetime: a pidfd in the loop says when the process is gone. At that
 * moment it is a zombie still holding its pid, hence its process group id,
 * so killing the group then cannot hit an unrelated group; only afterwards
 * is it reaped. exit_cb waits for stdout/stderr EOF as well, with a short
 * drain deadline for descendants that left the group and hold the pipes.
 *
 * Callbacks may free the child: `busy` defers child_free() until the line
 * being delivered returns, and exit_cb is always the last thing we do.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2, dup3, strchrnul */
#endif
#include "child.h"

#include "linebuf.h"
#include "loop.h"
#include "util.h"
#include "wqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* How long exit_cb waits for pipe EOF after the process was reaped. */
#define CHILD_DRAIN_MS 500u
/* read(2) calls per readiness event, so one chatty child cannot starve
 * the loop (it is level-triggered and calls us again). */
#define CHILD_READS_PER_EVENT 8
/* Exit polling interval when pidfd_open is unavailable. */
#define CHILD_POLL_MS 50u
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct errlines {
	char buf[CHILD_STDERR_LINE_MAX];
	size_t len;
	bool skipping; /* dropping the rest of a truncated line */
};

struct child {
	struct loop *loop;
	const struct child_ops *ops;
	void *arg;
	pid_t pid;
	int pidfd, in_fd, out_fd, err_fd;
	struct loop_io *pid_io, *in_io, *out_io, *err_io;
	struct loop_timer *kill_timer, *drain_timer, *poll_timer;
	struct linebuf out;
	struct wqueue in;
	size_t max_stdin_queue;
	struct errlines err;
	int wstatus;
	bool reaped, stopping, finished;
	bool busy, free_pending; /* see the header comment */
	char *reason;		 /* set when we ended it (line bound) */
};

static void maybe_finish(struct child *c);

/* ---- spawning ---- */

enum spawn_stage { STAGE_SETUP = 1, STAGE_CHDIR, STAGE_EXEC };

struct spawn_report {
	int stage;
	int err;
};

/* Everything the forked child touches, computed before fork(). */
struct spawn_prep {
	char **paths; /* exec candidates, NULL-terminated */
	char *const *argv;
	char *const *envp;
	const char *cwd;
	pid_t parent;
	int maxfd; /* for the close() fallback when close_range is missing */
	int in_r, out_w, err_w, status_w;
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

	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

/* The execve candidates for command: itself if it has a '/', else each
 * PATH entry of the child's environment (an empty entry means cwd). */
static char **exec_candidates(const char *command, const char *const *envp)
{
	const char *path = env_get(envp, "PATH");
	size_t n = 1, i = 0;
	char **v;

	if (strchr(command, '/')) {
		v = xcalloc(2, sizeof(*v));
		v[0] = xstrdup(command);
		return v;
	}
	if (!path)
		path = DEFAULT_PATH;
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

static _Noreturn void spawn_fail(int status_fd, int stage, int err)
{
	struct spawn_report r = { stage, err };

	(void)!write(status_fd, &r, sizeof(r));
	_exit(127);
}

/* Puts the pipes on 0-2 and the status pipe (st, already above 3) on 3,
 * closes the rest. Copies go above 3 first so that no dup2 overwrites a
 * pipe not yet moved (the parent may have had 0-2 closed, so pipe2 may have
 * returned them). */
static int spawn_fds(const struct spawn_prep *p, int st)
{
	int src[3] = { p->in_r, p->out_w, p->err_w }, tmp[3];

	for (int i = 0; i < 3; i++) {
		tmp[i] = fcntl(src[i], F_DUPFD, 4);
		if (tmp[i] < 0)
			return -1;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(tmp[i], i) < 0)
			return -1;
	if (dup3(st, 3, O_CLOEXEC) < 0)
		return -1;
	if (syscall(SYS_close_range, 4u, ~0u, 0u) < 0)
		for (int fd = 4; fd < p->maxfd; fd++)
			close(fd);
	return 0;
}

static int spawn_signals(void)
{
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigset_t none;

	/* Ignored signals survive execve (SIGPIPE is ignored in the daemon). */
	for (int s = 1; s < _NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP)
			(void)sigaction(s, &sa, NULL);
	sigemptyset(&none);
	return sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Runs in the forked child: async-signal-safe calls only. */
static _Noreturn void spawn_child(const struct spawn_prep *p)
{
	int err = ENOENT, st = fcntl(p->status_w, F_DUPFD_CLOEXEC, 4);

	if (st < 0)
		spawn_fail(p->status_w, STAGE_SETUP, errno);
	if (spawn_fds(p, st) < 0)
		spawn_fail(st, STAGE_SETUP, errno);
	/* From here the status pipe is fd 3. */
	if (setpgid(0, 0) < 0 || prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		spawn_fail(3, STAGE_SETUP, errno);
	/* The parent may have died before PDEATHSIG was armed. */
	if (getppid() != p->parent)
		_exit(127);
	if (spawn_signals() < 0)
		spawn_fail(3, STAGE_SETUP, errno);
	if (chdir(p->cwd) < 0)
		spawn_fail(3, STAGE_CHDIR, errno);
	/* Like execvp: keep looking past entries that do not hold it, but
	 * remember a permission problem to report it. */
	for (char **c = p->paths; *c; c++) {
		execve(*c, p->argv, p->envp);
		if (errno == EACCES)
			err = EACCES;
		else if (errno != ENOENT && errno != ENOTDIR) {
			err = errno;
			break;
		}
	}
	spawn_fail(3, STAGE_EXEC, err);
}

static void report_error(const struct child_spec *spec, const struct spawn_report *r, char *err,
			 size_t errlen)
{
	if (r->stage == STAGE_CHDIR)
		seterr(err, errlen, "cannot change directory to '%s': %s", spec->cwd,
		       strerror(r->err));
	else if (r->stage == STAGE_EXEC)
		seterr(err, errlen, "cannot execute '%s': %s", spec->command, strerror(r->err));
	else
		seterr(err, errlen, "cannot set up process for '%s': %s", spec->command,
		       strerror(r->err));
}

static void reap_blocking(pid_t pid, int *wstatus)
{
	int st = 0;

	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (wstatus)
		*wstatus = st;
}

/* Waits for the status pipe: 0 once execve succeeded, else the child's
 * failure (it has already _exit()ed; reap it). */
static int spawn_wait_exec(pid_t pid, int status_r, struct spawn_report *r)
{
	ssize_t n;

	do
		n = read(status_r, r, sizeof(*r));
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return 0;
	if (n != (ssize_t)sizeof(*r))
		*r = (struct spawn_report){ STAGE_SETUP, n < 0 ? errno : EIO };
	reap_blocking(pid, NULL);
	return r->err > 0 ? -r->err : -EIO;
}

/* parent_end < 0: both ends stay blocking (the status pipe). */
static int pipe_pair(int fds[2], int parent_end)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	/* Non-blocking on our end only: each end is its own file description. */
	return parent_end < 0 ? 0 : fd_set_nonblock(fds[parent_end]);
}

static void close_pair(int fds[2])
{
	fds[0] = safe_close(fds[0]);
	fds[1] = safe_close(fds[1]);
}

/* fork+exec with the pipes; on success stores pid and the parent ends. */
static int spawn(const struct child_spec *spec, struct child *c, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	int status[2] = { -1, -1 };
	struct spawn_prep p = {
		.argv = (char *const *)spec->argv,
		.envp = (char *const *)spec->envp,
		.cwd = spec->cwd,
		.parent = getpid(),
	};
	struct spawn_report rep;
	struct rlimit rl;
	sigset_t all, old;
	pid_t pid;
	int r;

	if ((r = pipe_pair(in, 1)) < 0 || (r = pipe_pair(out, 0)) < 0 ||
	    (r = pipe_pair(errp, 0)) < 0 || (r = pipe_pair(status, -1)) < 0) {
		seterr(err, errlen, "cannot create pipes: %s", strerror(-r));
		goto out;
	}
	p.paths = exec_candidates(spec->command, spec->envp);
	p.maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536 ? (int)rl.rlim_cur
									 : 65536;
	p.in_r = in[0];
	p.out_w = out[1];
	p.err_w = errp[1];
	p.status_w = status[1];

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0)
		spawn_child(&p);
	r = pid < 0 ? -errno : 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0) {
		seterr(err, errlen, "cannot fork: %s", strerror(-r));
		goto out;
	}
	status[1] = safe_close(status[1]);
	r = spawn_wait_exec(pid, status[0], &rep);
	if (r < 0) {
		report_error(spec, &rep, err, errlen);
		goto out;
	}
	c->pid = pid;
	c->in_fd = in[1];
	c->out_fd = out[0];
	c->err_fd = errp[0];
	in[1] = out[0] = errp[0] = -1;
out:
	strv_free(p.paths);
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	close_pair(status);
	return r;
}

/* ---- stdin ---- */

static void stdin_close(struct child *c)
{
	loop_io_del(c->in_io);
	c->in_io = NULL;
	c->in_fd = safe_close(c->in_fd);
	/* Drop what was queued: nobody will read it. */
	wqueue_free(&c->in);
	wqueue_init(&c->in, c->max_stdin_queue);
}

static void stdin_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);

/* Acts on a wqueue write/flush result: watch LOOP_WRITE only while bytes
 * remain queued; an error (EPIPE: the process closed its stdin or died)
 * closes stdin for good, and the exit comes later through the pidfd. */
static int stdin_watch(struct child *c, int r)
{
	if (r == 0) {
		loop_io_del(c->in_io);
		c->in_io = NULL;
		return 0;
	}
	if (r == 1) {
		if (!c->in_io)
			c->in_io = loop_io_add(c->loop, c->in_fd, LOOP_WRITE, stdin_cb, c);
		if (c->in_io)
			return 0;
	}
	stdin_close(c);
	return -EPIPE;
}

static void stdin_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct child *c = arg;

	(void)io;
	(void)revents;
	(void)stdin_watch(c, wqueue_flush(&c->in, fd));
}

int child_send(struct child *c, const void *msg, size_t len)
{
	int r;

	if (c->in_fd < 0)
		return -EPIPE;
	/* Writes directly when nothing is queued: no copy, no extra loop
	 * iteration on the common path. */
	r = wqueue_write(&c->in, c->in_fd, msg, len, "\n", 1);
	if (r == -ENOBUFS)
		return r;
	return stdin_watch(c, r);
}

size_t child_stdin_pending(const struct child *c) { return wqueue_pending(&c->in); }

/* ---- output ---- */

/* Results of one read step. */
enum { IO_AGAIN, IO_MORE, IO_EOF, IO_FREED };

/* Runs a line callback; returns false if the callback freed the child. */
static bool deliver(struct child *c,
		    void (*cb)(struct child *, const char *, size_t, void *), const char *line,
		    size_t len)
{
	if (!cb || len == 0)
		return true;
	c->busy = true;
	cb(c, line, len, c->arg);
	c->busy = false;
	if (!c->free_pending)
		return true;
	child_free(c);
	return false;
}

static void stdout_close(struct child *c)
{
	loop_io_del(c->out_io);
	c->out_io = NULL;
	c->out_fd = safe_close(c->out_fd);
}

static void stderr_close(struct child *c)
{
	loop_io_del(c->err_io);
	c->err_io = NULL;
	c->err_fd = safe_close(c->err_fd);
}

/* Sends sig to the whole group while the leader is unreaped (alive, or a
 * zombie still holding the group id, which therefore cannot be reused). */
static void group_kill(struct child *c, int sig)
{
	if (c->reaped)
		return;
	if (kill(-c->pid, sig) < 0)
		(void)kill(c->pid, sig);
}

/* One read(2) and the lines it completed. A line over max_line ends the
 * process: the stream cannot be resynchronised and memory stays bounded. */
static int stdout_read(struct child *c)
{
	ssize_t n = linebuf_read(&c->out, c->out_fd);
	const char *line;
	size_t len;
	int r;

	if (n == -EAGAIN)
		return IO_AGAIN;
	if (n <= 0) {
		/* EOF, or a read error that means the same to us. */
		stdout_close(c);
		return IO_EOF;
	}
	while ((r = linebuf_next(&c->out, &line, &len)) != 0) {
		if (r < 0) {
			free(c->reason);
			c->reason = xasprintf("stdout line exceeded %zu bytes", c->out.max_line);
			group_kill(c, SIGKILL);
			stdout_close(c);
			return IO_EOF;
		}
		if (!deliver(c, c->ops->line_cb, line, len))
			return IO_FREED;
	}
	return IO_MORE;
}

/* Splits stderr into lines of at most CHILD_STDERR_LINE_MAX bytes. Unlike
 * stdout an overlong line is not fatal: it is cut and its rest dropped.
 * linebuf cannot resynchronise after an overlong line, hence this splitter. */
static bool stderr_feed(struct child *c, const char *p, size_t n)
{
	struct errlines *e = &c->err;

	while (n > 0) {
		const char *nl = memchr(p, '\n', n);
		size_t seg = nl ? (size_t)(nl - p) : n;
		size_t len;

		if (!e->skipping) {
			size_t keep = MIN(seg, sizeof(e->buf) - e->len);

			memcpy(e->buf + e->len, p, keep);
			e->len += keep;
		}
		p += seg + (nl ? 1 : 0);
		n -= seg + (nl ? 1 : 0);
		if (nl) {
			len = e->skipping ? 0 : e->len;
			e->skipping = false;
		} else if (!e->skipping && e->len == sizeof(e->buf)) {
			len = e->len;
			e->skipping = true;
		} else {
			continue;
		}
		e->len = 0;
		if (!deliver(c, c->ops->stderr_cb, e->buf, len))
			return false;
	}
	return true;
}

static int stderr_read(struct child *c)
{
	char buf[4096];
	ssize_t n;

	do
		n = read(c->err_fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return IO_AGAIN;
	if (n > 0)
		return stderr_feed(c, buf, (size_t)n) ? IO_MORE : IO_FREED;
	/* EOF: a last line without '\n' is still worth showing. */
	n = (ssize_t)(c->err.skipping ? 0 : c->err.len);
	c->err.len = 0;
	if (!deliver(c, c->ops->stderr_cb, c->err.buf, (size_t)n))
		return IO_FREED;
	stderr_close(c);
	return IO_EOF;
}

static void stdout_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct child *c = arg;
	int r = IO_MORE;

	(void)io;
	(void)fd;
	(void)revents;
	for (int i = 0; i < CHILD_READS_PER_EVENT && r == IO_MORE; i++)
		r = stdout_read(c);
	if (r == IO_EOF)
		maybe_finish(c);
}

static void stderr_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct child *c = arg;
	int r = IO_MORE;

	(void)io;
	(void)fd;
	(void)revents;
	for (int i = 0; i < CHILD_READS_PER_EVENT && r == IO_MORE; i++)
		r = stderr_read(c);
	if (r == IO_EOF)
		maybe_finish(c);
}

/* ---- exit ---- */

static char *status_reason(int st)
{
	if (WIFEXITED(st))
		return xasprintf("exited with status %d", WEXITSTATUS(st));
	if (WIFSIGNALED(st))
		return xasprintf("killed by signal %d%s", WTERMSIG(st),
				 WCOREDUMP(st) ? " (core dumped)" : "");
	return xasprintf("ended with wait status 0x%x", (unsigned)st);
}

/* Releases the pipes and tells the owner. Must be the caller's last use of
 * c: exit_cb may free it. */
static void finish(struct child *c)
{
	size_t dropped = linebuf_pending(&c->out);
	_cleanup_free_ char *reason = NULL;

	loop_timer_cancel(c->drain_timer);
	c->drain_timer = NULL;
	stdout_close(c);
	stderr_close(c);
	stdin_close(c);
	c->finished = true;
	reason = c->reason ? xstrdup(c->reason) : status_reason(c->wstatus);
	if (dropped && !c->reason) {
		char *longer = xasprintf("%s; %zu bytes of unterminated stdout dropped", reason,
					 dropped);

		free(reason);
		reason = longer;
	}
	c->ops->exit_cb(c, c->wstatus, reason, c->arg);
}

/* A descendant that left the group still holds a pipe: take what is
 * buffered now and stop waiting for EOF. */
static void drain_timer_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;
	int r = IO_MORE;

	(void)t;
	c->drain_timer = NULL;
	for (int i = 0; i < CHILD_READS_PER_EVENT && c->out_fd >= 0 && r == IO_MORE; i++)
		r = stdout_read(c);
	if (r == IO_FREED)
		return;
	r = IO_MORE;
	for (int i = 0; i < CHILD_READS_PER_EVENT && c->err_fd >= 0 && r == IO_MORE; i++)
		r = stderr_read(c);
	if (r == IO_FREED)
		return;
	finish(c);
}

/* Runs whenever the process was reaped or a pipe reached EOF. */
static void maybe_finish(struct child *c)
{
	if (!c->reaped || c->finished)
		return;
	if (c->out_fd < 0 && c->err_fd < 0)
		finish(c);
	else if (!c->drain_timer)
		c->drain_timer = loop_timer_add(c->loop, CHILD_DRAIN_MS, drain_timer_cb, c);
}

/* Peeks without reaping: true once the process has exited (or cannot be
 * waited for at all). */
static bool child_exited(struct child *c)
{
	siginfo_t si = { 0 };

	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
		if (!c->reason)
			c->reason = xasprintf("process %d was reaped elsewhere", (int)c->pid);
		c->reaped = true; /* its group id may be reused: no more kills */
		return true;
	}
	return si.si_pid != 0;
}

/* The process has exited: kill what is left of its group while the zombie
 * still holds the group id, reap it, and finish once the pipes are done. */
static void child_reaped(struct child *c)
{
	group_kill(c, SIGKILL);
	if (!c->reaped)
		reap_blocking(c->pid, &c->wstatus);
	c->reaped = true;
	loop_io_del(c->pid_io);
	c->pid_io = NULL;
	c->pidfd = safe_close(c->pidfd);
	loop_timer_cancel(c->poll_timer);
	c->poll_timer = NULL;
	loop_timer_cancel(c->kill_timer);
	c->kill_timer = NULL;
	stdin_close(c);
	maybe_finish(c);
}

static void pid_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct child *c = arg;

	(void)io;
	(void)fd;
	(void)revents;
	if (child_exited(c))
		child_reaped(c);
}

/* Without pidfd_open (valgrind, old kernels) we poll instead. */
static void poll_timer_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;

	if (!child_exited(c)) {
		loop_timer_rearm(t, CHILD_POLL_MS);
		return;
	}
	c->poll_timer = NULL;
	child_reaped(c);
}

/* ---- lifecycle ---- */

static int spec_check(const struct child_spec *spec, const struct child_ops *ops, char *err,
		      size_t errlen)
{
	if (!ops || !ops->exit_cb) {
		seterr(err, errlen, "no exit callback");
		return -EINVAL;
	}
	if (!spec->command || !*spec->command) {
		seterr(err, errlen, "no command");
		return -EINVAL;
	}
	if (!spec->argv || !spec->argv[0] || !spec->envp || !spec->cwd || !*spec->cwd ||
	    !spec->max_line || !spec->max_stdin_queue) {
		seterr(err, errlen, "incomplete spec for '%s'", spec->command);
		return -EINVAL;
	}
	return 0;
}

static int child_watch(struct child *c)
{
	/* A property of the kernel (or of valgrind): ask only once. */
	static bool no_pidfd;

	c->pidfd = no_pidfd ? -1 : (int)syscall(SYS_pidfd_open, c->pid, 0u);
	if (c->pidfd < 0 && (no_pidfd || errno == ENOSYS)) {
		no_pidfd = true;
		c->poll_timer = loop_timer_add(c->loop, CHILD_POLL_MS, poll_timer_cb, c);
	} else if (c->pidfd < 0) {
		return -errno;
	}
	if (c->pidfd >= 0 && !(c->pid_io = loop_io_add(c->loop, c->pidfd, LOOP_READ, pid_cb, c)))
		return -errno;
	c->out_io = loop_io_add(c->loop, c->out_fd, LOOP_READ, stdout_cb, c);
	if (!c->out_io)
		return -errno;
	c->err_io = loop_io_add(c->loop, c->err_fd, LOOP_READ, stderr_cb, c);
	if (!c->err_io)
		return -errno;
	return 0;
}

int child_start(struct loop *l, const struct child_spec *spec, const struct child_ops *ops,
		void *arg, struct child **out, char *err, size_t errlen)
{
	struct child *c;
	int r = spec_check(spec, ops, err, errlen);

	if (r < 0)
		return r;
	c = xcalloc(1, sizeof(*c));
	c->loop = l;
	c->ops = ops;
	c->arg = arg;
	c->pidfd = c->in_fd = c->out_fd = c->err_fd = -1;
	c->max_stdin_queue = spec->max_stdin_queue;
	linebuf_init(&c->out, spec->max_line);
	wqueue_init(&c->in, spec->max_stdin_queue);
	r = spawn(spec, c, err, errlen);
	if (r < 0) {
		c->reaped = true; /* nothing to kill */
		child_free(c);
		return r;
	}
	r = child_watch(c);
	if (r < 0) {
		seterr(err, errlen, "cannot watch process for '%s': %s", spec->command,
		       strerror(-r));
		child_free(c);
		return r;
	}
	*out = c;
	return 0;
}

static void kill_timer_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;

	(void)t;
	c->kill_timer = NULL;
	group_kill(c, SIGKILL);
}

void child_stop(struct child *c)
{
	if (c->reaped || c->stopping)
		return;
	c->stopping = true;
	/* EOF on stdin is the MCP way to ask a stdio server to exit. */
	stdin_close(c);
	group_kill(c, SIGTERM);
	c->kill_timer = loop_timer_add(c->loop, CHILD_STOP_GRACE_MS, kill_timer_cb, c);
}

void child_kill(struct child *c)
{
	if (c->reaped)
		return;
	c->stopping = true;
	stdin_close(c);
	group_kill(c, SIGKILL);
}

pid_t child_pid(const struct child *c) { return c->pid; }

struct child *child_free(struct child *c)
{
	if (!c)
		return NULL;
	if (c->busy) {
		/* Inside line_cb/stderr_cb: deliver() finishes the job. */
		c->free_pending = true;
		return NULL;
	}
	if (!c->reaped) {
		group_kill(c, SIGKILL);
		reap_blocking(c->pid, NULL);
		c->reaped = true;
	}
	loop_io_del(c->pid_io);
	safe_close(c->pidfd);
	loop_timer_cancel(c->poll_timer);
	loop_timer_cancel(c->kill_timer);
	loop_timer_cancel(c->drain_timer);
	stdout_close(c);
	stderr_close(c);
	loop_io_del(c->in_io);
	safe_close(c->in_fd);
	linebuf_free(&c->out);
	wqueue_free(&c->in);
	free(c->reason);
	free(c);
	return NULL;
}
