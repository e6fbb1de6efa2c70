/* fake_env.c - see fake_env.h. */
#include "fake_env.h"
#include "env_listen.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "loop.h"
#include "util.h"

struct env {
	struct loop *loop;
	char *id;
	bool is_local;
	const struct env_ops *ops;
	void *arg;
	enum env_state state;
	char *error;
	uint32_t next_id;
	unsigned requests[256]; /* by type, low byte */
	struct pending *pending;
};

struct pending {
	struct pending *next;
	struct env *e;
	uint32_t id;
	uint16_t type;
	env_reply_cb cb;
	void *arg;
	struct loop_timer *timer;
	char *path;     /* ROOT_RESOLVE */
	char *server;   /* MCP_START */
	char *command;
	json_t *tools;
	json_t *start;   /* MCP_START: {root?, sandbox?, env} as sent */
	uint64_t handle; /* MCP_STOP */
};

struct proc {
	struct proc *next;
	struct env *e;
	uint64_t handle;
	char *server;
	json_t *tools;
	bool alive;
};

/* A message from a process, delivered from the loop. */
struct output {
	struct output *next;
	struct loop_timer *timer;
	struct env *e;
	uint64_t handle;
	char *json;
};

struct root {
	struct root *next;
	char *path, *servers, *invalid;
};

static struct {
	struct root *roots;
	struct proc *procs;
	struct output *outputs; /* not delivered yet */
	uint64_t next_handle;
	unsigned live, cancels;
	json_t *started; /* server name -> count */
	json_t *calls;   /* tool name -> count */
	json_t *starts;  /* server name -> the last MCP_START's {root?, sandbox?, env} */
} fk;

static void output_free(struct output *o);

/* ---- counters and scripts ---------------------------------------------- */

static void bump(json_t **obj, const char *key)
{
	if (!*obj)
		*obj = json_object();
	json_object_set_new(*obj, key,
			    json_integer(json_integer_value(json_object_get(*obj, key)) + 1));
}

static unsigned count(json_t *obj, const char *key)
{
	return (unsigned)json_integer_value(json_object_get(obj, key));
}

void fake_env_root(const char *path, const char *servers_json, const char *invalid_json)
{
	struct root *r = xcalloc(1, sizeof(*r));

	r->path = xstrdup(path);
	r->servers = servers_json ? xstrdup(servers_json) : NULL;
	r->invalid = invalid_json ? xstrdup(invalid_json) : NULL;
	r->next = fk.roots; /* the latest wins */
	fk.roots = r;
}

unsigned fake_env_requests(const struct env *e, uint16_t type) { return e->requests[type & 0xff]; }
unsigned fake_env_live(void) { return fk.live; }
unsigned fake_env_started(const char *server) { return count(fk.started, server); }
unsigned fake_env_tool_calls(const char *tool) { return count(fk.calls, tool); }
unsigned fake_env_cancels(void) { return fk.cancels; }

void fake_env_reset(void)
{
	while (fk.outputs) {
		loop_timer_cancel(fk.outputs->timer);
		output_free(fk.outputs);
	}
	while (fk.roots) {
		struct root *r = fk.roots;

		fk.roots = r->next;
		free(r->path);
		free(r->servers);
		free(r->invalid);
		free(r);
	}
	while (fk.procs) {
		struct proc *p = fk.procs;

		fk.procs = p->next;
		free(p->server);
		json_decref(p->tools);
		free(p);
	}
	json_decref(fk.started);
	json_decref(fk.calls);
	json_decref(fk.starts);
	memset(&fk, 0, sizeof(fk));
}

/* ---- processes --------------------------------------------------------- */

static struct proc *proc_find(const struct env *e, uint64_t handle)
{
	for (struct proc *p = fk.procs; p; p = p->next)
		if (p->e == e && p->handle == handle && p->alive)
			return p;
	return NULL;
}

static void proc_end(struct proc *p)
{
	if (p->alive)
		fk.live--;
	p->alive = false;
}

