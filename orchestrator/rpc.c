/* rpc.c - the client API: one rpc_<method> per method of the Codex
 * app-server v2 dialect we implement. The table at the bottom is the whole
 * policy: what exists and what needs `initialize` first. */
#include "rpc.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "account.h"
#include "client.h"
#include "config.h"
#include "env.h"
#include "jsonutil.h"
#include "log.h"
#include "mcp.h"
#include "oauth.h"
#include "orch.h"
#include "srv.h"
#include "thread.h"
#include "turn.h"
#include "util.h"
#include "version.h"

#define LIST_LIMIT_MAX 1000u

/* ---- requests in flight ------------------------------------------------ */

struct req *req_new(struct session *s, json_t *id)
{
	struct req *r = xcalloc(1, sizeof(*r));

	r->sess = s;
	r->id = json_incref(id);
	r->next_in_sess = s->reqs;
	s->reqs = r;
	return r;
}

static void req_free(struct req *r)
{
	if (r->sess) {
		for (struct req **pp = &r->sess->reqs; *pp; pp = &(*pp)->next_in_sess) {
			if (*pp == r) {
				*pp = r->next_in_sess;
				break;
			}
		}
	}
	json_decref(r->id);
	free(r);
}

void req_reply(struct req *r, json_t *result)
{
	if (r->sess)
		client_reply(r->sess->client, r->id, result);
	else
		json_decref(result);
	req_free(r);
}

void req_error(struct req *r, int code, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (r->sess)
		client_error(r->sess->client, r->id, code, "%s", msg);
	req_free(r);
}

/* The session is gone: stop what its requests wait on. */
void rpc_session_closed(struct session *s)
{
	while (s->reqs) {
		struct req *r = s->reqs;

		s->reqs = r->next_in_sess;
		r->sess = NULL;
		if (r->cancel)
			r->cancel(r); /* completes (and frees) the request */
	}
}

/* ---- helpers ----------------------------------------------------------- */

static const char *param_str(json_t *params, const char *key)
{
	return json_string_value(json_object_get(params, key));
}

static struct thread *thread_param(struct client *c, json_t *id, json_t *params, bool required)
{
	const char *tid = param_str(params, "threadId");
	struct thread *t;

	if (!tid) {
		if (required || (json_object_get(params, "threadId") &&
				 !json_is_null(json_object_get(params, "threadId"))))
			client_error(c, id, RPC_INVALID_PARAMS, "threadId: expected a string");
		return required ? NULL : thread_global();
	}
	t = thread_find(tid);
	if (!t)
		client_error(c, id, RPC_INVALID_PARAMS, "threadId: no thread '%s'", tid);
	return t;
}

/* ---- initialize -------------------------------------------------------- */

static void rpc_initialize(struct session *s, json_t *id, json_t *params)
{
	json_t *info = json_object_get(params, "clientInfo");

	if (s->initialized) {
		client_error(s->client, id, RPC_INVALID_REQUEST, "Already initialized");
		return;
	}
	if (!json_is_object(info) || !json_is_string(json_object_get(info, "name"))) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "clientInfo.name: expected a string");
		return;
	}
	s->initialized = true;
	log_info("client %llu: %s %s", (unsigned long long)client_id(s->client),
		 json_string_value(json_object_get(info, "name")),
		 json_is_string(json_object_get(info, "version"))
			 ? json_string_value(json_object_get(info, "version"))
			 : "");
	client_reply(s->client, id,
		     json_pack("{s:s, s:s, s:s, s:s}", "userAgent", "tandem/" TANDEM_VERSION,
			       "codexHome", orch->home, "platformFamily", "unix", "platformOs",
			       "linux"));
}

static void rpc_initialized(struct session *s, json_t *id, json_t *params) {}

/* ---- threads ----------------------------------------------------------- */

static void rpc_thread_start(struct session *s, json_t *id, json_t *params)
{
	struct thread *t;
	json_t *tj, *res;
	char err[512];

	if (thread_new(s, params, &t, err, sizeof(err)) < 0) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s", err);
		return;
	}
	tj = thread_json(t);
	res = json_pack("{s:O, s:O, s:O, s:O, s:s, s:s, s:{s:s}}", "thread", tj, "model",
			json_object_get(tj, "model") ? json_object_get(tj, "model") : json_null(),
			"modelProvider", json_object_get(tj, "modelProvider"), "cwd",
			json_object_get(tj, "cwd"), "approvalPolicy", "never", "approvalsReviewer",
			"user", "sandbox", "type", "dangerFullAccess");
	if (json_is_null(json_object_get(res, "model")))
		json_object_set_new(res, "model", json_string(""));
	client_reply(s->client, id, res);
	orch_notify_thread(t, "thread/started", json_pack("{s:o}", "thread", tj));
	thread_project(t); /* resolution starts now; the answer did not wait for it */
}

