/* session.h - the client-API layer's state: connected clients (sessions),
 * their requests in flight, and the fan-out of notifications.
 *
 * The transport (client.c) hands each line to session_client_ops; a
 * request becomes a struct req and goes to rpc_dispatch (rpc.c). A handler
 * answers it at once or keeps it until its work is done; either way the
 * request ends with exactly one req_reply, req_error or req_drop, which
 * free it. When the client disconnects first, each request still waiting
 * has its cancel hook run (req_on_cancel): the hook stops the work and ends
 * the request (its answer goes nowhere).
 *
 * The domain refers to a client only by its session id (an "owner": never
 * reused, 0 for nobody): threads and logins store one, and notify.h
 * notifications addressed to it reach it while it is connected and
 * initialized. session_init plugs that sink into notify.h.
 *
 * State: the session list is a file static; loop thread only.
 */
#ifndef TANDEM_SESSION_H
#define TANDEM_SESSION_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct loop;
struct session;
struct req;

/* stdio: the one stdio client's end stops the loop (the daemon ends). */
void session_init(struct loop *l, bool stdio);
extern const struct client_ops session_client_ops;

uint64_t session_id(const struct session *s);
bool session_initialized(const struct session *s);
void session_set_initialized(struct session *s);

/* ---- requests ---------------------------------------------------------- */

/* A request from s (id borrowed; NULL for a notification). method: a
 * static string naming it in the metrics ("other" for an unknown one). */
struct req *req_new(struct session *s, json_t *id, const char *method);
/* The session that sent r (its owner id stays valid after it left). */
uint64_t req_owner(const struct req *r);
/* NULL once the client is gone. */
struct session *req_session(const struct req *r);
/* fn(arg) runs if the client goes away while r waits: it must stop the work
 * and end r (now or later). One hook per request; NULL removes it. */
void req_on_cancel(struct req *r, void (*fn)(void *arg), void *arg);
/* The handler keeps r to end it later, from work that always ends it
 * whether or not the client is still there (no cancel hook needed). A
 * handler that returns without ending r, keeping it or hooking its cancel
 * gets r answered -32603 by the dispatcher (rpc.c): no request goes
 * unanswered. */
void req_keep(struct req *r);
bool req_kept(const struct req *r); /* req_keep'd, or a cancel hook set */
/* The dispatcher's watch: *ended becomes true when r ends (NULL: stop). */
void req_watch_end(struct req *r, bool *ended);
/* Each ends and frees r: the answer (result stolen), a JSON-RPC error, or
 * nothing (a notification; a request whose client is gone). */
void req_reply(struct req *r, json_t *result);
/* req_reply with the result already encoded (client_reply_text). */
void req_reply_text(struct req *r, const char *text, size_t len);
void req_error(struct req *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void req_drop(struct req *r);

#endif
