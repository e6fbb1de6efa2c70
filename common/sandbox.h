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

#endif
