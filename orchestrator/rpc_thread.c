/* rpc_thread.c - the methods that start, resume, fork and change threads:
 * thread/start, thread/resume, thread/fork, thread/archive,
 * thread/unarchive, thread/delete, thread/name/set,
 * thread/readState/update and thread/unsubscribe. (Reading them, and the
 * Thread object: rpc_thread_read.c.)
 *
 * A new thread (start, fork) is answered once the store has it: a client
 * that was told its id can resume it after a crash. */
#include "rpc.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "config.h"
#include "envs.h"
#include "notify.h"
#include "param.h"
#include "session.h"
#include "store.h"
#include "thread.h"
#include "turn.h"
#include "util.h"

#define ROOT_ID_MAX THREAD_ID_MAX
#define ROOT_PATH_MAX THREAD_PATH_MAX

/* ---- thread/start ------------------------------------------------------ */

static bool path_ok(const char *p)
{
	return p[0] == '/' || strncmp(p, "file:", 5) == 0;
}

/* selectedCapabilityRoots[i] -> out. -EINVAL with a reason naming it. */
static int parse_root(json_t *r, size_t i, struct thread_root_spec *out, char *err,
		      size_t errlen)
{
	json_t *loc = json_object_get(r, "location");
	const char *id = json_string_value(json_object_get(r, "id"));
	const char *type = json_string_value(json_object_get(loc, "type"));
	const char *envid = json_string_value(json_object_get(loc, "environmentId"));
	const char *path = json_string_value(json_object_get(loc, "path"));

	if (!json_is_object(r) || !id || !*id || strnlen(id, ROOT_ID_MAX + 1) > ROOT_ID_MAX) {
		snprintf(err, errlen, "selectedCapabilityRoots[%zu].id must be a non-empty string", i);
		return -EINVAL;
	}
	if (!json_is_object(loc) || !type || strcmp(type, "environment") != 0) {
		snprintf(err, errlen, "selectedCapabilityRoots[%zu].location.type must be \"environment\"",
			 i);
		return -EINVAL;
	}
	if (!envid || !envs_find(envid)) { /* a wrong type is not "missing" */
		json_t *ev = json_object_get(loc, "environmentId");

		snprintf(err, errlen, "selectedCapabilityRoots[%zu].location.environmentId: %s%.100s%s",
			 i, envid ? "unknown environment '"
			 : ev && !json_is_null(ev) ? "expected a string" : "missing",
			 envid ? envid : "", envid ? "'" : "");
		return -EINVAL;
	}
	if (!path || !path_ok(path) || strnlen(path, ROOT_PATH_MAX + 1) > ROOT_PATH_MAX) {
		snprintf(err, errlen,
			 "selectedCapabilityRoots[%zu].location.path must be an absolute path or a file: URI",
			 i);
		return -EINVAL;
	}
	*out = (struct thread_root_spec){ .id = id, .env_id = envid, .path = path };
	return 0;
}

static int parse_roots(json_t *arr, struct thread_spec *spec, char *err, size_t errlen)
{
	struct thread_root_spec *roots;
	size_t i;
	json_t *r;

	if (!arr)
		return 0;
	if (json_array_size(arr) > THREAD_MAX_ROOTS) {
		snprintf(err, errlen, "selectedCapabilityRoots: at most %u roots", THREAD_MAX_ROOTS);
		return -EINVAL;
	}
	roots = xcalloc(json_array_size(arr) + 1, sizeof(*roots));
	spec->roots = roots;
	json_array_foreach(arr, i, r) {
		if (parse_root(r, i, &roots[i], err, errlen) < 0)
			return -EINVAL;
		for (size_t j = 0; j < i; j++) {
			if (strcmp(roots[j].id, roots[i].id) == 0) {
				snprintf(err, errlen, "selectedCapabilityRoots[%zu].id '%s' is a duplicate",
					 i, roots[i].id);
				return -EINVAL;
			}
		}
	}
	spec->n_roots = json_array_size(arr);
	return 0;
}

