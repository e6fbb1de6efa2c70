/* rpc_thread_read.c - the client API Thread object, and the methods that
 * read threads: thread/list, thread/loaded/list, thread/read,
 * thread/turns/list and thread/items/list. A loaded thread is read from
 * memory; one that is only stored is read from the store (thread_peek)
 * without being loaded. Cursors are sealed by the store (store.h): a
 * client cannot forge a position. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "param.h"
#include "session.h"
#include "store.h"
#include "thread.h"
#include "turn.h"
#include "util.h"
#include "version.h"

#define LIST_DEFAULT 50
#define PAGE_MAX 1000

/* ---- the Thread object ------------------------------------------------- */

void rpc_thread_view_loaded(struct thread *t, struct rpc_thread_view *v)
{
	*v = (struct rpc_thread_view){ .rec = thread_rec(t), .turns = thread_turns(t),
				       .running = thread_turn(t), .loaded = true,
				       .ephemeral = thread_ephemeral(t) };
	v->n_turns = json_array_size(v->turns);
}

void rpc_thread_view_stored(const struct store_loaded *l, struct rpc_thread_view *v)
{
	struct thread *t = thread_find(l->rec.id);
	size_t n = json_array_size(l->turns);

	*v = (struct rpc_thread_view){ .rec = &l->rec, .turns = l->turns, .n_turns = n };
	if (!t)
		return;
	/* Loaded: its record and status are memory's, and its running turn
	 * (whose row the store has, as far as it got) comes from memory. */
	v->rec = thread_rec(t);
	v->running = thread_turn(t);
	v->loaded = true;
	v->ephemeral = thread_ephemeral(t);
	while (v->running && v->n_turns &&
	       json_integer_value(json_object_get(json_array_get(l->turns, v->n_turns - 1),
						  "seq")) >= thread_turn_seq(t))
		v->n_turns--;
}

static json_t *environments_json(const struct store_thread *rec, const char *cwd)
{
	json_t *envs = json_object_get(rec->meta, "environments"), *e, *out;
	size_t i;

	if (!json_is_array(envs))
		return json_null();
	out = json_array();
	json_array_foreach(envs, i, e) {
		const char *ecwd = json_string_value(json_object_get(e, "cwd"));

		json_array_append_new(out, json_pack("{s:O, s:s, s:[]}", "environmentId",
						     json_object_get(e, "id"), "cwd",
						     ecwd ? ecwd : cwd, "runtimeWorkspaceRoots"));
	}
	return out;
}

static json_t *status_json(const struct rpc_thread_view *v)
{
	if (!v->loaded)
		return json_pack("{s:s}", "type", "notLoaded");
	if (v->running)
		return json_pack("{s:s, s:[]}", "type", "active", "activeFlags");
	return json_pack("{s:s}", "type", "idle");
}

json_t *rpc_thread_turn_list(const struct rpc_thread_view *v)
{
	json_t *out = json_array();

	for (size_t i = 0; i < v->n_turns; i++) {
		json_t *e = json_array_get(v->turns, i), *turn = json_object_get(e, "turn");

		if (json_is_false(json_object_get(e, "itemsLoaded"))) { /* in the store only */
			turn = json_copy(turn);
			json_object_set_new(turn, "itemsView", json_string("notLoaded"));
			json_array_append_new(out, turn);
		} else {
			json_array_append(out, turn);
		}
	}
	if (v->running)
		json_array_append_new(out, turn_object(v->running));
	return out;
}

