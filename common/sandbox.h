/* sandbox.h - a box for a child process, applied between fork and exec by
 * a common/spawnproc.h hook: Landlock filesystem rules (read+execute on the
 * system directories, a program root and the program itself, read on a
 * curated part of /etc and /proc, read-write on a private directory and
 * /dev/null and friends, nothing else; from Landlock ABI 6 also no
 * connection to abstract unix sockets and no signal outside the box),
 * no_new_privs, resource limits, a pids cgroup to join, and optionally
 * the child subreaper flag (executor/contain.h). Each part is optional.
 *
 * The ruleset is built in the parent (sandbox_new), where errors can be
 * described; the child only joins, limits and enforces (async-signal-safe
 * system calls). /proc is the child's to add: a fresh one of its own PID
 * namespace, or else its own /proc/self entry (which only it can name). The spec's descriptors are borrowed: keep
 * them open until the spawn returned. No logging.
 */
#ifndef TANDEM_SANDBOX_H
#define TANDEM_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

struct sandbox;
struct spawnproc_hook;

struct sandbox_spec {
	int landlock_abi;	/* > 0: build Landlock rules for this ABI; 0: none */
	int root_fd;		/* read + execute below it; -1: none */
	int private_fd;		/* read-write below it; -1: none */
	const char *program;	/* the file that will be executed (read + execute) */
	const int *read_fds;	/* more read + execute grants */
	size_t n_read;
	const int *write_fds;	/* more read-write grants */
	size_t n_write;
	unsigned long max_open_files;	  /* RLIMIT_NOFILE; 0: unchanged */
	unsigned long max_processes;	  /* RLIMIT_NPROC (per uid, not for root); 0: unchanged */
	unsigned long long max_address_space; /* RLIMIT_AS in bytes; 0: unchanged */
	int pids_procs_fd;	/* a cgroup.procs to join ("0"); -1: none */
	bool subreaper;		/* PR_SET_CHILD_SUBREAPER before exec */
	bool private_proc;	/* in a mount namespace of its own (unshare), mount
				   a fresh /proc and allow reading it (the child
				   must be in a new PID namespace, under an init,
				   with CAP_SYS_ADMIN); else only the program's
				   own /proc/self */
};

/* Builds the box. 0 or -errno with a reason in err. */
int sandbox_new(const struct sandbox_spec *spec, struct sandbox **out, char *err, size_t errlen);

/* The hook to pass to spawnproc (owned by the box). */
const struct spawnproc_hook *sandbox_hook(struct sandbox *b);

/* Accepts NULL; returns NULL. */
struct sandbox *sandbox_free(struct sandbox *b);

/* ---- this process ----
 *
 * A daemon confines itself once its start-up is done: Landlock rules over
 * the paths it names (and nothing else of the filesystem), no_new_privs,
 * and a seccomp filter (libseccomp) that refuses, with EPERM, what a
 * network daemon never needs: reaching into other processes (ptrace,
 * process_vm_*, pidfd_getfd), mounts and namespaces (mount, umount2,
 * pivot_root, chroot, the new mount API, unshare, setns, clone with a
 * CLONE_NEW* flag), kernel and machine state (kexec_*, reboot, *_module,
 * bpf, perf_event_open, userfaultfd, swapon/off, acct, quotactl, the
 * clocks, sethostname, setdomainname, iopl, ioperm, syslog, keyctl and
 * friends, open_by_handle_at, personality other than a query) and,
 * because it never starts a process after start-up, execve, execveat,
 * fork, vfork and clone without CLONE_THREAD; clone3 answers ENOSYS, so
 * that the C library falls back to clone, whose flags the filter can see.
 * In sanitizer builds ptrace and process creation stay allowed
 * (LeakSanitizer stops the world with them).
 *
 * Landlock confines the calling thread and what it creates afterwards, not
 * threads that already run: call this while the process has one thread
 * (-EBUSY otherwise). The seccomp filter is synchronized to every thread.
 * No logging. */
struct sandbox_path {
	const char *path;	/* symlinks followed: the rule lands on the target */
	unsigned long long access; /* LL_* rights (landlock.h), beneath a directory */
};

struct sandbox_self_spec {
	const struct sandbox_path *paths; /* a path that does not exist is skipped */
	size_t n_paths;
	bool scope_signals;	/* ABI 6: no signal to a process outside the domain */
	bool seccomp;		/* install the filter above */
	bool require;		/* -EOPNOTSUPP unless both Landlock and seccomp apply */
};

/* Confines this process. 0 with what is active now described in desc
 * ("landlock ABI 7, seccomp", or "seccomp; no Landlock: <why>"), or -errno
 * with a reason in err (nothing applied, or -EOPNOTSUPP under `require`
 * when a part is missing). */
int sandbox_confine_self(const struct sandbox_self_spec *s, char *desc, size_t desclen,
			 char *err, size_t errlen);
/* What sandbox_confine_self applied ("off" before it ran). */
const char *sandbox_self_describe(void);
/* True in a sanitizer build (whose runtime needs more: see above). */
bool sandbox_sanitizer_build(void);

#endif