static void rpc_thread_list(struct session *s, json_t *id, json_t *params)
{
	const char *cursor = param_str(params, "cursor");
	struct thread *t = thread_first(), *last = NULL;
	json_t *data = json_array();
	int64_t limit = 50;
	char err[256];

	if (jsonu_get_int(params, "limit", false, 1, LIST_LIMIT_MAX, &limit, err, sizeof(err)) < 0) {
		json_decref(data);
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s", err);
		return;
	}
	if (cursor) { /* the id of the last thread of the previous page */
		while (t && strcmp(thread_id(t), cursor) != 0)
			t = thread_next(t);
		if (!t) {
			json_decref(data);
			client_error(s->client, id, RPC_INVALID_PARAMS, "cursor: unknown");
			return;
		}
		t = thread_next(t);
	}
	for (; t && json_array_size(data) < (size_t)limit; t = thread_next(t)) {
		json_array_append_new(data, thread_json(t));
		last = t;
	}
	client_reply(s->client, id,
		     json_pack("{s:o, s:o}", "data", data, "nextCursor",
			       t && last ? json_string(thread_id(last)) : json_null()));
}

static void rpc_thread_read(struct session *s, json_t *id, json_t *params)
{
	struct thread *t = thread_param(s->client, id, params, true);

	if (t)
		client_reply(s->client, id, json_pack("{s:o}", "thread", thread_json(t)));
}

/* ---- MCP status -------------------------------------------------------- */

static json_t *tools_map(struct srv *sv)
{
	json_t *tools = srv_tools(sv), *map = json_object(), *t;
	size_t i;

	json_array_foreach(tools, i, t)
		json_object_set(map, json_string_value(json_object_get(t, "name")), t);
	json_decref(tools);
	return map;
}