json_t *rpc_thread_object(const struct rpc_thread_view *v, bool with_turns)
{
	const struct config *c = config_current();
	const struct store_thread *rec = v->rec;
	const char *model = json_string_value(json_object_get(rec->meta, "model"));
	const char *cwd = rec->cwd ? rec->cwd : "/";
	const char *provider = rec->provider ? rec->provider
			       : c && c->model_provider ? c->model_provider : "openai";

	if (!model) /* what its turns ask the model API for (turn.c) */
		model = c && c->model ? c->model : CONFIG_DEFAULT_MODEL;
	return json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:b, s:s?, s:s, s:s, s:n, s:s, s:o, "
			 "s:o, s:o, s:o, s:o}",
			 "id", rec->id, "sessionId", rec->id, "cliVersion", TANDEM_VERSION,
			 "createdAt", (json_int_t)(rec->created_ms / 1000), "updatedAt",
			 (json_int_t)(rec->updated_ms / 1000), "cwd", cwd, "ephemeral", v->ephemeral,
			 "model", model, "modelProvider", provider, "preview",
			 rec->preview ? rec->preview : "", "projectId", "source", "appServer",
			 "status", status_json(v), "turns",
			 with_turns ? rpc_thread_turn_list(v) : json_array(), "environments",
			 environments_json(rec, cwd), "name",
			 rec->name ? json_string(rec->name) : json_null(), "forkedFromId",
			 rec->forked_from ? json_string(rec->forked_from) : json_null());
}

int rpc_thread_id_param(struct req *r, json_t *params, const char **out)
{
	if (param_str(r, params, "threadId", true, out) < 0)
		return -EINVAL;
	if (!thread_id_valid(*out)) {
		req_error(r, CLIENT_INVALID_PARAMS, "threadId: '%.100s' is not a thread id (a UUID)",
			  *out);
		return -EINVAL;
	}
	return 0;
}

/* ---- reads of a thread, loaded or stored -------------------------------- */

/* A request that needs a thread's view: fn runs with it, at once for a
 * loaded thread, after the store answered for a stored one. */
typedef void (*view_fn)(struct req *r, const char *id, const struct rpc_thread_view *v,
			json_t *params);

struct peek_req {
	struct req *r;
	char id[UUID_STR_SIZE];
	json_t *params;
	view_fn fn;
	struct store_op *op;
};

static void peek_free(struct peek_req *q)
{
	json_decref(q->params);
	free(q);
}

static void peek_done_cb(int rc, const char *err, void *res, void *arg)
{
	struct peek_req *q = arg;
	struct rpc_thread_view v;

	req_on_cancel(q->r, NULL, NULL);
	if (rc == -ENOENT)
		req_error(q->r, CLIENT_INVALID_PARAMS, "threadId: no thread '%s'", q->id);
	else if (rc < 0)
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s", err);
	else {
		rpc_thread_view_stored(res, &v);
		q->fn(q->r, q->id, &v, q->params);
	}
	peek_free(q);
}

static void peek_cancel(void *arg)
{
	struct peek_req *q = arg;

	store_op_cancel(q->op);
	req_drop(q->r);
	peek_free(q);
}

static void with_view(struct req *r, json_t *params, view_fn fn)
{
	struct rpc_thread_view v;
	struct peek_req *q;
	struct thread *t;
	const char *id;

	if (rpc_thread_id_param(r, params, &id) < 0)
		return;
	if ((t = thread_find(id)) && thread_items_complete(t)) {
		thread_touch(t);
		rpc_thread_view_loaded(t, &v);
		fn(r, id, &v, params);
		return;
	}
	if (t)
		thread_touch(t); /* its old items are in the store: read there */
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	snprintf(q->id, sizeof(q->id), "%s", id);
	q->params = json_incref(params);
	q->fn = fn;
	q->op = thread_peek(id, peek_done_cb, q);
	if (!q->op) {
		req_error(r, CLIENT_INVALID_PARAMS, "threadId: no thread '%s'", id);
		peek_free(q);
		return;
	}
	req_on_cancel(r, peek_cancel, q);
}

/* ---- thread/read ------------------------------------------------------- */

static void read_view(struct req *r, const char *id, const struct rpc_thread_view *v,
		      json_t *params)
{
	bool turns = false;

	if (param_bool(r, params, "includeTurns", &turns) < 0)
		return;
	req_reply(r, json_pack("{s:o, s:o}", "thread", rpc_thread_object(v, turns), "readState",
			       thread_read_state(v->rec)));
}

void rpc_thread_read(struct req *r, json_t *params) { with_view(r, params, read_view); }

/* ---- cursors ----------------------------------------------------------- */

static bool same_str(json_t *v, const char *s)
{
	return json_is_string(v) && s && strcmp(json_string_value(v), s) == 0;
}

