/* rpc_mcp.c - mcpServerStatus/list, mcpServer/tool/call,
 * mcpServer/resource/read and config/mcpServer/reload. */
#include "rpc.h"

#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "jsonscan.h"
#include "log.h"
#include "mcp.h"
#include "param.h"
#include "session.h"
#include "srv.h"
#include "thread.h"
#include "util.h"

#define LIST_LIMIT_MAX 1000u

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

/* tandem extension: how a stdio server is boxed on its executor, null for
 * an HTTP server or one that has not started yet (README "Client API"). */
static json_t *sandbox_json(struct srv *sv)
{
	const char *sb = srv_sandbox(sv);
	json_t *j = sb ? json_pack("{s:b, s:s}", "sandboxed", strncmp(sb, "off", 3) != 0,
				   "detail", sb)
		       : NULL;

	return j ? j : json_null();
}

static json_t *status_entry(struct srv *sv)
{
	struct mcp_session *m = srv_mcp(sv);
	json_t *info = m ? mcp_session_server_info(m) : NULL;
	const char *rs = srv_state(sv) == SRV_READY      ? "connected"
			 : srv_state(sv) == SRV_STARTING ? "starting"
							 : "failed";
	json_t *e;

	e = json_pack("{s:s, s:o, s:o, s:o, s:O, s:s, s:s?, s:s?, s:s}", "name", srv_name(sv),
			 "tools", tools_map(sv), "resources",
			 m ? json_incref(mcp_session_resources(m)) : json_array(),
			 "resourceTemplates",
			 m ? json_incref(mcp_session_resource_templates(m)) : json_array(),
			 "serverInfo", info ? info : json_null(), "authStatus", srv_auth_status(sv),
			 "pluginId", srv_plugin_id(sv), "toolsError",
			 srv_state(sv) == SRV_FAILED ? srv_error(sv) : NULL, "runtimeStatus", rs);
	json_object_set_new(e, "tandemSandbox", sandbox_json(sv));
	return e;
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
						     "s:s, s:n}",
						     "name", name ? name : "?", "tools", "resources",
						     "resourceTemplates", "serverInfo", "authStatus",
						     "unsupported", "pluginId",
						     json_object_get(v, "pluginId") ? json_object_get(v, "pluginId") : json_null(),
						     "toolsError", "invalid configuration: ",
						     why ? why : "", "runtimeStatus", "failed",
						     "tandemSandbox"));
	}
	json_decref(inv);
}

