/* bturn.c - see bturn.h.
 *
 * The fake runs its bench-loop script (an endless series of one-tool turns:
 * echo on mcp__executor_demo, then a short answer) and records, for each
 * request, served_ms: the time it spent from the request body parsed to the
 * last byte written. A turn is two such requests and one tool call, so
 *   overhead = (turn/start sent -> turn/completed received) - served_ms(2)
 * is what tandem adds: client API, two HTTP requests (libcurl) with their
 * SSE parsing, the tool call through the executor, plus what the fake spends
 * outside its clock (accepting, reading and parsing a request). The
 * baseline shows that last part: the same two requests, as tandem sent
 * them, posted directly by this program, minus their served_ms. Each turn
 * runs on a fresh thread (same root, so the server is shared and already
 * running) so that the history, sent in full every step, does not grow. */
#include "bturn.h"

#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bconn.h"
#include "bhttp.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define TARGET_OVERHEAD_NS 2000000u
#define FAKE_START_MS 15000u
#define TURN_TIMEOUT_MS 30000u
#define WHAT "turn with 1 tool call, overhead"

static void skip(const char *why)
{
	bsys_progress("turn: skipped: %s", why);
	btable_add(WHAT, NULL, NULL, why, "<= 2 ms", BTABLE_SKIP);
}

/* The fake listening on 127.0.0.1; *port gets its port. */
static struct bconn *fake_start(const struct bench_opts *o, const char *script,
				const char *python, const char *record, int *port)
{
	_cleanup_free_ char *log = xasprintf("%s/turn/fake.log", bsys_tmpdir());

	return bconn_spawn_listening("fake_responses",
				     (const char *const[]){ python, o->fake, "--script", script,
							    "--port", "0", "--record", record,
							    NULL },
				     log, FAKE_START_MS, port);
}

static bool has_turn_start(struct bconn *c)
{
	char err[512];
	json_t *r = bconn_call(c, "turn/start",
			       json_pack("{s:s, s:[{s:s, s:s}]}", "threadId", "no-such-thread",
					 "input", "type", "text", "text", "probe"),
			       err, sizeof(err));

	if (r)
		bsys_fail("turn/start on a thread that does not exist succeeded");
	return strncmp(err, "Method not found", 16) != 0;
}

static void check_turn(json_t *done)
{
	json_t *turn = json_object_get(done, "turn"), *item;
	const char *st = json_string_value(json_object_get(turn, "status"));
	bool called = false;
	size_t i;

	if (!st || strcmp(st, "completed") != 0)
		bsys_fail("turn ended %s: %s", st ? st : "?",
			  json_string_value(json_object_get(json_object_get(turn, "error"),
							    "message")));
	json_array_foreach(json_object_get(turn, "items"), i, item) {
		const char *type = json_string_value(json_object_get(item, "type"));
		const char *ist = json_string_value(json_object_get(item, "status"));

		if (type && strcmp(type, "mcpToolCall") == 0) {
			if (!ist || strcmp(ist, "completed") != 0)
				bsys_fail("the turn's tool call ended %s", ist ? ist : "?");
			called = true;
		}
	}
	if (!called)
		bsys_fail("the turn completed without its tool call");
}

/* One turn on a fresh, settled thread: ns from turn/start to turn/completed. */
static uint64_t one_turn(struct borch *orch, const char *plugin)
{
	const char *ids[] = { "demo" }, *paths[] = { plugin };
	char *tid = borch_thread_start(orch->c, ids, paths, 1);
	json_t *done;
	uint64_t t0;

	json_decref(borch_status_ok(orch->c, tid, 1));
	t0 = bsys_now_ns();
	json_decref(bconn_call_ok(orch->c, "turn/start",
				  json_pack("{s:s, s:[{s:s, s:s}]}", "threadId", tid, "input",
					    "type", "text", "text", "call the echo tool")));
	done = bconn_wait_notification(orch->c, "turn/completed", TURN_TIMEOUT_MS);
	t0 = bsys_now_ns() - t0;
	check_turn(done);
	json_decref(done);
	free(tid);
	return t0;
}

/* The fake's records, once it has written n of them (a record is written
 * as its response finishes, so it may trail the client by a moment). */
static json_t *read_records(const char *record, size_t n)
{
	uint64_t deadline = bsys_now_ns() + 5000000000ull;

	for (;;) {
		char *text = bsys_read_file(record, NULL), *save = NULL;
		json_t *all = json_array();

		for (char *l = strtok_r(text, "\n", &save); text && l;
		     l = strtok_r(NULL, "\n", &save)) {
			json_t *rec = json_loads(l, 0, NULL);

			if (!json_is_number(json_object_get(rec, "served_ms")) ||
			    json_integer_value(json_object_get(rec, "status")) != 200 ||
			    !json_is_object(json_object_get(rec, "body")))
				bsys_fail("fake_responses: bad record: %.300s", l);
			json_array_append_new(all, rec);
		}
		free(text);
		if (json_array_size(all) >= n) {
			if (json_array_size(all) > n)
				bsys_fail("fake_responses: %zu requests recorded, expected %zu",
					  json_array_size(all), n);
			return all;
		}
		json_decref(all);
		if (bsys_now_ns() >= deadline)
			bsys_fail("fake_responses: fewer than %zu requests recorded", n);
		bsys_sleep_ms(5);
	}
}

