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
#include "metrics_tandem.h"
#include "model.h"
#include "notify.h"
#include "srv.h"
#include "store.h"
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
	int64_t seq;         /* the item's place in the turn (store.h) */
	int64_t started_wall_ms;
	char *output;        /* function_call_output text, once done */
	bool saving;         /* waiting for its record to commit before it runs */
	bool done;
};

struct turn {
	struct turn *next;   /* all running turns */
	struct thread *t;
	char id[UUID_STR_SIZE];
	json_t *items;       /* ThreadItems of this turn */
	json_t *rows;        /* [[seq, startedMs, completedMs]] of items */
	json_t *usage;       /* token usage summed over the steps, or NULL */
	int64_t seq;         /* the turn's place in its thread */
	int64_t next_item;   /* the next item's seq */
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
	char *preview;       /* the first text, for the thread's preview */
	char *msg_id;        /* the agent message being streamed */
	int64_t msg_seq, msg_started_ms;
	bool waiting;        /* for thread_when_settled */
	bool stopping;       /* interrupted or failed: no further step */
	bool ended;
};

static struct {
	struct loop *loop;
	struct http *http; /* the model API's requests */
	struct turn *live; /* every running turn */
} turns;

static void step(struct turn *u);
static void end_turn(struct turn *u, const char *status, const char *error);

/* A write of the thread failed: its turn cannot be recorded, so it ends
 * (failed, saying why) rather than go on with what the store lacks. */
static void store_failed_cb(struct thread *t, const char *err)
{
	struct turn *u = thread_turn(t);
	_cleanup_free_ char *why = NULL;

	if (!u || u->ended)
		return;
	why = xasprintf("the thread store could not save this turn: %s", err);
	end_turn(u, "failed", why);
}

void turn_init(struct loop *l, struct http *h)
{
	turns.loop = l;
	turns.http = h;
	threads_set_store_failed_cb(store_failed_cb);
}

struct model_listing *turn_models(json_t *provider, model_list_cb cb, void *arg)
{
	return model_list(turns.http, provider, cb, arg);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- notifications ----------------------------------------------------- */

static void notify(struct turn *u, enum notify_kind k, json_t *params)
{
	json_object_set_new(params, "turnId", json_string(u->id));
	thread_notify(u->t, k, params);
}

/* Steals `item`. */
static void item_started(struct turn *u, json_t *item)
{
	notify(u, NOTIFY_ITEM_STARTED, json_pack("{s:o, s:I}", "item", item, "startedAtMs",
					    (json_int_t)wall_ms()));
}

/* Steals `item`: recorded (with b's other writes, b taken; NULL: a batch of
 * its own) and announced once the store has it (commit, then notify). */
static void item_completed(struct turn *u, json_t *item, int64_t seq, int64_t started_ms,
			   struct store_batch *b)
{
	int64_t done = wall_ms();

