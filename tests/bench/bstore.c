/* bstore.c - see bstore.h.
 *
 * The item rows drive the orchestrator's own store module in this process
 * (orchestrator/store.c on real files, its own thread, a loop of ours):
 * the loop's share of persisting an item (serializing it and handing it
 * over: what a turn pays on the loop thread), the time from handing it over
 * until its completion is back on the loop (one at a time: a commit each),
 * and the cost per item with 1,000 in flight (group commit). The same
 * module then fills a state directory with 10,000 threads, 20 of them with
 * 1,000 items each, and a real orchestrator serves it for the list and
 * resume rows, measured at the client. */
#include "bstore.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bconn.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "loop.h"
#include "store.h"
#include "util.h"

#define TARGET_ITEM_NS 50000u
#define TARGET_LIST_NS 5000000u
#define TARGET_RESUME_NS 20000000u
#define N_THREADS 10000u
#define N_BIG 20u           /* threads with 1,000 items */
#define BIG_TURNS 334u      /* 3 items each: 1,002 items */
#define INFLIGHT_ITEMS 1000u
#define TOOL_CALLS 200u

static struct loop *loop;

/* ---- the store in this process ----------------------------------------- */

static void tick_cb(struct loop_timer *t, void *arg)
{
	*(struct loop_timer **)arg = NULL;
	loop_stop(loop);
}

/* Each completion stops the loop, so that a wait ends as soon as its
 * answer is back (no timer granularity in the figures). */
static void count_cb(int rc, const char *err, void *res, void *arg)
{
	if (rc < 0)
		bsys_fail("thread store: %s", err);
	(*(size_t *)arg)++;
	loop_stop(loop);
}

static void wait_count(size_t *n, size_t want)
{
	uint64_t deadline = bsys_now_ns() + 60ull * 1000000000u;

	while (*n < want) {
		struct loop_timer *guard = NULL;

		if (bsys_now_ns() > deadline)
			bsys_fail("thread store: no answer");
		guard = loop_timer_add(loop, 1000, tick_cb, &guard);
		loop_run(loop);
		loop_timer_cancel(guard);
	}
}

static void open_store(const char *dir)
{
	char err[512];

	if (store_start(loop, dir, err, sizeof(err)) < 0 || store_run(err, sizeof(err)) < 0)
		bsys_fail("thread store %s: %s", dir, err);
}

static void thread_row(struct store_thread *r, int64_t ms)
{
	memset(r, 0, sizeof(*r));
	uuid_v4(r->id);
	r->created_ms = r->updated_ms = ms;
	r->cwd = xstrdup("/srv/work");
	r->provider = xstrdup("openai");
	r->preview = xstrdup("please look at the build logs and tell me what failed");
	r->meta = json_pack("{s:n, s:s, s:[], s:n}", "model", "cwd", "/srv/work", "roots",
			    "environments");
}

/* A tool call item as a turn stores it: ~700 bytes of JSON. */
static json_t *tool_item(unsigned i)
{
	char id[UUID_STR_SIZE];

	uuid_v4(id);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:i}, s:I, s:{s:[{s:s, s:s}], s:n}}",
			 "type", "mcpToolCall", "id", id, "server", "executor_demo", "tool",
			 "search", "status", "completed", "arguments", "query",
			 "error: undefined reference to `link_close' in build step 3 of 7", "limit",
			 (int)i % 50, "durationMs", (json_int_t)(i % 900), "result", "content",
			 "type", "text", "text",
			 "build/src/link.c:214: undefined reference to `link_close'; "
			 "build/src/link.c:220: undefined reference to `link_open'; "
			 "collect2: error: ld returned 1 exit status; make: *** [Makefile:31: "
			 "tandem] Error 1 (step 3 of 7, 2.3 s, exit status 2)",
			 "structuredContent");
}

