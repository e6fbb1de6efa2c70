/* store.c - see store.h: the queue between the loop and the store thread,
 * group commit, completions, cursors. The SQL is in store_db.c.
 *
 * The loop appends ops to `queue` under the mutex and signals; the store
 * thread takes the whole queue at once, runs it (consecutive batches in one
 * transaction), appends the ops to `done` and posts one wake-up to the loop
 * (not one per op: a burst costs one hand-off). The loop's wake-up takes
 * `done` and runs the callbacks in order. */
#include "store_int.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "loop.h"
#include "util.h"

#define MAC_BYTES 16u
#define POISON_MAX 4096u /* threads remembered as failed (then the oldest goes) */

enum op_kind { OP_BATCH, OP_LIST, OP_LOAD, OP_NOOP };

struct store_op {
	struct store_op *next;
	enum op_kind kind;
	store_done_cb cb; /* loop side only */
	void *arg;
	bool cancelled;
	struct store_batch *batch;
	struct store_list_query q;
	char **strs;      /* the query's copied strings */
	char thread_id[UUID_STR_SIZE];
	int64_t items_last;
	int rc;
	char err[512];
	struct store_list_result list;
	struct store_loaded loaded;
};

/* A thread whose write failed: its later writes fail until it is loaded. */
struct poison {
	struct poison *next;
	char id[UUID_STR_SIZE];
	char why[256];
};

static struct {
	struct loop *loop;
	struct store_db *db;
	uint8_t key[STORE_KEY_BYTES];
	bool key_set;
	pthread_t thread;
	bool running;
	bool thread_started; /* store_run */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct store_op *queue, **queue_tail;  /* mu */
	struct store_op *done, **done_tail;    /* mu */
	bool wake_posted, stopping;            /* mu */
	struct store_stats stats;              /* mu */
	size_t pending;                        /* loop thread */
	struct poison *poisoned;               /* store thread */
	size_t n_poisoned;
} st = { .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER };

/* ---- records ------------------------------------------------------------ */

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

void store_thread_copy(struct store_thread *dst, const struct store_thread *src)
{
	*dst = *src;
	dst->name = dup_or_null(src->name);
	dst->preview = dup_or_null(src->preview);
	dst->cwd = dup_or_null(src->cwd);
	dst->provider = dup_or_null(src->provider);
	dst->forked_from = dup_or_null(src->forked_from);
	dst->unread = src->unread ? json_deep_copy(src->unread) : NULL;
	dst->meta = src->meta ? json_deep_copy(src->meta) : NULL;
}

void store_thread_clear(struct store_thread *t)
{
	free(t->name);
	free(t->preview);
	free(t->cwd);
	free(t->provider);
	free(t->forked_from);
	json_decref(t->unread);
	json_decref(t->meta);
	memset(t, 0, sizeof(*t));
}

/* ---- batches ------------------------------------------------------------ */

struct store_batch *store_batch_new(const char *thread_id)
{
	struct store_batch *b = xcalloc(1, sizeof(*b));

	snprintf(b->thread_id, sizeof(b->thread_id), "%s", thread_id);
	return b;
}

static void stmt_clear(struct store_stmt *s)
{
	store_thread_clear(&s->rec);
	free(s->id);
	free(s->status);
	free(s->error);
	free(s->body);
}

void store_batch_free(struct store_batch *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->n; i++)
		stmt_clear(&b->stmts[i]);
	free(b->stmts);
	free(b);
}

size_t store_batch_size(const struct store_batch *b) { return b->n; }

static struct store_stmt *stmt_add(struct store_batch *b, enum store_stmt_kind kind)
{
	if (b->n == b->cap) {
		b->cap = b->cap ? 2 * b->cap : 4;
		b->stmts = xrealloc(b->stmts, b->cap * sizeof(*b->stmts));
	}
	memset(&b->stmts[b->n], 0, sizeof(b->stmts[0]));
	b->stmts[b->n].kind = kind;
	return &b->stmts[b->n++];
}