/* A sealed cursor of kind (one letter per method) holding pos; NULL to
 * cursor_open's caller means: answered (bad cursor). */
static json_t *cursor_open(struct req *r, json_t *params, const char *kind)
{
	const char *c;
	json_t *pos = NULL;
	char err[256];

	if (param_str(r, params, "cursor", false, &c) < 0)
		return NULL;
	if (!c)
		return json_object();
	if (store_cursor_open(c, &pos, err, sizeof(err)) < 0 ||
	    !same_str(json_object_get(pos, "k"), kind)) {
		json_decref(pos);
		req_error(r, CLIENT_INVALID_PARAMS, "%s",
			  pos ? "cursor: made by another method" : err);
		return NULL;
	}
	return pos;
}

static json_t *cursor_seal(json_t *pos, const char *kind)
{
	char *s;
	json_t *out;

	json_object_set_new(pos, "k", json_string(kind));
	s = store_cursor_seal(pos);
	out = json_string(s);
	free(s);
	json_decref(pos);
	return out;
}

static int sort_param(struct req *r, json_t *params, bool dflt_asc, bool *asc)
{
	const char *d;

	if (param_str(r, params, "sortDirection", false, &d) < 0)
		return -EINVAL;
	*asc = d ? strcmp(d, "asc") == 0 : dflt_asc;
	if (d && strcmp(d, "asc") != 0 && strcmp(d, "desc") != 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "sortDirection: expected \"asc\" or \"desc\"");
		return -EINVAL;
	}
	return 0;
}

/* ---- thread/turns/list ------------------------------------------------- */

/* The items a view shows: all, none, or a summary (the user's messages
 * and the last agent message). */
static json_t *turn_with_view(json_t *turn, const char *view)
{
	json_t *out = json_copy(turn), *items = json_object_get(turn, "items"), *keep, *it;
	json_t *last_agent = NULL;
	size_t i;

	json_object_set_new(out, "itemsView", json_string(view));
	if (strcmp(view, "full") == 0)
		return out;
	keep = json_array();
	if (strcmp(view, "summary") == 0) {
		json_array_foreach(items, i, it) {
			const char *type = json_string_value(json_object_get(it, "type"));

			if (type && strcmp(type, "userMessage") == 0)
				json_array_append(keep, it);
			else if (type && strcmp(type, "agentMessage") == 0)
				last_agent = it;
		}
		if (last_agent)
			json_array_append(keep, last_agent);
	}
	json_object_set_new(out, "items", keep);
	return out;
}

json_t *rpc_thread_turns_page(struct req *r, const char *id, const struct rpc_thread_view *v,
			      json_t *params)
{
	json_t *turns, *pos, *data, *next = json_null();
	const char *view = "summary";
	int64_t limit = LIST_DEFAULT, after;
	bool asc;
	size_t n;

	if (param_int(r, params, "limit", 1, PAGE_MAX, &limit) < 0 ||
	    sort_param(r, params, false, &asc) < 0 ||
	    param_str(r, params, "itemsView", false, &view) < 0)
		return NULL;
	if (!view)
		view = "summary";
	if (strcmp(view, "full") && strcmp(view, "summary") && strcmp(view, "notLoaded")) {
		req_error(r, CLIENT_INVALID_PARAMS,
			  "itemsView: expected \"full\", \"summary\" or \"notLoaded\"");
		return NULL;
	}
	if (!(pos = cursor_open(r, params, "t")))
		return NULL;
	if (json_object_get(pos, "i") && (!same_str(json_object_get(pos, "i"), id) ||
					  json_is_true(json_object_get(pos, "a")) != asc)) {
		json_decref(pos);
		req_error(r, CLIENT_INVALID_PARAMS, "cursor: made for another thread or order");
		return NULL;
	}
	/* Positions are turn indexes from the oldest: turns only get added. */
	after = json_object_get(pos, "n") ? json_integer_value(json_object_get(pos, "n"))
					  : (asc ? -1 : INT64_MAX);
	json_decref(pos);
	turns = rpc_thread_turn_list(v);
	n = json_array_size(turns);
	data = json_array();
	for (size_t j = 0; j < n && json_array_size(data) < (size_t)limit; j++) {
		size_t i = asc ? j : n - 1 - j;

		if (asc ? (int64_t)i <= after : (int64_t)i >= after)
			continue;
		json_array_append_new(data, turn_with_view(json_array_get(turns, i), view));
		if (json_array_size(data) == (size_t)limit && (asc ? i + 1 < n : i > 0))
			next = cursor_seal(json_pack("{s:s, s:b, s:I}", "i", id, "a", asc, "n",
						     (json_int_t)i), "t");
	}
	json_decref(turns);
	return json_pack("{s:o, s:o, s:n}", "data", data, "nextCursor", next, "backwardsCursor");
}

