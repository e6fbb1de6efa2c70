/* thread_load.c - see thread.h: loading a stored thread (and making what a
 * crash left honest), peeking at one, forking, and the operations on
 * stored threads: archive, delete, rename, read state, overrides, list. */
#include "thread.h"
#include "thread_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "notify.h"
#include "store.h"
#include "util.h"

#define INTERRUPTED_TURN \
	"the turn did not finish: the orchestrator stopped (or could not save the turn) while " \
	"it was running; its completed items are kept"
#define LOST_CALL \
	"the orchestrator stopped before this call's result came back; the call was not retried"

struct thread_loading {
	char id[UUID_STR_SIZE];
	thread_done_cb cb;
	void *arg;
	bool cancelled;
};

/* ---- rows from the conversation ---------------------------------------- */

/* A Turn object's row. */
static void batch_turn(struct store_batch *b, json_t *turn, int64_t seq)
{
	json_t *d = json_object_get(turn, "durationMs");
	struct store_turn row = {
		.seq = seq,
		.id = json_string_value(json_object_get(turn, "id")),
		.status = json_string_value(json_object_get(turn, "status")),
		.started_at = json_integer_value(json_object_get(turn, "startedAt")),
		.completed_at = json_integer_value(json_object_get(turn, "completedAt")),
		.duration_ms = json_is_integer(d) ? json_integer_value(d) : -1,
		.error = json_string_value(json_object_get(json_object_get(turn, "error"),
							    "message")),
	};

	if (!row.id || !row.status)
		return;
	store_batch_turn(b, &row);
}

/* Turn wrapper e's items, with the seq and times of its itemRows. */
static void batch_items(struct store_batch *b, json_t *e, bool only_repaired)
{
	json_t *items = json_object_get(json_object_get(e, "turn"), "items");
	json_t *rows = json_object_get(e, "itemRows"), *item;
	int64_t seq = json_integer_value(json_object_get(e, "seq"));
	size_t i;

	json_array_foreach(items, i, item) {
		json_t *row = json_array_get(rows, i);

		if (only_repaired && !json_is_true(json_object_get(item, "repaired")))
			continue;
		json_object_del(item, "repaired");
		store_batch_item(b, seq, row ? json_integer_value(json_array_get(row, 0)) : (int64_t)i,
				 json_integer_value(json_array_get(row, 1)),
				 json_integer_value(json_array_get(row, 2)), item);
	}
}

/* ---- crash honesty ----------------------------------------------------- */

static bool is_status(json_t *o, const char *status)
{
	const char *s = json_string_value(json_object_get(o, "status"));

	return s && strcmp(s, status) == 0;
}

/* A turn still "inProgress" in the store was running when the orchestrator
 * died: it becomes interrupted, and its calls without a result failed. */
static void repair_turns(struct thread *t, struct store_batch *b)
{
	json_t *e, *item;
	size_t i, j;

	json_array_foreach(thread_turns(t), i, e) {
		json_t *turn = json_object_get(e, "turn");

		if (!is_status(turn, "inProgress"))
			continue;
		json_object_set_new(turn, "status", json_string("interrupted"));
		json_object_set_new(turn, "error", json_pack("{s:s}", "message", INTERRUPTED_TURN));
		json_array_foreach(json_object_get(turn, "items"), j, item) {
			if (!is_status(item, "inProgress"))
				continue;
			json_object_set_new(item, "status", json_string("failed"));
			json_object_set_new(item, "error", json_pack("{s:s}", "message", LOST_CALL));
			json_object_set_new(item, "repaired", json_true());
		}
		log_warn("thread %s: turn %s was running when the orchestrator stopped: now "
			 "interrupted", t->rec.id, json_string_value(json_object_get(turn, "id")));
		if (b) {
			batch_turn(b, turn, json_integer_value(json_object_get(e, "seq")));
			batch_items(b, e, true);
		}
	}
}

