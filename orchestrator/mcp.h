/* mcp.h - the orchestrator's MCP client: one session per live MCP server.
 *
 * Speaks JSON-RPC 2.0 to one server over an abstract transport supplied by
 * the caller: the executor stdio relay (each message is one MCP_SEND /
 * MCP_OUTPUT) or, later, streamable HTTP. The session does not know which;
 * it hands whole messages to transport.send and is fed whole messages with
 * mcp_session_receive.
 *
 * Lifecycle: mcp_session_start sends initialize (offering MCP_PROTOCOL_LATEST)
 * and accepts any version in MCP_PROTOCOL_VERSIONS, then sends
 * notifications/initialized, lists tools (following nextCursor), and, when
 * the server advertises resources, resources and resource templates (their
 * failure is not fatal). The session is READY when all lists are in, FAILED
 * on a protocol error or when startup_timeout_ms passes first. The state
 * callback reports each change exactly once; FAILED and CLOSED are final.
 *
 * Requests we send carry integer ids counting up from 0; a response is
 * matched by exactly that id (a string "3" does not match 3). Responses to
 * unknown, finished or timed-out requests, non-JSON lines and anything that
 * is not JSON-RPC are ignored (logged at debug: servers print junk).
 * Server->client requests get an answer: ping -> {}, anything else ->
 * -32601 (sampling, elicitation and roots are not offered). The server's
 * notifications/tools/list_changed re-lists tools and then calls
 * tools_changed_cb; notifications/resources/list_changed re-lists resources
 * and templates; notifications/progress goes to the call that asked for it
 * (mcp_call_opts.progress_cb), its token being that call's own id. Other
 * notifications are ignored.
 *
 * Callbacks: state_cb, tools_changed_cb and result callbacks run from
 * mcp_session_receive, mcp_session_transport_closed, mcp_session_stop,
 * mcp_cancel or a loop timer, never from inside mcp_call_tool,
 * mcp_read_resource or mcp_session_start. Any callback may call any
 * function here, including mcp_session_free (nothing is called after it).
 *
 * Ownership: the session copies opts->name and the transport/ops structs.
 * JSON handed to callbacks and returned by the accessors is borrowed: a
 * result lives for the duration of its callback; tools/resources arrays
 * stay valid until the next tools_changed_cb (or re-list of resources) or
 * mcp_session_free. Arguments passed in are borrowed (not copied, not
 * stolen). All functions run on the loop thread.
 */
#ifndef TANDEM_MCP_H
#define TANDEM_MCP_H

#include <jansson.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>

struct jscan_member;
struct loop;
struct mcp_session;

#define MCP_PROTOCOL_LATEST "2025-06-18"
/* Versions we accept from a server, oldest first. */
#define MCP_PROTOCOL_VERSIONS { "2024-11-05", "2025-03-26", "2025-06-18" }

#define MCP_MAX_MESSAGE (32u * 1024u * 1024u) /* bytes of one received message */
#define MCP_MAX_PENDING 4096u		     /* requests in flight per session */
#define MCP_MAX_LIST_PAGES 100u		     /* pages followed for one list */
#define MCP_MAX_LIST_ITEMS 10000u	     /* tools (resources, templates) per list */
#define MCP_MAX_BATCH 1024u		     /* messages in one received JSON array */

/* JSON-RPC error codes we send. */
#define MCP_ERR_METHOD_NOT_FOUND (-32601)

struct mcp_transport {
	/* Sends one complete JSON-RPC message (len bytes, no newline, not
	 * NUL-terminated for the callee's purposes) and returns: queue it,
	 * never feed mcp_session_receive from inside send. Returns 0 or
	 * -errno; a failure is reported to the request's callback, it does
	 * not close the session (the transport says so with
	 * transport_closed). */
	int (*send)(void *ctx, const char *json, size_t len);
	/* Optional (the executor relay): sends the request id with its
	 * deadline (timeout_ms from now), which the far end enforces: a
	 * request that reaches it later is answered with an error and never
	 * delivered. *ticket names it for maybe_reached. */
	int (*send_request)(void *ctx, const char *json, size_t len, uint64_t id,
			    uint64_t timeout_ms, uint64_t *ticket);
	/* false only when the request certainly never reached the far end
	 * (and, past its deadline, never will). */
	bool (*maybe_reached)(void *ctx, uint64_t ticket);
	/* Optional, with send_request: the far end drops request id if it has
	 * not begun to deliver it yet (a cancel overtakes a queued request). */
	void (*cancel_request)(void *ctx, uint64_t id, const char *reason);
	/* Optional: keeps note (JSON, what initialize said) with the far
	 * end's process, for mcp_session_adopt by a later orchestrator. */
	void (*remember)(void *ctx, const char *note, size_t len);
	void *ctx;
};

