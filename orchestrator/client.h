/* client.h - transport and framing of the client API (Codex app-server v2
 * JSON-RPC dialect): one JSON object per line (stdio, and unix clients whose
 * first byte is '{'), or one per WebSocket text frame (unix clients that
 * start with an HTTP upgrade, as Codex's own clients do, and ws://IP:PORT).
 *
 * A listener (struct client_srv) owns its sessions (struct client): the
 * stdio listener has exactly one, a unix or ws listener one per accepted
 * connection, at most max_sessions at a time (extra connections get one
 * error line, or HTTP 503, and are closed). This module parses messages
 * into requests and notifications and writes replies; method logic lives in
 * the client API (session.c, rpc.c) and is reached through struct
 * client_ops. Everything runs on the loop thread, except the parsing of
 * messages over CLIENT_PARSE_INLINE bytes (client_int.h), done by one worker
 * thread started at the first such message (after the sandbox applies:
 * nothing is read before the loop runs).
 *
 * WebSocket (common/ws.h): any request path is upgraded (Codex uses /rpc);
 * a plain GET /readyz answers 200 when the ready callback says so (503
 * otherwise), anything else 404. On ws:// listeners the Authorization
 * header is checked first (struct client_auth: 401 and nothing served when
 * it fails). Text frames only (binary: close 1003), fragments reassembled,
 * UTF-8 checked (1007), messages over max_line bytes closed with 1009;
 * ping answered. The x-codex-app-server-compression offer is not answered
 * (plain frames).
 *
 * Bounds (per session): a message of at most max_line bytes; at most
 * max_unanswered requests handed up and not answered (more get -32001
 * "overloaded" at once); at most max_output bytes of queued output (then
 * the session is dropped as a slow consumer); above CLIENT_OUTPUT_HIGH
 * queued bytes the session's input is not read until its output is down to
 * half of that (a client that does not read its answers stops being served;
 * the others are not delayed). Global (all listeners): the input bytes held
 * (partial messages, messages being parsed) at most CLIENT_GLOBAL_INPUT: a
 * session holding a partial message of over CLIENT_PARSE_INLINE bytes that
 * needs more is closed (error line, or close 1013) with a log line; the
 * unanswered requests at most CLIENT_GLOBAL_UNANSWERED (-32001 beyond).
 * One message's JSON: at most CLIENT_MAX_NODES nodes and CLIENT_MAX_DEPTH
 * levels (-32600), counted before parsing.
 *
 * Line input: a line longer than max_line gets -32600 (id null) as soon as
 * the bound is passed, and the session ends after that answer is written
 * (linebuf cannot resynchronise inside a line). Not JSON (also: duplicate
 * keys, a \u0000 in a string, an integer beyond int64) -> -32700, id null.
 * Not an object (arrays: batches are not part of the dialect), an id that is
 * not a string or integer, or no string method -> -32600, with the id when
 * it was valid. A message with result/error and no method is a client
 * response: ignored (debug log), since we send no server->client requests.
 * "jsonrpc" and "trace" are accepted and ignored. Blank lines are ignored;
 * '\r' before '\n' is allowed; a final line without '\n' before EOF counts.
 * A malformed message never ends the session.
 *
 * Output: compact JSON (+ '\n' on lines), written directly when the
 * session's queue is empty, otherwise queued up to max_output bytes.
 * Writes use writev(2)/send(2): the daemon must ignore SIGPIPE (it does;
 * tests do too).
 *
 * End of a session (EOF, read/write error, slow consumer, over-long line,
 * client_close, WebSocket close): reading stops; on a line EOF and after an
 * over-long line the output already queued is still flushed first (replies
 * that rpc sends after EOF are refused: EOF ends the session). Then
 * closed_cb runs and the session is freed (a WebSocket's close frame may
 * still go out after that, for at most CLIENT_WS_LINGER_MS).
 * closed_cb never runs inside a client_* call made by the caller (except
 * client_srv_free): it always comes later from the loop, so rpc may close
 * or write to any session while iterating over its own lists. Between the
 * decision to close and closed_cb, c stays valid and writes to it return
 * -EPIPE.
 *
 * Ownership: json values passed to request_cb are borrowed for the call
 * (json_incref the id to answer later). client_reply/client_notify steal
 * result/params even on failure; ids are always borrowed. The stdio fds
 * belong to the caller: they are made non-blocking while the session lives,
 * their original flags are restored at its end, and they are never closed.
 */
#ifndef TANDEM_CLIENT_H
#define TANDEM_CLIENT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct loop;
struct client;     /* one session: the stdio pair or one accepted connection */
struct client_srv; /* a listener: stdio, a unix socket or ws:// */
struct client_auth; /* the ws:// Authorization check */

/* Defaults for the limits in struct client_ops (0 selects them). */
#define CLIENT_MAX_LINE (16u * 1024 * 1024)   /* bytes per input line, without '\n' */
#define CLIENT_MAX_OUTPUT (64u * 1024 * 1024) /* queued output bytes per session */
#define CLIENT_MAX_SESSIONS 1024u             /* concurrent sessions per listener */
#define CLIENT_MAX_UNANSWERED 128u            /* requests handed up, not answered */
/* Queued output above which a session's input is not read. */
#define CLIENT_OUTPUT_HIGH (1024u * 1024u)
/* Over all sessions of all listeners. */
#define CLIENT_GLOBAL_INPUT (128u * 1024 * 1024)
#define CLIENT_GLOBAL_UNANSWERED 4096u
/* A ws session's close frame may take this long to go out after closed_cb. */
#define CLIENT_WS_LINGER_MS 1000u
/* A ws connection's request head must be complete by then. */
#define CLIENT_WS_HEAD_MS 10000u

