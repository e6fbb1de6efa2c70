/* envs.h - the environment registry: every executor link the orchestrator
 * has, by id, and where an HTTP MCP server's requests go out.
 *
 * Environments come from environments.toml (plus the implicit "local" one)
 * at start-up and from environment/add later; they live until envs_stop().
 * Each is a struct env (env.h) created here; its events reach the domain
 * through the struct envs_ops given to envs_init (main.c wires them to the
 * server pool and the threads): this layer never calls up.
 *
 * State: one registry per process, a file static, loop thread only.
 * Returned struct env pointers are borrowed and stay valid until
 * envs_stop().
 */
#ifndef TANDEM_ENVS_H
#define TANDEM_ENVS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "env.h"

struct envfile;
struct http;
struct loop;

#define ENVS_LOCAL_ID "local"

/* The domain's view of environment events. Every member is optional. */
struct envs_ops {
	void (*state_cb)(struct env *e, void *arg);
	void (*output_cb)(struct env *e, uint64_t handle, const char *data, size_t len,
			  void *arg);
	void (*exited_cb)(struct env *e, uint64_t handle, const char *reason, void *arg);
	/* e leaves the registry (environment/remove) and is freed when this
	 * returns: drop every pointer to it. Its state went DISCONNECTED and
	 * its requests failed before. */
	void (*removed_cb)(struct env *e, const char *why, void *arg);
};

/* The cap on environments, environments.toml's (local included) and those
 * added at run time together (README "Limits"). */
#define ENVS_MAX_DEFAULT 1000u
#define ENVS_MAX_LIMIT 100000u

/* home: the files environments read (executor-tokens/<id>,
 * executor-tls/<id>.pem). http: the orchestrator's own requests (hosted
 * config.toml HTTP servers). All borrowed; they must outlive envs_stop(). */
void envs_init(struct loop *l, const char *home, struct http *http, const struct envs_ops *ops,
	       void *arg);
/* --max-environments (0: the default); before envs_start. */
void envs_set_max(size_t max);
size_t envs_max(void);
size_t envs_count(void);
/* --executor-listen: envs_start listens there for executors that dial out
 * (env_listen.h; <home>/executor-listen.pem for tls+tcp:// and wss://).
 * Borrowed. */
void envs_set_listen(const char *url);
/* Creates and starts the environments of ef (and "local" when it is
 * included). One that fails to start is logged and kept (DISCONNECTED). */
void envs_start(const struct envfile *ef);
/* Frees every environment (their executors stop). */
void envs_stop(void);

/* NULL when there is no environment with this id. */
struct env *envs_find(const char *id);
/* environment/add: dials url (token: the link token, may be NULL). -EINVAL
 * (bad id or URL, or env_start failed: nothing is kept), -EEXIST, -ENOSPC
 * (the cap), with a reason in err. */
int envs_add(const char *id, const char *url, const char *token, uint64_t connect_timeout_ms,
	     char *err, size_t errlen);
/* environment/remove: only environments added at run time (environment/add,
 * undeclared dial-ins); -ENOENT, -EPERM with a reason. */
int envs_remove(const char *id, char *err, size_t errlen);
/* Every environment, in the order they were added. */
void envs_foreach(void (*fn)(struct env *e, bool runtime, void *arg), void *arg);

/* Where an HTTP server's requests go out (cfg: its normalized config,
 * plugin_id: the root that declared it, NULL for config.toml): the
 * orchestrator's own struct http for a config.toml server of the "local"
 * environment, else the environment's executor (env_http; *env_out is then
 * set). NULL with a reason when that environment does not exist or is not
 * ready. */
struct http *envs_http_route(json_t *cfg, const char *plugin_id, struct env **env_out, char *why,
			     size_t whylen);
/* HTTP requests still going out, the orchestrator's own and relayed. */
size_t envs_http_pending(void);
/* How many environments are in state st (the operations endpoint's gauge,
 * main's health.c). */
size_t envs_count_state(enum env_state st);

#endif
