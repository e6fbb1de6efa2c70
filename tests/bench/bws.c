/* bws.c - see bws.h.
 *
 * Two orchestrators on the same plugin: one serving stdio (a pipe pair to
 * this program, --ephemeral so that both may run at once), one serving
 * unix:// and ws://127.0.0.1:0. The sequential p50 of the same tool call is
 * measured over stdio, over ws://, over WebSocket on the unix socket and
 * over lines on it, in alternating rounds so that drift of the machine hits
 * them alike. What the WebSocket layer adds is the difference of the
 * medians within the second daemon (lines there run the code stdio runs);
 * the orchestrator's CPU per request (/proc, 10 ms ticks: many requests)
 * says the same with less noise.
 */
#include "bws.h"

#include "bconn.h"
#include "bload.h"
#include "bproc.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>

#define ROUNDS 5
#define TARGET_WS_EXTRA_NS 10000 /* the WebSocket layer: under 10 us */

/* "(port N" in the orchestrator's log. */
static int log_port(const char *log)
{
	uint64_t deadline = bsys_now_ns() + 10000000000ull;

	for (;;) {
		_cleanup_free_ char *text = bsys_read_file(log, NULL);
		const char *p = text ? strstr(text, "(port ") : NULL;

		if (p)
			return atoi(p + 6);
		if (bsys_now_ns() > deadline)
			bsys_fail("no ws:// port in %s", log);
		bsys_sleep_ms(5);
	}
}

static struct bconn *stdio_orch(const struct bench_opts *o, const char *home, const char *log)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	struct bconn *c;

	if (fd < 0)
		bsys_fail("open %s", log);
	bsys_show_on_fail(log);
	c = bconn_spawn("orchestrator (stdio)",
			(const char *const[]){ o->bins.orchestrator, "--home", home, "--listen",
					       "stdio://", "--executor", o->bins.executor,
					       "--ephemeral", "--log-level", "warn", NULL },
			fd);
	close(fd);
	json_decref(bconn_call_ok(c, "initialize",
				  json_pack("{s:{s:s, s:s}}", "clientInfo", "name", "tandem-bench",
					    "version", "1")));
	return c;
}

/* Orchestrator CPU per request for a request the client API answers
 * itself (thread/loaded/list: no executor, no store), `total` of them in
 * batches of 32 on c: what the transport costs, without the tool path. */
static double cpu_per_request(struct bconn *c, pid_t pid, size_t total)
{
	static const char req[] = "{\"id\":1,\"method\":\"thread/loaded/list\",\"params\":{}}\n";
	char batch[32 * sizeof(req)];
	uint64_t t0, t1;
	const char *line;
	size_t len;

	for (size_t i = 0; i < 32; i++)
		memcpy(batch + i * (sizeof(req) - 1), req, sizeof(req) - 1);
	t0 = bproc_cpu_ns(pid);
	for (size_t done = 0; done < total; done += 32) {
		uint64_t deadline = bsys_now_ns() + BCONN_TIMEOUT_MS * 1000000ull;

		bconn_send(c, batch, 32 * (sizeof(req) - 1));
		for (int i = 0; i < 32; i++)
			bconn_read_line(c, deadline, &line, &len);
	}
	t1 = bproc_cpu_ns(pid);
	return (double)(t1 - t0) / 1e3 / (double)total;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double dmedian(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), dcmp);
	return v[n / 2];
}

static uint64_t round_p50(struct bconn *c, const struct bload_target *t, size_t warm, size_t n,
			  uint64_t *lat)
{
	bload_seq(c, t, warm, n, lat);
	return bstat_pct(lat, n, 50);
}

