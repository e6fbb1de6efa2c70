/* ptree.h - processes by ancestry, from /proc.
 *
 * What the executor uses where it cannot put a server in a PID namespace
 * (executor/contain.c): a daemon that called setsid() left the server's
 * process group but not its process tree, so it is still found, and
 * killed, by walking parent links. Reads /proc only; no logging; the
 * answers are snapshots (a process may appear or go right after).
 */
#ifndef TANDEM_PTREE_H
#define TANDEM_PTREE_H

#include <stddef.h>
#include <sys/types.h>

/* Sends sig to every descendant of root (not root itself) that /proc shows
 * now, parents first. Returns how many were signalled, or -errno when /proc
 * cannot be read. */
int ptree_signal(pid_t root, int sig);

/* The direct children of process pid, from /proc/<pid>/task/<tid>/children
 * of every thread (orphans re-parented to a subreaper land on any of its
 * threads). Stores a new array in *out (caller frees) and returns its
 * length, or -errno. */
int ptree_children(pid_t pid, pid_t **out);

#endif
