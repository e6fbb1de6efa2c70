/* messages.h - THE source of truth for the orchestrator <-> executor protocol.
 *
 * Every message is declared once here: its id, its names, its kind, the
 * direction it travels, the link state in which it is allowed, and the
 * fields of its body and of its reply. The C structs, the encoder and
 * decoder tables (codec.c), and the daemons' dispatch checks are all derived
 * from these lists; proto/PROTOCOL.md documents them for humans and
 * tests/unit/golden/proto.txt pins their bytes.
 *
 * Rules: ids are grouped in blocks and never renumbered or reused; field
 * tags are never renumbered or reused within a message; adding an optional
 * field is compatible (decoders skip unknown tags), anything else bumps
 * PROTO_VERSION.
 *
 * Field lists take (F, S) and call F(S, tag, type, name, required), S being
 * passed through untouched (codec.c uses it to name the struct).
 *   types: u32 u64 i64 bool str bin strlist strmap u64list
 *   required: 1 = a decoder rejects the message when the field is missing.
 */
#ifndef TANDEM_PROTO_MESSAGES_H
#define TANDEM_PROTO_MESSAGES_H

/* X(id, NAME, name, kind, direction, state)
 *   kind:      REQUEST (answered by a reply of the same id) or EVENT
 *   direction: O2E (orchestrator -> executor), E2O, or BOTH
 *   state:     PREAUTH (only during the handshake) or AUTHED (only after)
 * Retired ids, never reused: 0x04 (STATUS, protocol 1). */
#define PROTO_MESSAGES(X)                                                      \
	/* 0x01-0x0f: session */                                               \
	X(0x01, HELLO, hello, REQUEST, O2E, PREAUTH)                           \
	X(0x02, CHALLENGE, challenge, EVENT, E2O, PREAUTH)                     \
	X(0x03, PING, ping, REQUEST, BOTH, AUTHED)                             \
	X(0x05, AUTH, auth, REQUEST, O2E, PREAUTH)                             \
	/* 0x10-0x1f: plugins */                                               \
	X(0x10, ROOT_RESOLVE, root_resolve, REQUEST, O2E, AUTHED)              \
	/* 0x20-0x2f: stdio MCP processes */                                   \
	X(0x20, MCP_START, mcp_start, REQUEST, O2E, AUTHED)                    \
	X(0x21, MCP_STOP, mcp_stop, REQUEST, O2E, AUTHED)                      \
	X(0x22, MCP_SEND, mcp_send, EVENT, O2E, AUTHED)                        \
	X(0x23, MCP_ATTACH, mcp_attach, REQUEST, O2E, AUTHED)                  \
	X(0x24, MCP_CANCEL, mcp_cancel, EVENT, O2E, AUTHED)                    \
	X(0x25, MCP_NOTE, mcp_note, EVENT, O2E, AUTHED)                        \
	X(0x28, MCP_OUTPUT, mcp_output, EVENT, E2O, AUTHED)                    \
	X(0x29, MCP_STDERR, mcp_stderr, EVENT, E2O, AUTHED)                    \
	X(0x2a, MCP_EXITED, mcp_exited, EVENT, E2O, AUTHED)                    \
	X(0x2b, MCP_EXPIRED, mcp_expired, EVENT, E2O, AUTHED)                  \
	/* 0x30-0x3f: HTTP relay (executor-side libcurl) */                    \
	X(0x30, HTTP_REQUEST, http_request, EVENT, O2E, AUTHED)                \
	X(0x31, HTTP_ABORT, http_abort, EVENT, O2E, AUTHED)                    \
	X(0x38, HTTP_RESPONSE, http_response, EVENT, E2O, AUTHED)

/* The handshake (PROTOCOL.md): CHALLENGE (executor), HELLO and AUTH
 * (orchestrator), their replies (executor). Proofs and keys are computed
 * over the exact bytes of these frames (proto/handshake.c).
 *
 * HELLO: versions, the orchestrator's nonce and, when the link is sealed,
 * its ephemeral X25519 public key and the AEAD it picked from the
 * executor's list. Tag 5 (protocol 1's proof) is retired.
 * Protocol 3: session (16 bytes) and resume_ack ask to resume that session
 * (resume_ack: the last frame sequence number the orchestrator received in
 * it); clock_ms is the orchestrator's monotonic clock when it sent HELLO
 * (MCP_SEND deadlines are given in that clock). */