static int parse_environments(json_t *arr, struct thread_spec *spec, char *err, size_t errlen)
{
	struct thread_env_spec *envs;
	json_t *e, *cwd;
	size_t i;

	if (!arr)
		return 0;
	if (json_array_size(arr) > THREAD_MAX_ENVS) {
		snprintf(err, errlen, "environments: at most %u entries", THREAD_MAX_ENVS);
		return -EINVAL;
	}
	envs = xcalloc(json_array_size(arr) + 1, sizeof(*envs));
	spec->envs = envs;
	json_array_foreach(arr, i, e) {
		json_t *idv = json_object_get(e, "environmentId");
		const char *id = json_string_value(idv);

		if (!json_is_object(e)) {
			snprintf(err, errlen, "environments[%zu]: expected an object", i);
			return -EINVAL;
		}
		if (!id || !envs_find(id)) { /* a wrong type is not "missing" */
			snprintf(err, errlen, "environments[%zu].environmentId: %s%.100s", i,
				 id ? "unknown environment "
				 : idv && !json_is_null(idv) ? "expected a string"
							     : "missing",
				 id ? id : "");
			return -EINVAL;
		}
		cwd = json_object_get(e, "cwd");
		if (cwd && !json_is_null(cwd) && !json_is_string(cwd)) {
			snprintf(err, errlen, "environments[%zu].cwd: expected a string", i);
			return -EINVAL;
		}
		envs[i] = (struct thread_env_spec){ .env_id = id, .cwd = json_string_value(cwd) };
	}
	spec->n_envs = json_array_size(arr);
	return 0;
}

static int parse_spec(struct req *r, json_t *params, struct thread_spec *spec)
{
	json_t *envs, *roots;
	char err[512];

	if (param_str(r, params, "model", false, &spec->model) < 0 ||
	    param_str(r, params, "cwd", false, &spec->cwd) < 0 ||
	    param_bool(r, params, "ephemeral", &spec->ephemeral) < 0 ||
	    param_array(r, params, "environments", &envs) < 0 ||
	    param_array(r, params, "selectedCapabilityRoots", &roots) < 0)
		return -EINVAL;
	if (parse_environments(envs, spec, err, sizeof(err)) < 0 ||
	    parse_roots(roots, spec, err, sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return -EINVAL;
	}
	return 0;
}

/* What thread/start, thread/resume and thread/fork answer (new). */
static json_t *session_result_view(const struct rpc_thread_view *v, bool with_turns)
{
	json_t *obj = rpc_thread_object(v, with_turns); /* its model is never absent */

	return json_pack("{s:o, s:O, s:O, s:O, s:s, s:s, s:{s:s}}", "thread", obj, "model",
			 json_object_get(obj, "model"), "modelProvider",
			 json_object_get(obj, "modelProvider"), "cwd", json_object_get(obj, "cwd"),
			 "approvalPolicy", "never", "approvalsReviewer", "user", "sandbox", "type",
			 "dangerFullAccess");
}

static json_t *session_result(struct thread *t, bool with_turns)
{
	struct rpc_thread_view v;

	rpc_thread_view_loaded(t, &v);
	return session_result_view(&v, with_turns);
}

/* A new thread (start, fork), answered once it is saved. */
struct new_req {
	struct req *r;
	struct thread *t;
	uint64_t owner;
	bool with_turns;
};

static void new_saved_cb(struct thread *t, int rc, const char *err, void *arg)
{
	struct new_req *q = arg;
	json_t *res;

	req_on_cancel(q->r, NULL, NULL);
	if (rc < 0) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: the new thread was not saved: "
			  "%s", err ? err : "?");
		if (rc != -ECANCELED) /* no client holds it now: it goes when idle */
			thread_unsubscribe(t, q->owner);
		free(q);
		return;
	}
	res = session_result(t, q->with_turns);
	thread_notify(t, NOTIFY_THREAD_STARTED,
		      json_pack("{s:O}", "thread", json_object_get(res, "thread")));
	req_reply(q->r, res);
	thread_project(t); /* resolution starts now; the answer did not wait for it */
	free(q);
}

static void new_cancel(void *arg)
{
	struct new_req *q = arg;

	thread_forget_saved(q->t, new_saved_cb, q);
	thread_unsubscribe(q->t, q->owner);
	req_drop(q->r);
	free(q);
}

static void answer_when_saved(struct req *r, struct thread *t, bool with_turns)
{
	struct new_req *q = xcalloc(1, sizeof(*q));

	q->r = r;
	q->t = t;
	q->owner = req_owner(r);
	q->with_turns = with_turns;
	req_on_cancel(r, new_cancel, q);
	thread_when_saved(t, new_saved_cb, q);
}

