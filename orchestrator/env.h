/* env.h - one environment: the orchestrator's link to one executor.
 *
 * An environment either spawns its executor (`program` entries and the
 * implicit `local` one, reached over an ipc:// socket in a private 0700
 * directory) or dials a running one (`url` entries). It runs the link's
 * handshake (both sides prove the secret; non-local links are sealed:
 * proto/PROTOCOL.md), correlates requests with replies, routes MCP_OUTPUT /
 * MCP_STDERR / MCP_EXITED events to the owner, and keeps itself alive:
 * keepalives find a dead executor within the keepalive timeout, redials
 * back off with jitter, and a spawned executor that dies is restarted.
 *
 * States: CONNECTING (spawned or dialling, not yet authenticated), READY,
 * DISCONNECTED (with an error that names the reason: unreachable, refused
 * busy / bad proof / version, keepalive timeout...; retrying). When the
 * link drops, every pending request fails at once with an error naming the
 * environment. Nothing is ever queued for a link that is not READY.
 */
#ifndef TANDEM_ENV_H
#define TANDEM_ENV_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"

struct loop;
struct env;

enum env_state { ENV_CONNECTING = 0, ENV_READY, ENV_DISCONNECTED };
const char *env_state_name(enum env_state s);

/* Who makes the connection: we dial the executor's url, the executor dials
 * our --executor-listen address (env_listen.c), or we spawned it. */
enum env_direction { ENV_DIALLED = 0, ENV_DIALLED_IN, ENV_SPAWNED };
const char *env_direction_name(enum env_direction d); /* "dialled", "dialled in", "spawned" */

struct env_spec {
	const char *id;
	const char *url;          /* dial this (remote executor) ... */
	const char *program;      /* ... or spawn this executor */
	const char *const *args;  /* extra args before the link args; NULL-terminated or NULL */
	const char *const *env;   /* extra "K=V" for the executor; NULL-terminated or NULL */
	const char *cwd;
	const char *secret_file;  /* url entries: token the executor expects (optional) */
	const char *token;        /* url entries: the token itself (environment/add) */
	const char *tls_ca_file;  /* tls+tcp:// url entries: the certificate (or CA) to trust */
	uint64_t connect_timeout_ms;
	uint64_t initialize_timeout_ms;
	uint64_t keepalive_ms;         /* PING after this much silence (0: 3 s) */
	uint64_t keepalive_timeout_ms; /* dead after this much silence (0: 9 s) */
	uint64_t resume_grace_ms;      /* a lost link may resume this long, when ... */
	bool resume_grace_set;         /* ... set (0: never), else the default */
	bool is_local;            /* the implicit local executor */
	bool dial_in;             /* no url, no program: the executor dials us (env_adopt) */
};

struct env_ops {
	void (*state_cb)(struct env *e, enum env_state st, void *arg);
	void (*output_cb)(struct env *e, uint64_t handle, const char *data, size_t len, void *arg);
	void (*stderr_cb)(struct env *e, uint64_t handle, const char *line, size_t len, void *arg);
	void (*exited_cb)(struct env *e, uint64_t handle, const char *reason, void *arg);
};

/* Copies the spec. Nothing happens until env_start. */
struct env *env_new(struct loop *l, const struct env_spec *spec, const struct env_ops *ops,
		    void *arg);
int env_start(struct env *e, char *err, size_t errlen);
/* env_start failed, or the environment is being removed: DISCONNECTED
 * with that reason (never left pending), its requests failed with it. */
void env_mark_failed(struct env *e, const char *why);
/* Stops the executor it spawned (SIGTERM, then SIGKILL) and fails pending
 * requests without calling their callbacks' owners back... (they are called
 * with an error). NULL ok; returns NULL. */
struct env *env_free(struct env *e);

const char *env_id(const struct env *e);
enum env_state env_state(const struct env *e);
const char *env_error(const struct env *e);  /* last error, or NULL */
const char *env_executor_id(const struct env *e);
bool env_is_local(const struct env *e);
bool env_spawned(const struct env *e);
unsigned env_restarts(const struct env *e);
int env_executor_pid(const struct env *e);   /* spawned only, else -1 */
const char *env_url(const struct env *e);    /* the link URL (spawned: its ipc path) */
bool env_sealed(const struct env *e);        /* ready and sealed */
uint64_t env_rtt_us(const struct env *e);    /* last keepalive round trip, 0 = none yet */
enum env_direction env_direction(const struct env *e);
unsigned env_reconnects(const struct env *e);     /* READY again after a lost link */
uint64_t env_dial_attempts(const struct env *e);  /* connection attempts since created */
uint64_t env_redial_delay_ms(const struct env *e); /* the last redial's delay, 0 = none */
const char *env_last_error(const struct env *e);  /* the last error, kept once ready again */

/* Dial-in environments: a connection that the executor made to our
 * --executor-listen address (listen_url) and that named this environment (its preface
 * was read; nothing else was). The environment takes it over (link_rebind)
 * and runs the handshake as it does on a connection it dialled; an older
 * connection of the environment is dropped when it is not READY or has
 * been silent for a keepalive period, else the newcomer is refused (0 or
 * -EBUSY; on -EBUSY the caller still owns lk). */
