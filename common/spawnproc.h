/* spawnproc.h - start a program in a child process, safely from a
 * multi-threaded daemon. The one way tandem spawns: the executor's MCP
 * servers (executor/child.c), the CLI's private orchestrator (cli/conn.c)
 * and, later, the orchestrator's spawned executors.
 *
 * Everything the child needs (exec candidates, descriptors) is prepared
 * before fork() (or clone() with the namespaces asked for); between it and
 * execve() the child makes only async-signal-safe calls, in this order:
 *   1. new session or process group (SPAWNPROC_NEW_SESSION / SPAWNPROC_NEW_PGROUP);
 *   2. PR_SET_PDEATHSIG(SIGKILL) with SPAWNPROC_PDEATHSIG (it follows the
 *      *thread* that called spawnproc_start; if the parent is already gone the
 *      child exits at once);
 *   3. every signal disposition back to default (ignored signals would
 *      survive execve) and the signal mask set to opts.sigmask (or empty);
 *   4. the working directory: fchdir(cwd_fd), else chdir(cwd);
 *   5. the pre-exec hook (the executor's sandbox), which may still use any
 *      descriptor of the parent;
 *   6. the descriptor map: each fds[i].fd becomes fds[i].child_fd, every
 *      other descriptor is closed;
 *   7. execve() of each candidate (execvp's rules with SPAWNPROC_SEARCH_PATH).
 * A failure at any step is written to a CLOEXEC status pipe and the child
 * _exit()s; spawnproc_start() waits for that pipe, so an exec that failed is a
 * synchronous error with a message ("cannot execute 'x': No such file or
 * directory"), never an exit reported later. All signals are blocked around
 * fork() so that no handler of the parent runs in the child.
 *
 * SPAWNPROC_INIT (meant with CLONE_NEWPID): after step 2 the child vforks
 * (the grandchild borrows its memory until execve, so steps 3-7 must follow
 * vfork's rules: no allocation, _exit on failure; the hook's too); the
 * program continues in the grandchild while the child stays
 * as a minimal init that reaps what is re-parented to it and, when the
 * program ends, writes the program's wait status (an int, as from waitpid)
 * to the report pipe and exits (with the program's code, or 128+signal).
 * As the init of a PID namespace its exit makes the kernel kill everything
 * left in the namespace; and unlike a program running as the init itself,
 * the program keeps ordinary signal semantics (abort() still aborts). The
 * returned pid is the init's. The init holds none of the program's
 * descriptors.
 *
 * The caller keeps ownership of everything in opts (descriptors included:
 * close your ends after spawnproc_start returns) and reaps the child.
 */
#ifndef TANDEM_SPAWNPROC_H
#define TANDEM_SPAWNPROC_H

#include <signal.h>
#include <stddef.h>
#include <sys/types.h>

/* spawn_fd.fd value: the child gets /dev/null (read-write) there. */
#define SPAWNPROC_DEVNULL (-2)

struct spawnproc_fd {
	int fd;	      /* a descriptor of the parent (CLOEXEC or not), or SPAWNPROC_DEVNULL */
	int child_fd; /* the number the child sees it as */
};

enum spawnproc_flags {
	SPAWNPROC_SEARCH_PATH = 1u << 0, /* a command without '/' is looked up in PATH of envp */
	SPAWNPROC_NEW_PGROUP = 1u << 1,  /* setpgid(0, 0) */
	SPAWNPROC_NEW_SESSION = 1u << 2, /* setsid(): also a new process group */
	SPAWNPROC_PDEATHSIG = 1u << 3,   /* SIGKILL when the spawning thread dies */
	SPAWNPROC_INIT = 1u << 4,	 /* stay as the program's init (see below) */
};

/* Runs in the child at step 5: async-signal-safe calls only, no allocation,
 * no locks. Returns 0, or a positive errno after setting *step to a code of
 * its own that describe() names in the parent ("apply the Landlock rules"). */
struct spawnproc_hook {
	int (*run)(void *arg, int *step);
	const char *(*describe)(int step, void *arg);
	void *arg;
};

struct spawnproc_opts {
	const char *command;	 /* what to execute (see SPAWNPROC_SEARCH_PATH) */
	const char *const *argv; /* argv[0] included, NULL-terminated */
	const char *const *envp; /* the complete environment; NULL: the caller's */
	const struct spawnproc_fd *fds;
	size_t n_fds;		 /* at most SPAWNPROC_MAX_FDS */
	int cwd_fd;		 /* > 0: fchdir() to it, before cwd (0: none, so that
				    zeroed opts have none) */
	const char *cwd;	 /* chdir() to it when no cwd_fd and not NULL; also
				    the name shown in errors about cwd_fd */
	unsigned flags;		 /* enum spawnproc_flags */
	unsigned long namespaces; /* CLONE_NEWPID, CLONE_NEWNET...: new namespaces for
				    the child (clone(2)); 0: plain fork() */
	const sigset_t *sigmask; /* the child's signal mask; NULL: nothing blocked */
	const struct spawnproc_hook *hook; /* NULL: none */
	int *report_fd;		 /* SPAWNPROC_INIT: receives the read end of the
				    report pipe (CLOEXEC; the caller closes it) */
	const char *init_name;	 /* SPAWNPROC_INIT: the init's comm (15 bytes);
				    NULL: "spawn-init" */
};

#define SPAWNPROC_MAX_FDS 16
#define SPAWNPROC_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Starts the program. 0 with *pid set, or a negative errno with a
 * human-readable reason in err: -EINVAL for bad opts, else the errno of the
 * step that failed (pipe, fork, chdir, the hook, execve). */
int spawnproc_start(const struct spawnproc_opts *o, pid_t *pid, char *err, size_t errlen);

/* The file execve() would run for command (PATH of envp, or
 * SPAWNPROC_DEFAULT_PATH, when it has no '/'; envp NULL: the caller's): the
 * first candidate that is an executable regular file, as a new canonical
 * path in *out. 0, or -ENOENT / -EACCES like execvp. */
int spawnproc_find(const char *command, const char *const *envp, char **out);

#endif
