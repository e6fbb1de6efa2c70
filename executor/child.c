/* child.c - see child.h.
 *
 * Spawning is common/spawnproc.c's (a failed exec is a synchronous error, the
 * sandbox is its pre-exec hook); this file adds the pipes, the framing and
 * the lifetime.
 *
 * Lifetime: loop_child_add() says when the process is gone. At that
 * moment it is a zombie still holding its pid, hence its process group id,
 * so killing the group then cannot hit an unrelated group; the loop reaps
 * it afterwards. exit_cb waits for stdout/stderr EOF as well, with a short
 * drain deadline for descendants that left the group and hold the pipes.
 *
 * Callbacks may free the child: `busy` defers child_free() until the line
 * being delivered returns, and exit_cb is always the last thing we do.
 */
#include "child.h"

#include "linebuf.h"
#include "ptree.h"
#include "spawnproc.h"
#include "loop.h"
#include "util.h"
#include "wqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>

/* How long exit_cb waits for pipe EOF after the process was reaped. */
#define CHILD_DRAIN_MS 500u
/* read(2) calls per readiness event, so one chatty child cannot starve
 * the loop (it is level-triggered and calls us again). */
#define CHILD_READS_PER_EVENT 8
/* A process whose stdout reached EOF gets this long to exit by itself
 * before it counts as a server that closed its stdout and kept running. */
#define CHILD_EOF_EXIT_MS 250u

/* Held messages written by one writev (two iovecs each: data and '\n'). */
#define HELD_IOV_MAX 64u

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
	int in_fd, out_fd, err_fd;
	int report_fd; /* spec.init: the init writes the server's wait status here */
	struct loop_child *watch;
	struct loop_io *in_io, *out_io, *err_io;
	struct loop_timer *kill_timer, *drain_timer, *eof_timer, *reap_timer;
	struct linebuf out;
	struct wqueue in;	     /* bytes of messages already begun on stdin */
	struct held *held;	     /* messages not begun yet, oldest first */
	struct held **held_tail;
	size_t held_bytes;	     /* their size, overhead included */
	size_t max_stdin_queue;	     /* bound on in + held_bytes */
	struct loop_timer *turn_timer; /* armed by a direct write: the rest of
					* this loop turn's messages wait for it */
	struct errlines err;
	int wstatus;
	bool reaped, stopping, finished;
	bool kill_tree;		 /* signals reach every descendant in /proc too */
	bool busy, free_pending; /* see the header comment */
	char *reason;		 /* set when we ended it (line bound) */
};

/* A message waiting for stdin that no byte of has been written yet: while
 * it waits, a cancel (child_withdraw) or its deadline can still take it
 * back, so that a call its client was told failed never runs later. */
struct held {
	struct held *next;
	uint64_t call_id;     /* 0: not a call (nothing can withdraw it) */
	uint64_t deadline_ms; /* loop clock; 0: none */
	size_t len;
	char data[];
};

static void maybe_finish(struct child *c);

/* ---- spawning ---- */

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

/* parent_end: the end we keep, made non-blocking (each end is its own file
 * description, so the child's end stays blocking). */
static int pipe_pair(int fds[2], int parent_end)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	return fd_set_nonblock(fds[parent_end]);
}

static void close_pair(int fds[2])
{
	fds[0] = safe_close(fds[0]);
	fds[1] = safe_close(fds[1]);
}

/* Starts the process with the pipes on 0-2; on success stores pid and the
 * parent ends. */
static int spawn(const struct child_spec *spec, struct child *c, char *err, size_t errlen)
{
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, errp[2] = { -1, -1 };
	struct spawnproc_fd fds[3];
	struct spawnproc_opts o = {
		.command = spec->command,
		.argv = spec->argv,
		.envp = spec->envp,
		.fds = fds,
		.n_fds = 3,
		.cwd_fd = spec->cwd_fd,
		.cwd = spec->cwd,
		.flags = SPAWNPROC_SEARCH_PATH | SPAWNPROC_NEW_PGROUP | SPAWNPROC_PDEATHSIG |
			 (spec->init ? SPAWNPROC_INIT : 0),
		.namespaces = spec->namespaces,
		.hook = spec->hook,
		.report_fd = &c->report_fd,
		.init_name = "tandem-init",
	};
	int r;

	if ((r = pipe_pair(in, 1)) < 0 || (r = pipe_pair(out, 0)) < 0 ||
	    (r = pipe_pair(errp, 0)) < 0) {
		seterr(err, errlen, "cannot create pipes: %s", strerror(-r));
		goto out;
	}
	fds[0] = (struct spawnproc_fd){ in[0], 0 };
	fds[1] = (struct spawnproc_fd){ out[1], 1 };
	fds[2] = (struct spawnproc_fd){ errp[1], 2 };
	r = spawnproc_start(&o, &c->pid, err, errlen);
	if (r < 0)
		goto out;
	c->in_fd = in[1];
	c->out_fd = out[0];
	c->err_fd = errp[0];
	in[1] = out[0] = errp[0] = -1;
out:
	close_pair(in);
	close_pair(out);
	close_pair(errp);
	return r;
}