static void status_settled_cb(struct thread *t, void *arg)
{
	struct status_req *q = arg;
	size_t n = thread_n_servers(t), start = 0;
	json_t *all = json_array(), *page = json_array(), *next = json_null();
	json_t **items;

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

static void status_cancel(void *arg)
{
	struct status_req *q = arg;

	thread_forget_waiter(q->t, status_settled_cb, q);
	req_drop(q->r);
	status_free(q);
}

void rpc_mcp_server_status_list(struct req *r, json_t *params)
{
	const char *cursor, *only;
	struct status_req *q;
	int64_t limit = LIST_LIMIT_MAX;
	struct thread *t;

	if (param_thread(r, params, false, &t) < 0 ||
	    param_int(r, params, "limit", 1, LIST_LIMIT_MAX, &limit) < 0 ||
	    param_str(r, params, "cursor", false, &cursor) < 0 ||
	    param_str(r, params, "serverName", false, &only) < 0)
		return;
	q = xcalloc(1, sizeof(*q));
	q->t = t ? t : thread_global();
	q->limit = limit;
	q->cursor = cursor ? xstrdup(cursor) : NULL;
	q->only = only ? xstrdup(only) : NULL;
	q->r = r;
	req_on_cancel(r, status_cancel, q);
	thread_project(q->t);
	thread_when_settled(q->t, status_settled_cb, q);
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

/* The members of a tools/call result that mcpServer/tool/call answers
 * with (content defaults to []). */
static const char *const tool_keys[] = { "content", "structuredContent", "isError", "_meta" };

static json_t *tool_result(json_t *res)
{
	json_t *out = json_object();

	for (size_t i = 0; i < ARRAY_SIZE(tool_keys); i++)
		if (json_object_get(res, tool_keys[i]))
			json_object_set(out, tool_keys[i], json_object_get(res, tool_keys[i]));
	if (!json_object_get(out, "content"))
		json_object_set_new(out, "content", json_array());
	return out;
}

/* The same answer built from the server's text (mcp.h struct mcp_result):
 * its members copied as written, nothing parsed. */
static char *result_text(const struct mcp_result *res, const char *const *keys, size_t nkeys,
			 size_t *len)
{
	const struct jscan_member *m[ARRAY_SIZE(tool_keys)];
	size_t cap = 2;
	char *out, *p;

	for (size_t i = 0; i < nkeys; i++) {
		m[i] = jscan_find(res->members, res->nmembers, keys[i]);
		cap += strlen(keys[i]) + 4 + (m[i] ? m[i]->val_len : 2);
	}
	out = p = xmalloc(cap);
	*p++ = '{';
	for (size_t i = 0; i < nkeys; i++) {
		const char *v = m[i] ? m[i]->val : "[]";
		size_t vlen = m[i] ? m[i]->val_len : 2, klen = strlen(keys[i]);

		if (!m[i] && i > 0) /* only the first key (content, contents) has a default */
			continue;
		if (p > out + 1)
			*p++ = ',';
		*p++ = '"';
		memcpy(p, keys[i], klen);
		p += klen;
		*p++ = '"';
		*p++ = ':';
		memcpy(p, v, vlen);
		p += vlen;
	}
	*p++ = '}';
	*len = (size_t)(p - out);
	return out;
}

static void call_done_cb(struct mcp_session *m, const struct mcp_result *res, const char *error,
			 void *arg)
{
	static const char *const read_keys[] = { "contents" };
	struct call_req *q = arg;
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (error)
		req_error(q->r, CLIENT_INTERNAL_ERROR, "%s", error);
	else if (res->text && q->tool)
		text = result_text(res, tool_keys, ARRAY_SIZE(tool_keys), &len);
	else if (res->text)
		text = result_text(res, read_keys, 1, &len);
	else if (q->tool)
		req_reply(q->r, tool_result(res->json));
	else
		req_reply(q->r, json_pack("{s:O}", "contents",
					  json_object_get(res->json, "contents")
						  ? json_object_get(res->json, "contents")
						  : json_array()));
	if (text)
		req_reply_text(q->r, text, len);
	call_free(q);
}

static void call_run(struct call_req *q)
{
	struct mcp_session *m = srv_mcp(q->srv);

	if (!m) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "server '%s' failed: %s", q->server,
			  srv_error(q->srv) ? srv_error(q->srv) : "not running");
		call_free(q);
		return;
	}
	q->stage = CALL_RUNNING;
	q->call_id = q->tool ? mcp_call_tool_text(m, q->tool, q->args, 0, call_done_cb, q)
			     : mcp_read_resource_text(m, q->uri, call_done_cb, q);
	if (!q->call_id) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "server '%s' is not accepting calls", q->server);
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

		req_error(q->r, CLIENT_INVALID_PARAMS, "server '%s' is not available in this thread%s%s",
			  q->server, reason ? ": " : "", reason ? reason : "");
		call_free(q);
		return;
	}
	if (q->tool && !srv_tool_allowed(sv, q->tool)) {
		req_error(q->r, CLIENT_INVALID_PARAMS,
			  "tool '%s' of server '%s' is disabled by its configuration", q->tool,
			  q->server);
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

static void call_cancel(void *arg)
{
	struct call_req *q = arg;

	switch (q->stage) {
	case CALL_WAIT_THREAD:
		thread_forget_waiter(q->t, call_settled_cb, q);
		break;
	case CALL_WAIT_SERVER:
		srv_forget_waiter(q->srv, server_settled_cb, q);
		break;
	case CALL_RUNNING:
		/* notifications/cancelled to the server; call_done_cb ends it. */
		mcp_cancel(srv_mcp(q->srv), q->call_id, "the client disconnected");
		return;
	}
	req_drop(q->r);
	call_free(q);
}

static void start_call(struct req *r, json_t *params, bool tool)
{
	const char *server, *name;
	struct call_req *q;
	struct thread *t;
	json_t *args;

	if (param_thread(r, params, tool, &t) < 0 ||
	    param_str(r, params, "server", true, &server) < 0 ||
	    param_str(r, params, tool ? "tool" : "uri", true, &name) < 0 ||
	    param_object(r, params, "arguments", &args) < 0)
		return;
	q = xcalloc(1, sizeof(*q));
	q->t = t ? t : thread_global();
	q->server = xstrdup(server);
	if (tool)
		q->tool = xstrdup(name);
	else
		q->uri = xstrdup(name);
	q->args = args ? json_incref(args) : json_object();
	q->r = r;
	req_on_cancel(r, call_cancel, q);
	thread_project(q->t); /* on demand: no turn needed */
	thread_when_settled(q->t, call_settled_cb, q);
}

void rpc_mcp_server_tool_call(struct req *r, json_t *params)
{
	start_call(r, params, true);
}

void rpc_mcp_server_resource_read(struct req *r, json_t *params)
{
	start_call(r, params, false);
}

/* ---- config/mcpServer/reload ------------------------------------------- */

void rpc_config_mcp_server_reload(struct req *r, json_t *params)
{
	const struct config *c;
	char err[1024];

	if (config_reload(err, sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "config.toml not reloaded: %s", err);
		return;
	}
	c = config_current();
	log_info("config reloaded: %zu MCP server(s), %zu invalid",
		 json_object_size(c->mcp_servers), json_array_size(c->invalid_servers));
	req_reply(r, json_object());
	threads_reload();
}