/* One item at a time: the loop's share, and until its completion. */
static void item_rows(const char *dir, const struct bench_opts *o)
{
	size_t n = o->quick ? 500 : 3000, done = 0;
	uint64_t *loop_ns = xcalloc(n, sizeof(*loop_ns)), *rt = xcalloc(n, sizeof(*rt)), t0, t1;
	_cleanup_free_ char *db = xasprintf("%s/%s", dir, STORE_DB_FILE);
	struct store_thread r;
	struct store_batch *b;
	struct stat before, after;
	uint64_t burst0;

	open_store(dir);
	thread_row(&r, 1);
	b = store_batch_new(r.id);
	store_batch_thread(b, &r);
	store_submit(b, count_cb, &done);
	wait_count(&done, 1);
	store_stop();
	if (stat(db, &before) < 0)
		bsys_fail("stat %s", db);
	open_store(dir);
	done = 0;
	for (size_t i = 0; i < n; i++) {
		json_t *item = tool_item((unsigned)i);

		t0 = bsys_now_ns();
		b = store_batch_new(r.id);
		store_batch_item(b, 1, (int64_t)i, 1, 2, item);
		store_submit(b, count_cb, &done);
		t1 = bsys_now_ns();
		wait_count(&done, i + 1);
		loop_ns[i] = t1 - t0;
		rt[i] = bsys_now_ns() - t0;
		json_decref(item);
	}
	burst0 = bsys_now_ns(); /* then many in flight: the store commits them in groups */
	for (size_t i = 0; i < INFLIGHT_ITEMS; i++) {
		json_t *item = tool_item((unsigned)i);

		b = store_batch_new(r.id);
		store_batch_item(b, 2, (int64_t)i, 1, 2, item);
		store_submit(b, count_cb, &done);
		json_decref(item);
	}
	wait_count(&done, n + INFLIGHT_ITEMS);
	burst0 = bsys_now_ns() - burst0;
	store_stop(); /* the last close checkpoints: the WAL goes into the file */
	if (stat(db, &after) < 0)
		bsys_fail("stat %s", db);
	btable_add("persist 1 item, handed to the store thread p50/p99",
		   btable_fmt("%.1f / %.1f us", bstat_pct(loop_ns, n, 50) / 1e3,
			      bstat_pct(loop_ns, n, 99) / 1e3),
		   NULL, "the loop's share (p99: scheduling)", "<= 50 us",
		   btable_check(bstat_pct(loop_ns, n, 50) <= TARGET_ITEM_NS));
	btable_add("persist 1 item, until committed, one at a time p50/p99",
		   btable_fmt("%s / %s", btable_us(bstat_pct(rt, n, 50)),
			      btable_us(bstat_pct(rt, n, 99))),
		   NULL, "2 thread hand-offs + commit", NULL, BTABLE_INFO);
	btable_add(btable_fmt("persist %u items in flight, per item", INFLIGHT_ITEMS),
		   btable_us(burst0 / INFLIGHT_ITEMS), NULL, "group commit", "<= 50 us",
		   btable_check(burst0 / INFLIGHT_ITEMS <= TARGET_ITEM_NS));
	btable_add("store size per item (~700-byte tool call item)",
		   btable_fmt("%.0f bytes", (double)(after.st_size - before.st_size) /
						  (double)(n + INFLIGHT_ITEMS)),
		   NULL, NULL, NULL, BTABLE_INFO);
	store_thread_clear(&r);
	free(loop_ns);
	free(rt);
}

static void hist(struct store_batch *b, int64_t *h, unsigned turn, json_t *entry)
{
	store_batch_history(b, (*h)++, turn, entry);
	json_decref(entry);
}

/* A thread with 1,002 items over 334 turns, and the history they made. */
static void big_thread(struct store_batch *b)
{
	int64_t h = 0;

	for (unsigned t = 1; t <= BIG_TURNS; t++) {
		char turn_id[UUID_STR_SIZE], item_id[UUID_STR_SIZE];
		const struct store_turn row = { .seq = t, .id = turn_id, .status = "completed",
					  .started_at = 1700000000 + t, .completed_at = 1700000001 + t,
					  .duration_ms = 900 };
		json_t *user, *call, *answer;

		uuid_v4(turn_id);
		uuid_v4(item_id);
		user = json_pack("{s:s, s:s, s:[{s:s, s:s, s:[]}]}", "type", "userMessage", "id",
				 item_id, "content", "type", "text", "text",
				 "and what does step 4 say about it?", "text_elements");
		call = tool_item(t);
		uuid_v4(item_id);
		answer = json_pack("{s:s, s:s, s:s}", "type", "agentMessage", "id", item_id, "text",
				   "Step 4 links against the old object: rebuild link.c first, then "
				   "run the build again; the undefined references will go.");
		store_batch_turn(b, &row);
		store_batch_item(b, t, 0, 1, 2, user);
		store_batch_item(b, t, 1, 3, 4, call);
		store_batch_item(b, t, 2, 5, 6, answer);
		/* what the model saw of it: as turn.c writes it */
		hist(b, &h, t, json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "type", "message", "role",
					  "user", "content", "type", "input_text", "text",
					  "and what does step 4 say about it?"));
		hist(b, &h, t, json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", "function_call",
					  "call_id", item_id, "namespace", "mcp__executor_demo", "name",
					  "search", "arguments",
					  "{\"query\":\"error: undefined reference to `link_close'\","
					  "\"limit\":4}"));
		hist(b, &h, t, json_pack("{s:s, s:s, s:O}", "type", "function_call_output", "call_id",
					  item_id, "output",
					  json_object_get(json_array_get(json_object_get(
						  json_object_get(call, "result"), "content"), 0), "text")));
		hist(b, &h, t, json_pack("{s:s, s:s, s:[{s:s, s:O}]}", "type", "message", "role",
					  "assistant", "content", "type", "output_text", "text",
					  json_object_get(answer, "text")));
		json_decref(user);
		json_decref(call);
		json_decref(answer);
	}
}

