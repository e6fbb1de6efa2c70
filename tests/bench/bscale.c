/* bscale.c - see bscale.h.
 *
 * One orchestrator serves the whole phase, in this order, so that each
 * figure is taken on a daemon that holds exactly what the row says:
 * idle RSS; 100 then 1000 threads without roots; executor RSS with 10 then
 * 100 threads each holding its own live server (own root: a different cwd,
 * so nothing is shared); call latency round robin over 1, 10, 100 of those
 * threads; one thread with 100 roots for mcpServerStatus/list. */
#include "bscale.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "bconn.h"
#include "bload.h"
#include "bstat.h"
#include "bproc.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define TARGET_KIB_PER_THREAD 16.0
#define FEW_THREADS 100u /* first memory point, for the growth check */
#define FEW_SERVERS 10u

/* Growth is linear (or better) when the per-item cost at n items is not
 * above the cost at the first point; slack absorbs page granularity. */
static bool linear(double per_few, double per_many)
{
	return per_many <= per_few * 1.5 + 1.0;
}

static double per_item(long base_kib, long kib, size_t n)
{
	return (double)(kib - base_kib) / (double)n;
}

static const char *mib(long kib)
{
	return btable_fmt("%.1f MiB", (double)kib / 1024.0);
}

static long rss(pid_t pid, const char *what)
{
	long v = bproc_rss_kib(pid);

	if (v < 0)
		bsys_fail("no VmRSS for %s (pid %d)", what, (int)pid);
	return v;
}

static void idle_threads(struct borch *orch, const struct bench_opts *o)
{
	long rss0 = rss(orch->pid, "orchestrator"), pss0 = bproc_pss_kib(orch->pid);
	long rss_few = rss0, rss_many;
	double few, many;

	for (size_t i = 0; i < o->idle_threads; i++) {
		if (i == FEW_THREADS)
			rss_few = rss(orch->pid, "orchestrator");
		free(borch_thread_start(orch->c, NULL, NULL, 0));
	}
	rss_many = rss(orch->pid, "orchestrator");
	few = per_item(rss0, rss_few, FEW_THREADS);
	many = per_item(rss0, rss_many, o->idle_threads);
	btable_add("orchestrator RSS, idle (1 client)", mib(rss0), NULL,
		   pss0 >= 0 ? btable_fmt("Pss %s", mib(pss0)) : "no smaps_rollup", NULL,
		   BTABLE_INFO);
	btable_add(btable_fmt("orchestrator RSS, %zu idle threads", o->idle_threads),
		   mib(rss_many), mib(rss0),
		   btable_fmt("%.1f KiB/thread (%.1f at %u)", many, few, FEW_THREADS),
		   "<= 16 KiB/thread",
		   btable_check(many <= TARGET_KIB_PER_THREAD && linear(few, many)));
}

/* Threads each selecting its own new plugin root; waits until every
 * server is connected. Thread ids go to tids[from..to). */
static void live_threads(struct borch *orch, const struct bench_opts *o, char **tids,
			 size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		_cleanup_free_ char *path = xasprintf("%s/live-%03zu", orch->dir, i);
		_cleanup_free_ char *id = xasprintf("live-%zu", i);
		const char *ids[] = { id }, *paths[] = { path };

		borch_make_plugin(&o->bins, path, "fx");
		tids[i] = borch_thread_start(orch->c, ids, paths, 1);
	}
	for (size_t i = from; i < to; i++)
		json_decref(borch_status_ok(orch->c, tids[i], 1));
}

static void executor_memory(struct borch *orch, const struct bench_opts *o, char **tids)
{
	long e0 = rss(orch->exec_pid, "executor"), e_few, e_many;
	unsigned live;

	live_threads(orch, o, tids, 0, FEW_SERVERS);
	e_few = rss(orch->exec_pid, "executor");
	live_threads(orch, o, tids, FEW_SERVERS, o->live_threads);
	e_many = rss(orch->exec_pid, "executor");
	live = bproc_count_children(orch->exec_pid);
	if (live != o->live_threads)
		bsys_fail("the executor has %u children, expected %zu MCP servers", live,
			  o->live_threads);
	btable_add(btable_fmt("executor RSS, %zu live MCP servers", o->live_threads),
		   mib(e_many), mib(e0),
		   btable_fmt("%.1f KiB/server (%.1f at %u)",
			      per_item(e0, e_many, o->live_threads),
			      per_item(e0, e_few, FEW_SERVERS), FEW_SERVERS),
		   "<= linear",
		   btable_check(linear(per_item(e0, e_few, FEW_SERVERS),
				       per_item(e0, e_many, o->live_threads))));
}

