/* gateway_session.c - the MCP gateway's sessions and methods
 * (gateway_int.h).
 *
 * A session starts with initialize (no Mcp-Session-Id yet): it gets 32
 * random bytes as its id and the scope of the path it came on; every later
 * request must carry that id on the same path (404 otherwise: the client
 * starts over). The protocol version: the client's when we speak it
 * (mcp.h's MCP_PROTOCOL_VERSIONS), else MCP_PROTOCOL_LATEST; a client
 * offering 2025-11-25 gets 2025-06-18. MCP-Protocol-Version on later
 * requests must be one we speak (400 otherwise); absent is accepted.
 *
 * A request in flight is a struct gw_call: it waits for the scope to settle,
 * then runs against one live server (tools/call, resources/read,
 * prompts/get) or answers from the scope's lists. It ends exactly once:
 * answer, error, or nothing (cancelled: an empty event stream ends the
 * exchange). A client that leaves does not cancel (MCP: disconnection is
 * not cancellation); its answer is dropped. notifications/cancelled does
 * cancel: the server hears notifications/cancelled too. Progress asked for
 * with _meta.progressToken is relayed under the client's own token on the
 * request's event stream.
 *
 * Bounds: GATEWAY_MAX_SESSIONS (a new one evicts the least recently used
 * idle session, one with no stream and nothing in flight; if there is none:
 * 503), GATEWAY_MAX_INFLIGHT per session, idle sessions expire after
 * GATEWAY_SESSION_IDLE_MS. One GET stream per session (409 for a second).
 */
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "gateway.h"
#include "gateway_int.h"
#include "jsonutil.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "srv.h"
#include "utf8.h"
#include "util.h"
#include "version.h"

#define SWEEP_MS 60000u
#define MAX_PROMPT_SERVERS 256u
#define INSTRUCTIONS "Tools, resources and prompts of the MCP servers tandem runs for this " \
		     "endpoint. Tool and prompt names are <server>__<name>."

struct gw_session;

enum stage { C_WAIT, C_RUNNING, C_DONE };

struct gw_call {
	struct gw_call *prev, *next;
	struct gw_session *s;
	const struct method *m;
	json_t *id;
	json_t *params; /* {} when absent */
	json_t *token;  /* the client's progressToken, NULL: none */
	struct gw_http *h; /* NULL once the client left */
	enum stage stage;
	struct srv *srv; /* held while it runs there */
	uint64_t call_id;
	/* prompts/list and the listing a prompts/get may need first */
	struct srv **psrv;
	size_t n_psrv, pi;
	unsigned pages;
	json_t *prompts;
};

struct gw_session {
	struct gw_session *prev, *next;
	char id[GW_SESSION_ID_LEN + 1];
	char *path;
	char *protocol;
	struct gw_scope *scope;
	struct gw_http *stream; /* the GET stream */
	struct gw_call *calls;
	unsigned n_calls;
	uint64_t used_ms;
	bool initialized;
};

struct method {
	const char *name;
	void (*run)(struct gw_call *q); /* once the scope settled; NULL: at once */
	void (*now)(struct gw_call *q);
};

static struct {
	struct loop *loop;
	struct gw_session *list; /* most recently used first */
	size_t n;
	struct loop_timer *sweep;
} sessions;

static const char *const versions[] = MCP_PROTOCOL_VERSIONS;

/* {code, message}: the message cut on a character boundary (a server's
 * text or a name may be long), never unencodable. */
static json_t *error_object(int code, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));
static json_t *error_object(int code, const char *fmt, va_list ap)
{
	char msg[1024];
	json_t *e;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[utf8_trim(msg, strlen(msg))] = '\0';
	e = json_pack("{s:i, s:s}", "code", code, "message", msg);
	return e ? e : json_pack("{s:i, s:s}", "code", code, "message", "(unprintable)");
}

static json_t *rpc_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *rpc_error(int code, const char *fmt, ...)
{
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	e = error_object(code, fmt, ap);
	va_end(ap);
	return e;
}

