/* rpc.c - see rpc.h: the dispatch table, and the handshake. */
#include "rpc.h"

#include <string.h>

#include "client.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "param.h"
#include "session.h"
#include "util.h"
#include "version.h"

/* ---- initialize -------------------------------------------------------- */

void rpc_initialize(struct req *r, json_t *params)
{
	struct session *s = req_session(r);
	json_t *info;
	const char *name, *version;

	if (session_initialized(s)) {
		req_error(r, CLIENT_INVALID_REQUEST, "Already initialized");
		return;
	}
	if (param_object(r, params, "clientInfo", &info) < 0)
		return;
	if (!info || !json_is_string(json_object_get(info, "name"))) {
		req_error(r, CLIENT_INVALID_PARAMS, "clientInfo.name: expected a string");
		return;
	}
	name = json_string_value(json_object_get(info, "name"));
	version = json_string_value(json_object_get(info, "version"));
	if (!version && json_object_get(info, "version") &&
	    !json_is_null(json_object_get(info, "version"))) { /* not taken as absent */
		req_error(r, CLIENT_INVALID_PARAMS, "clientInfo.version: expected a string");
		return;
	}
	session_set_initialized(s);
	log_info("client %llu: %s %s", (unsigned long long)session_id(s), name,
		 version ? version : "");
	req_reply(r, json_pack("{s:s, s:s, s:s, s:s}", "userAgent", "tandem/" TANDEM_VERSION,
			       "codexHome", config_home(), "platformFamily", "unix", "platformOs",
			       "linux"));
}

/* A notification: nothing to answer. */
void rpc_initialized(struct req *r, json_t *params) { req_drop(r); }

/* ---- dispatch ---------------------------------------------------------- */

typedef void (*rpc_fn)(struct req *r, json_t *params);

static const struct {
	const char *method;
	rpc_fn fn;
	bool needs_init;
} methods[] = {
	{ "initialize", rpc_initialize, false },
	{ "initialized", rpc_initialized, false },
	{ "thread/start", rpc_thread_start, true },
	{ "thread/resume", rpc_thread_resume, true },
	{ "thread/fork", rpc_thread_fork, true },
	{ "thread/archive", rpc_thread_archive, true },
	{ "thread/unarchive", rpc_thread_unarchive, true },
	{ "thread/delete", rpc_thread_delete, true },
	{ "thread/name/set", rpc_thread_name_set, true },
	{ "thread/readState/update", rpc_thread_read_state_update, true },
	{ "thread/unsubscribe", rpc_thread_unsubscribe, true },
	{ "thread/list", rpc_thread_list, true },
	{ "thread/loaded/list", rpc_thread_loaded_list, true },
	{ "thread/read", rpc_thread_read, true },
	{ "thread/turns/list", rpc_thread_turns_list, true },
	{ "thread/items/list", rpc_thread_items_list, true },
	{ "turn/start", rpc_turn_start, true },
	{ "turn/interrupt", rpc_turn_interrupt, true },
	{ "mcpServerStatus/list", rpc_mcp_server_status_list, true },
	{ "mcpServer/tool/call", rpc_mcp_server_tool_call, true },
	{ "mcpServer/resource/read", rpc_mcp_server_resource_read, true },
	{ "mcpServer/oauth/login", rpc_mcp_server_oauth_login, true },
	{ "config/mcpServer/reload", rpc_config_mcp_server_reload, true },
	{ "environment/status", rpc_environment_status, true },
	{ "environment/add", rpc_environment_add, true },
	{ "account/read", rpc_account_read, true },
	{ "account/login/start", rpc_account_login_start, true },
	{ "account/logout", rpc_account_logout, true },
	{ "account/bedrock/checkGovCloudRequirements",
	  rpc_account_bedrock_check_gov_cloud_requirements, true },
	{ "config/read", rpc_config_read, true },
	{ "configRequirements/read", rpc_config_requirements_read, true },
	{ "model/list", rpc_model_list, true },
	{ "collaborationMode/list", rpc_collaboration_mode_list, true },
	{ "hooks/list", rpc_hooks_list, true },
	{ "skills/list", rpc_skills_list, true },
	{ "plugin/installed", rpc_plugin_installed, true },
	{ "debug/counters", rpc_debug_counters, true },
#ifdef TANDEM_TEST_HOOKS
	{ "debug/tryOpen", rpc_debug_try_open, true }, /* test builds only (meson test_hooks) */
	{ "debug/forget", rpc_debug_forget, true },
#endif
};

/* Runs the handler; a request it neither ended nor kept is answered here
 * (-32603, logged as the bug it is), so that no request goes unanswered
 * whatever path a handler took. */
static void call(struct session *s, const char *method, rpc_fn fn, json_t *id, json_t *params)
{
	struct req *r = req_new(s, id, method);
	json_t *empty = params ? NULL : json_object();
	bool ended = false;

	req_watch_end(r, &ended);
	fn(r, params ? params : empty);
	json_decref(empty);
	if (ended)
		return;
	req_watch_end(r, NULL);
	if (!req_kept(r)) {
		log_error("%s: the handler left its request unanswered", method);
		req_error(r, CLIENT_INTERNAL_ERROR, "Internal error: %s left the request unanswered",
			  method);
	}
}

void rpc_dispatch(struct session *s, const char *method, json_t *id, json_t *params)
{
	struct req *r;

	for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
		if (strcmp(methods[i].method, method) != 0)
			continue;
		if (!id && methods[i].fn != rpc_initialized) {
			log_debug("notification '%s' ignored", method);
			return;
		}
		if (methods[i].needs_init && !session_initialized(s)) {
			r = req_new(s, id, methods[i].method);
			req_error(r, CLIENT_INVALID_REQUEST, "Not initialized");
			return;
		}
		if (params && !json_is_object(params)) {
			r = req_new(s, id, methods[i].method);
			req_error(r, CLIENT_INVALID_PARAMS, "params: expected an object");
			return;
		}
		call(s, methods[i].method, methods[i].fn, id, params);
		return;
	}
	if (id) {
		r = req_new(s, id, METRICS_OTHER);
		req_error(r, CLIENT_METHOD_NOT_FOUND, "Method not found: %s", method);
	}
}
