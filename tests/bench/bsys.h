/* bsys.h - the benchmark's processes, files and failure path.
 *
 * Every process the benchmark starts goes through bsys_spawn: it runs in its
 * own process group (a Ctrl-C at the terminal reaches only the benchmark,
 * which then stops everything in order) and is remembered until reaped. The
 * benchmark is a child subreaper, so MCP servers orphaned by a dying
 * executor become its children and bsys_cleanup finds and kills them too.
 *
 * Failure: bsys_fail prints the reason, runs bsys_cleanup (processes, then
 * the temporary directory) and exits 1. SIGINT/SIGTERM only set a flag;
 * every wait in the benchmark polls it (bsys_check_interrupt) and leaves
 * through the same cleanup with status 130.
 */
#ifndef TANDEM_BSYS_H
#define TANDEM_BSYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Signal handlers, subreaper, SIGPIPE ignored, atexit cleanup. */
void bsys_init(void);
/* Stops every process still known (SIGTERM, then SIGKILL after a grace
 * period), kills and reaps any other descendant, removes the temporary
 * directory. Idempotent. */
void bsys_cleanup(void);
_Noreturn void bsys_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Leaves through bsys_fail's path (status 130) after SIGINT/SIGTERM. */
void bsys_check_interrupt(void);
/* One progress line on stderr ("tandem-bench: ..."). */
void bsys_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A log file whose last lines bsys_fail prints (the path is copied), and
 * the way to take it off that list again (its process ended well). */
void bsys_show_on_fail(const char *path);
void bsys_forget_on_fail(const char *path);

uint64_t bsys_now_ns(void);
/* Sleeps, staying responsive to SIGINT. */
void bsys_sleep_ms(unsigned ms);

/* The benchmark's temporary directory (created on first use; removed by
 * bsys_cleanup). */
const char *bsys_tmpdir(void);
/* Creates a directory (parents must exist); fails the benchmark on error. */
void bsys_mkdir(const char *path);
void bsys_write_file(const char *path, const char *text);
/* The first executable `name` on $PATH (malloc'd), or NULL. */
char *bsys_which(const char *name);
/* Whole file into a fresh NUL-terminated string, or NULL; *len optional. */
char *bsys_read_file(const char *path, size_t *len);

/* Starts argv[0] (an absolute path) with the given fds as stdin, stdout and
 * stderr (-1: /dev/null); extra_env ("K=V", NULL-terminated, may be NULL)
 * is added to the benchmark's environment. Returns the pid. */
pid_t bsys_spawn(const char *const *argv, int in_fd, int out_fd, int err_fd,
		 const char *const *extra_env);
/* SIGTERM, waits up to grace_ms, then SIGKILL. Returns the wait status. */
int bsys_stop(pid_t pid, unsigned grace_ms);
/* Waits for a process that should exit by itself (e.g. at EOF on stdin). */
int bsys_wait(pid_t pid, unsigned timeout_ms);

#endif