void store_batch_thread(struct store_batch *b, const struct store_thread *rec)
{
	store_thread_copy(&stmt_add(b, SS_THREAD)->rec, rec);
}

void store_batch_update(struct store_batch *b, unsigned fields, const struct store_thread *rec,
			int64_t updated_ms)
{
	struct store_stmt *s = stmt_add(b, SS_UPDATE);

	store_thread_copy(&s->rec, rec);
	s->fields = fields;
	s->updated_ms = updated_ms;
}

void store_batch_delete(struct store_batch *b) { stmt_add(b, SS_DELETE); }

void store_batch_turn(struct store_batch *b, const struct store_turn *turn)
{
	struct store_stmt *s = stmt_add(b, SS_TURN);

	s->seq = turn->seq;
	s->id = xstrdup(turn->id);
	s->status = xstrdup(turn->status);
	s->started = turn->started_at;
	s->completed = turn->completed_at;
	s->duration_ms = turn->duration_ms;
	s->error = dup_or_null(turn->error);
	s->body = turn->usage ? json_dumps(turn->usage, JSON_COMPACT) : NULL;
}

static char *dump(const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	return s ? s : xstrdup("null");
}

void store_batch_item(struct store_batch *b, int64_t turn_seq, int64_t seq, int64_t started_ms,
		      int64_t completed_ms, const json_t *item)
{
	struct store_stmt *s = stmt_add(b, SS_ITEM);

	s->turn_seq = turn_seq;
	s->seq = seq;
	s->started = started_ms;
	s->completed = completed_ms;
	s->body = dump(item);
}

void store_batch_history(struct store_batch *b, int64_t seq, int64_t turn_seq,
			 const json_t *entry)
{
	struct store_stmt *s = stmt_add(b, SS_HISTORY);

	s->seq = seq;
	s->turn_seq = turn_seq;
	s->body = dump(entry);
}

/* ---- the store thread --------------------------------------------------- */

static struct poison *poison_find(const char *id)
{
	for (struct poison *p = st.poisoned; p; p = p->next)
		if (strcmp(p->id, id) == 0)
			return p;
	return NULL;
}

static void poison_add(const char *id, const char *why)
{
	struct poison *p;

	if (poison_find(id))
		return;
	if (st.n_poisoned >= POISON_MAX) { /* forget the oldest (the list's tail) */
		struct poison **pp = &st.poisoned;

		while ((*pp)->next)
			pp = &(*pp)->next;
		free(*pp);
		*pp = NULL;
		st.n_poisoned--;
	}
	p = xcalloc(1, sizeof(*p));
	snprintf(p->id, sizeof(p->id), "%s", id);
	snprintf(p->why, sizeof(p->why), "%s", why);
	p->next = st.poisoned;
	st.poisoned = p;
	st.n_poisoned++;
}

static void poison_lift(const char *id)
{
	for (struct poison **pp = &st.poisoned; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->id, id) == 0) {
			struct poison *p = *pp;

			*pp = p->next;
			free(p);
			st.n_poisoned--;
			return;
		}
	}
}

static void run_batch(struct store_op *op)
{
	struct poison *p = poison_find(op->batch->thread_id);

	if (p) {
		op->rc = -EIO;
		snprintf(op->err, sizeof(op->err),
			 "an earlier write of this thread failed (%s); reload it with thread/resume",
			 p->why);
		return;
	}
	op->rc = store_db_batch(st.db, op->batch, op->err, sizeof(op->err));
	if (op->rc < 0 && op->rc != -ENOENT)
		poison_add(op->batch->thread_id, op->err);
}

/* Consecutive batches from *op on, in one transaction. Returns the first op
 * after them. */
static struct store_op *run_group(struct store_op *first)
{
	struct store_op *op, *end = first;
	char err[512];
	uint64_t t0 = now_ns(), dt;
	int r;

