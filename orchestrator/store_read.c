/* store_read.c - the thread store's reads (see store.h): a page of the
 * thread list, and a whole thread loaded. On the store thread. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

/* ---- reads ------------------------------------------------------------- */

static char *col_str(sqlite3_stmt *st, int i)
{
	const unsigned char *s = sqlite3_column_text(st, i);

	return s ? xstrndup((const char *)s, (size_t)sqlite3_column_bytes(st, i)) : NULL;
}

static json_t *col_json(sqlite3_stmt *st, int i)
{
	const void *s = sqlite3_column_text(st, i);

	return s ? json_loadb(s, (size_t)sqlite3_column_bytes(st, i), 0, NULL) : NULL;
}

/* A threads row (THREAD_COLS) into t; -EINVAL for a damaged one. */
static int read_thread(sqlite3_stmt *st, struct store_thread *t, char *err, size_t errlen)
{
	const unsigned char *id = sqlite3_column_text(st, 1);

	memset(t, 0, sizeof(*t));
	if (!id || sqlite3_column_bytes(st, 1) != UUID_STR_SIZE - 1) {
		snprintf(err, errlen, "thread store: a thread row has a damaged id");
		return -EINVAL;
	}
	memcpy(t->id, id, UUID_STR_SIZE);
	t->created_ms = sqlite3_column_int64(st, 2);
	t->updated_ms = sqlite3_column_int64(st, 3);
	t->archived = sqlite3_column_int(st, 4) != 0;
	t->name = col_str(st, 5);
	t->preview = col_str(st, 6);
	t->cwd = col_str(st, 7);
	t->provider = col_str(st, 8);
	t->forked_from = col_str(st, 9);
	t->read_rev = sqlite3_column_int64(st, 10);
	t->unread = col_json(st, 11);
	t->meta = col_json(st, 12);
	if (!json_is_object(t->meta)) {
		snprintf(err, errlen, "thread store: thread %s has damaged settings", t->id);
		store_thread_clear(t);
		return -EINVAL;
	}
	return 0;
}

/* " AND col IN (?, ?...)" with n placeholders. */
static void in_list(char *sql, size_t len, const char *col, bool not, size_t n)
{
	size_t at = strlen(sql);

	at += (size_t)snprintf(sql + at, len - at, " AND %s %sIN (", col, not ? "NOT " : "");
	for (size_t i = 0; i < n && at < len; i++)
		at += (size_t)snprintf(sql + at, len - at, "%s?", i ? ", " : "");
	if (at < len)
		snprintf(sql + at, len - at, ")");
}

static void list_sql(const struct store_list_query *q, char *sql, size_t len)
{
	const char *col = q->sort == STORE_SORT_UPDATED ? "updated_ms" : "created_ms";
	const char *dir = q->ascending ? "ASC" : "DESC";
	size_t at;

	snprintf(sql, len, "SELECT " THREAD_COLS " FROM threads WHERE archived = ?");
	if (q->after) {
		at = strlen(sql);
		snprintf(sql + at, len - at, " AND (%s, id) %s (?, ?)", col, q->ascending ? ">" : "<");
	}
	if (q->cwds)
		in_list(sql, len, "cwd", false, q->n_cwds);
	if (q->providers)
		in_list(sql, len, "provider", false, q->n_providers);
	if (q->ids)
		in_list(sql, len, "id", false, q->n_ids);
	if (q->not_ids)
		in_list(sql, len, "id", true, q->n_not_ids);
	at = strlen(sql);
	if (q->search)
		at += (size_t)snprintf(sql + at, len - at,
				       " AND (instr(lower(coalesce(name, '')), lower(?)) > 0"
				       " OR instr(lower(coalesce(preview, '')), lower(?)) > 0)");
	snprintf(sql + at, len - at, " ORDER BY %s %s, id %s LIMIT ?", col, dir, dir);
}