/* ---- stdin ---- */

static void held_drop_all(struct child *c)
{
	while (c->held) {
		struct held *h = c->held;

		c->held = h->next;
		free(h);
	}
	c->held_tail = &c->held;
	c->held_bytes = 0;
}

static void stdin_close(struct child *c)
{
	loop_io_del(c->in_io);
	c->in_io = NULL;
	c->in_fd = safe_close(c->in_fd);
	/* Drop what was queued: nobody will read it. */
	wqueue_free(&c->in);
	wqueue_init(&c->in, c->max_stdin_queue);
	held_drop_all(c);
	loop_timer_cancel(c->turn_timer);
	c->turn_timer = NULL;
}

static void stdin_cb(struct loop_io *io, int fd, uint32_t revents, void *arg);

/* Acts on a wqueue write/flush result: watch LOOP_WRITE only while bytes
 * remain queued or held; an error (EPIPE: the process closed its stdin or
 * died) closes stdin for good, and the exit comes later through the watch. */
static int stdin_watch(struct child *c, int r)
{
	if (r == 0 && !c->held) {
		loop_io_del(c->in_io);
		c->in_io = NULL;
		return 0;
	}
	if (r >= 0) {
		if (!c->in_io)
			c->in_io = loop_io_add(c->loop, c->in_fd, LOOP_WRITE, stdin_cb, c);
		if (c->in_io)
			return 0;
	}
	stdin_close(c);
	return -EPIPE;
}

static struct held *held_pop(struct child *c)
{
	struct held *h = c->held;

	c->held = h->next;
	if (!c->held)
		c->held_tail = &c->held;
	c->held_bytes -= sizeof(*h) + h->len + 1;
	return h;
}

/* Drops the first held message if its deadline passed, reporting it
 * (expired_cb): 1 when one was dropped, 0 when not, -ECANCELED when
 * expired_cb freed the child. */
static int held_expire_head(struct child *c)
{
	struct held *h = c->held;
	uint64_t id;

	if (!h->deadline_ms || loop_now_ms(c->loop) < h->deadline_ms)
		return 0;
	id = h->call_id;
	free(held_pop(c));
	if (c->ops->expired_cb) {
		c->busy = true;
		c->ops->expired_cb(c, id, c->arg);
		c->busy = false;
		if (c->free_pending) {
			child_free(c);
			return -ECANCELED;
		}
	}
	return 1;
}

/* Writes the leading held messages that are not expired (at most
 * HELD_IOV_MAX) with one writev: those written whole are done, one cut
 * short is begun (its rest queued in `in`), the others stay held. 0 when
 * all it took were written whole, 1 when the pipe is full (or took
 * nothing), -errno on a write error. Called with the queue `in` empty. */
