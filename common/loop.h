/* loop.h - the one event loop each daemon runs; it owns all domain state.
 *
 * Sources: file descriptors (epoll), timers (a min-heap on the monotonic
 * clock), signals (signalfd; the loop blocks them in the calling thread), and
 * a thread-safe post queue woken by an eventfd, so that nng aio callbacks and
 * other threads hand their completions to the loop thread.
 *
 * Everything except loop_post() and loop_stop() must be called on the loop
 * thread. Callbacks may add or remove any source, including the one running.
 * Handles returned by the *_add functions belong to the loop; the caller
 * gives them back with the matching *_del / *_cancel call (safe from inside
 * its own callback). loop_free() releases whatever is still registered.
 */
#ifndef TANDEM_LOOP_H
#define TANDEM_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct loop;
struct loop_io;
struct loop_timer;
struct loop_child;

/* events: LOOP_READ | LOOP_WRITE; revents may also carry LOOP_HUP/LOOP_ERR. */
enum { LOOP_READ = 1u << 0, LOOP_WRITE = 1u << 1, LOOP_HUP = 1u << 2, LOOP_ERR = 1u << 3 };

typedef void (*loop_io_cb)(struct loop_io *io, int fd, uint32_t revents, void *arg);
typedef void (*loop_timer_cb)(struct loop_timer *t, void *arg);
typedef void (*loop_signal_cb)(int signo, void *arg);
typedef void (*loop_post_cb)(void *arg);
typedef void (*loop_child_cb)(struct loop_child *w, pid_t pid, int wstatus, void *arg);

/* Returns NULL with errno set if epoll or the eventfd cannot be created. */
struct loop *loop_new(void);
/* Releases the loop and every registered source; accepts NULL; returns NULL.
 * Queued posts are dropped without running. Signals added with
 * loop_signal_add stay blocked. Other threads must stop posting before it
 * returns (a post racing with it is refused with -ESHUTDOWN). */
struct loop *loop_free(struct loop *l);

/* Runs until loop_stop(). Returns 0, or -errno if epoll itself failed. */
int loop_run(struct loop *l);
/* Makes loop_run() return after the current iteration. Thread-safe. */
void loop_stop(struct loop *l);

/* Cached monotonic time of the current iteration, in milliseconds. */
uint64_t loop_now_ms(struct loop *l);

/* Watches fd (not owned: the caller closes it after loop_io_del). Returns
 * NULL with errno set if epoll refuses the fd (EEXIST, EPERM, ...). */
struct loop_io *loop_io_add(struct loop *l, int fd, uint32_t events, loop_io_cb cb, void *arg);
/* Returns 0 or -errno. */
int loop_io_mod(struct loop_io *io, uint32_t events);
/* Accepts NULL. The handle is invalid afterwards. */
void loop_io_del(struct loop_io *io);

/* One-shot timer firing after `ms` milliseconds. The handle is invalid after
 * the callback returns (unless re-armed with loop_timer_rearm inside it). */
struct loop_timer *loop_timer_add(struct loop *l, uint64_t ms, loop_timer_cb cb, void *arg);
/* Re-arms an existing timer (pending or just fired, from its callback). */
void loop_timer_rearm(struct loop_timer *t, uint64_t ms);
/* Cancels a pending timer; accepts NULL. Do not call after it fired unless
 * it was re-armed. */
void loop_timer_cancel(struct loop_timer *t);

/* Delivers signo through the loop (signalfd). Blocks the signal in the
 * calling thread: call before starting other threads so they inherit the
 * mask. One callback per signal number; returns 0, -EEXIST if signo already
 * has one, -EINVAL for a bad signo (or SIGKILL/SIGSTOP), or -errno.
 * Child processes inherit the blocked mask: spawners must reset it
 * (posix_spawnattr_setsigmask + POSIX_SPAWN_SETSIGMASK). */
int loop_signal_add(struct loop *l, int signo, loop_signal_cb cb, void *arg);

/* Watches pid, a child of this process, through a pidfd in the loop (or,
 * where pidfd_open is missing, as under valgrind, by polling every
 * LOOP_CHILD_POLL_MS). cb runs once, after the process has exited but
 * while it is still a zombie, so that neither its pid nor its process
 * group id can be reused during the call (killing what is left of its
 * group is safe there); the loop reaps it right after cb returns. wstatus
 * is as from waitpid, or -1 when the process was reaped by someone else
 * (status unknown; the loop then reaps nothing). The handle is invalid once
 * cb returns; loop_child_del() inside cb is allowed and does nothing.
 * Deleting a watch before the exit leaves the child unreaped: its owner
 * must reap it. Nothing else in the process may reap with waitpid(-1, ...)
 * or wait(): use loop_child_watched() to tell a watched child from an
 * orphan. Returns NULL with errno set. */
struct loop_child *loop_child_add(struct loop *l, pid_t pid, loop_child_cb cb, void *arg);
/* Accepts NULL. */
void loop_child_del(struct loop_child *w);
/* True when pid has a watch (for reapers of re-parented orphans). */
bool loop_child_watched(struct loop *l, pid_t pid);
#define LOOP_CHILD_POLL_MS 50u

/* Queues cb(arg) to run on the loop thread. Thread-safe, async-safe with
 * respect to the loop, never blocks on the loop. Posts run in FIFO order.
 * Returns 0, -ENOMEM, or -ESHUTDOWN once loop_free() has begun (cb will not
 * run: the caller still owns arg). */
int loop_post(struct loop *l, loop_post_cb cb, void *arg);

#endif
