/* bbox.c - see bbox.h. */
#include "bbox.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "bconn.h"
#include "bload.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define TARGET_BOX_START_NS 2000000 /* the box adds at most 2 ms to a start */

/* A plugin whose server is the echo fixture, boxed or not. */
static void make_plugin(const struct bench_opts *o, const char *dir, bool boxed)
{
	_cleanup_free_ char *meta = xasprintf("%s/.codex-plugin", dir);
	_cleanup_free_ char *manifest = xasprintf("%s/plugin.json", meta);
	_cleanup_free_ char *mcp = xasprintf("%s/.mcp.json", dir);
	json_t *j = json_pack("{s:{s:{s:s, s:[s, s]}}}", "mcpServers", "fx", "command",
			      o->bins.fixture, "args", "--mode", "echo");
	char *text;

	if (!boxed)
		json_object_set_new(json_object_get(json_object_get(j, "mcpServers"), "fx"),
				    "sandbox", json_string("off"));
	text = json_dumps(j, JSON_INDENT(2));
	bsys_mkdir(dir);
	bsys_mkdir(meta);
	bsys_write_file(manifest, "{\"name\": \"bench-box\", \"version\": \"1.0.0\"}\n");
	bsys_write_file(mcp, text);
	free(text);
	json_decref(j);
}

/* thread/start with one fresh root until its server is listed connected;
 * the thread id goes to *tid when asked for. */
static uint64_t start_one(struct borch *orch, const struct bench_opts *o, const char *name,
			  bool boxed, char **tid)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", orch->dir, name);
	const char *ids[] = { name }, *paths[] = { path };
	char *t;
	uint64_t t0;

	make_plugin(o, path, boxed);
	t0 = bsys_now_ns();
	t = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, t, 1));
	if (tid)
		*tid = t;
	else
		free(t);
	return orch->c->t_answer - t0;
}

static uint64_t p50_of(struct borch *orch, const struct bench_opts *o, char *tid)
{
	struct bload_target t = { .n_threads = 1, .server = "fx" };
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat)), p50;

	t.threads = (const char *const *)&tid;
	bload_seq(orch->c, &t, o->seq_warm, o->seq_n, lat);
	p50 = bstat_pct(lat, o->seq_n, 50);
	free(lat);
	return p50;
}

void bbox_run(const struct bench_opts *o)
{
	struct borch *orch = borch_start(&o->bins, "sandbox", NULL);
	uint64_t *on = xcalloc(o->cold_runs, sizeof(*on)), *off = xcalloc(o->cold_runs, sizeof(*off));
	uint64_t start_on, start_off, p50_on, p50_off;
	char *tid_on = NULL, *tid_off = NULL;
	int64_t extra;

	bsys_progress("sandbox: %u boxed and %u unboxed server starts", o->cold_runs, o->cold_runs);
	/* Interleaved, so that the machine's mood hits both alike. */
	for (unsigned i = 0; i < o->cold_runs; i++) {
		_cleanup_free_ char *a = xasprintf("box-%u", i), *b = xasprintf("nobox-%u", i);

		on[i] = start_one(orch, o, a, true, NULL);
		off[i] = start_one(orch, o, b, false, NULL);
	}
	start_on = bstat_median(on, o->cold_runs);
	start_off = bstat_median(off, o->cold_runs);
	extra = (int64_t)start_on - (int64_t)start_off;
	btable_add("server start in the sandbox (median)", btable_us(start_on),
		   btable_fmt("%s unboxed", btable_us(start_off)),
		   btable_fmt("%+.0f us", (double)extra / 1e3), "<= +2 ms",
		   btable_check(extra <= TARGET_BOX_START_NS));
	bsys_progress("sandbox: tool-call latency, boxed and unboxed");
	start_one(orch, o, "box-lat", true, &tid_on);
	start_one(orch, o, "nobox-lat", false, &tid_off);
	p50_on = p50_of(orch, o, tid_on);
	p50_off = p50_of(orch, o, tid_off);
	btable_add("tool call p50 in the sandbox", btable_us(p50_on),
		   btable_fmt("%s unboxed", btable_us(p50_off)),
		   btable_fmt("%+.0f us", ((double)p50_on - (double)p50_off) / 1e3), NULL,
		   BTABLE_INFO);
	borch_stop(orch);
	free(tid_on);
	free(tid_off);
	free(on);
	free(off);
}