void rpc_thread_start(struct req *r, json_t *params)
{
	struct thread_spec spec = { 0 };
	struct thread *t = NULL;
	char err[512];

	if (parse_spec(r, params, &spec) == 0 &&
	    thread_new(&spec, req_owner(r), &t, err, sizeof(err)) < 0)
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
	free((void *)spec.envs);
	free((void *)spec.roots);
	if (t)
		answer_when_saved(r, t, false);
}

/* ---- thread/resume ----------------------------------------------------- */

struct resume_req {
	struct req *r;
	char id[UUID_STR_SIZE];
	uint64_t owner;
	char *model, *cwd;
	bool exclude_turns;
	json_t *page; /* initialTurnsPage */
	struct thread_loading *h;
	struct store_op *op; /* reading its old items, when the answer needs them */
};

static void resume_free(struct resume_req *q)
{
	free(q->model);
	free(q->cwd);
	json_decref(q->page);
	free(q);
}

/* The answer from a view of t (memory's, or the store's with every item). */
static void resume_reply(struct resume_req *q, struct thread *t,
			 const struct rpc_thread_view *v)
{
	json_t *res = session_result_view(v, !q->exclude_turns), *page;

	if (q->page) {
		page = rpc_thread_turns_page(q->r, thread_id(t), v, q->page);
		if (!page) { /* answered */
			json_decref(res);
			thread_unsubscribe(t, q->owner);
			return;
		}
		json_object_set_new(res, "initialTurnsPage", page);
	}
	req_reply(q->r, res);
	thread_project(t); /* the roots bind to whichever environment has their id now */
}

static void resume_peek_cb(int rc, const char *err, void *res, void *arg)
{
	struct resume_req *q = arg;
	struct thread *t = thread_find(q->id);
	struct rpc_thread_view v;

	req_on_cancel(q->r, NULL, NULL);
	if (rc < 0 || !t) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s",
			  rc < 0 && err ? err : "the thread went away");
		if (t)
			thread_unsubscribe(t, q->owner);
	} else {
		rpc_thread_view_stored(res, &v);
		resume_reply(q, t, &v);
	}
	resume_free(q);
}

static void resume_cancel(void *arg)
{
	struct resume_req *q = arg;
	struct thread *t = thread_find(q->id);

	thread_load_cancel(q->h);
	store_op_cancel(q->op);
	if (q->op && t)
		thread_unsubscribe(t, q->owner);
	req_drop(q->r);
	resume_free(q);
}

/* The turns an initialTurnsPage shows (its limit, else the default). */
static int64_t page_limit(json_t *page)
{
	json_t *l = json_object_get(page, "limit");

	return json_is_integer(l) && json_integer_value(l) > 0 ? json_integer_value(l) : 50;
}

/* Whether memory has what the answer shows: every turn's items for the
 * whole history, the last turns' for a page (the newest first, as loaded;
 * an oldest-first page or an items-less one decides by itself). */
static bool shows_what_is_loaded(struct resume_req *q, struct thread *t)
{
	json_t *turns = thread_turns(t), *dir = json_object_get(q->page, "sortDirection");
	json_t *view = json_object_get(q->page, "itemsView");
	size_t n = json_array_size(turns), want;

	if (thread_items_complete(t))
		return true;
	if (!q->exclude_turns)
		return false;
	if (!q->page || (json_is_string(view) && strcmp(json_string_value(view), "notLoaded") == 0))
		return true;
	if (json_is_string(dir) && strcmp(json_string_value(dir), "asc") == 0)
		return false;
	want = (size_t)MIN((int64_t)n, page_limit(q->page));
	for (size_t i = n - want; i < n; i++)
		if (json_is_false(json_object_get(json_array_get(turns, i), "itemsLoaded")))
			return false;
	return true;
}

/* Checks, overrides, subscribes; then answers from memory, or from the
 * store when the answer shows turns whose items were not loaded. Returns
 * true when q was kept (waiting for the store). */
static bool resume_answer(struct resume_req *q, struct thread *t)
{
	struct rpc_thread_view v;
	char err[256];

	if (thread_rec(t)->archived) {
		req_error(q->r, CLIENT_INVALID_REQUEST,
			  "thread %s is archived: thread/unarchive it first", thread_id(t));
		return false;
	}
	if (thread_override(t, q->model, q->cwd, err, sizeof(err)) < 0) {
		req_error(q->r, CLIENT_INVALID_PARAMS, "%s", err);
		return false;
	}
	thread_subscribe(t, q->owner);
	if (!shows_what_is_loaded(q, t) && (q->op = thread_peek(q->id, resume_peek_cb, q))) {
		req_on_cancel(q->r, resume_cancel, q);
		return true;
	}
	rpc_thread_view_loaded(t, &v);
	resume_reply(q, t, &v);
	return false;
}