	while (end && end->kind == OP_BATCH)
		end = end->next;
	r = store_db_begin(st.db, err, sizeof(err));
	for (op = first; op != end; op = op->next) {
		if (r < 0) {
			op->rc = r;
			snprintf(op->err, sizeof(op->err), "%s", err);
			continue;
		}
		run_batch(op);
	}
	if (r == 0 && (r = store_db_commit(st.db, err, sizeof(err))) < 0) {
		store_db_rollback(st.db);
		for (op = first; op != end; op = op->next) {
			if (op->rc == 0) {
				op->rc = r;
				snprintf(op->err, sizeof(op->err), "%s", err);
				poison_add(op->batch->thread_id, err);
			}
		}
	}
	dt = now_ns() - t0;
	pthread_mutex_lock(&st.mu);
	st.stats.commits++;
	st.stats.commit_ns_total += dt;
	if (dt > st.stats.commit_ns_max)
		st.stats.commit_ns_max = dt;
	for (op = first; op != end; op = op->next) {
		st.stats.batches++;
		st.stats.failed += op->rc < 0;
	}
	pthread_mutex_unlock(&st.mu);
	return end;
}

static void run_ops(struct store_op *ops)
{
	struct store_op *op = ops;

	while (op) {
		switch (op->kind) {
		case OP_BATCH:
			op = run_group(op);
			continue;
		case OP_LIST:
			op->rc = store_db_list(st.db, &op->q, &op->list, op->err, sizeof(op->err));
			break;
		case OP_LOAD:
			poison_lift(op->thread_id);
			op->rc = store_db_load(st.db, op->thread_id, op->items_last, &op->loaded,
					       op->err, sizeof(op->err));
			break;
		case OP_NOOP:
			break;
		}
		op = op->next;
	}
}

static void wake_cb(void *arg);

static void *store_main(void *arg)
{
	pthread_setname_np(pthread_self(), "tandem-store"); /* for top -H, perf */
	for (;;) {
		struct store_op *ops, *last;
		bool post;

		pthread_mutex_lock(&st.mu);
		while (!st.queue && !st.stopping)
			pthread_cond_wait(&st.cv, &st.mu);
		ops = st.queue;
		st.queue = NULL;
		st.queue_tail = &st.queue;
		pthread_mutex_unlock(&st.mu);
		if (!ops)
			break; /* stopping, and nothing left */
		run_ops(ops);
		for (last = ops; last->next; last = last->next)
			;
		pthread_mutex_lock(&st.mu);
		*st.done_tail = ops;
		st.done_tail = &last->next;
		post = !st.wake_posted;
		st.wake_posted = true;
		pthread_mutex_unlock(&st.mu);
		/* A refused post (the loop is going away) is fine: store_stop
		 * runs what is left in `done`. The arg is NULL: nothing leaks. */
		if (post)
			loop_post(st.loop, wake_cb, NULL);
	}
	return NULL;
}

/* ---- completions (loop thread) ----------------------------------------- */

static void op_free(struct store_op *op)
{
	store_batch_free(op->batch);
	strv_free(op->strs);
	for (size_t i = 0; i < op->list.n; i++)
		store_thread_clear(&op->list.rows[i]);
	free(op->list.rows);
	store_loaded_clear(&op->loaded);
	free(op);
}

static void complete(struct store_op *op)
{
	void *res = op->kind == OP_LIST ? (void *)&op->list
		    : op->kind == OP_LOAD ? (void *)&op->loaded : NULL;

	st.pending--;
	if (!op->cancelled && op->cb)
		op->cb(op->rc, op->rc < 0 ? op->err : NULL, op->rc < 0 ? NULL : res, op->arg);
	op_free(op);
}

