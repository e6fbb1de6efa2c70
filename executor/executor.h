/* executor.h - tandem-executor's internal state, shared by its modules.
 *
 *   main.c      options, secret, signals, the loop
 *   listener.c  the link listener: connections, the handshake (one place),
 *               the pending cap, penalties, the session, keepalives, busy
 *   penalty.c   per-source penalties for failed proofs (a bounded table)
 *   handlers.c  one exec_handle_<msg> per message; the dispatch table
 *   procs.c     the live stdio MCP processes: handles, detach/attach, cap
 *   plugin.c    ROOT_RESOLVE: a root directory -> plugin + normalized servers
 *   child.c     one process: spawn, pipes, framing, stop, reap
 *   contain.c   a server's descendants live and die with it; leftovers reaped
 *   box.c       the sandbox each server runs in
 *   ptree.c     processes by ancestry, from /proc
 *
 * Everything here runs on the loop thread; nng threads only loop_post().
 * proto/link.h carries the bytes; nothing here touches nng directly.
 */
#ifndef TANDEM_EXECUTOR_H
#define TANDEM_EXECUTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <nng/nng.h>

#include "link.h"
#include "proto.h"

struct loop;
struct loop_timer;
struct loop_io;
struct secret;
struct proc;
struct http;
struct xreq;
struct boxes;
struct conn;
struct link_listener;
struct link_dialer;
struct penalty;

#define EXEC_DEFAULT_MAX_PROCS 256u
#define EXEC_DEFAULT_GRACE_SEC 30u
#define EXEC_DEFAULT_HANDSHAKE_MS 3000u /* a connection must prove the secret within this */
#define EXEC_DEFAULT_MAX_PENDING 64u    /* connections in the handshake at once */
#define EXEC_DEFAULT_KEEPALIVE_MS 3000u /* PING when nothing came for this long */
#define EXEC_DEFAULT_DEAD_MS 9000u      /* the session is dead after this much silence */
#define EXEC_PROBE_MS 2000u             /* a second orchestrator proved: the first must answer */
#define EXEC_MAX_LINE (16u * 1024u * 1024u) /* one stdout line of a server */
#define EXEC_STDIN_QUEUE (32u * 1024u * 1024u)
#define EXEC_DETACHED_BUFFER (4u * 1024u * 1024u) /* output kept for a re-attach */
#define EXEC_STDERR_RATE 50u  /* stderr events per second per process ... */
#define EXEC_STDERR_BURST 200u /* ... after a burst of this many */
#define EXEC_MAX_PLUGIN_FILE (1024u * 1024u)
#define EXEC_MAX_HTTP 256u                          /* relayed HTTP requests at once */
#define EXEC_HTTP_MAX_TIMEOUT_MS (24ull * 3600 * 1000) /* cap on one relayed request */
#define EXEC_HTTP_MAX_BODY (256u * 1024u * 1024u)     /* cap on one relayed response */

struct exec_opts {
	const char *listen_url;
	const char *connect_url;   /* --connect: dial the orchestrator (dial.c) */
	const char *environment;   /* --environment: the id we dial in as */
	const char *connect_ca;    /* --connect-ca: a tls+tcp:// orchestrator's certificate */
	const char *id;
	const char **root_allow;
	size_t n_root_allow;
	unsigned max_procs;
	unsigned grace_sec;
	bool insecure;
	const char *tls_cert_key_file; /* PEM with certificate and key, for tls+tcp:// */
	bool no_pidns;	/* --no-pidns: contain servers by tracking (contain.h) */
	const char **sandbox_allow; /* --sandbox-allow: canonical dirs (box.h) */
	size_t n_sandbox_allow;
	const char *sandbox_dir;    /* --sandbox-dir: where private dirs go */
	bool require_sandbox;       /* --require-sandbox */
	unsigned handshake_ms;
	unsigned max_pending;
	unsigned keepalive_ms, dead_ms;
};