#define PROTO_BODY_hello(F, S)                                                    \
	F(S, 1, u32, version_min, 1)                                              \
	F(S, 2, u32, version_max, 1)                                              \
	F(S, 3, str, orchestrator_id, 0)                                          \
	F(S, 4, bin, nonce, 1)                                                    \
	F(S, 6, str, environment_id, 0)                                           \
	F(S, 7, bin, kx, 0)                                                       \
	F(S, 8, str, aead, 0)                                                     \
	F(S, 9, bin, session, 0)                                                  \
	F(S, 10, u64, resume_ack, 0)                                              \
	F(S, 11, u64, clock_ms, 0)
/* The executor's side: who it is, what it offers, its X25519 public key.
 * live_handles: servers kept detached from an earlier link (at most
 * PROTO_MAX_LIVE, newest first); live_ids: their identities, PROTO_ID_LEN
 * bytes each in the same order (MCP_START's identity), so that a new
 * orchestrator re-attaches a server it needs (MCP_ATTACH) instead of
 * starting another. live_more: the executor keeps more detached servers
 * than live_handles lists (MCP_ATTACH by identity finds them). Tag 4 is
 * retired.
 * Protocol 3: session is the session in effect on this connection (the
 * one asked for when resumed is true, else a fresh one); resume_ack the
 * last frame sequence number the executor received in a resumed session;
 * resume_refused why a session asked for was not resumed. */
#define PROTO_REPLY_hello(F, S)                                                   \
	F(S, 1, u32, version, 1)                                                  \
	F(S, 2, str, executor_id, 1)                                              \
	F(S, 3, str, executor_version, 0)                                         \
	F(S, 5, strlist, capabilities, 0)                                         \
	F(S, 6, u32, max_frame, 0)                                                \
	F(S, 7, u32, max_processes, 0)                                            \
	F(S, 8, u64list, live_handles, 0)                                         \
	F(S, 9, bin, kx, 0)                                                       \
	F(S, 10, bin, session, 1)                                                 \
	F(S, 11, bool, resumed, 0)                                                \
	F(S, 12, u64, resume_ack, 0)                                              \
	F(S, 13, str, resume_refused, 0)                                          \
	F(S, 14, bin, live_ids, 0)                                                \
	F(S, 15, bool, live_more, 0)

/* CHALLENGE: the executor's first frame on every connection. seal says
 * whether the executor seals this link after the proof (absent: no), and
 * aeads which AEADs it can seal with, preferred first. */
#define PROTO_BODY_challenge(F, S)                                                \
	F(S, 1, bin, nonce, 1)                                                    \
	F(S, 2, u32, version_min, 1)                                              \
	F(S, 3, u32, version_max, 1)                                              \
	F(S, 4, bool, auth_required, 1)                                           \
	F(S, 5, bool, seal, 0)                                                    \
	F(S, 6, strlist, aeads, 0)
#define PROTO_REPLY_challenge(F, S)

/* AUTH: the orchestrator's proof of the secret over the transcript so far;
 * the reply carries the executor's proof over the transcript including its
 * HELLO reply. Absent proofs: no secret configured. */
#define PROTO_BODY_auth(F, S) F(S, 1, bin, proof, 0)
#define PROTO_REPLY_auth(F, S) F(S, 1, bin, proof, 0)

/* PING / its reply: keepalive, sent by both sides; the stamp is echoed. */
#define PROTO_BODY_ping(F, S) F(S, 1, u64, stamp, 0)
#define PROTO_REPLY_ping(F, S) F(S, 1, u64, stamp, 0)

/* ROOT_RESOLVE: a selected root -> plugin metadata and normalized servers.
 * servers/invalid are JSON arrays (the normalized config shape is in
 * common/mcpcfg.h); the orchestrator parses them as untrusted input. */
#define PROTO_BODY_root_resolve(F, S)                                             \
	F(S, 1, str, root_id, 1)                                                  \
	F(S, 2, str, path, 1)                                                     \
	F(S, 3, str, environment_id, 1)                                           \
	F(S, 4, bool, environment_is_local, 0)
