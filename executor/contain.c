/* contain.c - see contain.h. */
#include "contain.h"

#include "executor.h"
#include "log.h"
#include "loop.h"
#include "ptree.h"
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* Can we create a PID namespace? A child in one that exits at once. */
static int probe_pidns(void)
{
	pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)(SIGCHLD | CLONE_NEWPID), NULL, NULL,
				   NULL, NULL);
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0)
		_exit(0);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

void contain_init(struct executor *ex, bool allow_pidns)
{
	int r = allow_pidns ? probe_pidns() : -EPERM;

	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
		log_warn("cannot become a child subreaper: %s", strerror(errno));
	ex->pidns = r == 0;
	if (ex->pidns)
		log_info("containment: each MCP server runs as the init of its own PID namespace");
	else
		log_info("containment: %s; MCP servers are subreapers and their process trees are "
			 "tracked in /proc (a SIGKILL of the executor leaves their daemons behind)",
			 allow_pidns ? strerror(-r) : "PID namespaces disabled (--no-pidns)");
}

/* Reaps pid if it is a zombie; true when it is gone. */
static bool reap_if_done(pid_t pid)
{
	pid_t r;

	do
		r = waitpid(pid, NULL, WNOHANG);
	while (r < 0 && errno == EINTR);
	return r == pid || (r < 0 && errno == ECHILD);
}

static int leftovers(struct executor *ex, pid_t **out)
{
	pid_t *kids = NULL;
	int n = ptree_children(getpid(), &kids), m = 0;

	for (int i = 0; i < n; i++)
		if (!loop_child_watched(ex->loop, kids[i]))
			kids[m++] = kids[i];
	*out = kids;
	return n < 0 ? n : m;
}

void contain_sweep(struct executor *ex)
{
	pid_t *kids = NULL;
	int n;

	/* In a PID namespace a server's orphans go to its init, never to us:
	 * nothing to look for. */
	if (ex->pidns)
		return;
	n = leftovers(ex, &kids);

	for (int i = 0; i < n; i++) {
		if (reap_if_done(kids[i]))
			continue;
		log_info("killing pid %d: left behind by an MCP server that has exited",
			 (int)kids[i]);
		ptree_signal(kids[i], SIGKILL);
		kill(kids[i], SIGKILL);
		reap_if_done(kids[i]); /* else its SIGCHLD brings us back */
	}
	free(kids);
}

void contain_final(struct executor *ex)
{
	for (int round = 0; round < 100; round++) {
		pid_t *kids = NULL;
		int n = leftovers(ex, &kids), live = 0;

		for (int i = 0; i < n; i++) {
			ptree_signal(kids[i], SIGKILL);
			kill(kids[i], SIGKILL);
			live += !reap_if_done(kids[i]);
		}
		free(kids);
		if (n <= 0 || !live)
			return;
		usleep(10 * 1000);
	}
	log_warn("processes left below the executor did not die within 1 s");
}