static void turns_view(struct req *r, const char *id, const struct rpc_thread_view *v,
		       json_t *params)
{
	json_t *page = rpc_thread_turns_page(r, id, v, params);

	if (page)
		req_reply(r, page);
}

void rpc_thread_turns_list(struct req *r, json_t *params) { with_view(r, params, turns_view); }

/* ---- thread/items/list ------------------------------------------------- */

/* Every item of the view in order, as ThreadItemEntry objects, each with
 * its position "p" (dropped before answering). */
static json_t *all_items(const struct rpc_thread_view *v, const char *only)
{
	json_t *out = json_array(), *e, *it;
	size_t j, p = 0;

	for (size_t i = 0; i < v->n_turns; i++) {
		json_t *turn, *rows;

		e = json_array_get(v->turns, i);
		turn = json_object_get(e, "turn");
		rows = json_object_get(e, "itemRows");
		const char *tid = json_string_value(json_object_get(turn, "id"));

		json_array_foreach(json_object_get(turn, "items"), j, it) {
			json_t *row = json_array_get(rows, j);

			p++;
			if (only && strcmp(only, tid ? tid : "") != 0)
				continue;
			json_array_append_new(out, json_pack("{s:O, s:s?, s:I, s:I, s:b, s:I}",
				"item", it, "turnId", tid, "startedAtMs",
				json_integer_value(json_array_get(row, 1)), "completedAtMs",
				json_integer_value(json_array_get(row, 2)), "outputDeferred", 0,
				"p", (json_int_t)p));
		}
	}
	if (v->running && (!only || strcmp(only, turn_id(v->running)) == 0)) {
		json_t *rows, *items = turn_items(v->running, &rows);

		json_array_foreach(items, j, it) {
			json_t *row = json_array_get(rows, j);

			json_array_append_new(out, json_pack("{s:O, s:s, s:I, s:I, s:b, s:I}",
				"item", it, "turnId", turn_id(v->running), "startedAtMs",
				json_integer_value(json_array_get(row, 1)), "completedAtMs",
				json_integer_value(json_array_get(row, 2)), "outputDeferred", 0,
				"p", (json_int_t)++p));
		}
	}
	return out;
}

/* The position after which a page starts: a sealed cursor of ours, or an
 * item anchor {type: "item", itemId} within turnId. -1: the start. */
static int items_after(struct req *r, json_t *params, const char *id, const char *only,
		       bool asc, json_t *all, int64_t *after)
{
	json_t *c = json_object_get(params, "cursor"), *pos, *e;
	size_t i;

	*after = asc ? -1 : INT64_MAX;
	if (json_is_object(c)) {
		const char *item = json_string_value(json_object_get(c, "itemId"));

		if (!same_str(json_object_get(c, "type"), "item") || !item || !only) {
			req_error(r, CLIENT_INVALID_PARAMS, "cursor: an item anchor is {type: \"item\", "
				  "itemId} and needs turnId");
			return -EINVAL;
		}
		json_array_foreach(all, i, e) {
			if (same_str(json_object_get(json_object_get(e, "item"), "id"), item)) {
				*after = json_integer_value(json_object_get(e, "p"));
				return 0;
			}
		}
		req_error(r, CLIENT_INVALID_PARAMS, "cursor: no item '%.100s' in turn %s", item, only);
		return -EINVAL;
	}
	if (!(pos = cursor_open(r, params, "i")))
		return -EINVAL;
	if (json_object_get(pos, "i") &&
	    (!same_str(json_object_get(pos, "i"), id) || json_is_true(json_object_get(pos, "a")) != asc ||
	     !(only ? same_str(json_object_get(pos, "t"), only)
		    : !json_is_string(json_object_get(pos, "t"))))) {
		json_decref(pos);
		req_error(r, CLIENT_INVALID_PARAMS, "cursor: made for another thread, turn or order");
		return -EINVAL;
	}
	if (json_object_get(pos, "p"))
		*after = json_integer_value(json_object_get(pos, "p"));
	json_decref(pos);
	return 0;
}