static json_t *status_entry(struct srv *sv)
{
	struct mcp_session *m = srv_mcp(sv);
	json_t *info = m ? mcp_session_server_info(m) : NULL;
	const char *rs = srv_state(sv) == SRV_READY      ? "connected"
			 : srv_state(sv) == SRV_STARTING ? "starting"
							 : "failed";

	return json_pack("{s:s, s:o, s:o, s:o, s:O, s:s, s:s?, s:s?, s:s}", "name", srv_name(sv),
			 "tools", tools_map(sv), "resources",
			 m ? json_incref(mcp_session_resources(m)) : json_array(),
			 "resourceTemplates",
			 m ? json_incref(mcp_session_resource_templates(m)) : json_array(),
			 "serverInfo", info ? info : json_null(), "authStatus", srv_auth_status(sv),
			 "pluginId", srv_plugin_id(sv), "toolsError",
			 srv_state(sv) == SRV_FAILED ? srv_error(sv) : NULL, "runtimeStatus", rs);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
		      json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

struct status_req {
	struct req *r;
	struct thread *t;
	char *cursor;
	char *only;
	int64_t limit;
};

static void status_free(struct status_req *q)
{
	free(q->cursor);
	free(q->only);
	free(q);
}

/* Invalid configs are listed too, with their reason: a bad server is never
 * hidden, and never hides the good ones. */
static void add_invalid(json_t *all, struct thread *t)
{
	json_t *inv = thread_invalid_servers(t), *v;
	size_t i;

	json_array_foreach(inv, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		const char *why = json_string_value(json_object_get(v, "reason"));

		json_array_append_new(all, json_pack("{s:s, s:{}, s:[], s:[], s:n, s:s, s:O, s:s+, "
						     "s:s}",
						     "name", name ? name : "?", "tools", "resources",
						     "resourceTemplates", "serverInfo", "authStatus",
						     "unsupported", "pluginId",
						     json_object_get(v, "pluginId") ? json_object_get(v, "pluginId") : json_null(),
						     "toolsError", "invalid configuration: ",
						     why ? why : "", "runtimeStatus", "failed"));
	}
	json_decref(inv);
}

static void status_settled_cb(struct thread *t, void *arg)
{
	struct status_req *q = arg;
	size_t n = thread_n_servers(t), start = 0;
	json_t *all = json_array(), *page = json_array(), *next = json_null();
	json_t **items;

	q->r->cancel = NULL;
	for (size_t i = 0; i < n; i++)
		if (!q->only || strcmp(srv_name(thread_server_at(t, i)), q->only) == 0)
			json_array_append_new(all, status_entry(thread_server_at(t, i)));
	if (!q->only)
		add_invalid(all, t);
	n = json_array_size(all);
	items = xcalloc(n + 1, sizeof(*items));
	for (size_t i = 0; i < n; i++)
		items[i] = json_array_get(all, i);
	qsort(items, n, sizeof(*items), by_name);
	if (q->cursor) /* the name of the last entry of the previous page */
		while (start < n &&
		       strcmp(json_string_value(json_object_get(items[start], "name")), q->cursor) <= 0)
			start++;
	for (size_t i = start; i < n && json_array_size(page) < (size_t)q->limit; i++)
		json_array_append(page, items[i]);
	if (start + json_array_size(page) < n)
		next = json_incref(json_object_get(items[start + json_array_size(page) - 1], "name"));
	free(items);
	json_decref(all);
	req_reply(q->r, json_pack("{s:o, s:o}", "data", page, "nextCursor", next));
	status_free(q);
}

static void status_cancel(struct req *r)
{
	struct status_req *q = r->data;

	thread_forget_waiter(q->t, status_settled_cb, q);
	req_free(r);
	status_free(q);
}

static void rpc_mcp_status_list(struct session *s, json_t *id, json_t *params)
{
	struct thread *t = thread_param(s->client, id, params, false);
	struct status_req *q;
	int64_t limit = LIST_LIMIT_MAX;
	char err[256];

	if (!t)
		return;
	if (jsonu_get_int(params, "limit", false, 1, LIST_LIMIT_MAX, &limit, err, sizeof(err)) < 0) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s", err);
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->t = t;
	q->limit = limit;
	q->cursor = param_str(params, "cursor") ? xstrdup(param_str(params, "cursor")) : NULL;
	q->only = param_str(params, "serverName") ? xstrdup(param_str(params, "serverName")) : NULL;
	q->r = req_new(s, id);
	q->r->data = q;
	q->r->cancel = status_cancel;
	thread_project(t);
	thread_when_settled(t, status_settled_cb, q);
}

/* ---- tool calls and resource reads ------------------------------------- */

struct call_req {
	struct req *r;
	struct thread *t;
	struct srv *srv;      /* held (srv_ref) once chosen */
	char *server;
	char *tool;           /* NULL: a resource read */
	char *uri;
	json_t *args;
	uint64_t call_id;
	enum { CALL_WAIT_THREAD, CALL_WAIT_SERVER, CALL_RUNNING } stage;
};

static void call_free(struct call_req *q)
{
	if (q->srv)
		srv_release(q->srv);
	free(q->server);
	free(q->tool);
	free(q->uri);
	json_decref(q->args);
	free(q);
}

static json_t *tool_result(json_t *res)
{
	json_t *out = json_object();
	static const char *const keys[] = { "content", "structuredContent", "isError", "_meta" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (json_object_get(res, keys[i]))
			json_object_set(out, keys[i], json_object_get(res, keys[i]));
	if (!json_object_get(out, "content"))
		json_object_set_new(out, "content", json_array());
	return out;
}

static void call_done_cb(struct mcp_session *m, json_t *result, const char *error, void *arg)
{
	struct call_req *q = arg;

	q->r->cancel = NULL;
	if (error)
		req_error(q->r, RPC_INTERNAL_ERROR, "%s", error);
	else if (q->tool)
		req_reply(q->r, tool_result(result));
	else
		req_reply(q->r, json_pack("{s:O}", "contents",
					  json_object_get(result, "contents")
						  ? json_object_get(result, "contents")
						  : json_array()));
	call_free(q);
}

static void call_run(struct call_req *q)
{
	struct mcp_session *m = srv_mcp(q->srv);

	if (!m) {
		req_error(q->r, RPC_INTERNAL_ERROR, "server '%s' failed: %s", q->server,
			  srv_error(q->srv) ? srv_error(q->srv) : "not running");
		call_free(q);
		return;
	}
	q->stage = CALL_RUNNING;
	q->call_id = q->tool ? mcp_call_tool(m, q->tool, q->args, 0, call_done_cb, q)
			     : mcp_read_resource(m, q->uri, call_done_cb, q);
	if (!q->call_id) {
		q->r->cancel = NULL;
		req_error(q->r, RPC_INTERNAL_ERROR, "server '%s' is not accepting calls", q->server);
		call_free(q);
	}
}

static void server_settled_cb(struct srv *sv, void *arg)
{
	call_run(arg);
}

static void call_settled_cb(struct thread *t, void *arg)
{
	struct call_req *q = arg;
	char why[512];
	struct srv *sv = thread_server(t, q->server);

	if (!sv) {
		const char *reason = thread_unavailable_reason(t, why, sizeof(why));

		q->r->cancel = NULL;
		req_error(q->r, RPC_INVALID_PARAMS, "server '%s' is not available in this thread%s%s",
			  q->server, reason ? ": " : "", reason ? reason : "");
		call_free(q);
		return;
	}
	if (q->tool && !srv_tool_allowed(sv, q->tool)) {
		q->r->cancel = NULL;
		req_error(q->r, RPC_INVALID_PARAMS, "tool '%s' of server '%s' is disabled by its configuration",
			  q->tool, q->server);
		call_free(q);
		return;
	}
	q->srv = sv;
	srv_ref(sv);
	if (srv_state(sv) == SRV_FAILED)
		srv_retry(sv);
	q->stage = CALL_WAIT_SERVER;
	srv_when_settled(sv, server_settled_cb, q);
}

static void call_cancel(struct req *r)
{
	struct call_req *q = r->data;

	r->cancel = NULL;
	switch (q->stage) {
	case CALL_WAIT_THREAD:
		thread_forget_waiter(q->t, call_settled_cb, q);
		break;
	case CALL_WAIT_SERVER:
		srv_forget_waiter(q->srv, server_settled_cb, q);
		break;
	case CALL_RUNNING:
		/* notifications/cancelled to the server; call_done_cb frees. */
		mcp_cancel(srv_mcp(q->srv), q->call_id, "the client disconnected");
		return;
	}
	req_free(r);
	call_free(q);
}

static void start_call(struct session *s, json_t *id, json_t *params, bool tool)
{
	struct thread *t = thread_param(s->client, id, params, tool);
	const char *server = param_str(params, "server");
	const char *name = param_str(params, tool ? "tool" : "uri");
	json_t *args = json_object_get(params, "arguments");
	struct call_req *q;

	if (!t)
		return;
	if (!server || !name) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s: expected a string",
			     !server ? "server" : tool ? "tool" : "uri");
		return;
	}
	if (args && !json_is_object(args) && !json_is_null(args)) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "arguments: expected an object");
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->t = t;
	q->server = xstrdup(server);
	if (tool)
		q->tool = xstrdup(name);
	else
		q->uri = xstrdup(name);
	q->args = json_is_object(args) ? json_incref(args) : json_object();
	q->r = req_new(s, id);
	q->r->data = q;
	q->r->cancel = call_cancel;
	thread_project(t); /* on demand: no turn needed */
	thread_when_settled(t, call_settled_cb, q);
}

