/* conn.h - the tandem CLI's JSON-RPC connection to one orchestrator.
 *
 * Either a unix socket served by a running `tandem-orchestrator --listen
 * unix://PATH`, or a private orchestrator spawned for this one invocation and
 * spoken to on its stdin/stdout (stdio://). One JSON object per line both
 * ways. Blocking and single-threaded: a request is written at once; the
 * caller then waits (conn_call, conn_pump) and everything that arrives
 * meanwhile is dispatched: notifications to the notify callback, replies to
 * the callback given with their request, in arrival order.
 *
 * Signals: after conn_catch_signals(), SIGINT, SIGTERM and SIGHUP are blocked
 * except while the connection waits for input (ppoll), so a signal ends a
 * wait with -EINTR and never splits a write; conn_take_signal() tells which
 * one came. Children are spawned with the original mask and dispositions.
 *
 * A private orchestrator runs in its own process group, so Ctrl-C at the
 * terminal reaches the CLI only and the CLI decides (e.g. turn/interrupt).
 * conn_close() closes its stdin (stdio EOF ends the daemon), waits, then
 * sends SIGTERM, then SIGKILL to its group: it is never left behind.
 *
 * Ownership: params given to conn_request/conn_call/conn_notify are stolen,
 * even on failure. Values passed to callbacks are borrowed for the call.
 * conn_call hands out new references. A reply callback runs exactly once:
 * with the reply, or with (NULL, NULL) from conn_close() when the
 * connection ended first.
 */
#ifndef TANDEM_CLI_CONN_H
#define TANDEM_CLI_CONN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct conn;

/* Longest line accepted from the orchestrator (it queues at most 64 MiB). */
#define CONN_MAX_LINE (64u * 1024 * 1024)

typedef void (*conn_notify_cb)(const char *method, json_t *params, void *arg);
/* Exactly one of result/error is set for a reply; both NULL: no reply will
 * come (the connection is closing). */
typedef void (*conn_reply_cb)(json_t *result, json_t *error, void *arg);

/* Blocks SIGINT/SIGTERM/SIGHUP outside waits and installs the recording
 * handler; ignores SIGPIPE (a dead peer shows up as EPIPE). Call once. */
void conn_catch_signals(void);
/* The signal that interrupted the last wait (0 if none); resets it. */
int conn_take_signal(void);
/* Puts back the mask and dispositions conn_catch_signals() changed (before
 * exec). */
void conn_restore_signals(void);

/* Connects to a unix socket. -errno with a reason in err. */
int conn_open_unix(const char *path, struct conn **out, char *err, size_t errlen);
/* Spawns argv[0] (a path, or a name searched in PATH) with the current
 * environment; its stdin/stdout become the connection, stderr is shared. */
int conn_open_spawn(char *const argv[], struct conn **out, char *err, size_t errlen);
/* Ends the connection (and a private orchestrator, see above); pending reply
 * callbacks run with (NULL, NULL). Accepts NULL; returns NULL. */
struct conn *conn_close(struct conn *c);

void conn_set_notify(struct conn *c, conn_notify_cb cb, void *arg);

/* Sends {"id":N,"method":...,"params":...}; cb (may be NULL) gets the reply.
 * Returns the id (> 0) or -errno (the connection is broken: conn_error). */
int64_t conn_request(struct conn *c, const char *method, json_t *params, conn_reply_cb cb,
		     void *arg);
/* Sends a notification (no id). params may be NULL. 0 or -errno. */
int conn_notify(struct conn *c, const char *method, json_t *params);
/* Drops interest in a reply: its callback will not run. */
void conn_forget(struct conn *c, int64_t id);

/* Sends a request and waits for its reply, dispatching everything else.
 * Returns 0 with exactly one of *result / *error set (new references), or
 * -EINTR (a signal; the reply will be ignored), or another -errno when the
 * connection ended (conn_error says why). */
int conn_call(struct conn *c, const char *method, json_t *params, json_t **result,
	      json_t **error);
/* Handles what is buffered, else waits up to timeout_ms (-1: forever) for
 * input and handles it. 0 (something handled, or the time passed), -EINTR,
 * or -errno when the connection ended. */
int conn_pump(struct conn *c, int timeout_ms);
/* Requests sent with a callback whose reply has not come yet. */
size_t conn_pending(const struct conn *c);

/* Why the connection ended ("the orchestrator exited with status 1"), or
 * NULL while it is up. Borrowed. */
const char *conn_error(const struct conn *c);
/* True for a private (spawned) orchestrator. */
int conn_is_private(const struct conn *c);

#endif