static void items_view(struct req *r, const char *id, const struct rpc_thread_view *v,
		       json_t *params)
{
	json_t *all, *data, *next = json_null(), *c = json_object_get(params, "cursor");
	const char *only = NULL;
	int64_t limit = LIST_DEFAULT, after;
	bool asc;
	size_t n;

	if (param_str(r, params, "turnId", false, &only) < 0 ||
	    param_int(r, params, "limit", 1, PAGE_MAX, &limit) < 0 ||
	    sort_param(r, params, true, &asc) < 0)
		return;
	if (c && !json_is_null(c) && !json_is_string(c) && !json_is_object(c)) {
		req_error(r, CLIENT_INVALID_PARAMS, "cursor: expected a string or an item anchor");
		return;
	}
	all = all_items(v, only);
	if (items_after(r, params, id, only, asc, all, &after) < 0) {
		json_decref(all);
		return;
	}
	n = json_array_size(all);
	data = json_array();
	for (size_t j = 0; j < n && json_array_size(data) < (size_t)limit; j++) {
		json_t *e = json_array_get(all, asc ? j : n - 1 - j);
		int64_t p = json_integer_value(json_object_get(e, "p"));

		if (asc ? p <= after : p >= after)
			continue;
		json_array_append(data, e);
		if (json_array_size(data) == (size_t)limit && j + 1 < n)
			next = cursor_seal(json_pack("{s:s, s:s?, s:b, s:I}", "i", id, "t", only, "a",
						     asc, "p", (json_int_t)p), "i");
	}
	for (size_t i = 0; i < json_array_size(data); i++)
		json_object_del(json_array_get(data, i), "p");
	json_decref(all);
	req_reply(r, json_pack("{s:o, s:o, s:n}", "data", data, "nextCursor", next,
			       "backwardsCursor"));
}

void rpc_thread_items_list(struct req *r, json_t *params) { with_view(r, params, items_view); }

/* ---- thread/list ------------------------------------------------------- */

struct list_req {
	struct req *r;
	struct store_op *op;
	struct store_list_query q;
};

/* params[key]: an array of at most STORE_FILTER_MAX strings (borrowed into
 * a new array), or absent (*out NULL). */
static int str_list(struct req *r, json_t *params, const char *key, const char ***out, size_t *n)
{
	json_t *v = json_object_get(params, key), *s;
	size_t i;

	*out = NULL;
	*n = 0;
	if (!v || json_is_null(v))
		return 0;
	if (json_is_string(v) && strcmp(key, "cwd") == 0) { /* one cwd, or a list */
		*out = xcalloc(1, sizeof(**out));
		(*out)[0] = json_string_value(v);
		*n = 1;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) > STORE_FILTER_MAX) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s: expected an array of at most %u strings",
			  key, STORE_FILTER_MAX);
		return -EINVAL;
	}
	*out = xcalloc(json_array_size(v) + 1, sizeof(**out));
	json_array_foreach(v, i, s) {
		if (!json_is_string(s)) {
			req_error(r, CLIENT_INVALID_PARAMS, "%s[%zu]: expected a string", key, i);
			free(*out);
			*out = NULL;
			return -EINVAL;
		}
		(*out)[i] = json_string_value(s);
	}
	*n = json_array_size(v);
	return 0;
}