static void scale_latency(struct borch *orch, const struct bench_opts *o, char **tids)
{
	static const size_t points[] = { 1, 10, 100 };
	uint64_t *lat = xcalloc(o->scale_n, sizeof(*lat)), p50_1 = 0;

	for (size_t k = 0; k < ARRAY_SIZE(points) && points[k] <= o->live_threads; k++) {
		size_t n = points[k];
		struct bload_target t = { .threads = (const char *const *)tids, .n_threads = n,
					  .server = "fx" };
		uint64_t p50;

		bload_seq(orch->c, &t, MAX(200u, 2 * n), o->scale_n, lat);
		p50 = bstat_pct(lat, o->scale_n, 50);
		if (n == 1) {
			p50_1 = p50;
			btable_add("tool call p50, 1 thread (scale base)", btable_us(p50), NULL,
				   NULL, NULL, BTABLE_INFO);
			continue;
		}
		btable_add(btable_fmt("tool call p50, %zu threads round robin", n),
			   btable_us(p50), btable_us(p50_1),
			   btable_fmt("%.2fx 1 thread", (double)p50 / (double)p50_1), "<= linear",
			   btable_check(p50 <= p50_1 * n));
	}
	free(lat);
}

/* Median time of mcpServerStatus/list on tid, answer line complete. */
static uint64_t list_median(struct borch *orch, const struct bench_opts *o, const char *tid,
			    size_t n_servers)
{
	uint64_t *ns = xcalloc(o->list_runs, sizeof(*ns)), med;

	for (unsigned i = 0; i < o->list_runs; i++) {
		json_decref(borch_status_ok(orch->c, tid, n_servers));
		ns[i] = orch->c->t_answer - orch->c->t_sent;
	}
	med = bstat_median(ns, o->list_runs);
	free(ns);
	return med;
}

static void many_roots(struct borch *orch, const struct bench_opts *o, const char *tid1)
{
	size_t n = o->list_roots;
	char **ids = xcalloc(n, sizeof(*ids)), **paths = xcalloc(n, sizeof(*paths)), *tid;
	uint64_t t0, settle, one, many;

	for (size_t i = 0; i < n; i++) {
		_cleanup_free_ char *server = xasprintf("s%03zu", i);

		ids[i] = xasprintf("root-%zu", i);
		paths[i] = xasprintf("%s/root-%03zu", orch->dir, i);
		borch_make_plugin(&o->bins, paths[i], server);
	}
	t0 = bsys_now_ns();
	tid = borch_thread_start(orch->c, (const char *const *)ids, (const char *const *)paths, n);
	json_decref(borch_status_ok(orch->c, tid, n));
	settle = orch->c->t_answer - t0;
	one = list_median(orch, o, tid1, 1);
	many = list_median(orch, o, tid, n);
	btable_add(btable_fmt("cold start, %zu plugins on 1 thread", n), btable_ms(settle), NULL,
		   btable_fmt("%.2f ms/plugin", (double)settle / 1e6 / (double)n), NULL,
		   BTABLE_INFO);
	btable_add(btable_fmt("mcpServerStatus/list, %zu roots (median)", n), btable_us(many),
		   btable_us(one),
		   btable_fmt("%.1fx 1 root, %.1f us/root", (double)many / (double)one,
			      (double)(many - MIN(many, one)) / 1e3 / (double)(n - 1)),
		   btable_fmt("<= linear (%zux)", n), btable_check(many <= one * n));
	for (size_t i = 0; i < n; i++) {
		free(ids[i]);
		free(paths[i]);
	}
	free(ids);
	free(paths);
	free(tid);
}

void bscale_run(const struct bench_opts *o)
{
	struct borch *orch = borch_start(&o->bins, "scale", NULL);
	char **tids = xcalloc(o->live_threads, sizeof(*tids));

	bsys_progress("memory: %zu idle threads", o->idle_threads);
	idle_threads(orch, o);
	bsys_progress("memory: %zu threads with a live MCP server each", o->live_threads);
	executor_memory(orch, o, tids);
	bsys_progress("scale: calls over 1, 10, %zu threads", o->live_threads);
	scale_latency(orch, o, tids);
	bsys_progress("scale: a thread with %zu roots", o->list_roots);
	many_roots(orch, o, tids[0]);
	borch_check_server_starts(orch, (long long)(o->live_threads + o->list_roots));
	borch_stop(orch);
	for (size_t i = 0; i < o->live_threads; i++)
		free(tids[i]);
	free(tids);
}