/* ---- ending a call ------------------------------------------------------- */

static void call_gone_cb(void *arg)
{
	((struct gw_call *)arg)->h = NULL;
}

static void call_free(struct gw_call *q)
{
	struct gw_session *s = q->s;

	if (q->prev)
		q->prev->next = q->next;
	else
		s->calls = q->next;
	if (q->next)
		q->next->prev = q->prev;
	s->n_calls--;
	if (q->srv)
		srv_release(q->srv);
	for (size_t i = 0; i < q->n_psrv; i++)
		srv_release(q->psrv[i]);
	free(q->psrv);
	json_decref(q->prompts);
	json_decref(q->id);
	json_decref(q->params);
	json_decref(q->token);
	free(q);
}

/* msg NULL: no answer (cancelled). */
static void call_finish(struct gw_call *q, json_t *msg)
{
	if (q->h && msg)
		gateway_http_send(q->h, msg, true);
	else if (q->h)
		gateway_http_end(q->h);
	else
		json_decref(msg);
	call_free(q);
}

static void call_reply(struct gw_call *q, json_t *result)
{
	call_finish(q, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", q->id, "result",
				 result));
}

static void call_error(struct gw_call *q, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void call_error(struct gw_call *q, int code, const char *fmt, ...)
{
	va_list ap;
	json_t *e;

	va_start(ap, fmt);
	e = error_object(code, fmt, ap);
	va_end(ap);
	call_finish(q, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", q->id, "error", e));
}

/* ---- calls on a server ---------------------------------------------------- */

static void result_cb(struct mcp_session *m, json_t *result, const char *error, void *arg)
{
	struct gw_call *q = arg;

	srv_release(q->srv);
	q->srv = NULL;
	if (error)
		call_error(q, GW_INTERNAL_ERROR, "%s", error);
	else
		call_reply(q, json_incref(result));
}

static void progress_cb(struct mcp_session *m, json_t *params, void *arg)
{
	struct gw_call *q = arg;
	json_t *p;

	if (!q->h || !q->token)
		return;
	p = json_deep_copy(params);
	json_object_set(p, "progressToken", q->token);
	if (gateway_http_send(q->h, json_pack("{s:s, s:s, s:o}", "jsonrpc", "2.0", "method",
					      "notifications/progress", "params", p),
			      false) < 0)
		q->h = NULL; /* the stream overflowed and is cut */
}

/* Holds s while q runs there; call_id 0 means it did not start. */
static void run_on(struct gw_call *q, struct srv *s, uint64_t call_id)
{
	if (!call_id) {
		call_error(q, GW_INTERNAL_ERROR, "server '%s' is not accepting requests now",
			   srv_name(s));
		return;
	}
	q->stage = C_RUNNING;
}

static json_t *param(struct gw_call *q, const char *key) { return json_object_get(q->params, key); }

static void tools_call_run(struct gw_call *q)
{
	const char *name = json_string_value(param(q, "name")), *tool;
	json_t *args = param(q, "arguments"), *meta = param(q, "_meta");
	struct mcp_call_opts o = { 0 };
	struct srv *s;

	if (!name || (args && !json_is_object(args) && !json_is_null(args))) {
		call_error(q, GW_INVALID_PARAMS, "tools/call needs a string name and an object "
			   "of arguments");
		return;
	}
	s = gateway_scope_tool(q->s->scope, name, &tool);
	if (!s) {
		call_error(q, GW_INVALID_PARAMS, "Unknown tool: %s", name);
		return;
	}
	o.meta = json_is_object(meta) ? meta : NULL;
	if (q->token)
		o.progress_cb = progress_cb;
	q->srv = s;
	srv_ref(s);
	run_on(q, s, mcp_call_tool_opts(srv_mcp(s), tool, json_is_object(args) ? args : NULL, &o,
					result_cb, q));
}

static void resources_read_run(struct gw_call *q)
{
	const char *uri = json_string_value(param(q, "uri"));
	struct srv *s = uri ? gateway_scope_resource(q->s->scope, uri) : NULL;

	if (!uri) {
		call_error(q, GW_INVALID_PARAMS, "resources/read needs a string uri");
		return;
	}
	if (!s) {
		call_finish(q, json_pack("{s:s, s:O, s:{s:i, s:s, s:{s:s}}}", "jsonrpc", "2.0",
					 "id", q->id, "error", "code", GW_RESOURCE_NOT_FOUND,
					 "message", "Resource not found", "data", "uri", uri));
		return;
	}
	q->srv = s;
	srv_ref(s);
	run_on(q, s, mcp_read_resource(srv_mcp(s), uri, result_cb, q));
}

/* ---- lists -------------------------------------------------------------------- */

static bool cursor_given(struct gw_call *q)
{
	const char *c = json_string_value(param(q, "cursor"));

	if (!c || !*c)
		return false;
	call_error(q, GW_INVALID_PARAMS, "unknown cursor (this server returns whole lists)");
	return true;
}

static void tools_list_run(struct gw_call *q)
{
	if (!cursor_given(q))
		call_reply(q, json_pack("{s:O}", "tools", gateway_scope_tools(q->s->scope)));
}

static void resources_list_run(struct gw_call *q)
{
	if (!cursor_given(q))
		call_reply(q, json_pack("{s:O}", "resources",
					gateway_scope_resources(q->s->scope)));
}

static void templates_list_run(struct gw_call *q)
{
	if (!cursor_given(q))
		call_reply(q, json_pack("{s:O}", "resourceTemplates",
					gateway_scope_templates(q->s->scope)));
}

/* prompts/list asks each server that offers prompts in turn (every page),
 * names what they return, and answers with the whole list; prompts/get
 * runs that listing first when it does not know the name. */
static void prompts_next(struct gw_call *q, const char *cursor);
static void prompt_get(struct gw_call *q);

static void prompts_page_cb(struct mcp_session *m, json_t *result, const char *error, void *arg)
{
	struct gw_call *q = arg;
	struct srv *s = q->psrv[q->pi];
	const char *cursor = json_string_value(json_object_get(result, "nextCursor"));
	json_t *p, *copy;
	size_t i;

	srv_release(q->srv);
	q->srv = NULL;
	q->stage = C_WAIT;
	if (error)
		log_warn("gateway: prompts/list of server '%s': %s", srv_name(s), error);
	json_array_foreach(json_object_get(result, "prompts"), i, p) {
		const char *raw = json_string_value(json_object_get(p, "name"));
		const char *name = raw ? gateway_scope_prompt_add(q->s->scope, s, raw) : NULL;

		if (!name || json_array_size(q->prompts) >= MCP_MAX_LIST_ITEMS)
			continue;
		copy = json_copy(p);
		json_object_set_new(copy, "name", json_string(name));
		json_array_append_new(q->prompts, copy);
	}
	if (!error && cursor && *cursor && ++q->pages < MCP_MAX_LIST_PAGES) {
		prompts_next(q, cursor);
		return;
	}
	q->pi++;
	q->pages = 0;
	prompts_next(q, NULL);
}

static void prompts_next(struct gw_call *q, const char *cursor)
{
	json_t *params;
	struct srv *s;

	if (q->pi >= q->n_psrv) {
		if (!strcmp(q->m->name, "prompts/get"))
			prompt_get(q);
		else
			call_reply(q, json_pack("{s:O}", "prompts", q->prompts));
		return;
	}
	s = q->psrv[q->pi];
	params = cursor ? json_pack("{s:s}", "cursor", cursor) : NULL;
	q->call_id = srv_mcp(s) ? mcp_request(srv_mcp(s), "prompts/list", params, NULL,
					      prompts_page_cb, q)
				: 0;
	json_decref(params);
	if (!q->call_id) { /* it went down meanwhile: without its prompts */
		q->pi++;
		prompts_next(q, NULL);
		return;
	}
	q->srv = s;
	srv_ref(s);
	q->stage = C_RUNNING;
}

static void prompts_listing(struct gw_call *q)
{
	struct srv *s[MAX_PROMPT_SERVERS];

	q->n_psrv = gateway_scope_prompt_servers(q->s->scope, s, MAX_PROMPT_SERVERS);
	q->psrv = xcalloc(q->n_psrv + 1, sizeof(*q->psrv));
	for (size_t i = 0; i < q->n_psrv; i++) {
		q->psrv[i] = s[i];
		srv_ref(s[i]);
	}
	q->prompts = json_array();
	gateway_scope_prompts_begin(q->s->scope);
	prompts_next(q, NULL);
}

static void prompts_list_run(struct gw_call *q)
{
	if (!cursor_given(q))
		prompts_listing(q);
}

static void prompt_get(struct gw_call *q)
{
	const char *name = json_string_value(param(q, "name")), *raw;
	json_t *args = param(q, "arguments"), *params;
	struct srv *s = gateway_scope_prompt(q->s->scope, name, &raw);

	if (!s) {
		call_error(q, GW_INVALID_PARAMS, "Unknown prompt: %s", name);
		return;
	}
	params = json_pack("{s:s}", "name", raw);
	if (json_is_object(args))
		json_object_set(params, "arguments", args);
	q->srv = s;
	srv_ref(s);
	run_on(q, s, mcp_request(srv_mcp(s), "prompts/get", params, NULL, result_cb, q));
	json_decref(params);
}

static void prompts_get_run(struct gw_call *q)
{
	const char *name = json_string_value(param(q, "name")), *raw;

	if (!name) {
		call_error(q, GW_INVALID_PARAMS, "prompts/get needs a string name");
		return;
	}
	if (gateway_scope_prompt(q->s->scope, name, &raw))
		prompt_get(q);
	else
		prompts_listing(q); /* names are given out by a listing */
}

static void ping_now(struct gw_call *q) { call_reply(q, json_object()); }

static const struct method methods[] = {
	{ "ping", NULL, ping_now },
	{ "tools/list", tools_list_run, NULL },
	{ "tools/call", tools_call_run, NULL },
	{ "resources/list", resources_list_run, NULL },
	{ "resources/templates/list", templates_list_run, NULL },
	{ "resources/read", resources_read_run, NULL },
	{ "prompts/list", prompts_list_run, NULL },
	{ "prompts/get", prompts_get_run, NULL },
};

/* ---- requests --------------------------------------------------------------------- */

static void ready_cb(struct gw_scope *sc, void *arg)
{
	struct gw_call *q = arg;

	q->m->run(q);
}

/* Ends q without an answer; a server working on it hears
 * notifications/cancelled. */
static void call_cancel(struct gw_call *q)
{
	struct mcp_session *m = q->srv ? srv_mcp(q->srv) : NULL;

	if (q->stage == C_WAIT && !q->srv)
		gateway_scope_forget(q->s->scope, ready_cb, q);
	else if (m)
		mcp_session_forget_callbacks(m, q);
	call_finish(q, NULL);
}

static const struct method *method_of(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (!strcmp(methods[i].name, name))
			return &methods[i];
	return NULL;
}

static void request(struct gw_session *s, struct gw_http *h, const char *method, json_t *id,
		    json_t *params)
{
	struct gw_call *q = xcalloc(1, sizeof(*q));
	json_t *token = json_object_get(json_object_get(params, "_meta"), "progressToken");

	q->s = s;
	q->h = h;
	q->id = json_incref(id);
	q->params = json_is_object(params) ? json_incref(params) : json_object();
	q->token = json_is_string(token) || json_is_integer(token) ? json_incref(token) : NULL;
	q->m = method_of(method);
	q->next = s->calls;
	if (s->calls)
		s->calls->prev = q;
	s->calls = q;
	s->n_calls++;
	gateway_http_set_gone(h, call_gone_cb, q);
	if (!q->m)
		call_error(q, GW_METHOD_NOT_FOUND, "Method not found: %.*s", UTF8_CUT(method, 128));
	else if (s->n_calls > GATEWAY_MAX_INFLIGHT)
		call_error(q, GW_OVERLOADED, "too many requests in flight in this session (%u)",
			   GATEWAY_MAX_INFLIGHT);
	else if (q->m->now)
		q->m->now(q);
	else
		gateway_scope_when_ready(s->scope, ready_cb, q);
}

static void notification(struct gw_session *s, const char *method, json_t *params)
{
	json_t *id = json_object_get(params, "requestId");

	if (!strcmp(method, "notifications/initialized")) {
		s->initialized = true;
		return;
	}
	if (strcmp(method, "notifications/cancelled") || !id)
		return; /* nothing else asks anything of us */
	for (struct gw_call *q = s->calls; q; q = q->next) {
		if (json_equal(q->id, id)) {
			call_cancel(q);
			return;
		}
	}
}

/* ---- sessions ------------------------------------------------------------------------ */

static void stream_gone_cb(void *arg)
{
	((struct gw_session *)arg)->stream = NULL;
}

static void session_unlink(struct gw_session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		sessions.list = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
}

static void session_push(struct gw_session *s)
{
	s->next = sessions.list;
	if (s->next)
		s->next->prev = s;
	sessions.list = s;
}

static void session_free(struct gw_session *s, const char *why)
{
	log_debug("gateway: session %.8s... ends: %s", s->id, why);
	while (s->calls) /* each call_cancel frees one */
		call_cancel(s->calls);
	if (s->stream)
		gateway_http_end(s->stream);
	session_unlink(s);
	sessions.n--;
	gateway_scope_close(s->scope);
	free(s->path);
	free(s->protocol);
	free(s);
}

static bool idle(const struct gw_session *s)
{
	return !s->stream && !s->n_calls;
}

/* Room for one more: the least recently used idle session goes. */
static bool make_room(void)
{
	struct gw_session *s, *victim = NULL;

	if (sessions.n < GATEWAY_MAX_SESSIONS)
		return true;
	for (s = sessions.list; s; s = s->next)
		if (idle(s))
			victim = s;
	if (victim)
		session_free(victim, "evicted: too many sessions");
	return victim != NULL;
}

static void sweep_cb(struct loop_timer *t, void *arg)
{
	uint64_t now = now_ms();
	struct gw_session *s, *next;

	for (s = sessions.list; s; s = next) {
		next = s->next;
		if (idle(s) && now - s->used_ms > GATEWAY_SESSION_IDLE_MS)
			session_free(s, "idle");
	}
	loop_timer_rearm(t, SWEEP_MS);
}

static const char *negotiate(json_t *params)
{
	const char *want = json_string_value(json_object_get(params, "protocolVersion"));

	for (size_t i = 0; want && i < ARRAY_SIZE(versions); i++)
		if (!strcmp(want, versions[i]))
			return versions[i];
	return MCP_PROTOCOL_LATEST;
}

static json_t *init_result(const char *version)
{
	return json_pack("{s:s, s:{s:{s:b}, s:{s:b}, s:{s:b}}, s:{s:s, s:s, s:s}, s:s}",
			 "protocolVersion", version, "capabilities", "tools", "listChanged", 1,
			 "resources", "listChanged", 1, "prompts", "listChanged", 1, "serverInfo",
			 "name", "tandem-gateway", "title", "tandem MCP gateway", "version",
			 TANDEM_VERSION, "instructions", INSTRUCTIONS);
}

/* A new session on scope sc (a reference it takes over), answered on h. */
static int open_session(struct gw_http *h, const char *path, json_t *id, const char *version,
			struct gw_scope *sc, json_t **err)
{
	unsigned char raw[GW_SESSION_ID_LEN / 2];
	struct gw_session *s;

	if (!make_room()) {
		gateway_scope_close(sc);
		*err = rpc_error(GW_OVERLOADED, "too many sessions (%u), all busy",
				 GATEWAY_MAX_SESSIONS);
		return GW_UNAVAILABLE;
	}
	s = xcalloc(1, sizeof(*s));
	randombytes_buf(raw, sizeof(raw));
	sodium_bin2hex(s->id, sizeof(s->id), raw, sizeof(raw));
	s->path = xstrdup(path);
	s->protocol = xstrdup(version);
	s->scope = sc;
	s->used_ms = now_ms();
	session_push(s);
	sessions.n++;
	log_debug("gateway: session %.8s... on %s (%s)", s->id, s->path, version);
	gateway_http_set_session_id(h, s->id);
	gateway_http_send(h, json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result",
				       init_result(version)),
			  true);
	return GW_OK;
}

/* An initialize on the path of a stored thread that is not loaded: it is
 * answered once the store has loaded the thread (or said why not). */
struct init_wait {
	struct gw_http *h;
	struct gw_scope_loading *load;
	char *path;
	json_t *id;
	const char *version; /* static (versions[]) */
};

static void init_wait_free(struct init_wait *w)
{
	free(w->path);
	json_decref(w->id);
	free(w);
}

static void init_gone_cb(void *arg)
{
	struct init_wait *w = arg;

	gateway_scope_load_cancel(w->load);
	init_wait_free(w);
}

static void init_opened_cb(struct gw_scope *sc, int status, const char *why, void *arg)
{
	struct init_wait *w = arg;
	json_t *err = NULL;

	if (sc)
		status = open_session(w->h, w->path, w->id, w->version, sc, &err);
	else
		err = rpc_error(GW_INVALID_REQUEST, "%s", why);
	if (status != GW_OK)
		gateway_http_refuse(w->h, status, err);
	init_wait_free(w);
}

static int initialize(struct gw_http *h, const struct gw_request *rq, json_t *id, json_t *params,
		      json_t **err)
{
	const char *version = negotiate(params);
	struct gw_scope_loading *l;
	struct init_wait *w;
	struct gw_scope *sc;
	char why[256];
	int st;

	if (!json_is_object(params) || !json_is_string(json_object_get(params, "protocolVersion"))) {
		*err = rpc_error(GW_INVALID_PARAMS, "initialize needs params.protocolVersion");
		return GW_BAD_REQUEST;
	}
	st = gateway_scope_open(rq->path, &sc, why, sizeof(why));
	if (st == GW_NOT_FOUND && gateway_scope_loadable(rq->path)) {
		w = xcalloc(1, sizeof(*w));
		w->h = h;
		w->path = xstrdup(rq->path);
		w->id = json_incref(id);
		w->version = version;
		gateway_http_set_gone(h, init_gone_cb, w);
		/* w is freed by init_opened_cb, which may have run already */
		l = gateway_scope_load(rq->path, init_opened_cb, w);
		if (l)
			w->load = l;
		return GW_OK;
	}
	if (st) {
		*err = rpc_error(GW_INVALID_REQUEST, "%s", why);
		return st;
	}
	return open_session(h, rq->path, id, version, sc, err);
}

/* The session a request names, moved to the front; or a status with err. */
static int session_of(const struct gw_request *rq, struct gw_session **out, json_t **err)
{
	struct gw_session *s;

	if (!rq->session_id) {
		*err = rpc_error(GW_INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is "
				 "required (initialize first)");
		return GW_BAD_REQUEST;
	}
	for (s = sessions.list; s; s = s->next)
		if (strlen(rq->session_id) == GW_SESSION_ID_LEN &&
		    !sodium_memcmp(s->id, rq->session_id, GW_SESSION_ID_LEN) &&
		    !strcmp(s->path, rq->path))
			break;
	if (!s) {
		*err = rpc_error(GW_INVALID_REQUEST, "Session not found");
		return GW_NOT_FOUND;
	}
	if (rq->protocol) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(versions) && strcmp(versions[i], rq->protocol); i++)
			;
		if (i == ARRAY_SIZE(versions)) {
			*err = rpc_error(GW_INVALID_REQUEST, "Bad Request: unsupported "
					 "MCP-Protocol-Version (this server speaks 2024-11-05, "
					 "2025-03-26, 2025-06-18)");
			return GW_BAD_REQUEST;
		}
	}
	s->used_ms = now_ms();
	session_unlink(s);
	session_push(s);
	*out = s;
	return GW_OK;
}