static void resume_cb(struct thread *t, int rc, const char *err, void *arg)
{
	struct resume_req *q = arg;

	req_on_cancel(q->r, NULL, NULL);
	q->h = NULL;
	if (!t && rc == -ENOENT)
		req_error(q->r, CLIENT_INVALID_PARAMS, "threadId: %s", err ? err : "no such thread");
	else if (!t)
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s", err ? err : "?");
	else if (resume_answer(q, t))
		return;
	resume_free(q);
}

/* Params Codex has for rollout files and cloud histories: not tandem's. */
static int unsupported(struct req *r, json_t *params)
{
	static const char *const keys[] = { "path", "history" };

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(params, keys[i]);

		if (v && !json_is_null(v)) {
			req_error(r, CLIENT_INVALID_PARAMS, "%s: not supported (tandem keeps threads in "
				  "its own store; name them by threadId)", keys[i]);
			return -EINVAL;
		}
	}
	return 0;
}

void rpc_thread_resume(struct req *r, json_t *params)
{
	const char *id, *model, *cwd;
	struct resume_req *q;
	struct thread_loading *h;
	json_t *page;
	bool exclude = false;
	int64_t items;

	if (rpc_thread_id_param(r, params, &id) < 0 || unsupported(r, params) < 0 ||
	    param_str(r, params, "model", false, &model) < 0 ||
	    param_str(r, params, "cwd", false, &cwd) < 0 ||
	    param_bool(r, params, "excludeTurns", &exclude) < 0 ||
	    param_object(r, params, "initialTurnsPage", &page) < 0)
		return;
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	snprintf(q->id, sizeof(q->id), "%s", id);
	q->owner = req_owner(r);
	q->model = model ? xstrndup(model, strnlen(model, THREAD_MODEL_MAX + 1)) : NULL;
	q->cwd = cwd ? xstrndup(cwd, strnlen(cwd, THREAD_PATH_MAX + 1)) : NULL;
	q->exclude_turns = exclude;
	q->page = page ? json_incref(page) : NULL;
	/* Only the items the answer shows are parsed: none without turns, the
	 * page's with initialTurnsPage, all for the whole history. */
	items = exclude ? (page ? page_limit(page) : 0) : STORE_ALL_ITEMS;
	h = thread_load(id, items, resume_cb, q); /* may answer (and free q) before returning */
	if (h) {
		q->h = h;
		req_on_cancel(r, resume_cancel, q);
	}
}

/* ---- thread/fork ------------------------------------------------------- */

struct fork_req {
	struct req *r;
	char id[UUID_STR_SIZE];
	json_t *params;
	struct store_op *op;
};

/* The index of the last turn to keep, from lastTurnId / beforeTurnId;
 * answers r (-EINVAL) for a turn that is not there or still running. */
static int fork_upto(struct req *r, json_t *params, json_t *turns, struct turn *running,
		     ssize_t *upto)
{
	const char *last, *before, *want;
	json_t *e;
	size_t i;

	if (param_str(r, params, "lastTurnId", false, &last) < 0 ||
	    param_str(r, params, "beforeTurnId", false, &before) < 0)
		return -EINVAL;
	*upto = (ssize_t)json_array_size(turns) - 1; /* finished turns: a running one is not */
	if (last && before) {
		req_error(r, CLIENT_INVALID_PARAMS, "lastTurnId and beforeTurnId exclude each other");
		return -EINVAL;
	}
	if (!(want = last ? last : before))
		return 0;
	json_array_foreach(turns, i, e) {
		const char *id = json_string_value(json_object_get(json_object_get(e, "turn"), "id"));

		if (id && strcmp(id, want) == 0) {
			*upto = last ? (ssize_t)i : (ssize_t)i - 1;
			return 0;
		}
	}
	if (running && strcmp(turn_id(running), want) == 0) {
		if (before)
			return 0;
		req_error(r, CLIENT_INVALID_PARAMS, "lastTurnId: turn %s is still running", want);
		return -EINVAL;
	}
	req_error(r, CLIENT_INVALID_PARAMS, "%s: no turn '%.100s' in this thread",
		  last ? "lastTurnId" : "beforeTurnId", want);
	return -EINVAL;
}

/* Forks from memory (src, every item loaded) or from the store's copy
 * (from: of the first n_turns turns; running: the source's turn, when it
 * is loaded and has one). */
