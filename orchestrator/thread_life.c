/* thread_life.c - see thread.h: creating threads, their record and
 * conversation, the thread store's writes and the outbox that orders
 * notifications behind them, subscribers, loading, forking, unloading. */
#include "thread.h"
#include "thread_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "loop.h"
#include "notify.h"
#include "store.h"
#include "utf8.h"
#include "util.h"

#define SWEEP_MAX_MS 30000u
#define SWEEP_MIN_MS 100u

/* A write of t in flight. */
struct twrite {
	struct twrite *next;
	struct thread *t;
	struct store_op *op;
	uint64_t wseq;
};

/* An outbox entry: a notification or a thread_when_saved callback, held
 * until write `wseq` completed (0: held only by the entries before it). */
struct tnote {
	struct tnote *next;
	uint64_t wseq;
	bool ready;
	bool always;   /* a notification sent even when its write failed */
	int rc;
	char *err;
	enum notify_kind kind;
	json_t *params;
	thread_done_cb cb;
	void *arg;
};

static struct {
	struct loop *loop;
	struct thread *list; /* newest first */
	struct thread *detached; /* thread_spec.detached ones: events, no listing */
	size_t n;
	uint64_t idle_ms;
	struct loop_timer *sweep;
	uint64_t unloaded;
	bool stopped;  /* thread_free_all ran: loads completing now make nothing */
	void (*store_failed_cb)(struct thread *t, const char *err);
} life;

/* Wall-clock milliseconds for createdAt/updatedAt, strictly increasing in
 * this process: lists sorted by them keep the order things happened in,
 * also for threads started within one millisecond. */
int64_t thread_wall_ms(void)
{
	static int64_t last;
	struct timespec ts;
	int64_t ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	last = ms > last ? ms : last + 1;
	return last;
}

/* ---- accessors --------------------------------------------------------- */

const char *thread_id(const struct thread *t) { return t->global ? NULL : t->rec.id; }
const struct store_thread *thread_rec(const struct thread *t) { return &t->rec; }
bool thread_ephemeral(const struct thread *t) { return t->ephemeral; }
int64_t thread_created_at(const struct thread *t) { return t->rec.created_ms / 1000; }
const char *thread_cwd(const struct thread *t) { return t->cwd; }
const char *thread_model(const struct thread *t) { return t->model; }
bool thread_has_envs(const struct thread *t) { return t->has_envs; }
size_t thread_n_envs(const struct thread *t) { return t->n_envs; }
const char *thread_store_error(const struct thread *t) { return t->store_error; }
struct thread *thread_first(void) { return life.list; }
struct thread *thread_next(const struct thread *t) { return t->next; }
size_t threads_count(void) { return life.n; }
uint64_t threads_unloaded(void) { return life.unloaded; }
struct turn *thread_turn(const struct thread *t) { return t->turn; }

const char *thread_env_at(const struct thread *t, size_t i, const char **cwd)
{
	*cwd = t->envs[i].cwd;
	return t->envs[i].id;
}

bool thread_id_valid(const char *id)
{
	for (size_t i = 0; i < UUID_STR_SIZE - 1; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? id[i] != '-' : hexval(id[i]) < 0)
			return false;
	}
	return id[UUID_STR_SIZE - 1] == '\0';
}

struct thread *thread_find(const char *id)
{
	for (struct thread *t = life.list; t; t = t->next)
		if (strcmp(t->rec.id, id) == 0)
			return t;
	return NULL;
}

json_t *thread_usage(struct thread *t)
{
	if (!t->usage)
		t->usage = json_object();
	return t->usage;
}

json_t *thread_history(struct thread *t)
{
	if (!t->history)
		t->history = json_array();
	return t->history;
}

json_t *thread_turns(struct thread *t)
{
	if (!t->turns)
		t->turns = json_array();
	return t->turns;
}

int64_t thread_turn_seq(const struct thread *t)
{
	return (int64_t)json_array_size(t->turns) + 1;
}

void threads_set_store_failed_cb(void (*cb)(struct thread *t, const char *err))
{
	life.store_failed_cb = cb;
}

/* ---- settings: the spec, its bounds, its stored form ------------------- */