/* Filters on what tandem threads never have: any value matches nothing. */
static bool never_matches(json_t *params)
{
	static const char *const none[] = { "projectId", "parentThreadId", "ancestorThreadId",
					    "attachedToThreadId", "sectionId" };
	json_t *kinds = json_object_get(params, "sourceKinds"), *k;
	bool app = false;
	size_t i;

	for (size_t j = 0; j < ARRAY_SIZE(none); j++)
		if (json_is_string(json_object_get(params, none[j])))
			return true;
	if (!json_is_array(kinds) || json_array_size(kinds) == 0)
		return false;
	json_array_foreach(kinds, i, k)
		app = app || same_str(k, "appServer");
	return !app;
}

static int list_sort(struct req *r, json_t *params, struct store_list_query *q)
{
	const char *key;

	if (param_str(r, params, "sortKey", false, &key) < 0 ||
	    sort_param(r, params, false, &q->ascending) < 0)
		return -EINVAL;
	if (!key || strcmp(key, "created_at") == 0)
		q->sort = STORE_SORT_CREATED;
	else if (strcmp(key, "updated_at") == 0 || strcmp(key, "recency_at") == 0 ||
		 strcmp(key, "section_position") == 0)
		/* recency: the last activity; tandem has no sections, so a
		 * section's order is that of its threads' last activity */
		q->sort = STORE_SORT_UPDATED;
	else {
		req_error(r, CLIENT_INVALID_PARAMS, "sortKey: expected created_at, updated_at, "
			  "recency_at or section_position");
		return -EINVAL;
	}
	return 0;
}

/* The cursor of thread/list holds the sort, the filter and the last row. */
static int list_cursor(struct req *r, json_t *params, struct store_list_query *q)
{
	json_t *pos = cursor_open(r, params, "l");
	const char *id;

	if (!pos)
		return -EINVAL;
	if (!json_object_get(pos, "i")) {
		json_decref(pos);
		return 0;
	}
	id = json_string_value(json_object_get(pos, "i"));
	if (!id || !thread_id_valid(id) ||
	    json_integer_value(json_object_get(pos, "s")) != (json_int_t)q->sort ||
	    json_is_true(json_object_get(pos, "a")) != q->ascending ||
	    json_is_true(json_object_get(pos, "r")) != q->archived) {
		json_decref(pos);
		req_error(r, CLIENT_INVALID_PARAMS,
			  "cursor: made for another sort order or archived filter");
		return -EINVAL;
	}
	q->after = true;
	q->after_ms = json_integer_value(json_object_get(pos, "v"));
	snprintf(q->after_id, sizeof(q->after_id), "%s", id);
	json_decref(pos);
	return 0;
}

static void list_free(struct list_req *q)
{
	free((void *)q->q.cwds);
	free((void *)q->q.providers);
	free((void *)q->q.ids);
	free((void *)q->q.not_ids);
	free(q);
}

static void list_done_cb(int rc, const char *err, void *res, void *arg)
{
	struct list_req *q = arg;
	struct store_list_result *l = res;
	json_t *data, *next = json_null();

	req_on_cancel(q->r, NULL, NULL);
	if (rc < 0) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s", err);
		list_free(q);
		return;
	}
	data = json_array();
	for (size_t i = 0; i < l->n; i++) {
		struct thread *t = thread_find(l->rows[i].id);
		struct rpc_thread_view v = { .rec = &l->rows[i] };

		if (t)
			rpc_thread_view_loaded(t, &v);
		json_array_append_new(data, rpc_thread_object(&v, false));
	}
	if (l->more && l->n) {
		const struct store_thread *last = &l->rows[l->n - 1];

		next = cursor_seal(json_pack("{s:i, s:b, s:b, s:I, s:s}", "s", (int)q->q.sort, "a",
					     q->q.ascending, "r", q->q.archived, "v",
					     (json_int_t)(q->q.sort == STORE_SORT_UPDATED
								  ? last->updated_ms
								  : last->created_ms),
					     "i", last->id), "l");
	}
	req_reply(q->r, json_pack("{s:o, s:o, s:n}", "data", data, "nextCursor", next,
				  "backwardsCursor"));
	list_free(q);
}

static void list_cancel(void *arg)
{
	struct list_req *q = arg;

	store_op_cancel(q->op);
	req_drop(q->r);
	list_free(q);
}