static void rpc_mcp_tool_call(struct session *s, json_t *id, json_t *params)
{
	start_call(s, id, params, true);
}

static void rpc_mcp_resource_read(struct session *s, json_t *id, json_t *params)
{
	start_call(s, id, params, false);
}

/* ---- config and environments ------------------------------------------- */

static void rpc_mcp_reload(struct session *s, json_t *id, json_t *params)
{
	struct config *c;
	char err[1024];

	if (config_load(orch->home, &c, err, sizeof(err)) < 0) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "config.toml not reloaded: %s", err);
		return;
	}
	config_free(orch->config);
	orch->config = c;
	log_info("config reloaded: %zu MCP server(s), %zu invalid",
		 json_object_size(c->mcp_servers), json_array_size(c->invalid_servers));
	client_reply(s->client, id, json_object());
	threads_reload();
}

static void rpc_env_status(struct session *s, json_t *id, json_t *params)
{
	const char *eid = param_str(params, "environmentId");
	struct env *e;
	const char *st;

	if (!eid) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "environmentId: expected a string");
		return;
	}
	e = orch_env(eid);
	if (!e) {
		client_reply(s->client, id, json_pack("{s:s, s:n}", "status", "unknown", "error"));
		return;
	}
	st = env_state(e) == ENV_READY ? "ready" : env_state(e) == ENV_CONNECTING ? "pending"
									     : "disconnected";
	client_reply(s->client, id,
		     json_pack("{s:s, s:s?}", "status", st, "error",
			       env_state(e) == ENV_READY ? NULL : env_error(e)));
}

