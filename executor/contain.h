/* contain.h - every process a server starts lives and dies with that
 * server (issue 13, defect 2: a setsid()'d daemon used to outlive the
 * server, the executor and the orchestrator).
 *
 * Two modes, chosen once at start-up (contain_init) and logged:
 *   pidns  (root, or CAP_SYS_ADMIN): each server is the init of its own PID
 *          namespace (CLONE_NEWPID). When it dies for any reason (exit,
 *          MCP_STOP, the executor's exit, or PR_SET_PDEATHSIG after a
 *          SIGKILL of the executor) the kernel kills every process left in
 *          that namespace, whatever session or group they moved to.
 *   track  (otherwise, or --no-pidns): each server is made a child
 *          subreaper before exec, so while it lives every orphan of its
 *          tree is re-parented to it and stays findable in /proc; stopping
 *          it signals the whole tree (ptree.h) as well as its group. The
 *          executor is a subreaper too: when a server dies its remaining
 *          descendants are re-parented to the executor, and since a live
 *          server keeps its own orphans, every child of the executor that
 *          is not a watched server is such a leftover and is killed
 *          (contain_sweep). What this mode cannot cover: a SIGKILL of the
 *          executor (its servers die by PDEATHSIG, their descendants are
 *          re-parented above the executor and survive).
 * The executor reaps every child that is not a watched server (SIGCHLD),
 * so leftovers never linger as zombies.
 *
 * Why not cgroups: this machine class has a hybrid layout (v1 controllers,
 * a v2 hierarchy without controllers at /sys/fs/cgroup/unified); a cgroup
 * per server would give tracking and kill-all but not survival of an
 * executor SIGKILL, which the PID namespace gives. The pids controller
 * (v1 or v2), where writable, is used for the process limit of the
 * sandbox (common/sandbox.h), not for tracking.
 */
#ifndef TANDEM_CONTAIN_H
#define TANDEM_CONTAIN_H

#include <stdbool.h>

struct executor;

/* Decides the mode (pidns when allowed and the kernel lets us create one),
 * stores it in ex->pidns, makes the executor a child subreaper. Call before
 * any thread starts. Logs the mode. */
void contain_init(struct executor *ex, bool allow_pidns);

/* Track mode: kills (SIGKILL, with their trees) every child of the executor
 * that is not a watched server, and reaps those that are gone; called on
 * SIGCHLD and after a server's exit. Does nothing in pidns mode, where a
 * server's orphans go to its init. */
void contain_sweep(struct executor *ex);

/* At exit, after every server was freed: kills whatever is left below the
 * executor and reaps it, bounded to about a second. */
void contain_final(struct executor *ex);

#endif
