/* sandbox_self.h - the orchestrator confines itself once its start-up is
 * done (common/sandbox.h: Landlock, no_new_privs, a seccomp filter), so
 * that "it never touches plugin files" holds because it cannot, not only
 * because it does not.
 *
 * What it may still reach (README "The orchestrator's sandbox"):
 *   read        its home (config.toml, environments.toml, executor-tokens/,
 *               executor-tls/, the sealed OAuth token store), what TLS and
 *               name resolution read (the CA store, resolv.conf, hosts,
 *               nsswitch.conf, gai.conf, the C library's NSS modules, ...),
 *               time zones, its own /proc/self, CPU information in /sys
 *   read-write  its state directory (<home>/state, or --state-dir), the
 *               private directory of the spawned executors' sockets,
 *               /dev/null; with the sealed OAuth token store also the files
 *               of its home (the store is replaced by a rename, which
 *               Landlock can grant only for a whole directory)
 *   execute     nothing: executors are started by the spawner (spawner.h),
 *               which was forked before the sandbox applied
 * Signals are scoped to the sandbox (ABI 6): the orchestrator can signal
 * no process outside it, the spawner and the executors included.
 *
 * Call it while the process has one thread: after the home is read, the
 * client socket bound and the spawner forked and sealed, before the first
 * link is dialled (nng starts its threads then). On a kernel without
 * Landlock it logs a warning and the orchestrator runs (seccomp alone);
 * with `require` it refuses instead.
 */
#ifndef TANDEM_SANDBOX_SELF_H
#define TANDEM_SANDBOX_SELF_H

#include <stdbool.h>

struct sandbox_self_opts {
	const char *home;
	const char *state_dir;	 /* the thread store's directory; NULL: none (--ephemeral) */
	const char *runtime_dir; /* the spawned executors' socket directory; NULL: none */
	bool home_writable;	 /* the sealed OAuth token store is in use */
	bool require;		 /* --require-sandbox */
	bool off;		 /* --no-sandbox: only log that it is off */
};

/* Applies the sandbox and logs what is active. 0 (also when it runs
 * without Landlock, or off), or -errno when it must not go on (`require`
 * and a part is missing, or an error applying the rules). */
int sandbox_self_apply(const struct sandbox_self_opts *o);

#endif
