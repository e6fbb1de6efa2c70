/* env_priv.h - the environment module's own header: struct env and the
 * functions its files share (env.c: state and requests; env_spawn.c: the
 * spawned executor process). Nothing outside orchestrator/env*.c includes
 * it; everyone else uses env.h. */
#ifndef TANDEM_ENV_PRIV_H
#define TANDEM_ENV_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "env.h"
#include "link.h"
#include <nng/nng.h>

struct loop_io;
struct loop_timer;
struct secret;
struct http;

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
	struct env *next_live; /* registry of live envs, for nng callbacks */
	uint64_t serial;
	struct loop *loop;
	const struct env_ops *ops;
	void *arg;
	/* spec */
	char *id, *url, *program, *cwd, *secret_file, *tls_ca_file;
	struct secret *token; /* given inline (environment/add) */
	char **args, **extra_env;
	bool spawned, is_local;
	uint64_t connect_timeout_ms, init_timeout_ms;
	/* link */
	struct link link;
	nng_dialer dialer;
	bool link_open;
	uint32_t pipe;
	struct secret *secret;
	uint8_t nonce_e[PROTO_NONCE_LEN], nonce_o[PROTO_NONCE_LEN];
	bool challenged;
	struct loop_timer *init_timer;
	struct loop_timer *connect_timer;
	/* state */
	enum env_state state;
	char *error;
	char *executor_id;
	struct pending *pending;
	uint32_t next_id;
	/* spawned executor */
	pid_t pid;
	int pidfd;
	struct loop_io *pid_io;
	struct loop_timer *pid_poll; /* when pidfd_open is not available */
	unsigned restarts;
	uint64_t backoff_ms;
	struct loop_timer *restart_timer;
	/* HTTP requests run by the executor (HTTP_REQUEST), as a struct http */
	struct http *http;
	bool http_relay; /* the executor offers it */
};

/* env.c */
void env_set_error(struct env *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The connection is gone: pending requests fail with `why`, state DISCONNECTED. */
void env_link_lost(struct env *e, const char *why);

/* env_spawn.c: a spawned executor (program entries and the implicit local
 * one). env_spawn_start picks the private link URL and starts the process
 * with a fresh one-time secret; when the process dies the link is lost and
 * it is restarted with backoff. env_spawn_stop stops watching, then
 * SIGTERM, SIGKILL after a grace period, and reaps it. */
int env_spawn_start(struct env *e, char *err, size_t errlen);
void env_spawn_stop(struct env *e);

#endif