static int held_write_some(struct child *c)
{
	struct iovec iov[2 * HELD_IOV_MAX];
	unsigned n = 0;
	ssize_t w;

	for (struct held *h = c->held; h && n < 2 * HELD_IOV_MAX; h = h->next) {
		if (h != c->held && h->deadline_ms && loop_now_ms(c->loop) >= h->deadline_ms)
			break; /* expired: the next round drops and reports it */
		iov[n++] = (struct iovec){ h->data, h->len };
		iov[n++] = (struct iovec){ (void *)"\n", 1 };
	}
	do
		w = writev(c->in_fd, iov, (int)n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
	for (unsigned i = 0; i < n; i += 2) {
		struct held *h = c->held;
		size_t whole = h->len + 1, got = (size_t)w;

		if (got == 0)
			return 1; /* the pipe took nothing more: it stays held */
		w -= (ssize_t)MIN(got, whole);
		if (got < whole) { /* begun: the rest goes in order, never withdrawn */
			if (got < h->len)
				wqueue_push2(&c->in, h->data + got, h->len - got, "\n", 1);
			else
				wqueue_push(&c->in, "\n", 1);
			free(held_pop(c));
			return 1;
		}
		free(held_pop(c));
	}
	return 0;
}

/* Begins held messages while the pipe takes them: 0 when all are begun
 * and written, 1 when the pipe is full again, -errno on a write error.
 * One whose deadline passed is dropped and reported instead (expired_cb);
 * -ECANCELED if expired_cb freed the child. Several messages leave in one
 * writev: a server gets a loop turn's calls in one read. */
static int held_begin(struct child *c)
{
	int r = 0;

	while (c->held && r == 0) {
		r = held_expire_head(c);
		if (r < 0)
			return r;
		if (r == 1) {
			r = 0;
			continue;
		}
		r = held_write_some(c);
	}
	return r;
}

/* End of the loop turn that wrote directly: what waited for it leaves. */
static void turn_timer_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;
	int r;

	(void)t;
	c->turn_timer = NULL;
	if (c->in_io || c->in_fd < 0)
		return; /* LOOP_WRITE is watched: stdin_cb writes them */
	r = held_begin(c);
	if (r != -ECANCELED)
		(void)stdin_watch(c, r);
}

static void stdin_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct child *c = arg;
	int r;

	(void)io;
	(void)revents;
	r = wqueue_flush(&c->in, fd);
	if (r == 0)
		r = held_begin(c);
	if (r != -ECANCELED)
		(void)stdin_watch(c, r);
}

/* Holds msg behind the rest; with watch, LOOP_WRITE begins it (else the
 * turn timer does). */
static int hold(struct child *c, const void *msg, size_t len, uint64_t call_id,
		uint64_t deadline_ms, bool watch)
{
	struct held *h = xmalloc(sizeof(*h) + len);

	h->next = NULL;
	h->call_id = call_id;
	h->deadline_ms = deadline_ms;
	h->len = len;
	memcpy(h->data, msg, len);
	*c->held_tail = h;
	c->held_tail = &h->next;
	c->held_bytes += sizeof(*h) + len + 1;
	return watch ? stdin_watch(c, 1) : 0;
}

int child_send_call(struct child *c, const void *msg, size_t len, uint64_t call_id,
		    uint64_t deadline_ms)
{
	int r;

	if (c->in_fd < 0)
		return -EPIPE;
	if (len > c->max_stdin_queue ||
	    wqueue_pending(&c->in) + c->held_bytes + sizeof(struct held) + len + 1 >
		    c->max_stdin_queue)
		return -ENOBUFS;
	/* Behind what already waits, in order; a message after a direct
	 * write of this loop turn waits for the turn's end, and then all of
	 * them leave in one writev (turn_timer_cb). */
	if (c->held || wqueue_pending(&c->in) > 0 || c->turn_timer)
		return hold(c, msg, len, call_id, deadline_ms, c->in_io || !c->turn_timer);
	/* Nothing waits: written directly (no copy, no extra loop iteration
	 * on the common path); what the pipe does not take waits, begun. */
	r = wqueue_write_begun(&c->in, c->in_fd, msg, len, "\n", 1);
	if (r == 2)
		return hold(c, msg, len, call_id, deadline_ms, true);
	if (r == 0)
		c->turn_timer = loop_timer_add(c->loop, 0, turn_timer_cb, c);
	return stdin_watch(c, r);
}

int child_send(struct child *c, const void *msg, size_t len)
{
	return child_send_call(c, msg, len, 0, 0);
}

bool child_withdraw(struct child *c, uint64_t call_id)
{
	struct held **pp;

	if (!call_id)
		return false;
	for (pp = &c->held; *pp; pp = &(*pp)->next) {
		struct held *h = *pp;

		if (h->call_id != call_id)
			continue;
		*pp = h->next;
		if (c->held_tail == &h->next)
			c->held_tail = pp;
		c->held_bytes -= sizeof(*h) + h->len + 1;
		free(h);
		return true;
	}
	return false;
}

size_t child_stdin_pending(const struct child *c)
{
	return wqueue_pending(&c->in) + c->held_bytes;
}

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
 * zombie still holding the group id, which therefore cannot be reused),
 * and with kill_tree to every descendant of the leader that /proc shows
 * (those that left the group with setsid). */