struct executor {
	struct loop *loop;
	struct exec_opts opts;
	struct secret *secret; /* NULL: no auth (loopback or --insecure only) */
	uint64_t started_ms;

	/* link (listener.c) */
	struct link_listener *listener;
	bool local_socket;     /* ipc://, unix://, abstract://: peers must be our uid */
	bool seal;             /* links are sealed after the proof */
	struct conn *conns;    /* every connection: in the handshake, proved, the session */
	unsigned n_pending;    /* of them, still in the handshake */
	struct conn *session;  /* the authenticated orchestrator's connection, or NULL */
	/* The session (protocol 3, proto/lsess.h): it outlives a lost
	 * connection for --grace-sec, and a connection that proves the secret
	 * and names it resumes it. NULL: none. */
	struct lsess *ls;
	struct loop_timer *grace_timer; /* armed while ls has no connection */
	uint64_t suspended_ms;
	int64_t clock_offset_ms; /* our clock minus the orchestrator's (at most) */
	uint64_t resumes;
	struct conn *contender; /* proved while a session exists: the session is probed */
	uint32_t peer;         /* serial of the current session, 0 = none */
	uint32_t next_serial;
	uint32_t next_ping_id;
	struct loop_timer *keepalive_timer;
	struct loop_timer *probe_timer;
	uint32_t probe_ping_id; /* the probe's PING: its reply settles it */
	struct penalty *penalties;
	uint64_t peers_dropped;

	/* dialling out (dial.c) */
	struct link_dialer *dialer;
	struct loop_timer *dial_timer;
	uint64_t dial_backoff_ms;
	uint64_t dial_failing_since; /* loop ms of the first failure since the last session */
	bool dial_busy;        /* an attempt or a dialled connection is live */
	uint64_t dial_attempts;

	/* processes */
	bool pidns;            /* servers are PID namespace inits (contain.h) */
	struct boxes *boxes;   /* sandbox state shared by all servers (box.c) */
	struct proc *procs;    /* list of live processes */
	unsigned n_procs;
	unsigned n_detached;
	uint64_t next_handle;

	/* relayed HTTP requests (httprelay.c) */
	struct http *http; /* created on first use */
	struct xreq *http_reqs;
	unsigned n_http;
	struct xreq *http_flush;            /* requests with a frame to send */
	struct loop_timer *http_flush_timer; /* sends them when the loop comes round */
};

/* listener.c */
int listener_start(struct executor *ex, char *err, size_t errlen);
void listener_stop(struct executor *ex);
/* Sends a request/event of `type` (kind from the table) or, with kind =
 * PROTO_REPLY, a reply, to the authenticated session only; 0 or -errno
 * (-ENOTCONN without a session). A full queue drops the session. */
int listener_send(struct executor *ex, uint16_t type, uint8_t kind, uint32_t id, const void *body);
int listener_send_error(struct executor *ex, uint16_t type, uint32_t id, int32_t status,
			  const char *fmt, ...) __attribute__((format(printf, 5, 6)));
/* Closes the session (protocol violation); what is queued still goes. */
void listener_drop_peer(struct executor *ex, const char *why);
bool listener_authed(const struct executor *ex);
/* The orchestrator's clock now (for MCP_SEND deadlines), never behind it. */
uint64_t listener_peer_clock_ms(const struct executor *ex);

/* A connection this executor dialled (dial.c): runs the same handshake and
 * session as an accepted one, after preface (the dial-in preface) was
 * sent. sp_ipc and seal as the connect URL wants. */
void listener_adopt(struct executor *ex, struct link_conn s, const uint8_t *preface, size_t len,
		    bool sp_ipc, bool seal);

/* dial.c: --connect. dial_start dials at once and again with backoff and
 * jitter whenever the dialled connection ends; dial_conn_closed is how the
 * listener tells it (session says whether it was authenticated). */