struct link;
int env_adopt(struct env *e, struct link *lk, const char *listen_url);

/* Servers the executor kept detached from an earlier link (its HELLO
 * reply): a server with this identity (MCP_START's) is taken off the list
 * and its handle given, for MCP_ATTACH. False when there is none. */
bool env_claim_detached(struct env *e, const uint8_t id[PROTO_ID_LEN], uint64_t *handle);
unsigned env_detached_count(const struct env *e); /* not claimed yet */
/* The executor kept more detached servers than its HELLO reply could list
 * (PROTO_MAX_LIVE): one not claimed above may still be there, found by
 * MCP_ATTACH with its identity instead of a handle. */
bool env_detached_more(const struct env *e);

/* Link sessions (protocol 3, proto/PROTOCOL.md "Sessions"). A session
 * whose connection is lost waits resume_grace_ms (default 30 s, set for
 * all with env_set_default_grace_ms from --link-grace-sec, or per
 * environment: environments.toml's resume_grace_sec) for a new
 * connection that resumes it: nothing sent is lost or duplicated, pending
 * requests and calls in flight carry on. Meanwhile the state is
 * DISCONNECTED (with the reason) and env_resumable is true: owners keep
 * their servers. When it cannot resume (grace over, the executor
 * restarted or refused, a replay buffer overflowed) pending requests fail
 * with the reason and state_cb runs again (the state stays DISCONNECTED
 * until a fresh session is READY). */
void env_set_default_grace_ms(uint64_t ms);
bool env_resumable(const struct env *e);
unsigned env_resumes(const struct env *e);   /* sessions resumed on a new connection */
void env_session_hex(const struct env *e, char out[33]); /* "" when none */

/* reply is NULL on failure (error says why: remote error message, timeout,
 * disconnect). The reply is valid only during the callback. */
typedef void (*env_reply_cb)(struct env *e, const struct proto_msg *reply, const char *error,
			     void *arg);
/* Sends a request. Returns a request id (> 0) or 0 when the environment is
 * not ready (cb is not called then). */
uint32_t env_request(struct env *e, uint16_t type, const void *body, uint64_t timeout_ms,
		     env_reply_cb cb, void *arg);
/* In a reply callback with reply == NULL: the executor's error status
 * (PROTO_E_LIMIT...), or 0 when the request failed here (timeout, link). */
int env_reply_status(const struct env *e);
/* Drops the callback of a pending request (its owner is going away). */
void env_request_forget(struct env *e, uint32_t id);
/* MCP_SEND: one JSON-RPC message to a process. */
int env_mcp_send(struct env *e, uint64_t handle, const char *data, size_t len);
/* MCP_SEND of the JSON-RPC request call_id with its deadline (timeout_ms
 * from now): the executor writes it to the server only before then, else
 * it answers MCP_EXPIRED, which comes back through output_cb as a JSON-RPC
 * error for call_id saying that the request never reached the server.
 * *ticket names the frame for env_mcp_maybe_reached. */
int env_mcp_send_call(struct env *e, uint64_t handle, const char *data, size_t len,
		      uint64_t call_id, uint64_t timeout_ms, uint64_t *ticket);
/* MCP_CANCEL: the executor drops call_id if it still waits, unwritten, for
 * the server's stdin, and answers MCP_EXPIRED (output_cb, as above). */
int env_mcp_cancel(struct env *e, uint64_t handle, uint64_t call_id, const char *reason);
/* MCP_NOTE: the executor keeps note with the process and gives it back to
 * whoever re-attaches it (MCP_ATTACH reply). -EMSGSIZE past
 * PROTO_MAX_NOTE. */
int env_mcp_note(struct env *e, uint64_t handle, const char *note, size_t len);
/* false only when the frame of ticket certainly never reached the executor
 * (still unacknowledged, or its session ended before an ack): with its
 * deadline past, it never will. */
bool env_mcp_maybe_reached(const struct env *e, uint64_t ticket);

/* HTTP requests run by this environment's executor (HTTP_REQUEST over the
 * link): a relay-mode struct http (common/http.h) owned by the
 * environment. http_start fails with ENOTCONN while it is not ready,
 * EOPNOTSUPP when the executor does not relay, EPERM over a link that is
 * not confidential (plain tcp:// to another host); requests in flight end
 * with -ECONNRESET when the link drops. */
struct http *env_http(struct env *e);

/* Where tandem-executor is: --executor, next to this binary, else PATH. */
void env_set_executor_path(const char *path);
const char *env_executor_path(void);
/* A spawned environment's program as it is started: "tandem-executor" means
 * ours (env_executor_path), anything else is taken as configured. */
const char *env_spawn_program(const char *configured);
/* The private directory (0700, under $XDG_RUNTIME_DIR or /tmp) that holds
 * the spawned executors' socket directories, made on first use: main.c
 * makes it before the orchestrator confines itself, which may then write
 * there but not in /tmp. Its path (borrowed), or NULL with a reason. */
const char *env_spawn_runtime_dir(char *err, size_t errlen);

#endif