/* 10,000 threads in dir, every (10,000 / N_BIG)th with 1,002 items; the
 * ids of those. */
static char **fill(const char *dir)
{
	char **big = xcalloc(N_BIG + 1, sizeof(*big));
	size_t done = 0, k = 0;

	open_store(dir);
	for (size_t i = 0; i < N_THREADS; i++) {
		struct store_thread r;
		struct store_batch *b;

		thread_row(&r, 1700000000000 + (int64_t)i);
		b = store_batch_new(r.id);
		store_batch_thread(b, &r);
		if (i % (N_THREADS / N_BIG) == 0 && k < N_BIG) {
			big_thread(b);
			big[k++] = xstrdup(r.id);
		}
		store_submit(b, count_cb, &done);
		store_thread_clear(&r);
		if (i + 1 - done > 500) /* bounded memory in flight */
			wait_count(&done, i + 1 - 500);
	}
	wait_count(&done, N_THREADS);
	store_stop();
	return big;
}

/* The store thread's part of a resume: reading and parsing the thread,
 * with every item, and with the history only (what continuing needs). */
static void load_rows(const char *dir, char **big)
{
	uint64_t all[N_BIG], bare[N_BIG];
	size_t done = 0;

	open_store(dir);
	for (size_t i = 0; i < 2 * N_BIG; i++) {
		uint64_t t0 = bsys_now_ns();

		store_load(big[i % N_BIG], i < N_BIG ? STORE_ALL_ITEMS : 0, count_cb, &done);
		wait_count(&done, i + 1);
		(i < N_BIG ? all : bare)[i % N_BIG] = bsys_now_ns() - t0;
	}
	store_stop();
	btable_add("load a 1,002-item thread on the store thread, median",
		   btable_ms(bstat_median(all, N_BIG)),
		   btable_fmt("%s without its items", btable_ms(bstat_median(bare, N_BIG))),
		   "SQL + JSON parse, off the loop", NULL, BTABLE_INFO);
}

/* ---- through a real orchestrator ---------------------------------------- */

static uint64_t timed_call(struct bconn *c, const char *method, json_t *params, json_t **res)
{
	json_t *r = bconn_call_ok(c, method, params);
	uint64_t ns = c->t_answer - c->t_sent;

	if (res)
		*res = r;
	else
		json_decref(r);
	return ns;
}

static void list_rows(struct borch *orch, const struct bench_opts *o)
{
	size_t runs = o->quick ? 20 : 100;
	uint64_t *first = xcalloc(runs, sizeof(*first)), *deep = xcalloc(runs, sizeof(*deep));
	json_t *r = NULL;
	char *cursor = NULL;

	/* a cursor 5,000 threads in */
	for (int p = 0; p < 100; p++) {
		json_t *params = json_pack("{s:i}", "limit", 50);

		if (cursor)
			json_object_set_new(params, "cursor", json_string(cursor));
		free(cursor);
		timed_call(orch->c, "thread/list", params, &r);
		cursor = xstrdup(json_string_value(json_object_get(r, "nextCursor")));
		if (json_array_size(json_object_get(r, "data")) != 50)
			bsys_fail("thread/list: a page of %zu", json_array_size(json_object_get(r, "data")));
		json_decref(r);
	}
	for (size_t i = 0; i < runs; i++) {
		first[i] = timed_call(orch->c, "thread/list", json_pack("{s:i}", "limit", 50), NULL);
		deep[i] = timed_call(orch->c, "thread/list",
				     json_pack("{s:i, s:s}", "limit", 50, "cursor", cursor), NULL);
	}
	btable_add("thread/list of 50 among 10,000 stored, p50/p99",
		   btable_fmt("%s / %s", btable_ms(bstat_pct(first, runs, 50)),
			      btable_ms(bstat_pct(first, runs, 99))),
		   btable_fmt("%s / %s at 5,000 in", btable_ms(bstat_pct(deep, runs, 50)),
			      btable_ms(bstat_pct(deep, runs, 99))),
		   "first page / a page deep in", "<= 5 ms",
		   btable_check(bstat_pct(first, runs, 50) <= TARGET_LIST_NS &&
				bstat_pct(deep, runs, 50) <= TARGET_LIST_NS));
	free(cursor);
	free(first);
	free(deep);
}

