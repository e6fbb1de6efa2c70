/* child.h - spawn and supervise one stdio MCP server process.
 *
 * The executor's link layer uses this to run a plugin's server: it knows
 * processes and line framing, not MCP. Every stdout line goes to line_cb as
 * raw bytes (minus the '\n'; empty lines skipped); stderr goes line by line
 * to stderr_cb (lines longer than CHILD_STDERR_LINE_MAX are truncated);
 * child_send queues one message plus '\n' for stdin.
 *
 * A call (child_send_call) is only the server's once its first byte is
 * written to the pipe. Until then it is held in order behind the rest, and
 * child_withdraw takes it back (a cancel overtakes it), or, when its
 * deadline passes while it waits, it is dropped and expired_cb reports it:
 * a request its client was told failed is never written later.
 *
 * The first message of a loop turn is written at once when nothing waits;
 * the ones after it in the same turn are held until the turn ends (a zero
 * timer) and then leave together in one writev, so that a server gets a
 * burst of calls in one read and the executor makes one syscall for it.
 *
 * The process runs in its own process group with a cleared signal mask and
 * default dispositions, only fds 0-2 open, and PR_SET_PDEATHSIG(SIGKILL)
 * (common/spawnproc.h). The death signal follows the *thread* that called
 * child_start: call it on the loop thread, which lives as long as the
 * daemon. Signals go to the whole group, so grandchildren (npx -> node) die
 * with the server, and with spec.kill_tree to every descendant /proc shows
 * (daemons that left the group with setsid); when the server itself exits,
 * what is left of its group is killed too. spec.namespaces may make the
 * server the init of its own PID namespace, which the kernel empties when
 * the server dies (executor/contain.c decides).
 *
 * Reaping uses loop_child_add() (a pidfd, or polling under valgrind), so no
 * SIGCHLD handler is needed, but nothing else in the process may reap a
 * watched child. Writing to a server whose stdin closed must not kill the
 * daemon: the process must ignore (or block) SIGPIPE.
 *
 * A server whose stdout reaches EOF and that has not exited 250 ms later
 * closed its stdout and kept running: it can never answer again, so it is
 * killed and exit_cb's reason says "closed its stdout but kept running".
 *
 * exit_cb runs exactly once, after the process has been reaped and its
 * stdout read to EOF (or, if a descendant that left the group keeps the
 * pipe open, after 500 ms and a last read of what is buffered), so no line
 * written before the exit is lost. A last stdout line without '\n' is not
 * a message and is not delivered; the reason then says how many bytes were
 * dropped. The reason is human-readable: "exited with status 3", "killed by
 * signal 9", "stdout line exceeded 16777216 bytes", ...
 *
 * Ownership: child_start copies what it needs from the spec; the caller
 * owns the returned child and releases it with child_free, normally from or
 * after exit_cb. child_free on a live child kills and reaps it at once and
 * exit_cb is not called. Free every child before loop_free. All functions
 * run on the loop thread. From line_cb/stderr_cb the caller may call
 * child_send, child_stop, child_kill and child_free.
 */
#ifndef TANDEM_CHILD_H
#define TANDEM_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct child;

/* stderr lines are cut to this many bytes; the rest of the line is dropped. */
#define CHILD_STDERR_LINE_MAX 4096u
/* Time between SIGTERM and SIGKILL in child_stop. */
#define CHILD_STOP_GRACE_MS 2000u

struct spawnproc_hook;

struct child_spec {
	const char *command;	    /* resolved against PATH from envp if it has no '/';
				       a relative path is relative to cwd */
	const char *const *argv;    /* argv[0] included, NULL-terminated */
	const char *const *envp;    /* the child's complete environment, NULL-terminated */
	const char *cwd;	    /* must exist; with cwd_fd only shown in errors */
	int cwd_fd;		    /* > 0: the child fchdir()s to it (checked by the
				       caller, so no path is resolved again) */
	size_t max_line;	    /* stdout line bound; longer kills the group */
	size_t max_stdin_queue;	    /* bytes queued for stdin before -ENOBUFS */
	unsigned long namespaces;   /* CLONE_NEWPID, CLONE_NEWNET, ... or 0 */
	bool init;		    /* run it under a minimal init (spawnproc.h,
				       SPAWNPROC_INIT); exit_cb still gets the
				       server's own wait status */
	bool kill_tree;		    /* signals also reach descendants outside the group */
	const struct spawnproc_hook *hook; /* run in the child before exec; NULL: none */
};

struct child_ops {
	/* One complete stdout line, without its '\n'. Valid during the call. */
	void (*line_cb)(struct child *c, const char *line, size_t len, void *arg);
	/* One stderr line, without its '\n', possibly truncated. May be NULL. */
	void (*stderr_cb)(struct child *c, const char *line, size_t len, void *arg);
	/* A call held for stdin reached its deadline and was dropped, never
	 * written. May be NULL. May call child_free. */
	void (*expired_cb)(struct child *c, uint64_t call_id, void *arg);
	/* Once, after reaping; wstatus as from waitpid. */
	void (*exit_cb)(struct child *c, int wstatus, const char *reason, void *arg);
};

/* Starts the process. Fails synchronously, with a message in err, if the
 * spec is invalid (-EINVAL), the directory cannot be entered or the command
 * cannot be executed (the errno of chdir/execve, e.g. "cannot execute 'foo':
 * No such file or directory"). ops must outlive the child. */
int child_start(struct loop *l, const struct child_spec *spec, const struct child_ops *ops,
		void *arg, struct child **out, char *err, size_t errlen);

/* Queues msg + '\n' for stdin. Returns 0, -ENOBUFS if the queue would exceed
 * max_stdin_queue (nothing queued), or -EPIPE once stdin is closed (the
 * process closed it, exited, or is being stopped). */
int child_send(struct child *c, const void *msg, size_t len);

/* child_send for a call the caller may withdraw: call_id non-zero, and
 * deadline_ms (loop clock, 0 = none) after which it is never begun. */
int child_send_call(struct child *c, const void *msg, size_t len, uint64_t call_id,
		    uint64_t deadline_ms);

/* Takes back call_id if no byte of it was written yet: true when it was
 * held (it will never be written), false when it was begun, written, or
 * is unknown. */
bool child_withdraw(struct child *c, uint64_t call_id);

/* Bytes queued for stdin and not yet written. */
size_t child_stdin_pending(const struct child *c);

/* Graceful stop: closes stdin, sends SIGTERM to the process group, and
 * SIGKILL after CHILD_STOP_GRACE_MS if it has not been reaped. Idempotent. */
void child_stop(struct child *c);

/* Immediate stop: closes stdin and sends SIGKILL to the process group. */
void child_kill(struct child *c);

pid_t child_pid(const struct child *c);

/* Releases the child; accepts NULL; returns NULL. A child still running is
 * killed (SIGKILL to its group) and reaped before this returns (a blocking
 * waitpid, normally immediate), and exit_cb is not called. */
struct child *child_free(struct child *c);

#endif
