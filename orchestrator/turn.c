/* turn.c - see turn.h. */
#include "turn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "mcp.h"
#include "model.h"
#include "notify.h"
#include "srv.h"
#include "thread.h"
#include "toolnames.h"
#include "util.h"

struct tcall {
	struct turn *turn;
	char *call_id;
	char *server;
	char *tool;
	json_t *args;
	json_t *item;        /* the mcpToolCall ThreadItem */
	struct srv *srv;     /* held while running */
	uint64_t mcp_call;
	uint64_t started_ms;
	char *output;        /* function_call_output text, once done */
	bool done;
};

struct turn {
	struct turn *next;   /* all running turns */
	struct thread *t;
	char id[UUID_STR_SIZE];
	json_t *items;       /* ThreadItems of this turn */
	int64_t started_at;
	uint64_t started_ms;
	unsigned step;
	struct model_req *mreq;
	bool model_done;
	struct toolmap *map;
	struct tcall **calls; /* this step's function calls, in order */
	size_t n_calls;
	json_t *content;     /* the user's message, until turn_run */
	json_t *user;
	char *msg_id;        /* the agent message being streamed */
	bool waiting;        /* for thread_when_settled */
	bool stopping;       /* interrupted or failed: no further step */
	bool ended;
};

static struct {
	struct loop *loop;
	struct http *http; /* the model API's requests */
	struct turn *live; /* every running turn */
} turns;

void turn_init(struct loop *l, struct http *h)
{
	turns.loop = l;
	turns.http = h;
}

static void step(struct turn *u);
static void end_turn(struct turn *u, const char *status, const char *error);

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- notifications ----------------------------------------------------- */

static void notify(struct turn *u, enum notify_kind k, json_t *params)
{
	json_object_set_new(params, "threadId", json_string(thread_id(u->t)));
	json_object_set_new(params, "turnId", json_string(u->id));
	notify_owner(thread_owner(u->t), k, params);
}

/* Both steal `item`. */
static void item_started(struct turn *u, json_t *item)
{
	notify(u, NOTIFY_ITEM_STARTED, json_pack("{s:o, s:I}", "item", item, "startedAtMs",
					    (json_int_t)wall_ms()));
}

static void item_completed(struct turn *u, json_t *item)
{
	json_array_append(u->items, item);
	notify(u, NOTIFY_ITEM_COMPLETED, json_pack("{s:o, s:I}", "item", item, "completedAtMs",
					      (json_int_t)wall_ms()));
}

static json_t *turn_json(const struct turn *u, const char *status, const char *error)
{
	json_t *j = json_pack("{s:s, s:O, s:s, s:I}", "id", u->id, "items", u->items, "status",
			      status, "startedAt", (json_int_t)u->started_at);

	if (strcmp(status, "inProgress") != 0) {
		json_object_set_new(j, "completedAt", json_integer((json_int_t)time(NULL)));
		json_object_set_new(j, "durationMs",
				    json_integer((json_int_t)(now_ms() - u->started_ms)));
	}
	json_object_set_new(j, "error", error ? json_pack("{s:s}", "message", error) : json_null());
	return j;
}

/* ---- tool calls -------------------------------------------------------- */

static void tcall_free(struct tcall *c)
{
	if (c->srv)
		srv_release(c->srv);
	free(c->call_id);
	free(c->server);
	free(c->tool);
	free(c->output);
	json_decref(c->args);
	json_decref(c->item);
	free(c);
}

static bool all_calls_done(const struct turn *u)
{
	for (size_t i = 0; i < u->n_calls; i++)
		if (!u->calls[i]->done)
			return false;
	return true;
}

/* After the response and every call of this step: append the outputs in
 * call order and sample again. */
static void maybe_next_step(struct turn *u)
{
	json_t *h = thread_history(u->t);

	if (!u->model_done || !all_calls_done(u) || u->stopping || u->ended)
		return;
	for (size_t i = 0; i < u->n_calls; i++) {
		json_array_append_new(h, json_pack("{s:s, s:s, s:s}", "type", "function_call_output",
						   "call_id", u->calls[i]->call_id, "output",
						   u->calls[i]->output));
		tcall_free(u->calls[i]);
	}
	free(u->calls);
	u->calls = NULL;
	u->n_calls = 0;
	step(u);
}

/* The model reads structuredContent when there is one, else content. */
static char *output_text(json_t *result)
{
	json_t *sc = json_object_get(result, "structuredContent");
	json_t *v = sc && !json_is_null(sc) ? sc : json_object_get(result, "content");
	char *s = json_dumps(v ? v : json_array(), JSON_COMPACT | JSON_ENCODE_ANY);

	return s ? s : xstrdup("[]");
}