/* Resume as Codex's clients do (excludeTurns, the last turns as a page),
 * and with the whole history in the answer (the older form). */
static void resume_rows(struct borch *orch, char **big)
{
	uint64_t full[N_BIG / 2], paged[N_BIG / 2], reply = 0;
	json_t *r;

	for (size_t i = 0; i < N_BIG / 2; i++) {
		const char *id = big[N_BIG / 2 + i];

		paged[i] = timed_call(orch->c, "thread/resume",
				      json_pack("{s:s, s:b, s:{s:i}}", "threadId", id, "excludeTurns",
						1, "initialTurnsPage", "limit", 20), &r);
		if (json_array_size(json_object_get(json_object_get(r, "initialTurnsPage"),
						    "data")) != 20)
			bsys_fail("thread/resume: no page of 20 turns");
		json_decref(r);
		json_decref(bconn_call_ok(orch->c, "thread/unsubscribe",
					  json_pack("{s:s}", "threadId", id)));
	}
	for (size_t i = 0; i < N_BIG / 2; i++) {
		full[i] = timed_call(orch->c, "thread/resume", json_pack("{s:s}", "threadId", big[i]),
				     &r);
		if (json_array_size(json_object_get(json_object_get(r, "thread"), "turns")) !=
		    BIG_TURNS)
			bsys_fail("thread/resume: %zu turns", json_array_size(json_object_get(
								     json_object_get(r, "thread"), "turns")));
		if (i == 0) {
			char *s = json_dumps(r, JSON_COMPACT);

			reply = strlen(s);
			free(s);
		}
		json_decref(r);
	}
	btable_add("thread/resume, 1,002 items, excludeTurns + a page of 20 turns, median",
		   btable_ms(bstat_median(paged, N_BIG / 2)), NULL, "loaded from the store",
		   "<= 20 ms", btable_check(bstat_median(paged, N_BIG / 2) <= TARGET_RESUME_NS));
	btable_add(btable_fmt("thread/resume, 1,002 items, every turn in the answer (%.0f KiB)",
			      (double)reply / 1024),
		   btable_ms(bstat_median(full, N_BIG / 2)), NULL, "loaded from the store",
		   NULL, BTABLE_INFO);
}

/* A tool call outside a turn writes nothing: the store's write count is
 * the same before and after TOOL_CALLS of them. */
static void tool_calls_write_nothing(struct borch *orch, const struct bench_opts *o)
{
	_cleanup_free_ char *plugin = xasprintf("%s/plugin", orch->dir);
	const char *ids[] = { "bench" }, *paths[] = { plugin };
	char *tid;
	json_t *r;
	long long before, after;

	borch_make_plugin(&o->bins, plugin, "fx");
	tid = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	r = bconn_call_ok(orch->c, "debug/counters", NULL);
	before = json_integer_value(json_object_get(r, "storeWrites"));
	json_decref(r);
	for (unsigned i = 0; i < TOOL_CALLS; i++)
		json_decref(bconn_call_ok(orch->c, "mcpServer/tool/call",
					  json_pack("{s:s, s:s, s:s, s:{s:s}}", "threadId", tid,
						    "server", "fx", "tool", "echo", "arguments",
						    "message", "x")));
	r = bconn_call_ok(orch->c, "debug/counters", NULL);
	after = json_integer_value(json_object_get(r, "storeWrites"));
	json_decref(r);
	btable_add(btable_fmt("store writes during %u tool calls outside a turn", TOOL_CALLS),
		   btable_fmt("%lld", after - before), NULL, NULL, "0",
		   btable_check(after == before));
	free(tid);
}

void bstore_run(const struct bench_opts *o)
{
	_cleanup_free_ char *items = xasprintf("%s/store-items", bsys_tmpdir());
	_cleanup_free_ char *base = xasprintf("%s/store", bsys_tmpdir());
	_cleanup_free_ char *home = xasprintf("%s/home", base);
	_cleanup_free_ char *state = xasprintf("%s/state", home);
	struct borch *orch;
	char **big;

	loop = loop_new();
	if (!loop)
		bsys_fail("loop_new");
	bsys_progress("store: persisting items");
	item_rows(items, o);
	bsys_progress("store: filling a store with %u threads", N_THREADS);
	bsys_mkdir(base);
	bsys_mkdir(home);
	big = fill(state);
	load_rows(state, big);
	loop = loop_free(loop);
	orch = borch_start(&o->bins, "store", NULL);
	bsys_progress("store: thread/list, thread/resume");
	list_rows(orch, o);
	resume_rows(orch, big);
	tool_calls_write_nothing(orch, o);
	borch_stop(orch);
	strv_free(big);
}