static void bind_list(sqlite3_stmt *st, const struct store_list_query *q)
{
	int i = 1;

	sqlite3_bind_int(st, i++, q->archived);
	if (q->after) {
		sqlite3_bind_int64(st, i++, q->after_ms);
		sqlite3_bind_text(st, i++, q->after_id, -1, SQLITE_STATIC);
	}
	for (size_t j = 0; q->cwds && j < q->n_cwds; j++)
		sqlite3_bind_text(st, i++, q->cwds[j], -1, SQLITE_STATIC);
	for (size_t j = 0; q->providers && j < q->n_providers; j++)
		sqlite3_bind_text(st, i++, q->providers[j], -1, SQLITE_STATIC);
	for (size_t j = 0; q->ids && j < q->n_ids; j++)
		sqlite3_bind_text(st, i++, q->ids[j], -1, SQLITE_STATIC);
	for (size_t j = 0; q->not_ids && j < q->n_not_ids; j++)
		sqlite3_bind_text(st, i++, q->not_ids[j], -1, SQLITE_STATIC);
	if (q->search) {
		sqlite3_bind_text(st, i++, q->search, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, i++, q->search, -1, SQLITE_STATIC);
	}
	sqlite3_bind_int64(st, i, (int64_t)q->limit + 1); /* one more: is there a next page? */
}

int store_db_list(struct store_db *d, const struct store_list_query *q,
		  struct store_list_result *out, char *err, size_t errlen)
{
	/* 5 filters of STORE_FILTER_MAX placeholders ("?, ") and the rest. */
	char sql[1024 + 5 * 3 * STORE_FILTER_MAX];
	sqlite3_stmt *st = NULL;
	int rc, r = 0;

	memset(out, 0, sizeof(*out));
	list_sql(q, sql, sizeof(sql));
	rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_db_fail(d, rc, err, errlen, "thread store");
	bind_list(st, q);
	out->rows = xcalloc(q->limit + 1, sizeof(*out->rows));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (out->n == q->limit) {
			out->more = true;
			break;
		}
		if ((r = read_thread(st, &out->rows[out->n], err, errlen)) < 0)
			break;
		out->n++;
	}
	if (r == 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = store_db_fail(d, rc, err, errlen, "thread store");
	sqlite3_finalize(st);
	return r;
}

/* {"turn": Turn, "seq", "histEnd", "itemRows"} from a turns row. */
static json_t *turn_entry(sqlite3_stmt *st)
{
	json_t *turn = json_pack("{s:s?, s:[], s:s?}", "id", sqlite3_column_text(st, 1), "items",
				 "status", sqlite3_column_text(st, 2));

	if (!turn)
		return NULL;
	if (sqlite3_column_type(st, 3) != SQLITE_NULL)
		json_object_set_new(turn, "startedAt", json_integer(sqlite3_column_int64(st, 3)));
	if (sqlite3_column_type(st, 4) != SQLITE_NULL)
		json_object_set_new(turn, "completedAt", json_integer(sqlite3_column_int64(st, 4)));
	if (sqlite3_column_type(st, 5) != SQLITE_NULL)
		json_object_set_new(turn, "durationMs", json_integer(sqlite3_column_int64(st, 5)));
	json_object_set_new(turn, "error",
			    sqlite3_column_type(st, 6) == SQLITE_NULL
				    ? json_null()
				    : json_pack("{s:s?}", "message", sqlite3_column_text(st, 6)));
	return json_pack("{s:o, s:I, s:i, s:[]}", "turn", turn, "seq",
			 (json_int_t)sqlite3_column_int64(st, 0), "histEnd", 0, "itemRows");
}

static int load_turns(struct store_db *d, int64_t pk, json_t *turns, char *err, size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_LOAD_TURNS];
	int rc;

	sqlite3_bind_int64(st, 1, pk);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = turn_entry(st);

		if (!e || !json_is_string(json_object_get(json_object_get(e, "turn"), "id"))) {
			json_decref(e);
			sqlite3_reset(st);
			snprintf(err, errlen, "thread store: a damaged turn row");
			return -EINVAL;
		}
		json_array_append_new(turns, e);
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, "thread store");
}

/* The entry of turn seq, searched forward from *at (rows come sorted, so
 * the search rarely restarts). */
static json_t *turn_by_seq(json_t *turns, int64_t seq, size_t *at)
{
	json_t *cur = json_array_get(turns, *at);

	if (cur && json_integer_value(json_object_get(cur, "seq")) > seq)
		*at = 0;
	for (; *at < json_array_size(turns); (*at)++) {
		json_t *e = json_array_get(turns, *at);
		int64_t s = json_integer_value(json_object_get(e, "seq"));

		if (s == seq)
			return e;
		if (s > seq)
			return NULL;
	}
	return NULL;
}

/* The first turn seq whose items are read for items_last (the last ones),
 * and each turn's itemsLoaded. */