static void run_done(void)
{
	struct store_op *ops;

	pthread_mutex_lock(&st.mu);
	ops = st.done;
	st.done = NULL;
	st.done_tail = &st.done;
	st.wake_posted = false;
	pthread_mutex_unlock(&st.mu);
	while (ops) {
		struct store_op *next = ops->next;

		complete(ops);
		ops = next;
	}
}

static void wake_cb(void *arg) { run_done(); }

void store_op_cancel(struct store_op *op)
{
	if (op)
		op->cancelled = true;
}

static struct store_op *submit(struct store_op *op)
{
	if (!st.running) {
		op_free(op);
		return NULL;
	}
	pthread_mutex_lock(&st.mu);
	*st.queue_tail = op;
	st.queue_tail = &op->next;
	pthread_cond_signal(&st.cv);
	pthread_mutex_unlock(&st.mu);
	st.pending++;
	return op;
}

static struct store_op *op_new(enum op_kind kind, store_done_cb cb, void *arg)
{
	struct store_op *op = xcalloc(1, sizeof(*op));

	op->kind = kind;
	op->cb = cb;
	op->arg = arg;
	return op;
}

struct store_op *store_submit(struct store_batch *b, store_done_cb cb, void *arg)
{
	struct store_op *op = op_new(OP_BATCH, cb, arg);

	op->batch = b;
	return submit(op);
}

/* Copies v[0..n) to dst from *at on; the copies (NULL for no list). */
static const char *const *copy_strs(char **dst, size_t *at, const char *const *v, size_t n)
{
	const char *const *start = (const char *const *)&dst[*at];

	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		dst[(*at)++] = xstrdup(v[i]);
	return start;
}

struct store_op *store_list(const struct store_list_query *q, store_done_cb cb, void *arg)
{
	struct store_op *op = op_new(OP_LIST, cb, arg);
	size_t at = 0, total = q->n_cwds + q->n_providers + q->n_ids + q->n_not_ids + 1;

	op->q = *q;
	op->strs = xcalloc(total + 1, sizeof(*op->strs));
	op->q.cwds = copy_strs(op->strs, &at, q->cwds, q->n_cwds);
	op->q.providers = copy_strs(op->strs, &at, q->providers, q->n_providers);
	op->q.ids = copy_strs(op->strs, &at, q->ids, q->n_ids);
	op->q.not_ids = copy_strs(op->strs, &at, q->not_ids, q->n_not_ids);
	op->q.search = q->search ? (op->strs[at++] = xstrdup(q->search)) : NULL;
	return submit(op);
}

struct store_op *store_load(const char *thread_id, int64_t items_last, store_done_cb cb,
			    void *arg)
{
	struct store_op *op = op_new(OP_LOAD, cb, arg);

	snprintf(op->thread_id, sizeof(op->thread_id), "%s", thread_id);
	op->items_last = items_last;
	return submit(op);
}

struct store_op *store_noop(store_done_cb cb, void *arg)
{
	return submit(op_new(OP_NOOP, cb, arg));
}

size_t store_pending(void) { return st.pending; }

/* ---- lifecycle ---------------------------------------------------------- */

int store_start(struct loop *l, const char *dir, char *err, size_t errlen)
{
	int r;

	if (st.running) {
		snprintf(err, errlen, "the thread store is already open");
		return -EALREADY;
	}
	r = store_db_open(dir, &st.db, st.key, err, errlen);
	if (r < 0)
		return r;
	st.key_set = true;
	st.loop = l;
	st.queue_tail = &st.queue;
	st.done_tail = &st.done;
	st.stopping = false;
	st.wake_posted = false;
	memset(&st.stats, 0, sizeof(st.stats));
	st.running = true;
	return 0;
}

int store_run(char *err, size_t errlen)
{
	int r;

	if (!st.running || st.thread_started)
		return 0;
	r = pthread_create(&st.thread, NULL, store_main, NULL);
	if (r != 0) {
		snprintf(err, errlen, "cannot start the store thread: %s", strerror(r));
		return -r;
	}
	st.thread_started = true;
	return 0;
}

