/* test_store.c - the thread store (orchestrator/store.c, store_db.c) on
 * real SQLite files in temporary directories: creation and modes, the
 * schema version and its refusals (newer, not a database, damaged), the
 * lock between two openers, batches round-tripped through a load, group
 * commit with one failing batch, order of completions, the "earlier write
 * failed" state after a real write error (RLIMIT_FSIZE) and its lifting
 * by a load, list pages and filters, sealed cursors. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "store.h"
#include "store_int.h"
#include "testhome.h"
#include "testmain.h"
#include "util.h"

#define WAIT_MS 20000u /* hang guard */

static struct loop *loop;
static char dir[160];

static void setup(void)
{
	home_setup();
	snprintf(dir, sizeof(dir), "%s/state/deeper", home);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
	store_stop();
	loop = loop_free(loop);
	home_teardown();
}

static void start(void)
{
	char err[512] = "";

	ck_assert_msg(store_start(loop, dir, err, sizeof(err)) == 0, "%s", err);
	ck_assert_msg(store_run(err, sizeof(err)) == 0, "%s", err);
}

/* ---- running the loop until the store answered ---------------------------- */

struct done {
	bool called;
	int rc;
	char err[512];
	json_t *turns, *history; /* a load's, taken */
	struct store_thread rec;
	size_t n;                /* a list's */
	bool more;
	char ids[STORE_LIST_MAX][UUID_STR_SIZE];
	int order;               /* completion order, for the ordering test */
};

static int completions;

static void done_cb(int rc, const char *err, void *res, void *arg)
{
	struct done *d = arg;

	d->called = true;
	d->rc = rc;
	d->order = completions++;
	snprintf(d->err, sizeof(d->err), "%s", err ? err : "");
}

static void load_cb(int rc, const char *err, void *res, void *arg)
{
	struct done *d = arg;
	struct store_loaded *l = res;

	done_cb(rc, err, res, arg);
	if (rc == 0) {
		d->turns = TAKE_PTR(l->turns);
		d->history = TAKE_PTR(l->history);
		store_thread_copy(&d->rec, &l->rec);
	}
}

static void list_cb(int rc, const char *err, void *res, void *arg)
{
	struct done *d = arg;
	struct store_list_result *l = res;

	done_cb(rc, err, res, arg);
	if (rc < 0)
		return;
	d->n = l->n;
	d->more = l->more;
	for (size_t i = 0; i < l->n; i++)
		memcpy(d->ids[i], l->rows[i].id, UUID_STR_SIZE);
}

static void tick_cb(struct loop_timer *t, void *arg) { loop_stop(loop); }

static void wait_done(struct done *d)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (!d->called && now_ms() < deadline) {
		loop_timer_add(loop, 1, tick_cb, NULL);
		ck_assert_int_eq(loop_run(loop), 0);
	}
	ck_assert_msg(d->called, "the store did not answer");
}

static void done_clear(struct done *d)
{
	json_decref(d->turns);
	json_decref(d->history);
	store_thread_clear(&d->rec);
	memset(d, 0, sizeof(*d));
}

/* ---- building blocks ----------------------------------------------------- */

static void rec_init(struct store_thread *r, int64_t created_ms, const char *cwd)
{
	memset(r, 0, sizeof(*r));
	uuid_v4(r->id);
	r->created_ms = r->updated_ms = created_ms;
	r->cwd = cwd ? xstrdup(cwd) : NULL;
	r->provider = xstrdup("fake");
	r->meta = json_pack("{s:s, s:[]}", "model", "m", "roots");
}

/* A stored thread (its row only); returns its id in id. */
static void put_thread(int64_t created_ms, const char *cwd, char id[UUID_STR_SIZE])
{
	struct store_thread r;
	struct store_batch *b;
	struct done d = { 0 };

	rec_init(&r, created_ms, cwd);
	memcpy(id, r.id, UUID_STR_SIZE);
	b = store_batch_new(r.id);
	store_batch_thread(b, &r);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_msg(d.rc == 0, "%s", d.err);
	store_thread_clear(&r);
}