static void call_finish(struct tcall *c, json_t *result, const char *error)
{
	json_t *item = c->item;

	c->done = true;
	c->mcp_call = 0;
	json_object_set_new(item, "durationMs", json_integer((json_int_t)(now_ms() - c->started_ms)));
	if (error) {
		c->output = xasprintf("error: %s", error);
		json_object_set_new(item, "status", json_string("failed"));
		json_object_set_new(item, "error", json_pack("{s:s}", "message", error));
	} else {
		c->output = output_text(result);
		json_object_set_new(item, "status",
				    json_string(json_is_true(json_object_get(result, "isError"))
							? "failed"
							: "completed"));
		json_t *content = json_object_get(result, "content");
		json_t *sc = json_object_get(result, "structuredContent");

		json_object_set_new(item, "result",
				    json_pack("{s:o, s:o}", "content",
					      content ? json_incref(content) : json_array(),
					      "structuredContent", sc ? json_incref(sc) : json_null()));
	}
	if (!c->turn->ended)
		item_completed(c->turn, json_incref(item));
}

static void call_done_cb(struct mcp_session *m, json_t *result, const char *error, void *arg)
{
	struct tcall *c = arg;

	call_finish(c, result, error);
	maybe_next_step(c->turn);
}

/* A call the model made that cannot run: it still gets an output, so the
 * model sees what went wrong and the turn goes on. */
static void call_refuse(struct tcall *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void call_refuse(struct tcall *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	call_finish(c, NULL, why);
}

static void start_call(struct turn *u, json_t *fc)
{
	const char *ns = json_string_value(json_object_get(fc, "namespace"));
	const char *name = json_string_value(json_object_get(fc, "name"));
	const char *args = json_string_value(json_object_get(fc, "arguments"));
	const char *call_id = json_string_value(json_object_get(fc, "call_id"));
	const char *server = NULL, *tool = NULL;
	struct tcall *c = xcalloc(1, sizeof(*c));
	json_error_t jerr;
	struct mcp_session *m;

	c->turn = u;
	c->call_id = xstrdup(call_id ? call_id : "");
	c->started_ms = now_ms();
	u->calls = xrealloc(u->calls, (u->n_calls + 1) * sizeof(*u->calls));
	u->calls[u->n_calls++] = c;
	toolmap_lookup(u->map, ns, name ? name : "", &server, &tool);
	c->server = xstrdup(server ? server : ns ? ns : "");
	c->tool = xstrdup(tool ? tool : name ? name : "");
	c->args = args ? json_loads(args, JSON_DECODE_ANY, &jerr) : json_object();
	c->item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "type", "mcpToolCall", "id",
			    c->call_id, "server", c->server, "tool", c->tool, "status",
			    "inProgress", "arguments", c->args ? c->args : json_null());
	item_started(u, json_incref(c->item));
	if (!server) {
		call_refuse(c, "error: the model called an unknown tool '%s%s'", ns ? ns : "",
			    name ? name : "");
		return;
	}
	if (!json_is_object(c->args)) {
		call_refuse(c, "error: the arguments of %s.%s are not a JSON object", server, tool);
		return;
	}
	c->srv = thread_server(u->t, server);
	m = c->srv ? srv_mcp(c->srv) : NULL;
	if (!m) {
		c->srv = NULL;
		call_refuse(c, "error: server '%s' is not running", server);
		return;
	}
	srv_ref(c->srv);
	c->mcp_call = mcp_call_tool(m, tool, c->args, 0, call_done_cb, c);
	if (!c->mcp_call)
		call_refuse(c, "error: server '%s' refused the call to '%s'", server, tool);
}

/* ---- the model --------------------------------------------------------- */

static void delta_cb(const char *item_id, const char *delta, size_t len, void *arg)
{
	struct turn *u = arg;
	json_t *d;

	if (!u->msg_id || (item_id && strcmp(u->msg_id, item_id) != 0)) {
		char gen[UUID_STR_SIZE];

		free(u->msg_id);
		uuid_v4(gen);
		u->msg_id = xstrdup(item_id ? item_id : gen);
		item_started(u, json_pack("{s:s, s:s, s:s}", "type", "agentMessage", "id", u->msg_id,
					  "text", ""));
	}
	d = json_stringn(delta, len);
	if (!d)
		return; /* not UTF-8: json_stringn refuses it */
	notify(u, NOTIFY_AGENT_MESSAGE_DELTA, json_pack("{s:s, s:o}", "itemId", u->msg_id, "delta", d));
}