static int64_t items_from(json_t *turns, int64_t items_last)
{
	json_t *last = json_array_get(turns, json_array_size(turns) - 1), *e;
	int64_t max = last ? json_integer_value(json_object_get(last, "seq")) : 0, from;
	size_t i;

	from = items_last >= max ? 0 : max - items_last + 1;
	json_array_foreach(turns, i, e) {
		const char *status = json_string_value(json_object_get(json_object_get(e, "turn"),
								       "status"));

		json_object_set_new(e, "itemsLoaded",
				    json_boolean(json_integer_value(json_object_get(e, "seq")) >=
							 from ||
						 (status && strcmp(status, "inProgress") == 0)));
	}
	return from;
}

static int load_items(struct store_db *d, int64_t pk, json_t *turns, int64_t items_last,
		      char *err, size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_LOAD_ITEMS];
	size_t at = 0;
	int rc;

	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_int64(st, 2, items_from(turns, items_last));
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *e = turn_by_seq(turns, sqlite3_column_int64(st, 0), &at);
		json_t *item = col_json(st, 4);

		if (!json_is_object(item)) {
			json_decref(item);
			sqlite3_reset(st);
			snprintf(err, errlen, "thread store: item %lld of turn %lld is damaged",
				 (long long)sqlite3_column_int64(st, 1),
				 (long long)sqlite3_column_int64(st, 0));
			return -EINVAL;
		}
		if (!e) { /* no turn row: not reachable through the API, skipped */
			json_decref(item);
			continue;
		}
		json_array_append_new(json_object_get(json_object_get(e, "turn"), "items"), item);
		json_array_append_new(json_object_get(e, "itemRows"),
				      json_pack("[I, I, I]", (json_int_t)sqlite3_column_int64(st, 1),
						(json_int_t)sqlite3_column_int64(st, 2),
						(json_int_t)sqlite3_column_int64(st, 3)));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, "thread store");
}

/* The history, and each turn's histEnd from the turn column of its rows. */
static int load_history(struct store_db *d, int64_t pk, json_t *turns, json_t *hist, char *err,
			size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_LOAD_HISTORY];
	size_t at = 0;
	int rc;

	sqlite3_bind_int64(st, 1, pk);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *entry = col_json(st, 2);
		json_t *e;

		if (!json_is_object(entry)) {
			json_decref(entry);
			sqlite3_reset(st);
			snprintf(err, errlen, "thread store: history entry %lld is damaged",
				 (long long)sqlite3_column_int64(st, 0));
			return -EINVAL;
		}
		json_array_append_new(hist, entry);
		e = turn_by_seq(turns, sqlite3_column_int64(st, 1), &at);
		if (e)
			json_object_set_new(e, "histEnd", json_integer((json_int_t)json_array_size(hist)));
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, "thread store");
}

/* A turn without history rows of its own ends where the one before it did. */
static void fill_hist_ends(json_t *turns)
{
	json_int_t prev = 0;
	json_t *e;
	size_t i;

	json_array_foreach(turns, i, e) {
		json_int_t end = json_integer_value(json_object_get(e, "histEnd"));

		if (end < prev)
			json_object_set_new(e, "histEnd", json_integer(prev));
		else
			prev = end;
	}
}

int store_db_load(struct store_db *d, const char *id, int64_t items_last,
		  struct store_loaded *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_LOAD_THREAD];
	int64_t pk;
	int rc, r;

	memset(out, 0, sizeof(*out));
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_reset(st);
		if (rc == SQLITE_DONE) {
			snprintf(err, errlen, "no thread '%s'", id);
			return -ENOENT;
		}
		return store_db_fail(d, rc, err, errlen, "thread store");
	}
	pk = sqlite3_column_int64(st, 0);
	r = read_thread(st, &out->rec, err, errlen);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r < 0)
		return r;
	out->turns = json_array();
	out->history = json_array();
	if ((r = load_turns(d, pk, out->turns, err, errlen)) < 0 ||
	    (r = load_items(d, pk, out->turns, items_last, err, errlen)) < 0 ||
	    (r = load_history(d, pk, out->turns, out->history, err, errlen)) < 0) {
		store_loaded_clear(out);
		return r;
	}
	fill_hist_ends(out->turns);
	return 0;
}

void store_loaded_clear(struct store_loaded *l)
{
	store_thread_clear(&l->rec);
	json_decref(l->turns);
	json_decref(l->history);
	memset(l, 0, sizeof(*l));
}