static bool too_long(const char *s, size_t max) { return s && strnlen(s, max + 1) > max; }

/* Every string a thread keeps is bounded: a peer cannot pin memory with a
 * megabyte "cwd" in a thread that outlives it. */
static int spec_check(const struct thread_spec *spec, char *err, size_t errlen)
{
	if (spec->n_roots > THREAD_MAX_ROOTS) {
		snprintf(err, errlen, "selectedCapabilityRoots: at most %u roots", THREAD_MAX_ROOTS);
		return -EINVAL;
	}
	if (spec->n_envs > THREAD_MAX_ENVS) {
		snprintf(err, errlen, "environments: at most %u entries", THREAD_MAX_ENVS);
		return -EINVAL;
	}
	if (too_long(spec->cwd, THREAD_PATH_MAX) || too_long(spec->model, THREAD_MODEL_MAX)) {
		snprintf(err, errlen, "%s: longer than %u bytes", spec->cwd &&
			 too_long(spec->cwd, THREAD_PATH_MAX) ? "cwd" : "model",
			 too_long(spec->cwd, THREAD_PATH_MAX) ? THREAD_PATH_MAX : THREAD_MODEL_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < spec->n_envs; i++) {
		if (too_long(spec->envs[i].cwd, THREAD_PATH_MAX) ||
		    too_long(spec->envs[i].env_id, THREAD_ID_MAX)) {
			snprintf(err, errlen, "environments[%zu]: a field longer than %u bytes", i,
				 THREAD_PATH_MAX);
			return -EINVAL;
		}
	}
	for (size_t i = 0; i < spec->n_roots; i++) {
		if (too_long(spec->roots[i].id, THREAD_ID_MAX) ||
		    too_long(spec->roots[i].env_id, THREAD_ID_MAX) ||
		    too_long(spec->roots[i].path, THREAD_PATH_MAX)) {
			snprintf(err, errlen, "selectedCapabilityRoots[%zu]: a field over its bound "
				 "(id %u, path %u bytes)", i, THREAD_ID_MAX, THREAD_PATH_MAX);
			return -EINVAL;
		}
	}
	return 0;
}

static json_t *str_or_null(const char *s) { return s ? json_string(s) : json_null(); }

/* The settings as stored (threads.meta). */
static json_t *spec_to_meta(const struct thread_spec *spec)
{
	json_t *m = json_pack("{s:o, s:o}", "model", str_or_null(spec->model), "cwd",
			      str_or_null(spec->cwd));
	json_t *roots = json_array(), *envs;

	for (size_t i = 0; i < spec->n_roots; i++)
		json_array_append_new(roots, json_pack("{s:s, s:s, s:s}", "id", spec->roots[i].id,
						       "environmentId", spec->roots[i].env_id,
						       "path", spec->roots[i].path));
	json_object_set_new(m, "roots", roots);
	envs = spec->envs ? json_array() : json_null();
	for (size_t i = 0; spec->envs && i < spec->n_envs; i++)
		json_array_append_new(envs, json_pack("{s:s, s:o}", "id", spec->envs[i].env_id, "cwd",
						      str_or_null(spec->envs[i].cwd)));
	json_object_set_new(m, "environments", envs);
	return m;
}

/* The spec of stored settings (borrowing from meta; arrays to free). */
int thread_meta_to_spec(json_t *m, struct thread_spec *spec, char *err, size_t errlen)
{
	json_t *roots = json_object_get(m, "roots"), *envs = json_object_get(m, "environments");
	struct thread_root_spec *rs;
	struct thread_env_spec *es;
	json_t *v;
	size_t i;

	memset(spec, 0, sizeof(*spec));
	spec->model = json_string_value(json_object_get(m, "model"));
	spec->cwd = json_string_value(json_object_get(m, "cwd"));
	if (!json_is_array(roots) || json_array_size(roots) > THREAD_MAX_ROOTS ||
	    (!json_is_null(envs) && !json_is_array(envs))) {
		snprintf(err, errlen, "thread store: damaged settings");
		return -EINVAL;
	}
	spec->roots = rs = xcalloc(json_array_size(roots) + 1, sizeof(*rs));
	json_array_foreach(roots, i, v) {
		rs[i].id = json_string_value(json_object_get(v, "id"));
		rs[i].env_id = json_string_value(json_object_get(v, "environmentId"));
		rs[i].path = json_string_value(json_object_get(v, "path"));
		if (!rs[i].id || !rs[i].env_id || !rs[i].path) {
			snprintf(err, errlen, "thread store: damaged root %zu", i);
			return -EINVAL;
		}
	}
	spec->n_roots = json_array_size(roots);
	if (json_is_array(envs)) {
		spec->envs = es = xcalloc(json_array_size(envs) + 1, sizeof(*es));
		json_array_foreach(envs, i, v) {
			es[i].env_id = json_string_value(json_object_get(v, "id"));
			es[i].cwd = json_string_value(json_object_get(v, "cwd"));
			if (!es[i].env_id) {
				snprintf(err, errlen, "thread store: damaged environment %zu", i);
				return -EINVAL;
			}
		}
		spec->n_envs = json_array_size(envs);
	}
	return spec_check(spec, err, errlen);
}

void thread_spec_free(struct thread_spec *spec)
{
	free((void *)spec->roots);
	free((void *)spec->envs);
}

static void copy_spec(struct thread *t, const struct thread_spec *spec)
{
	t->cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
	t->model = spec->model ? xstrdup(spec->model) : NULL;
	t->has_envs = spec->envs != NULL;
	t->n_envs = (uint32_t)spec->n_envs;
	t->envs = spec->n_envs ? xcalloc(spec->n_envs, sizeof(*t->envs)) : NULL;
	for (size_t i = 0; i < spec->n_envs; i++) {
		t->envs[i].id = xstrdup(spec->envs[i].env_id);
		t->envs[i].cwd = spec->envs[i].cwd ? xstrdup(spec->envs[i].cwd) : NULL;
	}
	thread_roots_set(t, spec->roots, spec->n_roots);
	json_decref(t->rec.meta);
	t->rec.meta = spec_to_meta(spec);
	free(t->rec.cwd);
	t->rec.cwd = spec->cwd ? xstrdup(spec->cwd) : NULL;
}

/* ---- creation and freeing ---------------------------------------------- */

static void link_thread(struct thread *t)
{
	t->used_ms = now_ms();
	if (t->detached) {
		t->next = life.detached;
		life.detached = t;
		return;
	}
	t->next = life.list;
	life.list = t;
	life.n++;
}

struct thread *thread_all_first(void) { return life.list ? life.list : life.detached; }

struct thread *thread_all_next(const struct thread *t)
{
	return t->next ? t->next : !t->detached ? life.detached : NULL;
}

/* A thread struct with spec's settings, linked, not written. */
int thread_alloc(const struct thread_spec *spec, struct thread **out, char *err,
		 size_t errlen)
{
	const struct config *c = config_current();
	struct thread *t;
	int r;

	if (life.n >= THREAD_MAX) {
		snprintf(err, errlen, "too many threads loaded (%u)", THREAD_MAX);
		return -EMFILE;
	}
	if ((r = spec_check(spec, err, errlen)) < 0)
		return r;
	t = xcalloc(1, sizeof(*t));
	t->out_tail = &t->out_head;
	t->detached = spec->detached;
	t->ephemeral = spec->ephemeral || spec->detached || !store_is_open();
	t->rec.provider = xstrdup(c && c->model_provider ? c->model_provider : "openai");
	copy_spec(t, spec);
	link_thread(t);
	*out = t;
	return 0;
}

int thread_new(const struct thread_spec *spec, uint64_t owner, struct thread **out, char *err,
	       size_t errlen)
{
	struct thread *t;
	int r = thread_alloc(spec, &t, err, errlen);

	if (r < 0)
		return r;
	uuid_v4(t->rec.id);
	t->rec.created_ms = t->rec.updated_ms = thread_wall_ms();
	thread_subscribe(t, owner);
	if (!t->ephemeral) {
		struct store_batch *b = thread_batch(t);

		store_batch_thread(b, &t->rec);
		thread_submit(t, b);
	}
	*out = t;
	return 0;
}

static void note_free(struct tnote *n)
{
	json_decref(n->params);
	free(n->err);
	free(n);
}

/* Frees t: writes in flight complete without it; waiters of its saves
 * hear why. */
void thread_free(struct thread *t, const char *why)
{
	t->closing = true;
	thread_watchers_run(t); /* they let go of t now */
	for (struct thread **pp = t->detached ? &life.detached : &life.list; *pp;
	     pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			life.n -= !t->detached;
			break;
		}
	}
	while (t->writes) {
		struct twrite *w = t->writes;

		t->writes = w->next;
		store_op_cancel(w->op);
		free(w);
	}
	while (t->out_head) {
		struct tnote *n = t->out_head;

		t->out_head = n->next;
		if (n->cb)
			n->cb(t, -ECANCELED, why, n->arg);
		note_free(n);
	}
	thread_runtime_free(t);
	json_decref(t->history);
	json_decref(t->usage);
	json_decref(t->turns);
	free(t->cwd);
	free(t->model);
	for (uint32_t i = 0; i < t->n_envs; i++) {
		free(t->envs[i].id);
		free(t->envs[i].cwd);
	}
	free(t->envs);
	free(t->subs);
	free(t->watchers);
	free(t->store_error);
	store_thread_clear(&t->rec);
	free(t);
}