int gateway_session_post(struct gw_http *h, const struct gw_request *rq, const char *body,
			 size_t len, json_t **err)
{
	char why[160];
	json_auto_t *msg = jsonu_loadb(body, len, GATEWAY_MAX_BODY, why,
							  sizeof(why));
	json_t *method, *id, *ver;
	struct gw_session *s;
	int st;

	if (!msg) {
		*err = rpc_error(GW_PARSE_ERROR, "Parse error: %s", why);
		return GW_BAD_REQUEST;
	}
	method = json_object_get(msg, "method");
	id = json_object_get(msg, "id");
	ver = json_object_get(msg, "jsonrpc");
	if (!json_is_object(msg) ||
	    (ver && !(json_is_string(ver) && !strcmp(json_string_value(ver), "2.0"))) ||
	    (method && !json_is_string(method)) ||
	    (id && !json_is_string(id) && !json_is_integer(id))) {
		*err = rpc_error(GW_INVALID_REQUEST, json_is_array(msg)
				 ? "Invalid Request: one message per POST (MCP 2025-06-18 has no batches)"
				 : "Invalid Request: not a JSON-RPC 2.0 message");
		return GW_BAD_REQUEST;
	}
	if (method && id && !strcmp(json_string_value(method), "initialize"))
		return initialize(h, rq, id, json_object_get(msg, "params"), err);
	st = session_of(rq, &s, err);
	if (st != GW_OK)
		return st;
	if (!method) /* a response: we send no requests */
		return GW_ACCEPTED;
	if (!id) {
		notification(s, json_string_value(method), json_object_get(msg, "params"));
		return GW_ACCEPTED;
	}
	request(s, h, json_string_value(method), id, json_object_get(msg, "params"));
	return GW_OK;
}

