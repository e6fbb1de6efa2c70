/* env_priv.h - the environment module's own header: struct env and what
 * its files share. Nothing outside orchestrator/env*.c includes it;
 * everyone else uses env.h.
 *
 *   env.c        state, requests and replies, the public API, lifecycle
 *   env_link.c   the link to the executor: dial, the handshake (the one
 *                place it runs on this side), frame acceptance and the
 *                orch_handle_<msg> table, keepalives, redials
 *   env_relay.c  HTTP requests relayed through the executor
 *   env_spawn.c  the spawned executor process and its private socket
 */
#ifndef TANDEM_ENV_PRIV_H
#define TANDEM_ENV_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "env.h"
#include "handshake.h"

struct loop_io;
struct loop_timer;
struct secret;
struct http;
struct http_relay_ops;
struct link;
struct link_dialer;

#define ENV_DEFAULT_KEEPALIVE_MS 3000u
#define ENV_DEFAULT_DEAD_MS 9000u

struct pending {
	struct pending *next;
	struct env *e;
	uint32_t id;
	uint16_t type;
	env_reply_cb cb;
	void *arg;
	struct loop_timer *timer;
};

struct env {
	struct loop *loop;
	const struct env_ops *ops;
	void *arg;
	/* spec */
	char *id, *url, *program, *cwd, *secret_file, *tls_ca_file;
	struct secret *token; /* given inline (environment/add) */
	char **args, **extra_env;
	bool spawned, is_local, dial_in;
	uint64_t connect_timeout_ms, init_timeout_ms;
	uint64_t keepalive_ms, dead_ms;
	/* link (env_link.c) */
	struct secret *secret;
	struct link_dialer *dialer;
	bool dialing;
	struct link *lk;          /* the connection, in the handshake or ready */
	struct hs *hs;            /* its handshake, until done */
	bool sealed;
	struct loop_timer *redial_timer;
	struct loop_timer *init_timer;    /* the handshake's deadline */
	struct loop_timer *connect_timer; /* reported when not ready in time */
	struct loop_timer *keepalive_timer;
	uint64_t redial_ms;       /* the next redial's base delay */
	uint64_t redial_delay_ms; /* the last delay chosen (status) */
	uint64_t dial_attempts;
	unsigned reconnects;      /* READY again after a lost link */
	bool was_ready;
	char *last_error;         /* errors since it was first READY, kept once ready again */
	/* detached servers the executor reported in its HELLO reply, until
	 * claimed (env_claim_detached) or the next handshake */
	uint64_t live_handles[PROTO_MAX_LIVE];
	uint8_t live_ids[PROTO_MAX_LIVE][PROTO_ID_LEN];
	bool live_more; /* the executor keeps more detached servers than listed */
	uint32_t n_live;
	enum hs_fail last_fail;
	char *lost;               /* why the last ready link was lost, until ready again */
	uint32_t next_ping_id;
	uint64_t rtt_us;
	/* the session (protocol 3, proto/lsess.h): it outlives a lost
	 * connection for grace_ms, and a new connection resumes it */
	struct lsess *ls;
	uint32_t ls_gen;          /* sessions so far: tickets name theirs */
	uint64_t ls_prev_acked;   /* the previous session's last ack from the executor */
	uint64_t grace_ms;
	struct loop_timer *grace_timer; /* armed while the session has no connection */
	uint64_t suspended_ms;    /* when it lost its connection */
	unsigned resumes;
	/* state */
	enum env_state state;
	char *error;
	char *executor_id;
	struct pending *pending;
	uint32_t next_id;
	int32_t reply_status;     /* an error reply's status, during its callback */
	/* spawned executor (env_spawn.c; started, watched and stopped by the
	 * spawner, spawner.h) */
	pid_t pid;
	unsigned restarts;
	uint64_t backoff_ms;
	struct loop_timer *restart_timer;
	char *sock_dir;           /* the private directory of its ipc socket */
	/* HTTP requests run by the executor (HTTP_REQUEST), as a struct http */
	struct http *http;
	bool http_relay; /* the executor offers it */
};

/* env.c */
void env_set_error(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void env_set_state(struct env *e, enum env_state st);
/* The connection is gone: pending requests and relayed HTTP fail with
 * `why`, state DISCONNECTED (also when it was not ready yet). */
void env_link_lost(struct env *e, const char *why);
/* The session ended (it cannot resume: `why`): what env_link_lost does,
 * and the owner hears of it even when the state stays DISCONNECTED. */
void env_session_lost(struct env *e, const char *why);
/* MCP_EXPIRED from the executor: call_id never reached the server. */
void env_mcp_expired(struct env *e, uint64_t handle, uint64_t call_id, const char *reason);
/* A reply from the executor (policy already checked): its pending request. */
void env_reply(struct env *e, const struct proto_msg *m);

/* env_link.c */
int env_link_start(struct env *e, char *err, size_t errlen);
void env_link_stop(struct env *e);
/* Sends on a ready link; -ENOTCONN otherwise. With ticket: the frame's
 * ticket (env_link_reached). */
int env_link_send(struct env *e, uint16_t type, uint8_t kind, uint32_t id, const void *body);
int env_link_send_ticket(struct env *e, uint16_t type, uint8_t kind, uint32_t id,
			 const void *body, uint64_t *ticket);
/* Did the executor receive the frame of this ticket? false only when it
 * certainly did not (and never will: its session ended, or it is still
 * unacknowledged). */
bool env_link_maybe_reached(const struct env *e, uint64_t ticket);
bool env_link_sealed(const struct env *e);
/* The spawned executor was restarted: drop the old connection attempt and
 * dial again soon. */
void env_link_redial(struct env *e, const char *why);

/* env_relay.c */
extern const struct http_relay_ops env_relay_ops;
void env_relay_event(struct env *e, const struct proto_msg *m);

/* env_spawn.c: a spawned executor (program entries and the implicit local
 * one). env_spawn_start makes a private directory for the link's ipc
 * socket and starts the process through the spawner with a fresh one-time
 * secret and a cleared environment; when the process dies the link is lost
 * and it is restarted with backoff. env_spawn_stop stops watching and has
 * the spawner stop it (SIGTERM, SIGKILL after a grace period, reaped), and
 * removes the directory. */
int env_spawn_start(struct env *e, char *err, size_t errlen);
void env_spawn_stop(struct env *e);

#endif