bool threads_stopped(void) { return life.stopped; }

void thread_free_detached(struct thread *t)
{
	if (t)
		thread_free(t, "the thread was closed");
}

void thread_free_all(void)
{
	life.stopped = true;
	while (life.detached)
		thread_free(life.detached, "the orchestrator is stopping");
	while (life.list)
		thread_free(life.list, "the orchestrator is stopping");
	thread_global_reset();
	life.sweep = NULL; /* the loop frees its timers */
}

/* ---- subscribers ------------------------------------------------------- */

void thread_touch(struct thread *t) { t->used_ms = now_ms(); }

bool thread_subscribed(const struct thread *t, uint64_t owner)
{
	for (uint32_t i = 0; i < t->n_subs; i++)
		if (t->subs[i] == owner)
			return true;
	return false;
}

size_t thread_n_subscribers(const struct thread *t) { return t->n_subs; }

void thread_subscribe(struct thread *t, uint64_t owner)
{
	thread_touch(t);
	if (!owner || thread_subscribed(t, owner))
		return;
	if (t->n_subs >= THREAD_SUBS_MAX) {
		log_warn("thread %s: %u subscribers already; client %llu not added", t->rec.id,
			 THREAD_SUBS_MAX, (unsigned long long)owner);
		return;
	}
	if (t->n_subs == t->cap_subs) {
		t->cap_subs = t->cap_subs ? 2 * t->cap_subs : 2;
		t->subs = xrealloc(t->subs, t->cap_subs * sizeof(*t->subs));
	}
	t->subs[t->n_subs++] = owner;
}