static json_t *message_text(json_t *item)
{
	json_t *content = json_object_get(item, "content"), *part;
	char *buf = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&buf, &len);
	json_t *s;

	json_array_foreach(content, i, part)
		if (json_is_string(json_object_get(part, "text")))
			fputs(json_string_value(json_object_get(part, "text")), f);
	fclose(f);
	s = json_string(buf ? buf : "");
	free(buf);
	return s ? s : json_string("");
}

static void item_cb(json_t *item, void *arg)
{
	struct turn *u = arg;
	const char *type = json_string_value(json_object_get(item, "type"));
	json_t *h = thread_history(u->t);

	if (!type)
		return;
	if (strcmp(type, "message") == 0) {
		json_t *text = message_text(item);
		const char *id = json_string_value(json_object_get(item, "id"));
		char gen[UUID_STR_SIZE];

		if (!u->msg_id) { /* not streamed: announce it now */
			uuid_v4(gen);
			u->msg_id = xstrdup(id ? id : gen);
			item_started(u, json_pack("{s:s, s:s, s:s}", "type", "agentMessage", "id",
						  u->msg_id, "text", ""));
		}
		item_completed(u, json_pack("{s:s, s:s, s:O}", "type", "agentMessage", "id",
					    u->msg_id, "text", text));
		json_array_append_new(h, json_pack("{s:s, s:s, s:[{s:s, s:O}]}", "type", "message",
						   "role", "assistant", "content", "type",
						   "output_text", "text", text));
		json_decref(text);
		free(u->msg_id);
		u->msg_id = NULL;
	} else if (strcmp(type, "function_call") == 0) {
		json_t *fc = json_pack("{s:s, s:O, s:O, s:O}", "type", "function_call", "call_id",
				       json_object_get(item, "call_id"), "name",
				       json_object_get(item, "name"), "arguments",
				       json_object_get(item, "arguments"));

		if (json_object_get(item, "namespace"))
			json_object_set(fc, "namespace", json_object_get(item, "namespace"));
		json_array_append_new(h, fc);
		start_call(u, item);
	}
}

static void model_done_cb(json_t *response, const char *error, void *arg)
{
	struct turn *u = arg;
	_cleanup_free_ char *why = error ? xstrdup(error) : NULL; /* error dies with mreq */

	model_cancel(u->mreq);
	u->mreq = NULL;
	toolmap_free(u->map);
	u->map = NULL;
	if (why) {
		end_turn(u, "failed", why);
		return;
	}
	u->model_done = true;
	if (u->n_calls == 0)
		end_turn(u, "completed", NULL);
	else
		maybe_next_step(u);
}

static const struct model_cbs turn_model_cbs = {
	.delta_cb = delta_cb,
	.item_cb = item_cb,
	.done_cb = model_done_cb,
};

static json_t *request_body(struct turn *u, json_t *tools)
{
	const struct config *c = config_current();
	const char *model = thread_model(u->t) ? thread_model(u->t) : c->model ? c->model : "gpt-5";
	json_t *b = json_pack("{s:s, s:O, s:O, s:s, s:b}", "model", model, "input",
			      thread_history(u->t), "tools", tools, "tool_choice", "auto",
			      "parallel_tool_calls", 1);

	json_object_set_new(b, "instructions",
			    json_string(c->instructions ? c->instructions
							: "You are tandem, an agent that can use the tools "
						  "of the user's selected plugins."));
	return b;
}

static void step_settled_cb(struct thread *t, void *arg)
{
	struct turn *u = arg;
	struct srv **srvs = xcalloc(thread_n_servers(t) + 1, sizeof(*srvs));
	json_t *tools, *body;
	char err[512];

	u->waiting = false;
	for (size_t i = 0; i < thread_n_servers(t); i++)
		srvs[i] = thread_server_at(t, i);
	tools = toolnames_build(srvs, thread_n_servers(t), &u->map);
	free(srvs);
	body = request_body(u, tools);
	json_decref(tools);
	u->model_done = false;
	u->mreq = model_stream(turns.loop, turns.http, config_provider(config_current()), body,
			       &turn_model_cbs, u, err, sizeof(err));
	json_decref(body);
	if (!u->mreq)
		end_turn(u, "failed", err);
}

static void step(struct turn *u)
{
	if (++u->step > TURN_MAX_STEPS) {
		end_turn(u, "failed", "the model kept calling tools: step limit reached");
		return;
	}
	/* Per-step projection: same ready roots, same runtime. */
	thread_project(u->t);
	u->waiting = true;
	thread_when_settled(u->t, step_settled_cb, u);
}

/* ---- lifecycle --------------------------------------------------------- */