/* Every function_call of the history gets an output, or the model API
 * refuses the next request: a call that never got one failed (it is not
 * run again). */
static void repair_history(struct thread *t, struct store_batch *b)
{
	json_t *h = thread_history(t), *done = json_object(), *v, *last;
	size_t i, n = json_array_size(h);

	json_array_foreach(h, i, v) {
		const char *type = json_string_value(json_object_get(v, "type"));
		const char *id = json_string_value(json_object_get(v, "call_id"));

		if (type && id && strcmp(type, "function_call_output") == 0)
			json_object_set(done, id, json_true());
	}
	for (i = 0; i < n; i++) {
		const char *id = json_string_value(json_object_get(json_array_get(h, i), "call_id"));
		const char *type = json_string_value(json_object_get(json_array_get(h, i), "type"));

		if (!id || !type || strcmp(type, "function_call") != 0 || json_object_get(done, id))
			continue;
		json_object_set(done, id, json_true());
		v = json_pack("{s:s, s:s, s:s}", "type", "function_call_output", "call_id", id,
			      "output", "error: " LOST_CALL);
		last = json_array_get(thread_turns(t), json_array_size(thread_turns(t)) - 1);
		if (b && last)
			store_batch_history(b, (int64_t)json_array_size(h),
					    json_integer_value(json_object_get(last, "seq")), v);
		json_array_append_new(h, v);
		if (last)
			json_object_set_new(last, "histEnd",
					    json_integer((json_int_t)json_array_size(h)));
	}
	json_decref(done);
}

/* ---- loading ----------------------------------------------------------- */

/* A loaded thread from the store's copy (taken from l). */
static int from_loaded(struct store_loaded *l, struct thread **out, char *err, size_t errlen)
{
	struct thread_spec spec;
	struct thread *t = NULL;
	json_t *meta;
	char *cwd;
	int r = thread_meta_to_spec(l->rec.meta, &spec, err, errlen);

	if (r == 0)
		r = thread_alloc(&spec, &t, err, errlen);
	thread_spec_free(&spec);
	if (r < 0)
		return r;
	/* The record as stored, with the settings as thread_alloc wrote them. */
	meta = TAKE_PTR(t->rec.meta);
	cwd = TAKE_PTR(t->rec.cwd);
	store_thread_clear(&t->rec);
	t->rec = l->rec;
	memset(&l->rec, 0, sizeof(l->rec));
	json_decref(t->rec.meta);
	t->rec.meta = meta;
	free(t->rec.cwd);
	t->rec.cwd = cwd;
	t->turns = TAKE_PTR(l->turns);
	t->history = TAKE_PTR(l->history);
	*out = t;
	return 0;
}

static void repair(struct thread *t)
{
	struct store_batch *b = thread_batch(t);

	repair_turns(t, b);
	repair_history(t, b);
	thread_submit(t, b);
}

static void load_done_cb(int rc, const char *err, void *res, void *arg)
{
	struct thread_loading *h = arg;
	struct thread *t = NULL;
	char why[512];

	if (rc == 0 && threads_stopped()) { /* shutting down: the store drains */
		rc = -ESHUTDOWN;
		err = "the orchestrator is stopping";
	}
	if (rc == 0 && !(t = thread_find(h->id))) { /* not loaded meanwhile */
		rc = from_loaded(res, &t, why, sizeof(why));
		if (rc < 0)
			err = why;
		else
			repair(t);
	}
	if (!h->cancelled)
		h->cb(rc < 0 ? NULL : t, rc, err, h->arg);
	free(h);
}

/* Subscribers hear that t is gone from memory; then it is freed. */
static void thread_close(struct thread *t, const char *why)
{
	thread_flush(t);
	thread_notify(t, NOTIFY_THREAD_CLOSED, json_object());
	thread_free(t, why);
}

bool thread_items_complete(struct thread *t)
{
	json_t *e;
	size_t i;

	json_array_foreach(thread_turns(t), i, e)
		if (json_is_false(json_object_get(e, "itemsLoaded")))
			return false;
	return true;
}