bool thread_unsubscribe(struct thread *t, uint64_t owner)
{
	for (uint32_t i = 0; i < t->n_subs; i++) {
		if (t->subs[i] == owner) {
			t->subs[i] = t->subs[--t->n_subs];
			thread_touch(t); /* the idle clock starts now */
			return true;
		}
	}
	return false;
}

void threads_owner_gone(uint64_t owner)
{
	for (struct thread *t = life.list; t; t = t->next)
		thread_unsubscribe(t, owner);
}

/* ---- notifications: the outbox ----------------------------------------- */

static void fan_out(struct thread *t, enum notify_kind kind, json_t *params)
{
	for (uint32_t i = 0; i < t->n_subs; i++)
		notify_owner(t->subs[i], kind, json_incref(params));
	json_decref(params);
}

static void deliver(struct thread *t, struct tnote *n)
{
	if (n->cb) {
		n->cb(t, n->rc, n->err, n->arg);
	} else if (n->rc == 0 || n->always) {
		fan_out(t, n->kind, TAKE_PTR(n->params));
	} else {
		log_warn("thread %s: %s not sent: the write that records it failed (%s)",
			 t->rec.id, notify_method(n->kind), n->err ? n->err : "?");
	}
	note_free(n);
}

static void out_flush(struct thread *t)
{
	while (t->out_head && t->out_head->ready) {
		struct tnote *n = t->out_head;

		t->out_head = n->next;
		if (!t->out_head)
			t->out_tail = &t->out_head;
		deliver(t, n);
	}
}