int dial_start(struct executor *ex, char *err, size_t errlen);
void dial_conn_closed(struct executor *ex, bool session, const char *why);
void dial_stop(struct executor *ex);

/* handlers.c: called for every decoded frame of the session that the
 * message table allows (direction O2E, state AUTHED). */
void exec_dispatch(struct executor *ex, struct proto_msg *m);
/* What the executor tells an orchestrator that proved the secret (HELLO
 * reply fields; version and kx are the handshake's). *handles and *ids
 * are allocated (caller frees). */
void exec_hello_info(struct executor *ex, struct proto_hello_reply *r, struct proto_str *caps,
		     uint64_t **handles, uint8_t **ids);

/* procs.c */
/* *sandbox: how the server is boxed (box.h), valid while the process lives. */
int procs_start(struct executor *ex, const struct proto_mcp_start_body *b, uint64_t *handle,
		uint32_t *pid, const char **sandbox, int32_t *status, char *err, size_t errlen);
int procs_stop(struct executor *ex, uint64_t handle);
/* MCP_SEND: data + '\n' to the server's stdin. A call (call_id non-zero)
 * whose deadline (loop clock, 0 = none) passes while it waits for the pipe
 * is dropped and reported as MCP_EXPIRED. */
int procs_send(struct executor *ex, uint64_t handle, const void *data, size_t len,
	       uint64_t call_id, uint64_t deadline_ms);
/* MCP_CANCEL: true when call_id still waited, unbegun, and is now dropped
 * (the caller reports it); false when the server has it or it is unknown. */
bool procs_withdraw(struct executor *ex, uint64_t handle, uint64_t call_id);
/* Sends MCP_EXPIRED for call_id (never written to the server), unless the
 * process is detached (the orchestrator that named the call is gone). */
void procs_report_expired(struct executor *ex, uint64_t handle, uint64_t call_id,
			  const char *why);
/* Kills a process on purpose; its MCP_EXITED carries `why`. */
void procs_fail(struct executor *ex, uint64_t handle, const char *why);
/* MCP_ATTACH: *note is the process's MCP_NOTE (valid while it lives). */
int procs_attach(struct executor *ex, uint64_t handle, uint32_t *pid, uint32_t *dropped,
		 struct proto_str *note);
/* MCP_NOTE: keeps note (copied) with the process; -EMSGSIZE past
 * PROTO_MAX_NOTE, -ENOENT for an unknown or detached process. */
int procs_note(struct executor *ex, uint64_t handle, const void *note, size_t len);
/* Peer lost: every attached process becomes detached, each with its own
 * grace deadline from now. */
void procs_detach_all(struct executor *ex);
/* Keeps a line for a detached process as if it had printed it now (the
 * unacknowledged output of a session that ended). */
void procs_hold(struct executor *ex, uint64_t handle, const char *line, size_t len);
/* After an attach reply: sends what the process printed while detached. */
void procs_flush_held(struct executor *ex, uint64_t handle);
/* The detached processes (at most PROTO_MAX_LIVE, newest first): their
 * handles and identities (PROTO_ID_LEN bytes each); the caller frees both.
 * *more: some were left out (MCP_ATTACH by identity finds them). */
size_t procs_detached(struct executor *ex, uint64_t **handles, uint8_t **ids, bool *more);
/* The newest detached process (not stopping) with this identity: 0 and its
 * handle, or -ENOENT. */
int procs_find_detached(struct executor *ex, const uint8_t id[PROTO_ID_LEN], uint64_t *handle);
void procs_kill_all(struct executor *ex);

/* httprelay.c */
void httprelay_request(struct executor *ex, const struct proto_http_request_body *b);
void httprelay_abort(struct executor *ex, uint64_t req_id);
/* Peer lost: its requests are cancelled (nothing more is sent). */
void httprelay_abort_all(struct executor *ex);
void httprelay_free(struct executor *ex);

#endif
