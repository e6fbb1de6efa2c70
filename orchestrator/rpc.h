/* rpc.h - the client API: one rpc_<method> per method of the Codex
 * app-server v2 dialect tandem serves, and the dispatch table (rpc.c) that
 * is its whole policy: what exists and what needs `initialize` first.
 *
 * Names: rpc_ + the method with '/' and each capital turned into '_'
 * (mcpServer/tool/call -> rpc_mcp_server_tool_call), in rpc_<family>.c by
 * the method's first word (rpc_thread.c, rpc_turn.c, rpc_mcp.c,
 * rpc_account.c, rpc_env.c, rpc_config.c, rpc_model.c with
 * collaborationMode/list, rpc_catalog.c for hooks/skills/plugin;
 * config/mcpServer/reload lives with the MCP methods, debug/counters in
 * rpc_debug.c, the handshake here in rpc.c).
 *
 * A handler gets its request (session.h) and params (an object, borrowed:
 * {} when the client sent none) and ends the request exactly once:
 * req_reply / req_error now, or later from a callback (registering a
 * req_on_cancel hook for the client leaving meanwhile, or req_keep when
 * the work ends it either way). One that returns having done none of
 * these gets its request answered -32603 by the dispatcher. Params are read
 * with param.h. Handlers turn params into typed calls on the domain and
 * domain results into client API objects; policy lives in the domain.
 */
#ifndef TANDEM_RPC_H
#define TANDEM_RPC_H

#include <jansson.h>
#include <stdbool.h>

struct req;
struct session;

/* One request (id != NULL) or notification from a client session. */
void rpc_dispatch(struct session *s, const char *method, json_t *id, json_t *params);

/* rpc.c */
void rpc_initialize(struct req *r, json_t *params);
void rpc_initialized(struct req *r, json_t *params);
/* rpc_thread.c: starting, resuming, forking and changing threads */
void rpc_thread_start(struct req *r, json_t *params);
void rpc_thread_resume(struct req *r, json_t *params);
void rpc_thread_fork(struct req *r, json_t *params);
void rpc_thread_archive(struct req *r, json_t *params);
void rpc_thread_unarchive(struct req *r, json_t *params);
void rpc_thread_delete(struct req *r, json_t *params);
void rpc_thread_name_set(struct req *r, json_t *params);
void rpc_thread_read_state_update(struct req *r, json_t *params);
void rpc_thread_unsubscribe(struct req *r, json_t *params);
/* rpc_thread_read.c: reading them */
void rpc_thread_list(struct req *r, json_t *params);
void rpc_thread_loaded_list(struct req *r, json_t *params);
void rpc_thread_read(struct req *r, json_t *params);
void rpc_thread_turns_list(struct req *r, json_t *params);
void rpc_thread_items_list(struct req *r, json_t *params);
/* rpc_turn.c */
void rpc_turn_start(struct req *r, json_t *params);
void rpc_turn_interrupt(struct req *r, json_t *params);
/* rpc_mcp.c */
void rpc_mcp_server_status_list(struct req *r, json_t *params);
void rpc_mcp_server_tool_call(struct req *r, json_t *params);
void rpc_mcp_server_resource_read(struct req *r, json_t *params);
void rpc_config_mcp_server_reload(struct req *r, json_t *params);
/* rpc_mcp_oauth.c */
void rpc_mcp_server_oauth_login(struct req *r, json_t *params);
/* rpc_env.c */
void rpc_environment_status(struct req *r, json_t *params);
void rpc_environment_add(struct req *r, json_t *params);
/* rpc_account.c */
void rpc_account_read(struct req *r, json_t *params);
void rpc_account_login_start(struct req *r, json_t *params);
void rpc_account_logout(struct req *r, json_t *params);
void rpc_account_bedrock_check_gov_cloud_requirements(struct req *r, json_t *params);
/* rpc_config.c */
void rpc_config_read(struct req *r, json_t *params);
void rpc_config_requirements_read(struct req *r, json_t *params);
/* rpc_model.c */
void rpc_model_list(struct req *r, json_t *params);
void rpc_collaboration_mode_list(struct req *r, json_t *params);
/* rpc_catalog.c: hooks, skills, installed plugins (tandem has none) */
void rpc_hooks_list(struct req *r, json_t *params);
void rpc_skills_list(struct req *r, json_t *params);
void rpc_plugin_installed(struct req *r, json_t *params);
/* rpc_debug.c */
void rpc_debug_counters(struct req *r, json_t *params);
#ifdef TANDEM_TEST_HOOKS
/* {path, write?}: opens path (read, or write without creating) from the
 * loop thread and answers {ok} or {errno, error}: tests prove the sandbox. */
void rpc_debug_try_open(struct req *r, json_t *params);
/* Forgets its request (proves the dispatcher answers it, rpc.c). */
void rpc_debug_forget(struct req *r, json_t *params);
#endif

/* ---- shared by rpc_thread.c and rpc_thread_read.c ---------------------- */

struct thread;
struct store_loaded;
struct store_thread;
struct turn;

/* A thread as the client API shows it: loaded (from memory) or stored. */
struct rpc_thread_view {
	const struct store_thread *rec;
	json_t *turns;        /* finished turns (thread.h), borrowed */
	size_t n_turns;       /* how many of them (the store's copy of a loaded
				 thread also has its running turn's row) */
	struct turn *running; /* loaded with a turn running, else NULL */
	bool loaded;
	bool ephemeral;
};
void rpc_thread_view_loaded(struct thread *t, struct rpc_thread_view *v);
/* The store's copy (all items) of a thread, loaded or not: a loaded one's
 * record, status and running turn come from memory. */
void rpc_thread_view_stored(const struct store_loaded *l, struct rpc_thread_view *v);
/* The Thread object, with its turns or with none (new reference). */
json_t *rpc_thread_object(const struct rpc_thread_view *v, bool with_turns);
/* Its turns, oldest first, the running one last (new reference). */
json_t *rpc_thread_turn_list(const struct rpc_thread_view *v);
/* One page of thread/turns/list from a view: params limit, cursor,
 * sortDirection, itemsView; answers r itself on a bad param (NULL). */
json_t *rpc_thread_turns_page(struct req *r, const char *id, const struct rpc_thread_view *v,
			      json_t *params);
/* The threadId param: a UUID, required. */
int rpc_thread_id_param(struct req *r, json_t *params, const char **out);

#endif