void thread_flush(struct thread *t)
{
	for (struct tnote *n = t->out_head; n; n = n->next) {
		if (!n->ready) {
			n->ready = true;
			n->rc = -ECANCELED;
			n->err = xstrdup("the thread was closed before its write completed");
		}
	}
	out_flush(t);
}

static void out_push(struct thread *t, struct tnote *n)
{
	n->next = NULL;
	*t->out_tail = n;
	t->out_tail = &n->next;
}

/* Every thread notification names its thread, but thread/started (its
 * params are the Thread itself). */
static json_t *with_thread_id(struct thread *t, enum notify_kind kind, json_t *params)
{
	if (kind != NOTIFY_THREAD_STARTED)
		json_object_set_new(params, "threadId", json_string(t->rec.id));
	return params;
}

void thread_notify(struct thread *t, enum notify_kind kind, json_t *params)
{
	struct tnote *n;

	with_thread_id(t, kind, params);
	if (!t->out_head) {
		fan_out(t, kind, params);
		return;
	}
	n = xcalloc(1, sizeof(*n));
	n->ready = true;
	n->kind = kind;
	n->params = params;
	out_push(t, n);
}

static void notify_held(struct thread *t, enum notify_kind kind, json_t *params, bool always)
{
	struct tnote *n;

	if (t->wseq_done == t->wseq_sent) { /* nothing in flight */
		thread_notify(t, kind, params);
		return;
	}
	n = xcalloc(1, sizeof(*n));
	n->wseq = t->wseq_sent;
	n->kind = kind;
	n->always = always;
	n->params = with_thread_id(t, kind, params);
	out_push(t, n);
}

void thread_notify_saved(struct thread *t, enum notify_kind kind, json_t *params)
{
	notify_held(t, kind, params, false);
}

void thread_notify_after(struct thread *t, enum notify_kind kind, json_t *params)
{
	notify_held(t, kind, params, true);
}

void thread_when_saved(struct thread *t, thread_done_cb cb, void *arg)
{
	struct tnote *n;

	if (t->wseq_done == t->wseq_sent && !t->out_head) {
		cb(t, t->store_error ? -EIO : 0, t->store_error, arg);
		return;
	}
	n = xcalloc(1, sizeof(*n));
	n->wseq = t->wseq_sent;
	n->ready = t->wseq_done == t->wseq_sent;
	n->rc = t->store_error ? -EIO : 0;
	n->err = t->store_error ? xstrdup(t->store_error) : NULL;
	n->cb = cb;
	n->arg = arg;
	out_push(t, n);
}

void thread_forget_saved(struct thread *t, thread_done_cb cb, void *arg)
{
	for (struct tnote **pp = &t->out_head; *pp; pp = &(*pp)->next) {
		struct tnote *n = *pp;

		if (n->cb == cb && n->arg == arg) {
			*pp = n->next;
			if (t->out_tail == &n->next)
				t->out_tail = pp;
			note_free(n);
			return;
		}
	}
}

/* ---- writes ------------------------------------------------------------ */

struct store_batch *thread_batch(struct thread *t)
{
	return t->ephemeral ? NULL : store_batch_new(t->rec.id);
}

static void write_done_cb(int rc, const char *err, void *res, void *arg)
{
	struct twrite *w = arg;
	struct thread *t = w->t;

	for (struct twrite **pp = &t->writes; *pp; pp = &(*pp)->next) {
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	}
	t->wseq_done = w->wseq;
	if (rc < 0 && !t->store_error) {
		t->store_error = xstrdup(err ? err : "the thread store failed");
		log_error("thread %s: the thread store could not save it: %s", t->rec.id,
			  t->store_error);
	}
	for (struct tnote *n = t->out_head; n; n = n->next) {
		if (!n->ready && n->wseq <= w->wseq) {
			n->ready = true;
			n->rc = rc;
			if (rc < 0)
				n->err = xstrdup(err ? err : "?");
		}
	}
	free(w);
	out_flush(t);
	if (rc < 0 && life.store_failed_cb)
		life.store_failed_cb(t, t->store_error);
}