static int load(const char *id, struct done *d)
{
	memset(d, 0, sizeof(*d));
	store_load(id, STORE_ALL_ITEMS, load_cb, d);
	wait_done(d);
	return d->rc;
}

static char *db_path(void) { return xasprintf("%s/%s", dir, STORE_DB_FILE); }

/* ---- opening ----------------------------------------------------------- */

START_TEST(test_creates_private_files)
{
	_cleanup_free_ char *db = db_path();
	struct stat st;
	sqlite3 *s;
	sqlite3_stmt *q;

	start();
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(stat(db, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_str_eq(store_path(), db);
	store_stop();
	ck_assert_int_eq(sqlite3_open(db, &s), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(s, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_int_eq(sqlite3_column_int(q, 0), STORE_SCHEMA_VERSION);
	sqlite3_finalize(q);
	ck_assert_int_eq(sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
	ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	sqlite3_close(s);
}
END_TEST

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = xmalloc(1 << 20);

	ck_assert_ptr_nonnull(f);
	*len = fread(buf, 1, 1 << 20, f);
	fclose(f);
	return buf;
}

START_TEST(test_newer_schema_refused_untouched)
{
	_cleanup_free_ char *db = db_path(), *before = NULL, *after = NULL, *wal = NULL;
	size_t n1, n2;
	char err[512] = "";
	sqlite3 *s;

	start(); /* makes the directory */
	store_stop();
	unlink(db);
	ck_assert_int_eq(sqlite3_open(db, &s), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(s, "CREATE TABLE x (y); PRAGMA user_version = 7", NULL, NULL,
				      NULL), SQLITE_OK);
	sqlite3_close(s);
	before = slurp(db, &n1);
	ck_assert_int_eq(store_start(loop, dir, err, sizeof(err)), -EPROTO);
	ck_assert_msg(strstr(err, "schema version 7") && strstr(err, "not changed"), "%s", err);
	after = slurp(db, &n2);
	ck_assert_uint_eq(n1, n2);
	ck_assert_int_eq(memcmp(before, after, n1), 0);
	wal = xasprintf("%s-wal", db);
	ck_assert_int_ne(access(wal, F_OK), 0);
}
END_TEST

START_TEST(test_not_a_database_refused)
{
	char err[512] = "", text[2300] = "";

	start();
	store_stop();
	for (int i = 0; i < 100; i++)
		strcat(text, "not SQLite\n");
	home_write("state/deeper/" STORE_DB_FILE, text);
	ck_assert_int_eq(store_start(loop, dir, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "not a SQLite database"), "%s", err);
}
END_TEST

START_TEST(test_damaged_page_refused)
{
	_cleanup_free_ char *db = db_path();
	char id[UUID_STR_SIZE], junk[4096], err[512] = "";
	int fd;

	start();
	for (int i = 0; i < 60; i++)
		put_thread(1000 + i, "/w", id);
	store_stop();
	memset(junk, 0x5a, sizeof(junk));
	fd = open(db, O_WRONLY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, junk, sizeof(junk), 4096), (ssize_t)sizeof(junk));
	close(fd);
	ck_assert_int_eq(store_start(loop, dir, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "damaged") || strstr(err, "not a"), "%s", err);
}
END_TEST

START_TEST(test_second_opener_refused)
{
	struct store_db *a = NULL, *b = NULL;
	uint8_t key[STORE_KEY_BYTES];
	char err[512] = "", pid[32];

	ck_assert_int_eq(store_db_open(dir, &a, key, err, sizeof(err)), 0);
	ck_assert_int_eq(store_db_open(dir, &b, key, err, sizeof(err)), -EBUSY);
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	ck_assert_msg(strstr(err, "in use by another orchestrator") && strstr(err, pid), "%s", err);
	store_db_close(a);
	ck_assert_int_eq(store_db_open(dir, &b, key, err, sizeof(err)), 0); /* released */
	store_db_close(b);
}
END_TEST

/* ---- writes and loads -------------------------------------------------- */

START_TEST(test_round_trip)
{
	struct store_turn t1 = { .seq = 1, .id = "turn-1", .status = "completed",
				 .started_at = 100, .completed_at = 101, .duration_ms = 900 };
	struct store_turn t2 = { .seq = 2, .id = "turn-2", .status = "inProgress",
				 .started_at = 102, .duration_ms = -1 };
	json_t *item = json_pack("{s:s, s:s, s:s}", "type", "agentMessage", "id", "i1", "text",
				 "hello \xc3\xa9");
	json_t *h0 = json_pack("{s:s, s:s}", "type", "message", "role", "user");
	json_t *h1 = json_pack("{s:s, s:s}", "type", "function_call", "call_id", "c1");
	struct store_thread r;
	struct store_batch *b;
	struct done d = { 0 };
	json_t *e;

	start();
	rec_init(&r, 5000, "/work");
	r.name = xstrdup("named");
	b = store_batch_new(r.id);
	store_batch_thread(b, &r);
	store_batch_turn(b, &t1);
	store_batch_history(b, 0, 1, h0);
	store_batch_item(b, 1, 0, 10, 20, item);
	store_batch_turn(b, &t2);
	store_batch_history(b, 1, 2, h1);
	store_batch_item(b, 2, 3, 30, 0, item);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_msg(d.rc == 0, "%s", d.err);
	ck_assert_int_eq(load(r.id, &d), 0);
	ck_assert_str_eq(d.rec.id, r.id);
	ck_assert_str_eq(d.rec.name, "named");
	ck_assert_str_eq(d.rec.cwd, "/work");
	ck_assert_int_eq(d.rec.created_ms, 5000);
	ck_assert_str_eq(json_string_value(json_object_get(d.rec.meta, "model")), "m");
	ck_assert_uint_eq(json_array_size(d.turns), 2);
	e = json_array_get(d.turns, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "histEnd")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(e, "turn"), "status")),
			 "completed");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e, "turn"),
							    "durationMs")), 900);
	ck_assert(json_equal(json_array_get(json_object_get(json_object_get(e, "turn"), "items"), 0),
			     item));
	ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(
				 json_object_get(e, "itemRows"), 0), 2)), 20);
	e = json_array_get(d.turns, 1);
	ck_assert_int_eq(json_integer_value(json_object_get(e, "histEnd")), 2);
	ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(
				 json_object_get(e, "itemRows"), 0), 0)), 3);
	ck_assert_ptr_null(json_object_get(json_object_get(e, "turn"), "completedAt"));
	ck_assert(json_equal(json_array_get(d.history, 1), h1));
	done_clear(&d);
	/* unknown ids */
	ck_assert_int_eq(load("00000000-0000-4000-8000-000000000000", &d), -ENOENT);
	store_thread_clear(&r);
	json_decref(item);
	json_decref(h0);
	json_decref(h1);
}
END_TEST