static void fork_from(struct req *r, json_t *params, struct thread *src,
		      const struct store_loaded *from, size_t n_turns, struct turn *running)
{
	const char *model, *cwd;
	bool ephemeral = false, exclude = false;
	json_t *turns = json_array();
	struct thread *t;
	ssize_t upto;
	char err[512];
	int rc;

	for (size_t i = 0; i < (src ? json_array_size(thread_turns(src)) : n_turns); i++)
		json_array_append(turns, json_array_get(src ? thread_turns(src) : from->turns, i));
	rc = param_str(r, params, "model", false, &model) < 0 ||
	     param_str(r, params, "cwd", false, &cwd) < 0 ||
	     param_bool(r, params, "ephemeral", &ephemeral) < 0 ||
	     param_bool(r, params, "excludeTurns", &exclude) < 0 ||
	     fork_upto(r, params, turns, src ? thread_turn(src) : running, &upto) < 0;
	json_decref(turns);
	if (rc)
		return;
	if (thread_fork(src, from, upto, model, cwd, ephemeral, req_owner(r), &t, err,
			sizeof(err)) < 0) {
		req_error(r, CLIENT_INVALID_PARAMS, "%s", err);
		return;
	}
	answer_when_saved(r, t, !exclude);
}

static void fork_peek_cb(int rc, const char *err, void *res, void *arg)
{
	struct fork_req *q = arg;
	struct rpc_thread_view v;

	req_on_cancel(q->r, NULL, NULL);
	if (rc == -ENOENT) {
		req_error(q->r, CLIENT_INVALID_PARAMS, "threadId: no thread '%s'", q->id);
	} else if (rc < 0) {
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s", err);
	} else {
		rpc_thread_view_stored(res, &v); /* a loaded one's running turn left out */
		fork_from(q->r, q->params, NULL, res, v.n_turns, v.running);
	}
	json_decref(q->params);
	free(q);
}

static void fork_cancel(void *arg)
{
	struct fork_req *q = arg;

	store_op_cancel(q->op);
	req_drop(q->r);
	json_decref(q->params);
	free(q);
}

void rpc_thread_fork(struct req *r, json_t *params)
{
	struct fork_req *q;
	struct thread *t;
	const char *id;
	bool attach = false;

	if (rpc_thread_id_param(r, params, &id) < 0 || unsupported(r, params) < 0 ||
	    param_bool(r, params, "attachToSource", &attach) < 0)
		return;
	if (attach) {
		req_error(r, CLIENT_INVALID_PARAMS, "attachToSource: not supported (tandem has no "
			  "attached threads)");
		return;
	}
	if ((t = thread_find(id)) && thread_items_complete(t)) {
		fork_from(r, params, t, NULL, 0, NULL);
		return;
	}
	q = xcalloc(1, sizeof(*q));
	q->r = r;
	snprintf(q->id, sizeof(q->id), "%s", id);
	q->params = json_incref(params);
	if (!(q->op = thread_peek(id, fork_peek_cb, q))) {
		req_error(r, CLIENT_INVALID_PARAMS, "threadId: no thread '%s'", id);
		json_decref(q->params);
		free(q);
		return;
	}
	req_on_cancel(r, fork_cancel, q);
}

/* ---- archive, unarchive, delete, name ---------------------------------- */

/* A store operation on a thread, answered when the store has it. */
struct op_req {
	struct req *r;
	char id[UUID_STR_SIZE];
	bool unarchive;
};

static struct op_req *op_req_new(struct req *r, const char *id)
{
	struct op_req *q = xcalloc(1, sizeof(*q));

	q->r = r;
	req_keep(r); /* the store's callback always ends it (op_done_cb) */
	snprintf(q->id, sizeof(q->id), "%s", id);
	return q;
}

/* rc of a thread_* operation that failed at once. */
static void op_refused(struct req *r, int rc, const char *err)
{
	req_error(r, rc == -EBUSY ? CLIENT_INVALID_REQUEST
		     : rc == -ENOENT || rc == -EINVAL ? CLIENT_INVALID_PARAMS
						      : CLIENT_INTERNAL_ERROR,
		  "%s", err);
}

static bool op_failed(struct op_req *q, int rc, const char *err)
{
	if (rc == -ENOENT)
		req_error(q->r, CLIENT_INVALID_PARAMS, "threadId: no thread '%s'", q->id);
	else if (rc < 0)
		req_error(q->r, CLIENT_INTERNAL_ERROR, "thread store: %s", err ? err : "?");
	return rc < 0;
}