void bws_run(const struct bench_opts *o)
{
	const char *extra[] = { "--listen", "ws://127.0.0.1:0", "--log-level", "info", NULL };
	struct borch *orch = borch_start_args(&o->bins, "ws", NULL, extra);
	_cleanup_free_ char *plugin = xasprintf("%s/plugin", orch->dir);
	_cleanup_free_ char *shome = xasprintf("%s/stdio-home", orch->dir);
	_cleanup_free_ char *slog = xasprintf("%s/stdio.log", orch->dir);
	const char *ids[] = { "bench" }, *paths[] = { plugin };
	size_t n = MAX(o->seq_n / ROUNDS, 50u);
	uint64_t *lat = xcalloc(n, sizeof(*lat));
	uint64_t p_stdio[ROUNDS], p_ws[ROUNDS], p_uws[ROUNDS], p_line[ROUNDS], stdio, ws, uws, line;
	struct bconn *sc, *wc, *uc;
	char *tid, *stid;
	struct bload_target t = { .n_threads = 1, .server = "fx" };

	bsys_progress("client transports: stdio, ws://, unix WebSocket");
	borch_make_plugin(&o->bins, plugin, "fx");
	bsys_mkdir(shome);
	tid = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	wc = bconn_ws_tcp("client (ws://)", log_port(orch->log));
	json_decref(bconn_call_ok(wc, "initialize",
				  json_pack("{s:{s:s, s:s}}", "clientInfo", "name", "tandem-bench",
					    "version", "1")));
	uc = bconn_ws_unix("client (unix WebSocket)", orch->sock);
	json_decref(bconn_call_ok(uc, "initialize",
				  json_pack("{s:{s:s, s:s}}", "clientInfo", "name", "tandem-bench",
					    "version", "1")));
	sc = stdio_orch(o, shome, slog);
	stid = borch_thread_start(sc, ids, paths, 1);
	json_decref(borch_status_ok(sc, stid, 1));
	for (int r = 0; r < ROUNDS; r++) {
		t.threads = (const char *const *)&stid;
		p_stdio[r] = round_p50(sc, &t, o->seq_warm / ROUNDS, n, lat);
		t.threads = (const char *const *)&tid;
		p_ws[r] = round_p50(wc, &t, o->seq_warm / ROUNDS, n, lat);
		p_uws[r] = round_p50(uc, &t, o->seq_warm / ROUNDS, n, lat);
		p_line[r] = round_p50(orch->c, &t, o->seq_warm / ROUNDS, n, lat);
	}
	line = bstat_median(p_line, ROUNDS);
	stdio = bstat_median(p_stdio, ROUNDS);
	ws = bstat_median(p_ws, ROUNDS);
	uws = bstat_median(p_uws, ROUNDS);
	/* The target row compares within one daemon: the line transport is
	 * the code stdio runs, and two daemons differ by more than the
	 * transport on a busy machine (the stdio one keeps no store). */
	btable_add("tool call p50 over ws:// (vs unix lines, same daemon)", btable_us(ws),
		   btable_us(line), btable_fmt("%+.1f us", ((double)ws - (double)line) / 1e3),
		   "<= +10 us", btable_check((int64_t)ws - (int64_t)line <= TARGET_WS_EXTRA_NS));
	btable_add("tool call p50 over unix WebSocket (vs unix lines)", btable_us(uws),
		   btable_us(line), btable_fmt("%+.1f us", ((double)uws - (double)line) / 1e3),
		   NULL, BTABLE_INFO);
	btable_add("tool call p50 over stdio (its own daemon, --ephemeral)", btable_us(stdio),
		   btable_us(line), btable_fmt("%+.1f us", ((double)stdio - (double)line) / 1e3),
		   NULL, BTABLE_INFO);
	/* CPU per call in the orchestrator at 32 in flight: what the transport
	 * costs, less sensitive to a busy machine than latency. */
	{
		double cpu_ws[1] = { 0 }, cpu_line[1] = { 0 };
		pid_t pid = orch->pid;

		t.threads = (const char *const *)&tid;
		bload_inflight_cpu(&wc, 1, &t, 32, o->tput_warm_ms, o->tput_ms, &pid, 1, cpu_ws);
		bload_inflight_cpu(&orch->c, 1, &t, 32, o->tput_warm_ms, o->tput_ms, &pid, 1,
				   cpu_line);
		btable_add("orchestrator CPU per call, 32 in flight, ws:// (vs unix lines)",
			   btable_fmt("%.1f us", cpu_ws[0]), btable_fmt("%.1f us", cpu_line[0]),
			   btable_fmt("%+.1f us", cpu_ws[0] - cpu_line[0]), NULL, BTABLE_INFO);
	}
	{
		size_t total = o->quick ? 20000 : 100000;
		double w[ROUNDS], ln[ROUNDS], u[ROUNDS], dw, du;

		for (int r = 0; r < ROUNDS; r++) {
			w[r] = cpu_per_request(wc, orch->pid, total / ROUNDS);
			u[r] = cpu_per_request(uc, orch->pid, total / ROUNDS);
			ln[r] = cpu_per_request(orch->c, orch->pid, total / ROUNDS);
		}
		dw = dmedian(w, ROUNDS) - dmedian(ln, ROUNDS);
		du = dmedian(u, ROUNDS) - dmedian(ln, ROUNDS);
		btable_add("transport CPU per request (thread/loaded/list), ws:// (vs unix lines)",
			   btable_fmt("%.2f us", dmedian(w, ROUNDS)),
			   btable_fmt("%.2f us", dmedian(ln, ROUNDS)), btable_fmt("%+.2f us", dw),
			   NULL, BTABLE_INFO);
		btable_add("transport CPU per request, unix WebSocket (vs unix lines)",
			   btable_fmt("%.2f us", dmedian(u, ROUNDS)),
			   btable_fmt("%.2f us", dmedian(ln, ROUNDS)), btable_fmt("%+.2f us", du),
			   NULL, BTABLE_INFO);
	}
	bconn_free(sc); /* EOF ends that orchestrator; it must exit 0 */
	bsys_forget_on_fail(slog);
	bconn_free(wc);
	bconn_free(uc);
	borch_stop(orch);
	free(tid);
	free(stid);
	free(lat);
}
