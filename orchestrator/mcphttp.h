/* mcphttp.h - the MCP streamable HTTP transport, run from the orchestrator.
 *
 * Plugs into mcp.h's abstract transport exactly like the executor stdio
 * relay: mcphttp_send is a struct mcp_transport send function, and every
 * message the server sends comes out of ops->message_cb, whole, for
 * mcp_session_receive. The MCP session never knows which transport it has.
 *
 * Each outgoing JSON-RPC message is one POST to the server's URL with
 * Content-Type: application/json and Accept: application/json,
 * text/event-stream. The answer is JSON (one message or a batch array,
 * handed over as is: mcp_session_receive splits batches) or an SSE stream
 * whose every event's data is one message; 202 Accepted carries nothing.
 *
 * Session: the Mcp-Session-Id header of the initialize response is sent
 * back on every later request, and MCP-Protocol-Version (the version the
 * initialize result negotiated, read from that result as it passes through)
 * on every request after initialize.
 *
 * Expired session (404 while we hold a session id, or 400 whose body
 * mentions the session): the transport re-initializes by itself, once, by
 * replaying the initialize request and notifications/initialized the MCP
 * session sent at start (the replayed initialize's answer is consumed here,
 * not delivered), then resends the message that hit the expiry. Messages
 * sent meanwhile wait and go out with the new session id. When the replay
 * fails, or a resent message hits an expired session again, the transport
 * is closed: ops->closed_cb(reason), and the owner fails the session (the
 * MCP manager restarts it with backoff on next use).
 *
 * Errors of one exchange (HTTP 4xx/5xx, connection refused, ...) answer
 * that request with a JSON-RPC error delivered through message_cb, so the
 * caller learns at once instead of at its timeout; for a notification or a
 * response there is nobody to tell and the error is dropped. An exchange
 * that outlives request_timeout_ms is dropped silently: the MCP session
 * has already timed the request out.
 *
 * Headers: bearer_token_env_var (Authorization: Bearer <value of that
 * variable>), http_headers (literal) and env_http_headers (header ->
 * variable; an unset variable omits the header) come from the normalized
 * config (mcpcfg.h) at mcphttp_new. The variables are read by the process
 * that makes the request: the orchestrator's own, or, over a relay-mode
 * struct http (an executor-bound server), the executor's (sent as
 * http_opts.env_headers). Their values are secrets: kept only in wiped
 * copies, never put in any reason string or log line. ops.auth_cb adds a
 * per-request Authorization (OAuth, hosted apps).
 *
 * Server-initiated messages: besides a POST's SSE answer, once the session
 * is initialized a GET (Accept: text/event-stream) keeps a stream open for
 * them; a server answering 405 has none and is not asked again; a stream
 * that ends is reopened with backoff, with Last-Event-ID when events had
 * ids (see the GET stream section of mcphttp.c). Resuming a POST's own
 * stream is not implemented.
 *
 * Ownership: mcphttp_new copies what it needs from cfg. Callbacks run on
 * the loop thread, from http callbacks, never from inside mcphttp_send; any
 * of them may call mcphttp_free (freeing is then deferred until the
 * transport's own frames unwind; nothing is delivered afterwards).
 * mcphttp_free sends a best-effort DELETE of the session (bounded by
 * MCPHTTP_DELETE_TIMEOUT_MS, no callback; a daemon exiting at once may cut
 * it short).
 */
#ifndef TANDEM_MCPHTTP_H
#define TANDEM_MCPHTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct http;
struct mcphttp;

#define MCPHTTP_DELETE_TIMEOUT_MS 2000u
#define MCPHTTP_MAX_ERROR_BODY 512u   /* bytes of an error body kept for its reason */
#define MCPHTTP_MAX_HEADERS 256u      /* configured headers */
#define MCPHTTP_CONNECT_MARGIN_MS 5000u
#define MCPHTTP_AUTH_HEADERS 2u       /* headers one auth_cb call may add */
#define MCPHTTP_GET_RETRY_MS 1000u     /* the GET stream reopens after this ... */
#define MCPHTTP_GET_RETRY_MAX_MS 30000u /* ... doubling up to this */
#define MCPHTTP_GET_MAX_FAILURES 5u    /* tries in a row without an event */

struct mcphttp_ops {
	/* One message (or JSON batch) from the server, not NUL-terminated. */
	void (*message_cb)(const char *data, size_t len, void *arg);
	/* The transport gave up (the session expired and could not be
	 * renewed). Called at most once; later sends fail with -ENOTCONN. */
	void (*closed_cb)(const char *reason, void *arg);
	/* May be NULL. Asked before each request for credential headers:
	 * fills up to MCPHTTP_AUTH_HEADERS malloc'd "Name: value" strings
	 * (wiped and freed here) and returns how many. How OAuth tokens and
	 * the ChatGPT token reach the server. */
	size_t (*auth_cb)(void *arg, char *hdrs[]);
};

/* cfg: a normalized HTTP server config (borrowed). request_timeout_ms
 * bounds one exchange (0 = none); pass the longest time the session waits
 * for an answer. Returns NULL with a reason when a header cannot be built
 * (bearer_token_env_var not set, a value holding CR/LF). */
struct mcphttp *mcphttp_new(struct http *h, json_t *cfg, uint64_t request_timeout_ms,
			    const struct mcphttp_ops *ops, void *arg, char *reason,
			    size_t reasonlen);
/* struct mcp_transport send: ctx is the struct mcphttp. 0, -ENOTCONN after
 * closed_cb, -EINVAL (not JSON) or the errno of http_start. */
int mcphttp_send(void *ctx, const char *json, size_t len);
/* Whether the last answered exchange was refused with 401 (the server
 * wants a login), and that answer's WWW-Authenticate header (borrowed,
 * NULL if none). */
bool mcphttp_unauthorized(const struct mcphttp *t);
const char *mcphttp_www_authenticate(const struct mcphttp *t);
/* Accepts NULL; returns NULL. */
struct mcphttp *mcphttp_free(struct mcphttp *t);

#endif