struct thread_loading *thread_load(const char *id, int64_t items_last, thread_done_cb cb,
				   void *arg)
{
	struct thread *t = thread_find(id);
	struct thread_loading *h;
	char why[256];

	if (t && t->store_error && !t->turn && !t->n_waiters) {
		log_info("thread %s: reloading it from the store after a failed write", id);
		thread_close(t, "the thread is being reloaded from the store");
		t = NULL;
	}
	if (t) {
		cb(t, 0, NULL, arg);
		return NULL;
	}
	if (!store_is_open()) {
		snprintf(why, sizeof(why), "no thread '%s' (this orchestrator keeps no thread store)",
			 id);
		cb(NULL, -ENOENT, why, arg);
		return NULL;
	}
	h = xcalloc(1, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%s", id);
	h->cb = cb;
	h->arg = arg;
	store_load(id, items_last, load_done_cb, h);
	return h;
}

void thread_load_cancel(struct thread_loading *h)
{
	if (h)
		h->cancelled = true;
}

struct store_op *thread_peek(const char *id,
			     void (*cb)(int rc, const char *err, void *loaded, void *arg),
			     void *arg)
{
	return store_is_open() ? store_load(id, STORE_ALL_ITEMS, cb, arg) : NULL;
}

/* ---- forking ----------------------------------------------------------- */

/* The history rows of a fork: each entry with the seq of its turn. */
static void batch_history(struct store_batch *b, json_t *turns, json_t *hist)
{
	size_t k = 0;
	json_t *v;
	size_t i;

	json_array_foreach(hist, i, v) {
		json_t *e = json_array_get(turns, k);

		while (e && (size_t)json_integer_value(json_object_get(e, "histEnd")) <= i)
			e = json_array_get(turns, ++k);
		store_batch_history(b, (int64_t)i,
				    e ? json_integer_value(json_object_get(e, "seq")) : 1, v);
	}
}

static void fork_write(struct thread *t)
{
	struct store_batch *b = thread_batch(t);
	json_t *e;
	size_t i;

	if (!b)
		return;
	store_batch_thread(b, &t->rec);
	json_array_foreach(thread_turns(t), i, e) {
		batch_turn(b, json_object_get(e, "turn"), json_integer_value(json_object_get(e, "seq")));
		batch_items(b, e, false);
	}
	batch_history(b, thread_turns(t), thread_history(t));
	thread_submit(t, b);
}

/* Turns [0, upto] and the history they saw, copied from src. */
static void fork_copy(struct thread *t, json_t *turns, json_t *hist, ssize_t upto)
{
	size_t n_hist = 0;

	t->turns = json_array();
	t->history = json_array();
	for (ssize_t i = 0; i <= upto && (size_t)i < json_array_size(turns); i++) {
		json_t *e = json_array_get(turns, (size_t)i);

		json_array_append_new(t->turns, json_deep_copy(e));
		n_hist = (size_t)json_integer_value(json_object_get(e, "histEnd"));
	}
	for (size_t i = 0; i < n_hist && i < json_array_size(hist); i++)
		json_array_append(t->history, json_array_get(hist, i)); /* never mutated */
}

int thread_fork(struct thread *src, const struct store_loaded *from, ssize_t upto,
		const char *model, const char *cwd, bool ephemeral, uint64_t owner,
		struct thread **out, char *err, size_t errlen)
{
	const struct store_thread *rec = src ? &src->rec : &from->rec;
	struct thread_spec spec;
	struct thread *t = NULL;
	int r = thread_meta_to_spec(rec->meta, &spec, err, errlen);

	if (r == 0) {
		spec.model = model ? model : spec.model;
		spec.cwd = cwd ? cwd : spec.cwd;
		spec.ephemeral = ephemeral;
		r = thread_alloc(&spec, &t, err, errlen);
	}
	thread_spec_free(&spec);
	if (r < 0)
		return r;
	uuid_v4(t->rec.id);
	t->rec.created_ms = t->rec.updated_ms = thread_wall_ms();
	t->rec.forked_from = xstrdup(rec->id);
	t->rec.preview = rec->preview ? xstrdup(rec->preview) : NULL;
	fork_copy(t, src ? thread_turns(src) : from->turns, src ? thread_history(src) : from->history,
		  upto);
	thread_subscribe(t, owner);
	fork_write(t);
	*out = t;
	return 0;
}

/* ---- operations on stored threads -------------------------------------- */

struct opdone {
	void (*cb)(int rc, const char *err, void *arg);
	void *arg;
};

static struct opdone *opdone_new(void (*cb)(int, const char *, void *), void *arg)
{
	struct opdone *d = xcalloc(1, sizeof(*d));

	d->cb = cb;
	d->arg = arg;
	return d;
}

static void op_done_cb(int rc, const char *err, void *res, void *arg)
{
	struct opdone *d = arg;

	d->cb(rc, err, d->arg);
	free(d);
}

static void saved_done_cb(struct thread *t, int rc, const char *err, void *arg)
{
	op_done_cb(rc, err, NULL, arg);
}

/* One update of a thread that is not loaded. */
static int update_stored(const char *id, unsigned fields, const struct store_thread *rec,
			 struct opdone *d, char *err, size_t errlen)
{
	struct store_batch *b;

	if (!store_is_open()) {
		free(d);
		snprintf(err, errlen, "no thread '%s'", id);
		return -ENOENT;
	}
	b = store_batch_new(id);
	store_batch_update(b, fields, rec, 0);
	store_submit(b, op_done_cb, d);
	return 0;
}

/* Saves fields of loaded t, and then answers d. */
static void update_loaded(struct thread *t, unsigned fields, struct opdone *d)
{
	struct store_batch *b = thread_batch(t);

	if (b) {
		store_batch_update(b, fields, &t->rec, 0);
		thread_submit(t, b);
	}
	thread_when_saved(t, saved_done_cb, d);
}

int thread_set_archived(const char *id, bool archived,
			void (*cb)(int rc, const char *err, void *arg), void *arg, char *err,
			size_t errlen)
{
	struct thread *t = thread_find(id);
	struct store_thread rec = { .archived = archived };

	if (!t)
		return update_stored(id, STORE_F_ARCHIVED, &rec, opdone_new(cb, arg), err, errlen);
	if (t->ephemeral) {
		snprintf(err, errlen, "thread %s is ephemeral: it is not stored, so it cannot be "
			 "%sarchived", id, archived ? "" : "un");
		return -EINVAL;
	}
	if (t->turn) {
		snprintf(err, errlen, "thread %s has a turn running", id);
		return -EBUSY;
	}
	t->rec.archived = archived;
	update_loaded(t, STORE_F_ARCHIVED, opdone_new(cb, arg));
	thread_notify_saved(t, archived ? NOTIFY_THREAD_ARCHIVED : NOTIFY_THREAD_UNARCHIVED,
			    json_object());
	return 0;
}

int thread_set_name(const char *id, const char *name,
		    void (*cb)(int rc, const char *err, void *arg), void *arg, char *err,
		    size_t errlen)
{
	struct thread *t = thread_find(id);
	struct store_thread rec = { .name = (char *)name };

	if (name && strnlen(name, THREAD_NAME_MAX + 1) > THREAD_NAME_MAX) {
		snprintf(err, errlen, "name: longer than %u bytes", THREAD_NAME_MAX);
		return -EINVAL;
	}
	if (!t)
		return update_stored(id, STORE_F_NAME, &rec, opdone_new(cb, arg), err, errlen);
	free(t->rec.name);
	t->rec.name = name ? xstrdup(name) : NULL;
	update_loaded(t, STORE_F_NAME, opdone_new(cb, arg));
	thread_notify_saved(t, NOTIFY_THREAD_NAME_UPDATED,
			    json_pack("{s:o}", "threadName", name ? json_string(name) : json_null()));
	return 0;
}

int thread_delete(const char *id, void (*cb)(int rc, const char *err, void *arg), void *arg,
		  char *err, size_t errlen)
{
	struct thread *t = thread_find(id);
	struct store_batch *b;
	bool stored = true;

	if (t) {
		if (t->turn || t->n_waiters) {
			snprintf(err, errlen, "thread %s is in use (%s); try again when it is idle", id,
				 t->turn ? "a turn is running" : "requests wait on it");
			return -EBUSY;
		}
		stored = !t->ephemeral;
		thread_flush(t);
		thread_notify(t, NOTIFY_THREAD_DELETED, json_object());
		thread_close(t, "the thread was deleted");
	}
	if (!stored || !store_is_open()) {
		if (!t) {
			snprintf(err, errlen, "no thread '%s'", id);
			return -ENOENT;
		}
		cb(0, NULL, arg);
		return 0;
	}
	/* Writes still queued for it commit first (the store keeps order). */
	b = store_batch_new(id);
	store_batch_delete(b);
	store_submit(b, op_done_cb, opdone_new(cb, arg));
	return 0;
}

json_t *thread_read_state(const struct store_thread *rec)
{
	return json_pack("{s:o, s:o}", "revision", json_sprintf("%lld", (long long)rec->read_rev),
			 "firstUnread", rec->unread ? json_incref(rec->unread) : json_null());
}

int thread_set_read(struct thread *t, const char *expected, bool unread, char *err,
		    size_t errlen)
{
	char cur[32];
	struct store_batch *b;

	snprintf(cur, sizeof(cur), "%lld", (long long)t->rec.read_rev);
	if (strcmp(expected, cur) != 0) {
		snprintf(err, errlen, "expectedRevision: the read state is at revision \"%s\"", cur);
		return -ESTALE;
	}
	t->rec.read_rev++;
	json_decref(t->rec.unread);
	t->rec.unread = unread ? json_pack("{s:s}", "type", "threadStart") : NULL;
	if ((b = thread_batch(t))) {
		store_batch_update(b, STORE_F_READ, &t->rec, 0);
		thread_submit(t, b);
	}
	thread_notify_saved(t, NOTIFY_THREAD_READ_STATE_CHANGED,
			    json_pack("{s:o}", "readState", thread_read_state(&t->rec)));
	return 0;
}

int thread_override(struct thread *t, const char *model, const char *cwd, char *err,
		    size_t errlen)
{
	struct store_batch *b;

	if ((model && strnlen(model, THREAD_MODEL_MAX + 1) > THREAD_MODEL_MAX) ||
	    (cwd && strnlen(cwd, THREAD_PATH_MAX + 1) > THREAD_PATH_MAX)) {
		snprintf(err, errlen, "%s: longer than its bound (%u bytes)", model ? "model" : "cwd",
			 model ? THREAD_MODEL_MAX : THREAD_PATH_MAX);
		return -EINVAL;
	}
	if (!model && !cwd)
		return 0;
	if (model) {
		free(t->model);
		t->model = xstrdup(model);
		json_object_set_new(t->rec.meta, "model", json_string(model));
	}
	if (cwd) {
		free(t->cwd);
		t->cwd = xstrdup(cwd);
		free(t->rec.cwd);
		t->rec.cwd = xstrdup(cwd);
		json_object_set_new(t->rec.meta, "cwd", json_string(cwd));
	}
	if ((b = thread_batch(t))) {
		store_batch_update(b, STORE_F_META, &t->rec, 0);
		thread_submit(t, b);
	}
	return 0;
}

struct store_op *thread_list(const struct store_list_query *q,
			     void (*cb)(int rc, const char *err, void *result, void *arg),
			     void *arg)
{
	return store_is_open() ? store_list(q, cb, arg) : NULL;
}