enum mcp_state { MCP_STARTING, MCP_READY, MCP_FAILED, MCP_CLOSED };

struct mcp_session_ops {
	/* Every state change. error is NULL for READY, the reason otherwise. */
	void (*state_cb)(struct mcp_session *s, enum mcp_state st, const char *error, void *arg);
	/* After a successful re-list triggered by list_changed while READY.
	 * May be NULL. */
	void (*tools_changed_cb)(struct mcp_session *s, void *arg);
};

struct mcp_opts {
	const char *name;	     /* server name, used in error texts */
	uint64_t startup_timeout_ms; /* initialize .. READY; 0 = 30 s */
	uint64_t tool_timeout_ms;    /* default per call; 0 = 300 s */
};

/* result: borrowed, NULL on error. error: NULL on success. A tools/call
 * result with isError true is a result, not an error. */
typedef void (*mcp_result_cb)(struct mcp_session *s, json_t *result, const char *error,
			      void *arg);

/* A result handed to an mcp_text_cb. For a caller that relays a result
 * rather than reads it: when the session could vouch for the server's text
 * (common/jsonscan.h: jansson would read the same object), that text is
 * handed on as written, never parsed, with the result's top-level members
 * as spans of it; otherwise (the scan declined, or the result has more
 * than MCP_RESULT_MEMBERS members) the parsed object. Exactly one of text
 * and json is set; everything is borrowed for the callback. */
#define MCP_RESULT_MEMBERS 16u
struct mcp_result {
	const char *text; /* the result object's text, len bytes, no line break */
	size_t len;
	const struct jscan_member *members;
	size_t nmembers;
	json_t *json;
};
typedef void (*mcp_text_cb)(struct mcp_session *s, const struct mcp_result *res,
			    const char *error, void *arg);

/* Never fails (allocation failure aborts). l, o, t, ops must be non-NULL and
 * t->send set; ops->state_cb may be NULL. */
struct mcp_session *mcp_session_new(struct loop *l, const struct mcp_opts *o,
				    const struct mcp_transport *t,
				    const struct mcp_session_ops *ops, void *arg);
/* Sends initialize and arms the startup timer. Returns 0, -EALREADY if
 * already started, or the transport's -errno (the session is then FAILED,
 * without a state_cb call: the caller has the error). */
/* A session that is already initialized: the server was started and
 * initialized by an earlier orchestrator and kept by its executor while
 * detached (srv.c re-attaches it with MCP_ATTACH). Nothing is sent but the
 * lists (tools, and resources and templates, whose failure is not fatal):
 * no initialize, no notifications/initialized. note (note_len bytes, may
 * be NULL) is what the transport's remember was given after the first
 * initialize: the protocol version, capabilities and serverInfo are taken
 * from it; without a usable one, MCP_PROTOCOL_LATEST and both lists, and
 * serverInfo stays NULL. Request ids start at MCP_ADOPT_FIRST_ID, clear of
 * the old session's. */
#define MCP_ADOPT_FIRST_ID (1ull << 40)
int mcp_session_adopt(struct mcp_session *s, const char *note, size_t note_len);
int mcp_session_start(struct mcp_session *s);
/* Feeds one message received from the transport. */
void mcp_session_receive(struct mcp_session *s, const char *data, size_t len);
/* The transport is gone (process exited, executor lost, HTTP session
 * ended): every pending call completes with an error naming reason, and
 * the state becomes FAILED, or CLOSED after mcp_session_stop. */
void mcp_session_transport_closed(struct mcp_session *s, const char *reason);
/* The owner is shutting the server down: pending calls complete with an
 * error, new calls are refused, and the next transport_closed gives
 * CLOSED instead of FAILED. The owner still closes the transport. */
void mcp_session_stop(struct mcp_session *s, const char *reason);