int gateway_session_get(struct gw_http *h, const struct gw_request *rq, json_t **err)
{
	struct gw_session *s;
	int st = session_of(rq, &s, err);

	if (st != GW_OK)
		return st;
	if (s->stream) {
		*err = rpc_error(GW_INVALID_REQUEST, "Conflict: this session's stream is open");
		return GW_CONFLICT;
	}
	s->stream = h;
	gateway_http_set_gone(h, stream_gone_cb, s);
	return GW_OK;
}

int gateway_session_delete(const struct gw_request *rq, json_t **err)
{
	struct gw_session *s;
	int st = session_of(rq, &s, err);

	if (st == GW_OK)
		session_free(s, "deleted by the client");
	return st;
}

size_t gateway_session_count(void) { return sessions.n; }

/* A scope's list changed: every session on it with a stream hears it. */
static void changed_cb(struct gw_scope *sc, const char *method)
{
	for (struct gw_session *s = sessions.list; s; s = s->next) {
		if (s->scope != sc || !s->stream)
			continue;
		if (gateway_http_send(s->stream, json_pack("{s:s, s:s}", "jsonrpc", "2.0", "method",
							   method),
				      false) < 0)
			s->stream = NULL;
	}
}

void gateway_session_init(struct loop *l)
{
	sessions.loop = l;
	gateway_scope_init(l, changed_cb);
	sessions.sweep = loop_timer_add(l, SWEEP_MS, sweep_cb, NULL);
}

void gateway_session_stop_all(void)
{
	while (sessions.list)
		session_free(sessions.list, "the gateway stops");
	loop_timer_cancel(sessions.sweep);
	sessions.sweep = NULL;
}