	if (!b)
		b = thread_batch(u->t);
	json_array_append(u->items, item);
	json_array_append_new(u->rows, json_pack("[I, I, I]", (json_int_t)seq,
						 (json_int_t)started_ms, (json_int_t)done));
	if (b)
		store_batch_item(b, u->seq, seq, started_ms, done, item);
	thread_submit(u->t, b);
	thread_notify_saved(u->t, NOTIFY_ITEM_COMPLETED,
			    json_pack("{s:o, s:s, s:I}", "item", item, "turnId", u->id,
				      "completedAtMs", (json_int_t)done));
}

/* The turn's row as it stands (status, times, error, usage). */
static void turn_row(struct turn *u, struct store_batch *b, const char *status,
		     const char *error, bool ended)
{
	struct store_turn row = {
		.seq = u->seq, .id = u->id, .status = status, .started_at = u->started_at,
		.completed_at = ended ? (int64_t)time(NULL) : 0,
		.duration_ms = ended ? (int64_t)(now_ms() - u->started_ms) : -1,
		.error = error, .usage = u->usage,
	};

	if (b)
		store_batch_turn(b, &row);
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

/* The outputs of this step's calls, in call order, into the history (and
 * the store); the calls are done with. Every function_call the model made
 * gets its output, also when the turn ends early: the next request must
 * carry one for each call. */
static void push_outputs(struct turn *u)
{
	struct store_batch *b = thread_batch(u->t);

	for (size_t i = 0; i < u->n_calls; i++) {
		struct tcall *c = u->calls[i];

		thread_history_push(u->t, json_pack("{s:s, s:s, s:s}", "type",
						    "function_call_output", "call_id", c->call_id,
						    "output", c->output ? c->output
									: "error: no result"),
				    b);
		tcall_free(c);
	}
	thread_submit(u->t, b);
	free(u->calls);
	u->calls = NULL;
	u->n_calls = 0;
}

/* After the response and every call of this step: append the outputs in
 * call order and sample again. */
static void maybe_next_step(struct turn *u)
{
	if (!u->model_done || !all_calls_done(u) || u->stopping || u->ended)
		return;
	push_outputs(u);
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
		item_completed(c->turn, json_incref(item), c->seq, c->started_wall_ms, NULL);
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

/* The call's record committed (or failed): run it now. */
static void call_saved_cb(struct thread *t, int rc, const char *err, void *arg)
{
	struct tcall *c = arg;
	struct mcp_session *m;

	c->saving = false;
	if (rc < 0) { /* the store failed: the turn ends (store_failed_cb) */
		call_finish(c, NULL, "the call was not run: the thread store could not record it");
		return;
	}
	c->srv = thread_server(t, c->server);
	m = c->srv ? srv_mcp(c->srv) : NULL;
	if (!m) {
		c->srv = NULL;
		call_refuse(c, "error: server '%s' is not running", c->server);
	} else {
		srv_ref(c->srv);
		c->mcp_call = mcp_call_tool(m, c->tool, c->args, 0, call_done_cb, c);
		if (!c->mcp_call)
			call_refuse(c, "error: server '%s' refused the call to '%s'", c->server,
				    c->tool);
	}
	if (c->done)
		maybe_next_step(c->turn);
}

static void start_call(struct turn *u, json_t *fc)
{
	const char *ns = json_string_value(json_object_get(fc, "namespace"));
	const char *name = json_string_value(json_object_get(fc, "name"));
	const char *args = json_string_value(json_object_get(fc, "arguments"));
	const char *call_id = json_string_value(json_object_get(fc, "call_id"));
	const char *server = NULL, *tool = NULL;
	struct tcall *c = xcalloc(1, sizeof(*c));
	struct store_batch *b;
	json_error_t jerr;

	c->turn = u;
	c->call_id = xstrdup(call_id ? call_id : "");
	c->started_ms = now_ms();
	c->seq = u->next_item++;
	c->started_wall_ms = wall_ms();
	u->calls = xrealloc(u->calls, (u->n_calls + 1) * sizeof(*u->calls));
	u->calls[u->n_calls++] = c;
	toolmap_lookup(u->map, ns, name ? name : "", &server, &tool);
	c->server = xstrdup(server ? server : ns ? ns : "");
	c->tool = xstrdup(tool ? tool : name ? name : "");
	c->args = args ? json_loads(args, JSON_DECODE_ANY, &jerr) : json_object();
	c->item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:O}", "type", "mcpToolCall", "id",
			    c->call_id, "server", c->server, "tool", c->tool, "status",
			    "inProgress", "arguments", c->args ? c->args : json_null());
	if (!server) {
		item_started(u, json_incref(c->item));
		call_refuse(c, "error: the model called an unknown tool '%s%s'", ns ? ns : "",
			    name ? name : "");
		return;
	}
	if (!json_is_object(c->args)) {
		item_started(u, json_incref(c->item));
		call_refuse(c, "error: the arguments of %s.%s are not a JSON object", server, tool);
		return;
	}
	/* Recorded before it runs (write-ahead): whatever happens to the
	 * orchestrator now, a call that may have run is on record, and a
	 * restart marks it failed rather than forget it or run it again. */
	if ((b = thread_batch(u->t))) {
		store_batch_item(b, u->seq, c->seq, c->started_wall_ms, 0, c->item);
		thread_submit(u->t, b);
	}
	item_started(u, json_incref(c->item));
	c->saving = true;
	thread_when_saved(u->t, call_saved_cb, c); /* at once for an ephemeral thread */
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
		u->msg_seq = u->next_item++;
		u->msg_started_ms = wall_ms();
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
	struct store_batch *b;

	if (!type)
		return;
	if (strcmp(type, "message") == 0) {
		json_t *text = message_text(item);
		const char *id = json_string_value(json_object_get(item, "id"));
		char gen[UUID_STR_SIZE];

		if (!u->msg_id) { /* not streamed: announce it now */
			uuid_v4(gen);
			u->msg_id = xstrdup(id ? id : gen);
			u->msg_seq = u->next_item++;
			u->msg_started_ms = wall_ms();
			item_started(u, json_pack("{s:s, s:s, s:s}", "type", "agentMessage", "id",
						  u->msg_id, "text", ""));
		}
		b = thread_batch(u->t);
		thread_history_push(u->t, json_pack("{s:s, s:s, s:[{s:s, s:O}]}", "type", "message",
						    "role", "assistant", "content", "type",
						    "output_text", "text", text),
				    b);
		item_completed(u, json_pack("{s:s, s:s, s:O}", "type", "agentMessage", "id",
					    u->msg_id, "text", text),
			       u->msg_seq, u->msg_started_ms, b);
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
		b = thread_batch(u->t);
		thread_history_push(u->t, fc, b);
		thread_submit(u->t, b);
		start_call(u, item);
	}
}

/* Sums the integer counts of usage (one level of *_details objects too)
 * into sum. */
static void usage_add(json_t *sum, json_t *usage)
{
	json_t *v, *dv;
	const char *k, *dk;

	json_object_foreach(usage, k, v) {
		if (json_is_integer(v)) {
			json_int_t have = json_integer_value(json_object_get(sum, k));

			json_object_set_new(sum, k, json_integer(have + json_integer_value(v)));
		} else if (json_is_object(v)) {
			json_t *in = json_object_get(sum, k);

			if (!json_is_object(in)) {
				in = json_object();
				json_object_set_new(sum, k, in);
			}
			json_object_foreach(v, dk, dv) { /* no deeper: the API has none */
				json_int_t have = json_integer_value(json_object_get(in, dk));

				if (json_is_integer(dv))
					json_object_set_new(in, dk,
							    json_integer(have + json_integer_value(dv)));
			}
		}
	}
}

static json_int_t usage_n(json_t *usage, const char *key, const char *detail)
{
	json_t *v = json_object_get(usage, key);

	if (detail)
		v = json_object_get(v, detail);
	return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* A Responses API usage object as a TokenUsageBreakdown. */
static json_t *usage_breakdown(json_t *u)
{
	json_int_t in = usage_n(u, "input_tokens", NULL), out = usage_n(u, "output_tokens", NULL);
	json_int_t total = usage_n(u, "total_tokens", NULL);

	return json_pack("{s:I, s:I, s:I, s:I, s:I}", "inputTokens", in, "cachedInputTokens",
			 usage_n(u, "input_tokens_details", "cached_tokens"), "outputTokens", out,
			 "reasoningOutputTokens",
			 usage_n(u, "output_tokens_details", "reasoning_tokens"), "totalTokens",
			 total ? total : in + out);
}

/* Token counts of a response, added to the turn's (the store keeps them)
 * and the thread's, and told to its clients (thread/tokenUsage/updated:
 * last = this response, total = the thread's since it was loaded). */
static void add_usage(struct turn *u, json_t *response)
{
	json_t *usage = json_object_get(response, "usage");

	if (!json_is_object(usage))
		return;
	if (!u->usage)
		u->usage = json_object();
	usage_add(u->usage, usage);
	usage_add(thread_usage(u->t), usage);
	thread_notify(u->t, NOTIFY_THREAD_TOKEN_USAGE_UPDATED,
		      json_pack("{s:s, s:s, s:{s:o, s:o, s:n}}", "threadId", thread_id(u->t),
				"turnId", u->id, "tokenUsage", "last", usage_breakdown(usage),
				"total", usage_breakdown(thread_usage(u->t)),
				"modelContextWindow"));
}

static void model_done_cb(json_t *response, const char *error, void *arg)
{
	struct turn *u = arg;
	_cleanup_free_ char *why = error ? xstrdup(error) : NULL; /* error dies with mreq */

	add_usage(u, response);
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
	const char *model = thread_model(u->t) ? thread_model(u->t) : c->model ? c->model
									  : CONFIG_DEFAULT_MODEL;
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
	json_decref(u->rows);
	json_decref(u->usage);
	json_decref(u->content);
	json_decref(u->user);
	free(u->preview);
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

		if (c->saving) {
			thread_forget_saved(u->t, call_saved_cb, c);
			c->saving = false;
		}
		if (!c->done && c->mcp_call && c->srv && srv_mcp(c->srv))
			mcp_cancel(srv_mcp(c->srv), c->mcp_call, "the turn was interrupted");
		else if (!c->done)
			call_finish(c, NULL, "the turn was interrupted");
	}
}

static void end_turn(struct turn *u, const char *status, const char *error)
{
	struct store_batch *b;
	json_t *tj;

	if (u->ended)
		return;
	u->stopping = true;
	stop_work(u);
	u->ended = true;
	metrics_turn(status, (double)(now_ms() - u->started_ms) / 1e3);
	push_outputs(u);
	tj = turn_json(u, status, error);
	b = thread_batch(u->t);
	turn_row(u, b, status, error, true);
	thread_submit(u->t, b);
	thread_turn_finished(u->t, json_incref(tj), TAKE_PTR(u->rows));
	if (error)
		log_warn("thread %s turn %s %s: %s", thread_id(u->t), u->id, status, error);
	/* Sent once the final row is saved, and also if saving failed: the
	 * client must hear that the turn is over. */
	thread_notify_after(u->t, NOTIFY_TURN_COMPLETED, json_pack("{s:o}", "turn", tj));
	thread_set_turn(u->t, NULL);
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
	if (thread_store_error(t)) {
		snprintf(err, errlen, "thread %s takes no turn: the thread store could not save it "
			 "(%s); thread/resume reloads it from the store", thread_id(t),
			 thread_store_error(t));
		return -EIO;
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
	u->rows = json_array();
	u->seq = thread_turn_seq(t);
	u->started_at = (int64_t)time(NULL);
	u->started_ms = now_ms();
	u->next = turns.live;
	turns.live = u;
	user_content(texts, n, &u->content, &u->user);
	u->preview = xstrdup(texts[0]);
	thread_subscribe(t, owner); /* the client running the turn hears about it */
	thread_set_turn(t, u);
	*out = u;
	return 0;
}

json_t *turn_object(const struct turn *u) { return turn_json(u, "inProgress", NULL); }
const char *turn_id(const struct turn *u) { return u->id; }

json_t *turn_items(const struct turn *u, json_t **rows)
{
	*rows = u->rows;
	return u->items;
}

void turn_run(struct turn *u)
{
	struct store_batch *b = thread_batch(u->t);
	int64_t seq = u->next_item++, started = wall_ms();
	char uid[UUID_STR_SIZE];
	json_t *item;

	/* The turn's row, the thread's preview, the message for the model and
	 * the userMessage item: one batch, so the store has all or none. */
	turn_row(u, b, "inProgress", NULL, false);
	thread_set_preview(u->t, u->preview, b);
	thread_history_push(u->t, json_pack("{s:s, s:s, s:o}", "type", "message", "role", "user",
					    "content", TAKE_PTR(u->content)),
			    b);
	thread_notify(u->t, NOTIFY_TURN_STARTED,
		      json_pack("{s:o}", "turn", turn_json(u, "inProgress", NULL)));
	uuid_v4(uid);
	item = json_pack("{s:s, s:s, s:o}", "type", "userMessage", "id", uid, "content",
			 TAKE_PTR(u->user));
	item_started(u, json_incref(item));
	item_completed(u, item, seq, started, b);
	step(u);
}

void turn_interrupt(struct turn *u) { end_turn(u, "interrupted", NULL); }

void turn_abort_all(void)
{
	/* Recorded as such: a resume shows why the turn stopped. */
	while (turns.live)
		end_turn(turns.live, "interrupted",
			 "the orchestrator shut down while the turn was running");
}