/* tools/call {name, arguments}. timeout_ms 0 = the session's
 * tool_timeout_ms. Returns a call id (> 0) for mcp_cancel, after which cb
 * runs exactly once (unless forgotten or the session is freed). Returns 0,
 * without calling cb, when the session is not READY or is stopping, cb or
 * tool is NULL, or arguments is neither NULL (sent as {}) nor an object.
 * Other failures (too many pending requests, transport send error) come
 * through cb, from the loop. On timeout the server gets
 * notifications/cancelled. */
uint64_t mcp_call_tool(struct mcp_session *s, const char *tool, json_t *arguments,
		       uint64_t timeout_ms, mcp_result_cb cb, void *arg);
/* resources/read {uri}, with the session's tool_timeout_ms. As above. */
uint64_t mcp_read_resource(struct mcp_session *s, const char *uri, mcp_result_cb cb, void *arg);
/* mcp_call_tool and mcp_read_resource for a caller that relays the result
 * (struct mcp_result); otherwise the same. */
uint64_t mcp_call_tool_text(struct mcp_session *s, const char *tool, json_t *arguments,
			    uint64_t timeout_ms, mcp_text_cb cb, void *arg);
uint64_t mcp_read_resource_text(struct mcp_session *s, const char *uri, mcp_text_cb cb,
				void *arg);
/* Progress of a call: params of the server's notifications/progress
 * ({progressToken, progress, total?, message?}; the token is the session's
 * own, not the caller's), borrowed for the call. */
typedef void (*mcp_progress_cb)(struct mcp_session *s, json_t *params, void *arg);

struct mcp_call_opts {
	uint64_t timeout_ms;	     /* 0 = the session's tool_timeout_ms */
	json_t *meta;		     /* sent as params._meta (borrowed; NULL: none); a
					progressToken in it is never forwarded */
	mcp_progress_cb progress_cb; /* non-NULL: ask the server for progress */
};

/* mcp_call_tool with options (o may be NULL). A progress_cb runs for each
 * progress notification until the call's result callback; it may cancel
 * the call. */
uint64_t mcp_call_tool_opts(struct mcp_session *s, const char *tool, json_t *arguments,
			    const struct mcp_call_opts *o, mcp_result_cb cb, void *arg);
/* Any request the session keeps no state about, as is: prompts/list,
 * prompts/get, resources/read, resources/list, resources/templates/list,
 * completion/complete, ping (params copied; NULL sends {}). Returns 0
 * for another method; otherwise as mcp_call_tool, and the callback gets
 * the result object. */
uint64_t mcp_request(struct mcp_session *s, const char *method, json_t *params,
		     const struct mcp_call_opts *o, mcp_result_cb cb, void *arg);
/* Sends notifications/cancelled {requestId, reason} and runs the call's cb
 * with an error, before returning. Unknown or finished ids are ignored. */
void mcp_cancel(struct mcp_session *s, uint64_t call_id, const char *reason);
/* Cancels (notifications/cancelled) every pending call whose cb arg is
 * `arg`, WITHOUT invoking callbacks: their owner is going away. */
void mcp_session_forget_callbacks(struct mcp_session *s, void *arg);

/* Accessors. Arrays are never NULL (empty until listed). */
json_t *mcp_session_tools(const struct mcp_session *s);
json_t *mcp_session_resources(const struct mcp_session *s);
json_t *mcp_session_resource_templates(const struct mcp_session *s);
/* The server's serverInfo object, or NULL before initialize or if absent. */
json_t *mcp_session_server_info(const struct mcp_session *s);
/* The server's capabilities object ({} if it sent none), or NULL before
 * initialize succeeded. */
json_t *mcp_session_capabilities(const struct mcp_session *s);
/* The negotiated version, or NULL before initialize succeeded. */
const char *mcp_session_protocol_version(const struct mcp_session *s);
enum mcp_state mcp_session_state(const struct mcp_session *s);
/* Why the session FAILED/CLOSED, else NULL. */
const char *mcp_session_error(const struct mcp_session *s);
/* Requests awaiting an answer (user calls and internal ones). */
size_t mcp_session_pending(const struct mcp_session *s);

/* Releases the session; pending calls are dropped without callbacks and no
 * callback runs afterwards. Safe from inside a callback. Accepts NULL;
 * returns NULL. Does not close the transport. */
struct mcp_session *mcp_session_free(struct mcp_session *s);

#endif