/* JSON-RPC error codes. */
#define CLIENT_PARSE_ERROR (-32700)
#define CLIENT_INVALID_REQUEST (-32600)
#define CLIENT_METHOD_NOT_FOUND (-32601)
#define CLIENT_INVALID_PARAMS (-32602)
#define CLIENT_INTERNAL_ERROR (-32603)
#define CLIENT_OVERLOADED (-32001) /* as Codex app-server: retry later */

struct client_ops {
	/* A request (id != NULL: a json string or integer) or a notification
	 * (id == NULL). params is NULL when absent or JSON null. All borrowed. */
	void (*request_cb)(struct client *c, const char *method, json_t *id, json_t *params,
			   void *arg);
	/* The session ended. c is freed when this returns. Optional. */
	void (*closed_cb)(struct client *c, void *arg);
	/* Limits; 0 selects the CLIENT_MAX_* default. */
	size_t max_line;
	size_t max_output;
	unsigned max_sessions;
	unsigned max_unanswered;
};

/* Serves one session on in_fd/out_fd (may be the same fd: a socket).
 * `ops` must outlive the listener. Returns 0 or -errno. Regular files and
 * other fds epoll refuses work too (read and written without polling). */
int client_srv_stdio(struct loop *l, int in_fd, int out_fd, const struct client_ops *ops,
		     void *arg, struct client_srv **out);
/* Listens on a unix socket at path (mode 0600). Refuses a path that exists
 * and is not a socket, or a socket another server answers on; removes a
 * stale one. Returns 0 or -errno with a reason in err. */
int client_srv_unix(struct loop *l, const char *path, const struct client_ops *ops, void *arg,
		    struct client_srv **out, char *err, size_t errlen);
/* Listens on a URL: stdio:// (fds 0 and 1), unix://PATH (as
 * client_srv_unix), or ws://IP:PORT (IPv4, [IPv6] or localhost; port 0
 * picks one: client_srv_port). auth (borrowed, outlives the listener)
 * applies to ws:// only; a ws:// listener on a non-loopback address without
 * auth is refused (-EPERM). Returns 0 or -errno with a reason in err. */
int client_srv_listen(struct loop *l, const char *url, const struct client_auth *auth,
		      const struct client_ops *ops, void *arg, struct client_srv **out, char *err,
		      size_t errlen);
/* Listens on TCP host:port for WebSocket only (see client_srv_listen). */
int client_srv_ws(struct loop *l, const char *hostport, const struct client_auth *auth,
		  const struct client_ops *ops, void *arg, struct client_srv **out, char *err,
		  size_t errlen);
/* The bound TCP port of a ws:// listener, else 0. */
int client_srv_port(const struct client_srv *s);
/* What GET /readyz answers: cb returns 0 when ready, else fills reason.
 * Without one, /readyz answers 200 while the listener lives. */
void client_srv_set_ready(struct client_srv *s, int (*cb)(char *reason, size_t len, void *arg),
			  void *arg);

/* ws:// authentication, as Codex's app-server: a capability token (from a
 * file, or only its SHA-256) or an HS256 JWT signed with a shared secret,
 * sent as "Authorization: Bearer ...". Files are read here (call it before
 * the sandbox applies); secrets are kept in guarded memory. */
enum client_auth_mode { CLIENT_AUTH_NONE, CLIENT_AUTH_CAPABILITY, CLIENT_AUTH_SIGNED };
struct client_auth_cfg {
	enum client_auth_mode mode;
	const char *token_file;   /* capability: one of these two */
	const char *token_sha256; /* 64 hex digits */
	const char *secret_file;  /* signed: the HS256 key */
	const char *issuer;       /* signed: optional claims to check */
	const char *audience;
	uint64_t max_skew_s;
};
/* mode NONE gives *out = NULL and 0. Returns 0 or -errno with a reason. */
int client_auth_new(const struct client_auth_cfg *cfg, struct client_auth **out, char *err,
		    size_t errlen);
struct client_auth *client_auth_free(struct client_auth *a);

/* Ends every session (closed_cb runs for each, synchronously), stops
 * listening, removes the socket file if it is still ours. Must not be called
 * from inside this listener's callbacks. Accepts NULL; returns NULL. */
struct client_srv *client_srv_free(struct client_srv *s);
/* Live sessions. */
size_t client_srv_count(const struct client_srv *s);

/* {"id":id,"result":result}; id must be a json string or integer; result
 * NULL sends {}. Returns 0 (sent or queued), -EMSGSIZE (this message alone
 * exceeds max_output: dropped, the session lives on; send an error
 * instead), -EINVAL (bad id, not encodable), -EPIPE (session ending), or
 * another -errno (ENOBUFS: slow consumer, EPIPE...) after which the session
 * is ending. Callers may ignore the result: the session's end is reported
 * through closed_cb either way. */
int client_reply(struct client *c, json_t *id, json_t *result);
/* client_reply with the result already encoded: text[0..len) is one JSON
 * value with no line break in it (the caller vouches for it: see
 * jsonscan.h), written as is. */
int client_reply_text(struct client *c, json_t *id, const char *text, size_t len);
/* {"id":id|null,"error":{"code":code,"message":...}}; the message is
 * printf-formatted and cut at 4 KiB. Returns as client_reply. */
int client_error(struct client *c, json_t *id, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* {"method":method,"params":params}; params NULL omits the member. */
int client_notify(struct client *c, const char *method, json_t *params);

/* Ends the session; closed_cb follows from the loop. Idempotent. Queued
 * output is dropped. */
void client_close(struct client *c);

void client_set_data(struct client *c, void *data);
void *client_get_data(const struct client *c);
/* Unique per process (never reused), for logs. */
uint64_t client_id(const struct client *c);
/* Output bytes queued and not yet accepted by the peer. */
size_t client_queued(const struct client *c);

#endif
