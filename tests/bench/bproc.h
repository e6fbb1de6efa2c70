/* bproc.h - what the benchmark reads from /proc: memory of a process
 * (VmRSS from status, Pss from smaps_rollup) and the children of a process
 * (by scanning every /proc/PID/stat for its parent). */
#ifndef TANDEM_BPROC_H
#define TANDEM_BPROC_H

#include <stdint.h>
#include <sys/types.h>

/* CPU time (user + system, every thread) in ns; 0 when unavailable. */
uint64_t bproc_cpu_ns(pid_t pid);
/* In KiB; -1 when unavailable. */
long bproc_rss_kib(pid_t pid);
long bproc_pss_kib(pid_t pid);
/* The first child of parent whose comm is `comm`, or -1. */
pid_t bproc_child_named(pid_t parent, const char *comm);
/* Number of live children of parent. */
unsigned bproc_count_children(pid_t parent);
/* SIGKILLs and reaps every child of parent (the caller's own children are
 * reaped; orphans that keep arriving are handled for up to ~1 s). */
void bproc_kill_children(pid_t parent);

#endif