static void turn_free(struct turn *u)
{
	for (struct turn **pp = &turns.live; *pp; pp = &(*pp)->next) {
		if (*pp == u) {
			*pp = u->next;
			break;
		}
	}
	for (size_t i = 0; i < u->n_calls; i++)
		tcall_free(u->calls[i]);
	free(u->calls);
	toolmap_free(u->map);
	json_decref(u->items);
	json_decref(u->content);
	json_decref(u->user);
	free(u->msg_id);
	free(u);
}

/* Stops what is in flight: the HTTP request, the MCP calls (the servers get
 * notifications/cancelled), the wait for the runtime. */
static void stop_work(struct turn *u)
{
	if (u->mreq) {
		model_cancel(u->mreq);
		u->mreq = NULL;
	}
	if (u->waiting) {
		thread_forget_waiter(u->t, step_settled_cb, u);
		u->waiting = false;
	}
	for (size_t i = 0; i < u->n_calls; i++) {
		struct tcall *c = u->calls[i];

		if (!c->done && c->mcp_call && c->srv && srv_mcp(c->srv))
			mcp_cancel(srv_mcp(c->srv), c->mcp_call, "the turn was interrupted");
		else if (!c->done)
			call_finish(c, NULL, "the turn was interrupted");
	}
}

static void end_turn(struct turn *u, const char *status, const char *error)
{
	json_t *tj;

	if (u->ended)
		return;
	u->stopping = true;
	stop_work(u);
	u->ended = true;
	tj = turn_json(u, status, error);
	json_array_append(thread_turns(u->t), tj);
	thread_set_turn(u->t, NULL);
	if (error)
		log_warn("thread %s turn %s %s: %s", thread_id(u->t), u->id, status, error);
	notify_owner(thread_owner(u->t), NOTIFY_TURN_COMPLETED,
		     json_pack("{s:s, s:o}", "threadId", thread_id(u->t), "turn", tj));
	turn_free(u);
}

/* The user's message, as a Responses API content array and as the
 * userMessage item's content. */
static void user_content(const char *const *texts, size_t n, json_t **content, json_t **user)
{
	*content = json_array();
	*user = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_append_new(*content, json_pack("{s:s, s:s}", "type", "input_text", "text",
							  texts[i]));
		json_array_append_new(*user, json_pack("{s:s, s:s, s:[]}", "type", "text", "text",
						       texts[i], "text_elements"));
	}
}

int turn_new(struct thread *t, uint64_t owner, const char *const *texts, size_t n,
	     struct turn **out, char *err, size_t errlen)
{
	size_t total = 0;
	struct turn *u;

	if (thread_turn(t)) {
		snprintf(err, errlen, "thread %s already has a turn running", thread_id(t));
		return -EBUSY;
	}
	for (size_t i = 0; i < n; i++)
		total += strlen(texts[i]);
	if (n == 0 || total > TURN_MAX_INPUT_BYTES) {
		snprintf(err, errlen, n ? "input: more than %u bytes of text"
				       : "input: expected a non-empty array", TURN_MAX_INPUT_BYTES);
		return -EINVAL;
	}
	u = xcalloc(1, sizeof(*u));
	u->t = t;
	uuid_v4(u->id);
	u->items = json_array();
	u->started_at = (int64_t)time(NULL);
	u->started_ms = now_ms();
	u->next = turns.live;
	turns.live = u;
	user_content(texts, n, &u->content, &u->user);
	thread_set_turn(t, u);
	thread_set_owner(t, owner); /* the client running the turn hears about it */
	*out = u;
	return 0;
}

json_t *turn_object(const struct turn *u) { return turn_json(u, "inProgress", NULL); }
const char *turn_id(const struct turn *u) { return u->id; }

void turn_run(struct turn *u)
{
	char uid[UUID_STR_SIZE];
	json_t *item;

	json_array_append_new(thread_history(u->t), json_pack("{s:s, s:s, s:o}", "type", "message",
							      "role", "user", "content",
							      TAKE_PTR(u->content)));
	notify_owner(thread_owner(u->t), NOTIFY_TURN_STARTED,
		     json_pack("{s:s, s:o}", "threadId", thread_id(u->t), "turn",
			       turn_json(u, "inProgress", NULL)));
	uuid_v4(uid);
	item = json_pack("{s:s, s:s, s:o}", "type", "userMessage", "id", uid, "content",
			 TAKE_PTR(u->user));
	item_started(u, json_incref(item));
	item_completed(u, item);
	step(u);
}

void turn_interrupt(struct turn *u) { end_turn(u, "interrupted", NULL); }

void turn_abort_all(void)
{
	while (turns.live) {
		struct turn *u = turns.live;

		thread_set_owner(u->t, 0); /* quietly: the clients are gone */
		end_turn(u, "interrupted", NULL);
	}
}
