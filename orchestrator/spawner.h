/* spawner.h - the orchestrator's spawner: a small process forked at
 * start-up, before the orchestrator confines itself (sandbox_self.h), that
 * starts and stops the executors of spawned environments on its behalf.
 *
 * Why a process of its own: a Landlock domain is inherited across fork and
 * exec and can never be left, so an executor started by the confined
 * orchestrator would be confined to the orchestrator's rules (no plugin
 * roots, no exec). The spawner is forked before the rules apply, so what
 * it starts is not confined; it holds no secret (it releases the held
 * environment secrets right after the fork) and touches no untrusted data:
 * its only peer is the orchestrator, over a socketpair.
 *
 * Privilege separation in the manner of OpenSSH's monitor: the spawner
 * answers a fixed set of requests, and which request is allowed when is its
 * security policy (spawner_proc.c's dispatch table). Before the orchestrator
 * seals it (spawner_seal, called just before the sandbox applies) it
 * accepts the programs it may start (each resolved to a canonical path
 * then) and the paths to remove when the orchestrator is gone (the client
 * socket, the executors' socket directory: the confined orchestrator may
 * not remove them itself). After the seal it only starts allowed programs
 * (loader variables LD_* are dropped from their environment) and stops
 * the processes it started; anything else ends it. Without spawned
 * environments no program is allowed, and a compromised orchestrator cannot
 * start anything outside its sandbox.
 *
 * The spawner runs spawnproc_start() and watches its children with
 * loop_child_add() in a loop of its own; exits come back as events. When
 * the orchestrator goes away (its end of the socket closes: exit, crash,
 * SIGKILL) the spawner sends SIGTERM to every process it started, SIGKILL
 * after 2 s, reaps them, removes the registered paths and exits. It ignores
 * SIGINT, SIGHUP and SIGTERM (a terminal's Ctrl-C reaches the whole group:
 * the orchestrator's orderly shutdown stops it).
 *
 * State: a file static, loop thread only (spawner_fork before any thread).
 */
#ifndef TANDEM_SPAWNER_H
#define TANDEM_SPAWNER_H

#include <stddef.h>
#include <sys/types.h>

struct loop;
struct spawnproc_opts;

#define SPAWNER_STOP_GRACE_MS 2000u /* SIGTERM, then SIGKILL after this */

/* A process started with spawner_start ended. wstatus as from waitpid. */
typedef void (*spawner_exit_cb)(pid_t pid, int wstatus, void *arg);

/* Forks the spawner process (before threads, before the sandbox). 0 or
 * -errno with a reason. The child never returns. */
int spawner_fork(char *err, size_t errlen);

/* Setup, before spawner_seal: allow `program` (as spawner_start will name
 * it: a path, or a name looked up in this process's PATH now). 0, or
 * -errno with a reason (not found, not executable). */
int spawner_allow(const char *program, char *err, size_t errlen);
/* Setup: remove `path` (a unix socket, or a directory and what is below
 * it) once the orchestrator is gone, if it is still the same file then.
 * 0 or -errno with a reason. */
int spawner_remove_at_exit(const char *path, char *err, size_t errlen);
/* Ends the setup: from now on the spawner only starts and stops. */
int spawner_seal(char *err, size_t errlen);

/* Delivers exits through the loop from now on, and watches the spawner
 * itself (its death is logged: spawned environments cannot restart). */
int spawner_attach(struct loop *l);

/* Starts o->command (a program allowed before the seal, named the same
 * way) with o->argv, o->envp, o->cwd and o->fds (each a descriptor of this
 * process, or SPAWNPROC_DEVNULL); o->flags may hold SPAWNPROC_NEW_PGROUP,
 * SPAWNPROC_NEW_SESSION, SPAWNPROC_PDEATHSIG (which then follows the
 * spawner) and SPAWNPROC_SEARCH_PATH (moot: the program was looked up in
 * PATH when it was allowed); nothing else of o is supported (-EINVAL). Blocks until the
 * spawner answered (exec errors are synchronous, as with spawnproc_start).
 * On success *pid is set and cb runs once when the process has exited,
 * unless spawner_stop was called first. 0 or -errno with a reason. */
int spawner_start(const struct spawnproc_opts *o, spawner_exit_cb cb, void *arg, pid_t *pid,
		  char *err, size_t errlen);
/* SIGTERM now, SIGKILL after grace_ms; forgets the process (no callback). */
void spawner_stop(pid_t pid, unsigned grace_ms);

/* Closes the spawner's socket and waits (at most wait_ms) for it to stop
 * what it started and exit. */
void spawner_shutdown(unsigned wait_ms);

/* The spawner's pid, or 0 when none runs. */
pid_t spawner_pid(void);

#endif