#define PROTO_REPLY_root_resolve(F, S)                                            \
	F(S, 1, str, path, 1)                                                     \
	F(S, 2, bool, is_plugin, 1)                                               \
	F(S, 3, str, name, 0)                                                     \
	F(S, 4, str, version, 0)                                                  \
	F(S, 5, str, display_name, 0)                                             \
	F(S, 6, str, description, 0)                                              \
	F(S, 7, bin, servers, 1)                                                  \
	F(S, 8, bin, invalid, 0)                                                  \
	F(S, 9, strlist, warnings, 0)

/* MCP_START: spawn one stdio MCP server. env_vars are names the executor
 * resolves from its own environment at spawn time (values never cross the
 * link); env is the literal map applied last. The executor picks the handle.
 * root: the canonical plugin root (ROOT_RESOLVE's reply path) of a plugin
 * server; sandbox: JSON {"sandbox"?, "network"?}, those keys of its
 * normalized config (common/mcpcfg.h).
 * Both optional: without root the executor uses the root it resolved that
 * holds cwd. The reply's sandbox names the box the server runs in
 * ("landlock", or "off: <why>" for an unsandboxed one).
 * identity: PROTO_ID_LEN bytes the orchestrator derives from what the
 * server is (environment, plugin root, name, normalized config); opaque to
 * the executor, which reports it for a detached server (HELLO reply). */
#define PROTO_BODY_mcp_start(F, S)                                                \
	F(S, 1, str, server_name, 1)                                              \
	F(S, 2, str, command, 1)                                                  \
	F(S, 3, strlist, args, 0)                                                 \
	F(S, 4, strmap, env, 0)                                                   \
	F(S, 5, strlist, env_vars, 0)                                             \
	F(S, 6, str, cwd, 0)                                                      \
	F(S, 7, str, root, 0)                                                     \
	F(S, 8, bin, sandbox, 0)                                                  \
	F(S, 9, bin, identity, 0)
#define PROTO_REPLY_mcp_start(F, S)                                               \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, u32, pid, 0)                                                      \
	F(S, 3, str, sandbox, 0)

#define PROTO_BODY_mcp_stop(F, S) F(S, 1, u64, handle, 1)
#define PROTO_REPLY_mcp_stop(F, S)

/* MCP_SEND: one JSON-RPC message (opaque bytes, no newline) to the child.
 * A request with a deadline also carries call_id (the orchestrator's name
 * for it, non-zero) and deadline_ms (the orchestrator's clock, HELLO
 * clock_ms): the executor writes it to the server only before then, and
 * answers MCP_EXPIRED instead. */
#define PROTO_BODY_mcp_send(F, S)                                                 \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, bin, data, 1)                                                     \
	F(S, 3, u64, call_id, 0)                                                  \
	F(S, 4, u64, deadline_ms, 0)
#define PROTO_REPLY_mcp_send(F, S)

/* MCP_ATTACH: take over a process kept alive from a dropped link (a handle
 * of the HELLO reply's live_handles, or, when the reply said live_more, a
 * server identity (PROTO_ID_LEN bytes, MCP_START's) that the list left
 * out; one of the two): the same process and MCP session; the reply's
 * handle is the process's; what it printed meanwhile follows the reply
 * (bounded, dropped_lines says how many lines did not fit). */
#define PROTO_BODY_mcp_attach(F, S)                                               \
	F(S, 1, u64, handle, 0)                                                   \
	F(S, 2, bin, identity, 0)
#define PROTO_REPLY_mcp_attach(F, S)                                              \
	F(S, 1, u32, pid, 0)                                                      \
	F(S, 2, u32, dropped_lines, 0)                                            \
	F(S, 3, bin, note, 0)                                                     \
	F(S, 4, u64, handle, 0)

/* MCP_NOTE: an opaque note (at most PROTO_MAX_NOTE bytes; the last one
 * wins) the executor keeps with the process and gives back in the
 * MCP_ATTACH reply, so that an orchestrator re-attaching it knows what the
 * MCP session's initialize said (the orchestrator writes and reads it; the
 * executor never looks inside). */
#define PROTO_BODY_mcp_note(F, S)                                                 \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, bin, note, 1)
#define PROTO_REPLY_mcp_note(F, S)