static int list_query(struct req *r, json_t *params, struct store_list_query *q)
{
	static const char *const strs[] = { "projectId", "parentThreadId", "ancestorThreadId",
					    "attachedToThreadId", "sectionId" };
	static const char *const bools[] = { "currentAccountOnly", "includeAttachedThreads",
					     "useStateDbOnly" };
	int64_t limit = LIST_DEFAULT;
	const char *str;
	json_t *arr;
	bool b;

	/* Filters tandem has no data for (never_matches) are still typed. */
	for (size_t i = 0; i < ARRAY_SIZE(strs); i++)
		if (param_str(r, params, strs[i], false, &str) < 0)
			return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(bools); i++)
		if (param_bool(r, params, bools[i], &b) < 0)
			return -EINVAL;
	if (param_str_array(r, params, "sourceKinds", &arr) < 0 ||
	    param_str_array(r, params, "originators", &arr) < 0)
		return -EINVAL;
	if (param_int(r, params, "limit", 1, STORE_LIST_MAX, &limit) < 0 ||
	    param_bool(r, params, "archived", &q->archived) < 0 ||
	    param_str(r, params, "searchTerm", false, &q->search) < 0 ||
	    list_sort(r, params, q) < 0 ||
	    str_list(r, params, "cwd", (const char ***)&q->cwds, &q->n_cwds) < 0 ||
	    str_list(r, params, "modelProviders", (const char ***)&q->providers,
		     &q->n_providers) < 0 ||
	    str_list(r, params, "includedThreadIds", (const char ***)&q->ids, &q->n_ids) < 0 ||
	    str_list(r, params, "excludedThreadIds", (const char ***)&q->not_ids,
		     &q->n_not_ids) < 0 ||
	    list_cursor(r, params, q) < 0)
		return -EINVAL;
	q->limit = (size_t)limit;
	if (q->search && !*q->search)
		q->search = NULL;
	return 0;
}

void rpc_thread_list(struct req *r, json_t *params)
{
	struct list_req *q = xcalloc(1, sizeof(*q));

	q->r = r;
	if (list_query(r, params, &q->q) < 0) {
		list_free(q);
		return;
	}
	if (never_matches(params) ||
	    !(q->op = thread_list(&q->q, list_done_cb, q))) { /* no store: nothing stored */
		req_reply(r, json_pack("{s:[], s:n, s:n}", "data", "nextCursor", "backwardsCursor"));
		list_free(q);
		return;
	}
	/* The store copied the query: its lists (borrowed from params) go. */
	free((void *)q->q.cwds);
	free((void *)q->q.providers);
	free((void *)q->q.ids);
	free((void *)q->q.not_ids);
	q->q.cwds = q->q.providers = q->q.ids = q->q.not_ids = NULL;
	q->q.search = NULL;
	req_on_cancel(r, list_cancel, q);
}

/* ---- thread/loaded/list ------------------------------------------------ */

void rpc_thread_loaded_list(struct req *r, json_t *params)
{
	struct thread *t = thread_first();
	int64_t limit = PAGE_MAX;
	json_t *pos, *data, *next = json_null();

	if (param_int(r, params, "limit", 1, PAGE_MAX, &limit) < 0 ||
	    !(pos = cursor_open(r, params, "L")))
		return;
	if (json_object_get(pos, "i")) { /* after the last thread of the previous page */
		const char *last = json_string_value(json_object_get(pos, "i"));

		while (t && !same_str(json_object_get(pos, "i"), thread_id(t)))
			t = thread_next(t);
		if (!t) {
			req_error(r, CLIENT_INVALID_PARAMS,
				  "cursor: thread %s is no longer loaded; list again", last ? last : "?");
			json_decref(pos);
			return;
		}
		t = thread_next(t);
	}
	json_decref(pos);
	data = json_array();
	for (; t && json_array_size(data) < (size_t)limit; t = thread_next(t)) {
		json_array_append_new(data, json_string(thread_id(t)));
		if (json_array_size(data) == (size_t)limit && thread_next(t))
			next = cursor_seal(json_pack("{s:s}", "i", thread_id(t)), "L");
	}
	req_reply(r, json_pack("{s:o, s:o}", "data", data, "nextCursor", next));
}