static void output_free(struct output *o)
{
	for (struct output **pp = &fk.outputs; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	free(o->json);
	free(o);
}

static void output_cb(struct loop_timer *t, void *arg)
{
	struct output *o = arg;

	(void)t;
	if (proc_find(o->e, o->handle) && o->e->state == ENV_READY && o->e->ops->output_cb)
		o->e->ops->output_cb(o->e, o->handle, o->json, strlen(o->json), o->e->arg);
	output_free(o);
}

static void answer(struct proc *p, json_t *id, json_t *result)
{
	struct output *o = xcalloc(1, sizeof(*o));
	json_t *msg = json_pack("{s:s, s:O, s:o}", "jsonrpc", "2.0", "id", id, "result", result);

	o->e = p->e;
	o->handle = p->handle;
	o->json = json_dumps(msg, JSON_COMPACT);
	json_decref(msg);
	o->timer = loop_timer_add(p->e->loop, 0, output_cb, o);
	o->next = fk.outputs;
	fk.outputs = o;
}

static json_t *call_result(json_t *params)
{
	const char *tool = json_string_value(json_object_get(params, "name"));
	const char *text = json_string_value(
		json_object_get(json_object_get(params, "arguments"), "text"));

	bump(&fk.calls, tool ? tool : "");
	if (tool && strcmp(tool, "hang") == 0)
		return NULL;
	if (!tool || strcmp(tool, "echo") != 0)
		text = tool ? tool : "";
	return json_pack("{s:[{s:s, s:s}]}", "content", "type", "text", "text", text ? text : "");
}

/* The process's MCP server. */
static void serve(struct proc *p, json_t *m)
{
	const char *method = json_string_value(json_object_get(m, "method"));
	json_t *id = json_object_get(m, "id"), *res = NULL;

	if (!method)
		return;
	if (strcmp(method, "notifications/cancelled") == 0)
		fk.cancels++;
	if (!id)
		return;
	if (strcmp(method, "initialize") == 0)
		res = json_pack("{s:s, s:{s:{}}, s:{s:s, s:s}}", "protocolVersion", "2025-06-18",
				"capabilities", "tools", "serverInfo", "name", "fake-mcp",
				"version", "1");
	else if (strcmp(method, "tools/list") == 0)
		res = json_pack("{s:O}", "tools", p->tools);
	else if (strcmp(method, "ping") == 0)
		res = json_object();
	else if (strcmp(method, "tools/call") == 0)
		res = call_result(json_object_get(m, "params"));
	if (res)
		answer(p, id, res);
}

int env_mcp_send(struct env *e, uint64_t handle, const char *data, size_t len)
{
	struct proc *p = proc_find(e, handle);
	json_t *m;

	if (e->state != ENV_READY)
		return -ENOTCONN;
	if (!p)
		return 0; /* the executor drops what goes to an unknown handle */
	m = json_loadb(data, len, 0, NULL);
	serve(p, m);
	json_decref(m);
	return 0;
}

bool fake_env_exit(struct env *e, const char *server, const char *reason)
{
	for (struct proc *p = fk.procs; p; p = p->next) {
		if (p->e == e && p->alive && strcmp(p->server, server) == 0) {
			proc_end(p);
			if (e->ops->exited_cb)
				e->ops->exited_cb(e, p->handle, reason, e->arg);
			return true;
		}
	}
	return false;
}

/* ---- requests ---------------------------------------------------------- */

static void pending_free(struct pending *p)
{
	loop_timer_cancel(p->timer);
	free(p->path);
	free(p->server);
	free(p->command);
	json_decref(p->tools);
	json_decref(p->start);
	free(p);
}

static struct pending *pending_take(struct env *e, struct pending *want)
{
	for (struct pending **pp = &e->pending; *pp; pp = &(*pp)->next) {
		if (*pp == want) {
			*pp = want->next;
			return want;
		}
	}
	return NULL;
}

static void finish(struct pending *p, const struct proto_msg *reply, const char *error)
{
	if (p->cb)
		p->cb(p->e, reply, error, p->arg);
	pending_free(p);
}

static void reply_root(struct pending *p)
{
	struct proto_msg m = { 0 };
	struct root *r = fk.roots;
	char why[512];

	while (r && strcmp(r->path, p->path) != 0)
		r = r->next;
	if (!r || !r->servers) {
		snprintf(why, sizeof(why), "no plugin root at %s", p->path);
		finish(p, NULL, why);
		return;
	}
	m.u.root_resolve_reply.path = proto_str_c(p->path);
	m.u.root_resolve_reply.is_plugin = true;
	m.u.root_resolve_reply.servers = proto_str_c(r->servers);
	if (r->invalid)
		m.u.root_resolve_reply.invalid = proto_str_c(r->invalid);
	finish(p, &m, NULL);
}

/* What an executor would answer about the box (executor/box.c's rule,
 * simplified): off when asked, boxed with a plugin root or a sandbox
 * table, else off. */
static const char *box_of(json_t *start)
{
	json_t *box = json_object_get(start, "sandbox");
	json_t *sb = json_object_get(box, "sandbox");

	if (json_is_true(json_object_get(sb, "off")))
		return "off: sandbox = \"off\" in its config";
	if (json_object_get(start, "root") || sb)
		return "landlock ABI 7, private directory (fake)";
	return "off: not a plugin server (a sandbox table in its config boxes it)";
}

static void reply_start(struct pending *p)
{
	struct proto_msg m = { 0 };
	struct proc *pr;

	if (strcmp(p->command, "fake-mcp") != 0) {
		finish(p, NULL, "spawn failed: no such program");
		return;
	}
	pr = xcalloc(1, sizeof(*pr));
	pr->e = p->e;
	pr->handle = ++fk.next_handle;
	pr->server = xstrdup(p->server);
	pr->tools = json_incref(p->tools);
	pr->alive = true;
	pr->next = fk.procs;
	fk.procs = pr;
	fk.live++;
	bump(&fk.started, p->server);
	if (!fk.starts)
		fk.starts = json_object();
	json_object_set(fk.starts, p->server, p->start);
	m.u.mcp_start_reply.handle = pr->handle;
	m.u.mcp_start_reply.sandbox = proto_str_c(box_of(p->start));
	PROTO_MARK(&m.u.mcp_start_reply, mcp_start_reply, sandbox);
	finish(p, &m, NULL);
}

static void deliver_cb(struct loop_timer *t, void *arg)
{
	struct pending *p = arg;
	struct proc *pr;
	struct proto_msg m = { 0 };

	(void)t;
	p->timer = NULL;
	pending_take(p->e, p);
	switch (p->type) {
	case PROTO_ROOT_RESOLVE:
		reply_root(p);
		break;
	case PROTO_MCP_START:
		reply_start(p);
		break;
	case PROTO_MCP_STOP:
		if ((pr = proc_find(p->e, p->handle)))
			proc_end(pr);
		finish(p, &m, NULL);
		break;
	default:
		finish(p, NULL, "the fake executor does not do that");
	}
}

static json_t *tool_list(const struct proto_strlist *args)
{
	json_t *tools = json_array();

	for (uint32_t i = 0; i < args->n; i++) {
		char *name = proto_str_dup(args->items[i]);

		json_array_append_new(tools, json_pack("{s:s, s:s, s:{s:s}}", "name", name,
						       "description", "a fake tool", "inputSchema",
						       "type", "object"));
		free(name);
	}
	return tools;
}

static json_t *start_record(const struct proto_mcp_start_body *ms)
{
	json_t *rec = json_object(), *env = json_object();

	if (PROTO_HAS_FIELD(ms, mcp_start_body, root))
		json_object_set_new(rec, "root", json_stringn(ms->root.ptr, ms->root.len));
	if (PROTO_HAS_FIELD(ms, mcp_start_body, sandbox))
		json_object_set_new(rec, "sandbox", json_loadb(ms->sandbox.ptr, ms->sandbox.len, 0,
							       NULL));
	for (uint32_t i = 0; i < ms->env.n; i++) {
		char *k = proto_str_dup(ms->env.keys[i]), *v = proto_str_dup(ms->env.vals[i]);

		json_object_set_new(env, k, json_string(v));
		free(k);
		free(v);
	}
	json_object_set_new(rec, "env", env);
	return rec;
}

static void take_body(struct pending *p, const void *body)
{
	const struct proto_root_resolve_body *rr = body;
	const struct proto_mcp_start_body *ms = body;
	const struct proto_mcp_stop_body *st = body;

	switch (p->type) {
	case PROTO_ROOT_RESOLVE:
		p->path = proto_str_dup(rr->path);
		break;
	case PROTO_MCP_START:
		p->server = proto_str_dup(ms->server_name);
		p->command = proto_str_dup(ms->command);
		p->tools = tool_list(&ms->args);
		p->start = start_record(ms);
		break;
	case PROTO_MCP_STOP:
		p->handle = st->handle;
		break;
	}
}

uint32_t env_request(struct env *e, uint16_t type, const void *body, uint64_t timeout_ms,
		     env_reply_cb cb, void *arg)
{
	struct pending *p;

	(void)timeout_ms;
	if (e->state != ENV_READY)
		return 0;
	e->requests[type & 0xff]++;
	p = xcalloc(1, sizeof(*p));
	p->e = e;
	p->id = ++e->next_id;
	p->type = type;
	p->cb = cb;
	p->arg = arg;
	take_body(p, body);
	p->timer = loop_timer_add(e->loop, 0, deliver_cb, p);
	p->next = e->pending;
	e->pending = p;
	return p->id;
}

void env_request_forget(struct env *e, uint32_t id)
{
	for (struct pending *p = e->pending; p; p = p->next)
		if (p->id == id)
			p->cb = NULL;
}

static void fail_all(struct env *e, const char *why)
{
	while (e->pending) {
		struct pending *p = e->pending;

		e->pending = p->next;
		finish(p, NULL, why);
	}
}

/* ---- environments ------------------------------------------------------ */

const char *env_state_name(enum env_state s)
{
	switch (s) {
	case ENV_CONNECTING: return "connecting";
	case ENV_READY: return "ready";
	default: return "disconnected";
	}
}

struct env *env_new(struct loop *l, const struct env_spec *spec, const struct env_ops *ops,
		    void *arg)
{
	struct env *e = xcalloc(1, sizeof(*e));

	e->loop = l;
	e->id = xstrdup(spec->id);
	e->is_local = spec->is_local;
	e->ops = ops;
	e->arg = arg;
	return e;
}

int env_start(struct env *e, char *err, size_t errlen) { return 0; }

void fake_env_set_state(struct env *e, enum env_state st, const char *error)
{
	char msg[512];

	free(e->error);
	e->error = error ? xstrdup(error) : NULL;
	if (st != ENV_READY) {
		snprintf(msg, sizeof(msg), "environment '%s' disconnected: %s", e->id,
			 error ? error : "gone");
		fail_all(e, msg);
		for (struct proc *p = fk.procs; p; p = p->next)
			if (p->e == e)
				proc_end(p); /* the executor went with its processes */
	}
	e->state = st;
	if (e->ops->state_cb)
		e->ops->state_cb(e, st, e->arg);
}

struct env *env_free(struct env *e)
{
	if (!e)
		return NULL;
	fail_all(e, "the orchestrator is shutting down");
	for (struct proc *p = fk.procs; p; p = p->next)
		if (p->e == e) {
			proc_end(p);
			p->e = NULL;
		}
	free(e->id);
	free(e->error);
	free(e);
	return NULL;
}

const char *env_id(const struct env *e) { return e->id; }
enum env_state env_state(const struct env *e) { return e->state; }
const char *env_error(const struct env *e) { return e->error; }
const char *env_executor_id(const struct env *e) { return "fake-executor"; }
bool env_is_local(const struct env *e) { return e->is_local; }
bool env_spawned(const struct env *e) { return false; }
unsigned env_restarts(const struct env *e) { return 0; }
int env_executor_pid(const struct env *e) { return -1; }
struct http *env_http(struct env *e) { return NULL; }
void env_set_executor_path(const char *path) { (void)path; }
const char *env_executor_path(void) { return "fake-executor"; }
const char *env_spawn_program(const char *configured) { return configured; }
const char *env_spawn_runtime_dir(char *err, size_t errlen)
{
	snprintf(err, errlen, "the fake environments spawn nothing");
	return NULL;
}

json_t *fake_env_last_start(const char *server)
{
	return json_object_get(fk.starts, server);
}

/* ---- status fields, removal and dial-in (no link here) ---------------- */

const char *env_direction_name(enum env_direction d)
{
	return d == ENV_SPAWNED ? "spawned" : d == ENV_DIALLED_IN ? "dialled in" : "dialled";
}
enum env_direction env_direction(const struct env *e) { return ENV_DIALLED; }
unsigned env_reconnects(const struct env *e) { return 0; }
uint64_t env_dial_attempts(const struct env *e) { return 0; }
uint64_t env_redial_delay_ms(const struct env *e) { return 0; }
const char *env_last_error(const struct env *e) { return e->error; }
void env_mark_failed(struct env *e, const char *why)
{
	fake_env_set_state(e, ENV_DISCONNECTED, why);
}
int env_adopt(struct env *e, struct link *lk, const char *listen_url) { return -EINVAL; }
int env_listen_start(struct loop *l, const char *url, const char *tls_file,
		     env_listen_lookup_fn lookup, char *err, size_t errlen)
{
	snprintf(err, errlen, "the fake environments listen for nothing");
	return -ENOTSUP;
}
void env_listen_stop(void) {}
bool env_sealed(const struct env *e) { return false; }
uint64_t env_rtt_us(const struct env *e) { return 0; }
bool env_claim_detached(struct env *e, const uint8_t id[PROTO_ID_LEN], uint64_t *handle)
{
	return false;
}
unsigned env_detached_count(const struct env *e) { return 0; }
bool env_detached_more(const struct env *e) { return false; }
int env_reply_status(const struct env *e) { return 0; }
/* Sessions: the double's link never drops, so it never waits to resume,
 * and every request it was given reached its fake executor. */
bool env_resumable(const struct env *e) { return false; }

int env_mcp_send_call(struct env *e, uint64_t handle, const char *data, size_t len,
		      uint64_t call_id, uint64_t timeout_ms, uint64_t *ticket)
{
	int r = env_mcp_send(e, handle, data, len);

	if (r == 0)
		*ticket = 0;
	return r;
}

/* The fake server reads everything at once: nothing ever waits to be
 * withdrawn, so a cancel is only counted (fake_env_requests). */
int env_mcp_cancel(struct env *e, uint64_t handle, uint64_t call_id, const char *reason)
{
	if (e->state != ENV_READY)
		return -ENOTCONN;
	e->requests[PROTO_MCP_CANCEL & 0xff]++;
	return 0;
}

int env_mcp_note(struct env *e, uint64_t handle, const char *note, size_t len)
{
	if (e->state != ENV_READY)
		return -ENOTCONN;
	e->requests[PROTO_MCP_NOTE & 0xff]++;
	return 0;
}

bool env_mcp_maybe_reached(const struct env *e, uint64_t ticket) { return true; }
unsigned env_resumes(const struct env *e) { return 0; }
void env_session_hex(const struct env *e, char out[33]) { out[0] = '\0'; }