/* MCP_CANCEL: the orchestrator gave up on call_id (its client cancelled, or
 * it timed out). If the request still waits in the executor, not yet begun
 * on the server's stdin, it is taken back and answered with MCP_EXPIRED;
 * once its first byte was written it is the server's, and nothing is said
 * (the notifications/cancelled the orchestrator sends next tells the
 * server). */
#define PROTO_BODY_mcp_cancel(F, S)                                               \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, u64, call_id, 1)                                                  \
	F(S, 3, str, reason, 0)
#define PROTO_REPLY_mcp_cancel(F, S)

/* MCP_EXPIRED: call_id was never written to the server and never will be
 * (its deadline passed first, or it was cancelled); reason says which. */
#define PROTO_BODY_mcp_expired(F, S)                                              \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, u64, call_id, 1)                                                  \
	F(S, 3, str, reason, 1)
#define PROTO_REPLY_mcp_expired(F, S)

/* MCP_OUTPUT: one complete stdout line of the child, relayed as raw bytes. */
#define PROTO_BODY_mcp_output(F, S)                                               \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, bin, data, 1)
#define PROTO_REPLY_mcp_output(F, S)

/* MCP_STDERR: one stderr line; `dropped` counts lines suppressed by the
 * rate limit since the previous event. */
#define PROTO_BODY_mcp_stderr(F, S)                                               \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, bin, line, 1)                                                     \
	F(S, 3, u32, dropped, 0)
#define PROTO_REPLY_mcp_stderr(F, S)

/* MCP_EXITED: the process is gone and reaped (or never started / lost).
 * exit_code is -1 when it was killed by a signal. */
#define PROTO_BODY_mcp_exited(F, S)                                               \
	F(S, 1, u64, handle, 1)                                                   \
	F(S, 2, i64, exit_code, 0)                                                \
	F(S, 3, u32, signal, 0)                                                   \
	F(S, 4, str, reason, 1)
#define PROTO_REPLY_mcp_exited(F, S)

/* HTTP_REQUEST: run one HTTP exchange with the executor's libcurl, for an
 * HTTP MCP server bound to this executor or an OAuth exchange on its
 * behalf: the executor's network, proxies and name resolution apply. The
 * orchestrator picks req_id (unique among its live requests on this link).
 * The answer streams back as HTTP_RESPONSE events (head, data, end). Headers are
 * "Name: value" strings; they may hold credentials (never logged).
 * env_headers are "[!]VAR=Name: prefix": the executor adds the header with
 * the value of its own environment variable VAR (http.h), so a plugin's
 * bearer_token_env_var is read where the plugin lives. */
#define PROTO_BODY_http_request(F, S)                                             \
	F(S, 1, u64, req_id, 1)                                                   \
	F(S, 2, str, method, 1)                                                   \
	F(S, 3, str, url, 1)                                                      \
	F(S, 4, strlist, headers, 0)                                              \
	F(S, 5, bin, body, 0)                                                     \
	F(S, 6, u64, timeout_ms, 0)                                               \
	F(S, 7, u64, idle_timeout_ms, 0)                                          \
	F(S, 8, u64, max_body, 0)                                                 \
	F(S, 9, strlist, env_headers, 0)
#define PROTO_REPLY_http_request(F, S)

/* HTTP_ABORT: the orchestrator no longer wants req_id (nothing more follows). */
#define PROTO_BODY_http_abort(F, S) F(S, 1, u64, req_id, 1)
#define PROTO_REPLY_http_abort(F, S)

/* HTTP_RESPONSE: what the exchange brought since the previous one, in order:
 * the head (status present: the final status and every response header),
 * body bytes (data), and the end (end = true; err 0 for a complete exchange
 * whatever its status, else a negative errno; reason says why). The
 * executor coalesces what arrives within one turn of its loop, so a small
 * answer is one frame; a stream is relayed as it comes. Exactly one frame
 * per request carries end, also for a request refused at once. */
#define PROTO_BODY_http_response(F, S)                                            \
	F(S, 1, u64, req_id, 1)                                                   \
	F(S, 2, u32, status, 0)                                                   \
	F(S, 3, strlist, headers, 0)                                              \
	F(S, 4, bin, data, 0)                                                     \
	F(S, 5, bool, end, 0)                                                     \
	F(S, 6, i64, err, 0)                                                      \
	F(S, 7, str, reason, 0)
#define PROTO_REPLY_http_response(F, S)

#endif