/* In one group commit a batch that fails fails alone, and every
 * completion comes back in submission order. */
START_TEST(test_group_commit_isolation_and_order)
{
	struct store_thread none = { 0 };
	struct done d[40];
	char ids[40][UUID_STR_SIZE];
	struct store_batch *b;

	start();
	memset(d, 0, sizeof(d));
	completions = 0;
	for (int i = 0; i < 40; i++) {
		struct store_thread r;

		rec_init(&r, 100 + i, NULL);
		memcpy(ids[i], r.id, UUID_STR_SIZE);
		if (i == 17) { /* an update of a thread that is not there */
			b = store_batch_new("00000000-0000-4000-8000-000000000017");
			none.name = (char *)"x";
			store_batch_update(b, STORE_F_NAME, &none, 0);
		} else {
			b = store_batch_new(r.id);
			store_batch_thread(b, &r);
		}
		store_submit(b, done_cb, &d[i]);
		store_thread_clear(&r);
	}
	wait_done(&d[39]);
	for (int i = 0; i < 40; i++) {
		ck_assert_int_eq(d[i].order, i);
		ck_assert_int_eq(d[i].rc, i == 17 ? -ENOENT : 0);
	}
	for (int i = 0; i < 40; i++) {
		struct done l;

		ck_assert_int_eq(load(ids[i], &l), i == 17 ? -ENOENT : 0);
		done_clear(&l);
	}
}
END_TEST