void store_stop(void)
{
	if (!st.running)
		return;
	if (st.thread_started) {
		pthread_mutex_lock(&st.mu);
		st.stopping = true;
		pthread_cond_signal(&st.cv);
		pthread_mutex_unlock(&st.mu);
		pthread_join(st.thread, NULL);
		st.thread_started = false;
	}
	st.running = false;
	run_done();
	while (st.poisoned)
		poison_lift(st.poisoned->id);
	store_db_close(st.db);
	st.db = NULL;
	st.loop = NULL;
}

bool store_is_open(void) { return st.running; }
const char *store_path(void) { return st.db ? store_db_path(st.db) : NULL; }

const char *store_dir(void)
{
	static char dir[PATH_MAX];
	const char *p = store_path(), *slash = p ? strrchr(p, '/') : NULL;

	if (!slash || (size_t)(slash - p) >= sizeof(dir))
		return NULL;
	memcpy(dir, p, (size_t)(slash - p));
	dir[slash - p] = '\0';
	return dir;
}

void store_stats(struct store_stats *out)
{
	pthread_mutex_lock(&st.mu);
	*out = st.stats;
	pthread_mutex_unlock(&st.mu);
}

/* ---- cursors ------------------------------------------------------------ */

static const uint8_t *key(void)
{
	if (!st.key_set) { /* no store: cursors live as long as the process */
		randombytes_buf(st.key, sizeof(st.key));
		st.key_set = true;
	}
	return st.key;
}

static char *b64(const uint8_t *p, size_t n)
{
	size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *s = xmalloc(len);

	sodium_bin2base64(s, len, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return s;
}

char *store_cursor_seal(const json_t *pos)
{
	_cleanup_free_ char *text = json_dumps(pos, JSON_COMPACT | JSON_SORT_KEYS);
	_cleanup_free_ char *a = NULL, *m = NULL;
	uint8_t mac[MAC_BYTES];

	if (!text)
		text = xstrdup("{}");
	crypto_generichash(mac, sizeof(mac), (const uint8_t *)text, strlen(text), key(),
			   STORE_KEY_BYTES);
	a = b64((const uint8_t *)text, strlen(text));
	m = b64(mac, sizeof(mac));
	return xasprintf("%s.%s", a, m);
}

static int bad_cursor(char *err, size_t errlen)
{
	snprintf(err, errlen, "cursor: not a cursor this server handed out (altered, or from "
		 "another store)");
	return -EINVAL;
}

int store_cursor_open(const char *cursor, json_t **pos, char *err, size_t errlen)
{
	size_t len = strnlen(cursor, STORE_CURSOR_MAX + 1), bin_len = 0, mac_len = 0;
	const char *dot = memchr(cursor, '.', len);
	uint8_t bin[STORE_CURSOR_MAX], mac[MAC_BYTES + 1], want[MAC_BYTES];
	json_t *v;

	if (len > STORE_CURSOR_MAX || !dot)
		return bad_cursor(err, errlen);
	if (sodium_base642bin(bin, sizeof(bin), cursor, (size_t)(dot - cursor), NULL, &bin_len,
			      NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    sodium_base642bin(mac, sizeof(mac), dot + 1, len - (size_t)(dot + 1 - cursor), NULL,
			      &mac_len, NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    mac_len != MAC_BYTES)
		return bad_cursor(err, errlen);
	crypto_generichash(want, sizeof(want), bin, bin_len, key(), STORE_KEY_BYTES);
	if (sodium_memcmp(want, mac, MAC_BYTES) != 0)
		return bad_cursor(err, errlen);
	v = json_loadb((const char *)bin, bin_len, 0, NULL);
	if (!json_is_object(v)) {
		json_decref(v);
		return bad_cursor(err, errlen);
	}
	*pos = v;
	return 0;
}