static void unarchive_peek_cb(int rc, const char *err, void *res, void *arg)
{
	struct op_req *q = arg;
	struct rpc_thread_view v;

	if (!op_failed(q, rc, err)) {
		rpc_thread_view_stored(res, &v);
		req_reply(q->r, json_pack("{s:o}", "thread", rpc_thread_object(&v, false)));
	}
	free(q);
}

static void op_done_cb(int rc, const char *err, void *arg)
{
	struct op_req *q = arg;
	struct thread *t;
	struct rpc_thread_view v;

	if (op_failed(q, rc, err)) {
		free(q);
		return;
	}
	if (!q->unarchive) {
		req_reply(q->r, json_object());
		free(q);
		return;
	}
	if ((t = thread_find(q->id))) { /* unarchive answers with the Thread */
		rpc_thread_view_loaded(t, &v);
		req_reply(q->r, json_pack("{s:o}", "thread", rpc_thread_object(&v, false)));
		free(q);
	} else if (!thread_peek(q->id, unarchive_peek_cb, q)) {
		req_reply(q->r, json_object());
		free(q);
	}
}

static void set_archived(struct req *r, json_t *params, bool archived)
{
	struct op_req *q;
	const char *id;
	char err[512];
	int rc;

	if (rpc_thread_id_param(r, params, &id) < 0)
		return;
	q = op_req_new(r, id);
	q->unarchive = !archived;
	rc = thread_set_archived(id, archived, op_done_cb, q, err, sizeof(err));
	if (rc < 0) {
		op_refused(r, rc, err);
		free(q);
	}
}

void rpc_thread_archive(struct req *r, json_t *params) { set_archived(r, params, true); }
void rpc_thread_unarchive(struct req *r, json_t *params) { set_archived(r, params, false); }

void rpc_thread_delete(struct req *r, json_t *params)
{
	struct op_req *q;
	const char *id;
	char err[512];
	int rc;

	if (rpc_thread_id_param(r, params, &id) < 0)
		return;
	q = op_req_new(r, id);
	rc = thread_delete(id, op_done_cb, q, err, sizeof(err));
	if (rc < 0) {
		op_refused(r, rc, err);
		free(q);
	}
}

void rpc_thread_name_set(struct req *r, json_t *params)
{
	const char *id, *name;
	struct op_req *q;
	char err[512];
	int rc;

	if (rpc_thread_id_param(r, params, &id) < 0 ||
	    param_str(r, params, "name", true, &name) < 0)
		return;
	q = op_req_new(r, id);
	rc = thread_set_name(id, *name ? name : NULL, op_done_cb, q, err, sizeof(err));
	if (rc < 0) {
		op_refused(r, rc, err);
		free(q);
	}
}

/* ---- read state, subscriptions ----------------------------------------- */

void rpc_thread_read_state_update(struct req *r, json_t *params)
{
	const char *expected, *type;
	struct thread *t;
	json_t *op;
	char err[256];
	int rc;

	if (param_thread(r, params, true, &t) < 0 ||
	    param_str(r, params, "expectedRevision", true, &expected) < 0 ||
	    param_object(r, params, "operation", &op) < 0)
		return;
	type = json_string_value(json_object_get(op, "type"));
	if (!type || (strcmp(type, "read") != 0 && strcmp(type, "unread") != 0)) {
		req_error(r, CLIENT_INVALID_PARAMS, "operation: expected {type: \"read\" | \"unread\"}");
		return;
	}
	rc = thread_set_read(t, expected, strcmp(type, "unread") == 0, err, sizeof(err));
	if (rc < 0) {
		req_error(r, rc == -ESTALE ? CLIENT_INVALID_REQUEST : CLIENT_INVALID_PARAMS, "%s",
			  err);
		return;
	}
	req_reply(r, json_pack("{s:o}", "readState", thread_read_state(thread_rec(t))));
}

void rpc_thread_unsubscribe(struct req *r, json_t *params)
{
	const char *id, *status = "notLoaded";
	struct thread *t;

	if (rpc_thread_id_param(r, params, &id) < 0)
		return;
	if ((t = thread_find(id)))
		status = thread_unsubscribe(t, req_owner(r)) ? "unsubscribed" : "notSubscribed";
	req_reply(r, json_pack("{s:s}", "status", status));
}