/* A real write error (the file size limit) makes the thread's later writes
 * fail until it is loaded; what was committed is read back, nothing of
 * the failed batch. */
START_TEST(test_failed_write_poisons_until_load)
{
	_cleanup_free_ char *wal = NULL, *big = xmalloc(256 * 1024);
	struct store_thread r = { 0 };
	struct rlimit lim, was;
	struct store_batch *b;
	struct done d = { 0 }, l;
	char id[UUID_STR_SIZE], other[UUID_STR_SIZE];
	json_t *huge;
	struct stat st;

	start();
	put_thread(1, NULL, id);
	put_thread(2, NULL, other);
	wal = xasprintf("%s/%s-wal", dir, STORE_DB_FILE);
	ck_assert_int_eq(stat(wal, &st), 0);
	memset(big, 'q', 256 * 1024 - 1);
	big[256 * 1024 - 1] = '\0';
	huge = json_pack("{s:s}", "text", big);
	signal(SIGXFSZ, SIG_IGN); /* write() fails with EFBIG instead */
	ck_assert_int_eq(getrlimit(RLIMIT_FSIZE, &was), 0);
	lim = was;
	lim.rlim_cur = (rlim_t)st.st_size + 64 * 1024;
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
	b = store_batch_new(id);
	store_batch_history(b, 0, 1, huge);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_int_lt(d.rc, 0);
	memset(&d, 0, sizeof(d));
	/* A small write of the same thread: refused, it would leave a gap. */
	r.name = (char *)"small";
	b = store_batch_new(id);
	store_batch_update(b, STORE_F_NAME, &r, 0);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_int_lt(d.rc, 0);
	ck_assert_msg(strstr(d.err, "earlier write"), "%s", d.err);
	/* Another thread is not affected. */
	memset(&d, 0, sizeof(d));
	b = store_batch_new(other);
	store_batch_update(b, STORE_F_NAME, &r, 0);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_msg(d.rc == 0, "%s", d.err);
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &was), 0); /* valgrind runs tests unforked */
	signal(SIGXFSZ, SIG_DFL);
	/* Loading it lifts the state; the failed history entry is not there. */
	ck_assert_int_eq(load(id, &l), 0);
	ck_assert_uint_eq(json_array_size(l.history), 0);
	ck_assert_ptr_null(l.rec.name);
	done_clear(&l);
	memset(&d, 0, sizeof(d));
	b = store_batch_new(id);
	store_batch_update(b, STORE_F_NAME, &r, 0);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_msg(d.rc == 0, "%s", d.err);
	json_decref(huge);
}
END_TEST

START_TEST(test_delete)
{
	struct store_batch *b;
	struct done d = { 0 }, l;
	char id[UUID_STR_SIZE];

	start();
	put_thread(1, NULL, id);
	b = store_batch_new(id);
	store_batch_delete(b);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_int_eq(d.rc, 0);
	ck_assert_int_eq(load(id, &l), -ENOENT);
	memset(&d, 0, sizeof(d));
	b = store_batch_new(id);
	store_batch_delete(b);
	store_submit(b, done_cb, &d);
	wait_done(&d);
	ck_assert_int_eq(d.rc, -ENOENT);
}
END_TEST

/* ---- lists ------------------------------------------------------------- */