void thread_submit(struct thread *t, struct store_batch *b)
{
	struct twrite *w;

	if (!b)
		return;
	if (t->ephemeral || store_batch_size(b) == 0) {
		store_batch_free(b);
		return;
	}
	w = xcalloc(1, sizeof(*w));
	w->t = t;
	w->wseq = ++t->wseq_sent;
	w->op = store_submit(b, write_done_cb, w);
	if (!w->op) { /* the store stopped: nothing will be written any more */
		free(w);
		t->wseq_done = t->wseq_sent;
		return;
	}
	w->next = t->writes;
	t->writes = w;
}

/* ---- the conversation -------------------------------------------------- */

void thread_history_push(struct thread *t, json_t *entry, struct store_batch *b)
{
	json_t *h = thread_history(t);

	if (b)
		store_batch_history(b, (int64_t)json_array_size(h), thread_turn_seq(t), entry);
	json_array_append_new(h, entry);
}

void thread_turn_finished(struct thread *t, json_t *turn, json_t *item_rows)
{
	json_array_append_new(thread_turns(t),
			      json_pack("{s:o, s:I, s:I, s:o, s:b}", "turn", turn, "seq",
					(json_int_t)thread_turn_seq(t), "histEnd",
					(json_int_t)json_array_size(thread_history(t)), "itemRows",
					item_rows ? item_rows : json_array(), "itemsLoaded", 1));
}

void thread_set_turn(struct thread *t, struct turn *turn)
{
	struct store_batch *b;

	t->turn = turn;
	thread_touch(t);
	t->rec.updated_ms = thread_wall_ms();
	if ((b = thread_batch(t))) {
		store_batch_update(b, 0, &t->rec, t->rec.updated_ms);
		thread_submit(t, b);
	}
	thread_notify(t, NOTIFY_THREAD_STATUS_CHANGED,
		      json_pack("{s:o}", "status",
				turn ? json_pack("{s:s, s:[]}", "type", "active", "activeFlags")
				     : json_pack("{s:s}", "type", "idle")));
}

void thread_set_preview(struct thread *t, const char *text, struct store_batch *b)
{
	int n;

	if (t->rec.preview)
		return;
	n = utf8_cut(text, THREAD_PREVIEW_MAX);
	t->rec.preview = xstrndup(text, (size_t)n);
	if (b)
		store_batch_update(b, STORE_F_PREVIEW, &t->rec, 0);
}

/* ---- unloading idle threads -------------------------------------------- */

static bool idle(const struct thread *t, uint64_t now)
{
	return !t->n_subs && !t->turn && !t->n_waiters && !t->n_watchers && !t->out_head &&
	       !t->writes &&
	       now - t->used_ms >= life.idle_ms;
}

size_t threads_sweep(void)
{
	uint64_t now = now_ms();
	struct thread *t = life.list, *next;
	size_t n = 0;

	if (!life.idle_ms)
		return 0;
	for (; t; t = next) {
		next = t->next;
		if (!idle(t, now))
			continue;
		if (t->ephemeral)
			log_info("ephemeral thread %s unloaded after %llu s without a client: it is "
				 "gone (ephemeral threads are not stored)", t->rec.id,
				 (unsigned long long)(life.idle_ms / 1000));
		else
			log_info("thread %s unloaded after %llu s without a client (thread/resume "
				 "loads it from the store)", t->rec.id,
				 (unsigned long long)(life.idle_ms / 1000));
		thread_free(t, "the thread was unloaded");
		life.unloaded++;
		n++;
	}
	return n;
}

static uint64_t sweep_period(void)
{
	return MAX(SWEEP_MIN_MS, MIN(life.idle_ms / 2, SWEEP_MAX_MS));
}

static void sweep_cb(struct loop_timer *tm, void *arg)
{
	threads_sweep();
	loop_timer_rearm(tm, sweep_period());
}

void threads_init(struct loop *l, uint64_t idle_ms)
{
	life.stopped = false;
	life.loop = l;
	life.idle_ms = idle_ms;
	if (idle_ms)
		life.sweep = loop_timer_add(l, sweep_period(), sweep_cb, NULL);
}
