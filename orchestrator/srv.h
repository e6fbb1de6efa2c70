/* srv.h - live MCP server instances.
 *
 * An instance is identified by its name, owning plugin (root id) and its
 * normalized config (environment included): threads whose effective views
 * hold the same server share one live process. Instances are reference
 * counted by the runtimes that hold them and stopped when the last lets go.
 *
 * A stdio server runs on the executor of its environment_id: MCP_START there,
 * then an MCP session (mcp.c) over MCP_SEND / MCP_OUTPUT. A server that fails
 * (start error, crash, executor gone) is FAILED with a reason; srv_retry()
 * restarts it with backoff on next use. An HTTP server runs from here over
 * mcphttp.c, its requests routed by envs_http_route, its credentials asked
 * for at each request (oauth_store.h, account.h).
 *
 * State: the pool is a file static, loop thread only. Its users learn of
 * changes through srv_watch / srv_when_settled; the environments' events
 * and token changes come in through the srv_env_changed, srv_on_output,
 * srv_on_exited and srv_auth_changed calls main.c wires them to.
 */
#ifndef TANDEM_SRV_H
#define TANDEM_SRV_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct srv;
struct env;
struct loop;
struct mcp_session;

#define SRV_START_TIMEOUT_MS 30000u /* one MCP_START round trip */
#define SRV_SANDBOX_MAX 256u        /* bytes kept of an executor's box description */

enum srv_state { SRV_STARTING = 0, SRV_READY, SRV_FAILED };

typedef void (*srv_cb)(struct srv *s, void *arg);

/* The loop the pool's sessions and timers run on (before any acquire). */
void srv_init(struct loop *l);
/* MCP server processes started so far (debug/counters). */
uint64_t srv_starts(void);
/* Servers kept by an executor from an earlier link and taken over. */
uint64_t srv_reattaches(void);

/* Finds or starts the instance; cfg is borrowed. */
struct srv *srv_acquire(const char *name, json_t *cfg, const char *plugin_id);
void srv_ref(struct srv *s);
void srv_release(struct srv *s);

const char *srv_name(const struct srv *s);
const char *srv_plugin_id(const struct srv *s);
json_t *srv_cfg(const struct srv *s);
enum srv_state srv_state(const struct srv *s);
const char *srv_error(const struct srv *s);
struct mcp_session *srv_mcp(const struct srv *s); /* NULL unless READY */

/* cb(s, arg) once the instance is not STARTING (at once if it is not). */
void srv_when_settled(struct srv *s, srv_cb cb, void *arg);
void srv_forget_waiter(struct srv *s, srv_cb cb, void *arg);
/* cb on every state change (thread runtimes notify their clients). */
void srv_watch(struct srv *s, srv_cb cb, void *arg);
void srv_unwatch(struct srv *s, srv_cb cb, void *arg);

/* Restarts a FAILED instance if its backoff allows; true if it is starting. */
bool srv_retry(struct srv *s);

/* Tools after enabled_tools / disabled_tools (new reference). */
json_t *srv_tools(const struct srv *s);
bool srv_tool_allowed(const struct srv *s, const char *tool);

/* Environment events (envs_ops, wired in main.c). */
/* e is about to be freed (environment/remove): instances on it fail with
 * why and forget it (a later use finds the environment gone). */
void srv_env_removed(struct env *e, const char *why);
void srv_env_changed(struct env *e);
void srv_on_output(struct env *e, uint64_t handle, const char *data, size_t len);
void srv_on_exited(struct env *e, uint64_t handle, const char *reason);

/* McpAuthStatus: "unsupported" (stdio, or HTTP without credentials that
 * the server accepted), "bearerToken" (bearer_token_env_var, the hosted
 * apps server), "oAuth" (tokens from a login), "notLoggedIn" (the server
 * answered 401 and there is no login). */
const char *srv_auth_status(const struct srv *s);
/* A login for server `name` completed: restart its HTTP instances now. */
void srv_auth_changed(const char *name);

/* A stdio server's box as its executor reported it when it last started
 * (MCP_START's reply: "landlock ABI 7, private directory, ..." or "off:
 * why"), NULL for an HTTP server or before the first start (borrowed).
 * A plugin server's config carries its root as "plugin_root" (thread.c),
 * which MCP_START sends with the config's sandbox and network keys. */
const char *srv_sandbox(const struct srv *s);

/* The WWW-Authenticate of the instance's last 401, NULL if none (borrowed). */
const char *srv_www_authenticate(const struct srv *s);

void srv_stop_all(void);

#endif