/* served_ms of records i and i+1, in ns. */
static uint64_t served_pair(json_t *recs, size_t i)
{
	double ms = json_number_value(json_object_get(json_array_get(recs, i), "served_ms")) +
		    json_number_value(json_object_get(json_array_get(recs, i + 1), "served_ms"));

	return (uint64_t)(ms * 1e6);
}

/* The baseline: the two requests of the last tandem turn, as tandem sent
 * them, posted directly by this program on one keep-alive connection. */
static void replay(json_t *recs, size_t first, int port, unsigned runs, uint64_t *ns)
{
	struct bhttp *h = bhttp_connect(port);
	char *body[2], *path[2];

	for (int k = 0; k < 2; k++) {
		json_t *rec = json_array_get(recs, first + (size_t)k);

		body[k] = json_dumps(json_object_get(rec, "body"), JSON_COMPACT);
		path[k] = xstrdup(json_string_value(json_object_get(rec, "path")));
	}
	for (unsigned i = 0; i < runs; i++) {
		uint64_t t0 = bsys_now_ns();

		for (int k = 0; k < 2; k++)
			bhttp_post(h, path[k], body[k], strlen(body[k]));
		ns[i] = bsys_now_ns() - t0;
	}
	for (int k = 0; k < 2; k++) {
		free(body[k]);
		free(path[k]);
	}
	bhttp_free(h);
}

struct turn_figs {
	uint64_t overhead, direct, turn, served;
};

static uint64_t minus(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

static void measure(const struct bench_opts *o, struct borch *orch, const char *record,
		    int port, struct turn_figs *f)
{
	_cleanup_free_ char *plugin = xasprintf("%s/plugin", orch->dir);
	size_t all = o->turn_warm + o->turn_runs, n = o->turn_runs;
	uint64_t *turn_ns = xcalloc(all, sizeof(*turn_ns)), *direct_ns = xcalloc(n, sizeof(*direct_ns));
	uint64_t *ov = xcalloc(n, sizeof(*ov)), *dov = xcalloc(n, sizeof(*dov));
	uint64_t *tot = xcalloc(n, sizeof(*tot)), *sv = xcalloc(n, sizeof(*sv));
	json_t *recs;

	borch_make_plugin(&o->bins, plugin, "executor_demo");
	for (size_t i = 0; i < all; i++)
		turn_ns[i] = one_turn(orch, plugin);
	recs = read_records(record, 2 * all);
	replay(recs, 2 * (all - 1), port, o->turn_runs, direct_ns);
	json_decref(recs);
	recs = read_records(record, 2 * (all + n));
	for (size_t i = 0; i < n; i++) {
		size_t k = o->turn_warm + i;

		tot[i] = turn_ns[k];
		sv[i] = served_pair(recs, 2 * k);
		ov[i] = minus(turn_ns[k], sv[i]);
		dov[i] = minus(direct_ns[i], served_pair(recs, 2 * (all + i)));
	}
	f->overhead = bstat_median(ov, n);
	f->direct = bstat_median(dov, n);
	f->turn = bstat_median(tot, n);
	f->served = bstat_median(sv, n);
	json_decref(recs);
	free(turn_ns);
	free(direct_ns);
	free(ov);
	free(dov);
	free(tot);
	free(sv);
}

static void run(const struct bench_opts *o, const char *script, const char *python)
{
	_cleanup_free_ char *dir = xasprintf("%s/turn", bsys_tmpdir());
	_cleanup_free_ char *record = xasprintf("%s/record.jsonl", dir);
	_cleanup_free_ char *cfg = NULL;
	struct turn_figs f;
	struct bconn *fake;
	struct borch *orch;
	int port;

	bsys_mkdir(dir);
	fake = fake_start(o, script, python, record, &port);
	cfg = xasprintf("model = \"bench-model\"\nmodel_provider = \"fake\"\n\n"
			"[model_providers.fake]\nname = \"fake\"\n"
			"base_url = \"http://127.0.0.1:%d/v1\"\nwire_api = \"responses\"\n",
			port);
	orch = borch_start(&o->bins, "turn-orch", cfg);
	if (!has_turn_start(orch->c)) {
		skip("orchestrator has no turn/start");
	} else {
		bsys_progress("turn: %u turns with one tool call", o->turn_warm + o->turn_runs);
		measure(o, orch, record, port, &f);
		btable_add(WHAT, btable_ms(f.overhead),
			   btable_fmt("direct %s", btable_ms(f.direct)),
			   btable_fmt("turn %s, served %s", btable_ms(f.turn), btable_ms(f.served)),
			   "<= 2 ms", btable_check(f.overhead <= TARGET_OVERHEAD_NS));
	}
	borch_stop(orch);
	bconn_free(fake); /* EOF on its stdin: it exits, 0 when nothing went wrong */
}

void bturn_run(const struct bench_opts *o)
{
	_cleanup_free_ char *fake_dir = NULL, *def_script = NULL, *python = NULL;
	const char *script = o->fake_script;

	if (!o->fake || !*o->fake) {
		skip("TANDEM_FAKE_RESPONSES not set");
		return;
	}
	if (access(o->fake, R_OK) < 0) {
		skip("TANDEM_FAKE_RESPONSES: no such file");
		return;
	}
	fake_dir = xstrdup(o->fake);
	def_script = xasprintf("%s/responses-scripts/bench-loop.json", dirname(fake_dir));
	if (!script)
		script = def_script;
	if (access(script, R_OK) < 0) {
		skip("no bench-loop.json script");
		return;
	}
	python = bsys_which("python3");
	if (!python) {
		skip("no python3");
		return;
	}
	run(o, script, python);
}