static void rpc_env_add(struct session *s, json_t *id, json_t *params)
{
	const char *eid = param_str(params, "environmentId");
	const char *url = param_str(params, "execServerUrl");
	const char *token = param_str(params, "authBearerToken");
	int64_t timeout = 10000;
	char err[512];

	if (!eid || !url) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s: expected a string",
			     !eid ? "environmentId" : "execServerUrl");
		return;
	}
	if (jsonu_get_int(params, "connectTimeoutMs", false, 1, 3600000, &timeout, err,
			  sizeof(err)) < 0 ||
	    orch_env_add(eid, url, token, (uint64_t)timeout, err, sizeof(err)) < 0) {
		client_error(s->client, id, RPC_INVALID_PARAMS, "%s", err);
		return;
	}
	client_reply(s->client, id, json_object());
}

/* tandem's own: counters tests and benchmarks assert on. */
static void rpc_debug_counters(struct session *s, json_t *id, json_t *params)
{
	const char *tid = param_str(params, "threadId");
	struct thread *t = tid ? thread_find(tid) : NULL;
	json_t *res = json_pack("{s:I, s:I, s:I, s:I}", "rediscoveries",
				(json_int_t)orch->rediscoveries, "runtimeBuilds",
				(json_int_t)orch->runtime_builds, "serverStarts",
				(json_int_t)orch->server_starts, "threads", (json_int_t)orch->n_threads);

	if (t)
		json_object_set_new(res, "thread",
				    json_pack("{s:I, s:I}", "rediscoveries",
					      (json_int_t)thread_rediscoveries(t), "runtimeBuilds",
					      (json_int_t)thread_builds(t)));
	client_reply(s->client, id, res);
}

/* ---- dispatch ---------------------------------------------------------- */

typedef void (*rpc_fn)(struct session *s, json_t *id, json_t *params);

static const struct {
	const char *method;
	rpc_fn fn;
	bool needs_init;
} methods[] = {
	{ "initialize", rpc_initialize, false },
	{ "initialized", rpc_initialized, false },
	{ "thread/start", rpc_thread_start, true },
	{ "thread/list", rpc_thread_list, true },
	{ "thread/read", rpc_thread_read, true },
	{ "mcpServerStatus/list", rpc_mcp_status_list, true },
	{ "mcpServer/tool/call", rpc_mcp_tool_call, true },
	{ "mcpServer/resource/read", rpc_mcp_resource_read, true },
	{ "config/mcpServer/reload", rpc_mcp_reload, true },
	{ "mcpServer/oauth/login", rpc_mcp_oauth_login, true },
	{ "environment/status", rpc_env_status, true },
	{ "environment/add", rpc_env_add, true },
	{ "turn/start", turn_start, true },
	{ "turn/interrupt", turn_interrupt, true },
	{ "account/read", rpc_account_read, true },
	{ "account/login/start", rpc_account_login_start, true },
	{ "account/logout", rpc_account_logout, true },
	{ "debug/counters", rpc_debug_counters, true },
};

void rpc_dispatch(struct session *s, const char *method, json_t *id, json_t *params)
{
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++) {
		if (strcmp(methods[i].method, method) != 0)
			continue;
		if (!id && strcmp(method, "initialized") != 0) {
			log_debug("notification '%s' ignored", method);
			return;
		}
		if (methods[i].needs_init && !s->initialized) {
			client_error(s->client, id, RPC_INVALID_REQUEST, "Not initialized");
			return;
		}
		if (params && !json_is_object(params)) {
			client_error(s->client, id, RPC_INVALID_PARAMS, "params: expected an object");
			return;
		}
		if (params) {
			methods[i].fn(s, id, params);
		} else {
			json_t *empty = json_object();

			methods[i].fn(s, id, empty);
			json_decref(empty);
		}
		return;
	}
	if (id)
		client_error(s->client, id, RPC_METHOD_NOT_FOUND, "Method not found: %s", method);
}