static void list(const struct store_list_query *q, struct done *d)
{
	memset(d, 0, sizeof(*d));
	store_list(q, list_cb, d);
	wait_done(d);
	ck_assert_msg(d->rc == 0, "%s", d->err);
}

START_TEST(test_list_pages_and_filters)
{
	char ids[120][UUID_STR_SIZE];
	struct store_list_query q = { .limit = 50 };
	const char *cwd[] = { "/odd" };
	struct store_batch *b;
	struct store_thread arch = { .archived = true };
	struct done d;
	size_t seen = 0;

	start();
	for (int i = 0; i < 120; i++)
		put_thread(1000 + i, i % 2 ? "/odd" : "/even", ids[i]);
	for (;;) { /* newest first, by pages of 50 */
		list(&q, &d);
		for (size_t i = 0; i < d.n; i++)
			ck_assert_str_eq(d.ids[i], ids[119 - seen - i]);
		seen += d.n;
		if (!d.more)
			break;
		q.after = true;
		q.after_ms = 1000 + 119 - (int64_t)seen + 1;
		memcpy(q.after_id, d.ids[d.n - 1], UUID_STR_SIZE);
	}
	ck_assert_uint_eq(seen, 120);
	q = (struct store_list_query){ .limit = 1000, .ascending = true, .cwds = cwd, .n_cwds = 1 };
	list(&q, &d);
	ck_assert_uint_eq(d.n, 60);
	ck_assert_str_eq(d.ids[0], ids[1]);
	b = store_batch_new(ids[5]);
	store_batch_update(b, STORE_F_ARCHIVED, &arch, 0);
	store_submit(b, NULL, NULL);
	q = (struct store_list_query){ .limit = 1000, .archived = true };
	list(&q, &d); /* after the update: the store keeps order */
	ck_assert_uint_eq(d.n, 1);
	ck_assert_str_eq(d.ids[0], ids[5]);
	q = (struct store_list_query){ .limit = 1000, .ids = (const char *const[]){ ids[7], ids[5] },
				       .n_ids = 2 };
	list(&q, &d);
	ck_assert_uint_eq(d.n, 1); /* ids[5] is archived */
	ck_assert_str_eq(d.ids[0], ids[7]);
}
END_TEST

/* ---- cursors ----------------------------------------------------------- */

START_TEST(test_cursor_sealed)
{
	json_t *pos = json_pack("{s:s, s:i}", "k", "l", "v", 42), *back = NULL;
	char err[256];
	char *c, *bad;

	start();
	c = store_cursor_seal(pos);
	ck_assert_int_eq(store_cursor_open(c, &back, err, sizeof(err)), 0);
	ck_assert(json_equal(pos, back));
	json_decref(back);
	bad = xstrdup(c);
	bad[3] = bad[3] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(store_cursor_open(bad, &back, err, sizeof(err)), -EINVAL);
	ck_assert_msg(strstr(err, "cursor"), "%s", err);
	ck_assert_int_eq(store_cursor_open("", &back, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(store_cursor_open("a.b", &back, err, sizeof(err)), -EINVAL);
	/* the key lives in the database: a cursor survives a restart */
	store_stop();
	start();
	ck_assert_int_eq(store_cursor_open(c, &back, err, sizeof(err)), 0);
	json_decref(back);
	free(bad);
	free(c);
	json_decref(pos);
}
END_TEST

static Suite *store_suite(void)
{
	Suite *s = suite_create("store");
	TCase *tc = tcase_create("store");

	tcase_add_unchecked_fixture(tc, homes_setup, homes_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_creates_private_files);
	tcase_add_test(tc, test_newer_schema_refused_untouched);
	tcase_add_test(tc, test_not_a_database_refused);
	tcase_add_test(tc, test_damaged_page_refused);
	tcase_add_test(tc, test_second_opener_refused);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_group_commit_isolation_and_order);
	tcase_add_test(tc, test_failed_write_poisons_until_load);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_list_pages_and_filters);
	tcase_add_test(tc, test_cursor_sealed);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(store_suite)