static void tree_kill(struct child *c, int sig)
{
	if (c->reaped)
		return;
	if (c->kill_tree)
		ptree_signal(c->pid, sig);
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
			tree_kill(c, SIGKILL);
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

/* The process did not exit within CHILD_EOF_EXIT_MS of closing its
 * stdout: nothing it says can reach us any more, so it is a dead MCP
 * session, whatever the process does. */
static void eof_timer_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;

	(void)t;
	c->eof_timer = NULL;
	if (c->reaped || c->stopping)
		return;
	free(c->reason);
	c->reason = xstrdup("closed its stdout but kept running; stopped");
	child_kill(c);
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
	if (r != IO_EOF)
		return;
	/* EOF normally comes with the exit: give the exit a moment to be the
	 * reason before calling it a closed stdout. */
	if (!c->reaped && !c->stopping && !c->reason && !c->eof_timer)
		c->eof_timer = loop_timer_add(c->loop, CHILD_EOF_EXIT_MS, eof_timer_cb, c);
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
	if (!c->reaped || c->finished || c->reap_timer)
		return;
	if (c->out_fd < 0 && c->err_fd < 0)
		finish(c);
	else if (!c->drain_timer)
		c->drain_timer = loop_timer_add(c->loop, CHILD_DRAIN_MS, drain_timer_cb, c);
}

/* With spec.init the process we watch is the server's init: the server's
 * own status is what it wrote before exiting. */
static void report_read(struct child *c)
{
	int st;

	if (c->report_fd < 0)
		return;
	if (read(c->report_fd, &st, sizeof(st)) == (ssize_t)sizeof(st))
		c->wstatus = st;
	c->report_fd = safe_close(c->report_fd);
}

static void reaped_cb(struct loop_timer *t, void *arg)
{
	struct child *c = arg;

	(void)t;
	c->reap_timer = NULL;
	maybe_finish(c);
}

/* The process has exited and is still a zombie holding its pid, hence its
 * group id: kill what is left of its group (and tree), then finish once the
 * pipes are done. The loop reaps it when this returns. */
static void exited_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg)
{
	struct child *c = arg;

	(void)w;
	(void)pid;
	c->watch = NULL;
	if (wstatus == -1) {
		if (!c->reason)
			c->reason = xasprintf("process %d was reaped elsewhere", (int)c->pid);
		c->reaped = true; /* its group id may be reused: no more kills */
	} else {
		tree_kill(c, SIGKILL);
		c->wstatus = wstatus;
		c->reaped = true;
		report_read(c);
	}
	loop_timer_cancel(c->kill_timer);
	c->kill_timer = NULL;
	loop_timer_cancel(c->eof_timer);
	c->eof_timer = NULL;
	stdin_close(c);
	/* exit_cb comes after the reap, which follows this callback. */
	c->reap_timer = loop_timer_add(c->loop, 0, reaped_cb, c);
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
	c->watch = loop_child_add(c->loop, c->pid, exited_cb, c);
	if (!c->watch)
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
	c->in_fd = c->out_fd = c->err_fd = c->report_fd = -1;
	c->kill_tree = spec->kill_tree;
	c->max_stdin_queue = spec->max_stdin_queue;
	linebuf_init(&c->out, spec->max_line);
	wqueue_init(&c->in, spec->max_stdin_queue);
	c->held_tail = &c->held;
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
	tree_kill(c, SIGKILL);
}

void child_stop(struct child *c)
{
	if (c->reaped || c->stopping)
		return;
	c->stopping = true;
	/* EOF on stdin is the MCP way to ask a stdio server to exit. */
	stdin_close(c);
	tree_kill(c, SIGTERM);
	c->kill_timer = loop_timer_add(c->loop, CHILD_STOP_GRACE_MS, kill_timer_cb, c);
}

void child_kill(struct child *c)
{
	if (c->reaped)
		return;
	c->stopping = true;
	stdin_close(c);
	tree_kill(c, SIGKILL);
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
		loop_child_del(c->watch);
		tree_kill(c, SIGKILL);
		while (waitpid(c->pid, NULL, 0) < 0 && errno == EINTR)
			;
		c->reaped = true;
	}
	loop_timer_cancel(c->kill_timer);
	loop_timer_cancel(c->eof_timer);
	loop_timer_cancel(c->reap_timer);
	loop_timer_cancel(c->drain_timer);
	loop_timer_cancel(c->turn_timer);
	safe_close(c->report_fd);
	stdout_close(c);
	stderr_close(c);
	loop_io_del(c->in_io);
	safe_close(c->in_fd);
	linebuf_free(&c->out);
	wqueue_free(&c->in);
	held_drop_all(c);
	free(c->reason);
	free(c);
	return NULL;
}
