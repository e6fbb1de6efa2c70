/* bench.c - tandem-bench: measures tandem against a baseline measured in the
 * same run on the same machine, and prints one table.
 *
 * The baseline ("floor") is the same fixture MCP server called directly over
 * its pipes by this program: whatever tandem adds on top of it is the cost of
 * client API + orchestrator + nng link + executor. Phases, in order:
 *   floor      sequential latency, 32 in flight, cold start of the server
 *   latency    the same through a real orchestrator and its local executor,
 *              plus 4 client connections, cold start of a plugin's server,
 *              and latency again once the daemon holds many threads
 *   scale      memory and scale (bscale.c)
 *   turn       a model turn against the fake provider (bturn.c)
 *   store      the thread store: items, list, resume (bstore.c)
 *   http mcp   an HTTP MCP server, orchestrator-direct and through the
 *              executor's HTTP relay (bhttpmcp.c)
 *   sandbox    a plugin server boxed and with sandbox = "off" (bbox.c)
 *   gateway    the MCP gateway against server-everything called directly and
 *              through supergateway (bgateway.c)
 *   fleet      1, 10, 100 executors, url and dialling in (bfleet.c)
 * Any failed call, wrong answer or unclean daemon exit fails the run (exit
 * 1); a missed target is only reported (exit 0). See bsys.h for cleanup.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bbox.h"
#include "bconn.h"
#include "bfleet.h"
#include "bgateway.h"
#include "bench.h"
#include "bload.h"
#include "borch.h"
#include "bhttpmcp.h"
#include "blink.h"
#include "bscale.h"
#include "bstat.h"
#include "bstore.h"
#include "bsys.h"
#include "btable.h"
#include "bturn.h"
#include "bws.h"
#include "util.h"

/* Targets from the benchmark issue. */
#define TARGET_P50_NS 150000u
#define TARGET_P99_NS 1000000u
#define TARGET_RATE 20000.0
#define TARGET_COLD_EXTRA_NS 5000000u
#define INFLIGHT 32u
#define CONNS 4u

/* ---- the floor: the fixture over its own pipes ------------------------- */

void bench_mcp_open(struct bconn *c)
{
	static const char initialized[] =
		"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
	json_t *tools;

	json_decref(bconn_call_ok(c, "initialize",
				  json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion",
					    "2025-06-18", "capabilities", "clientInfo", "name",
					    "tandem-bench", "version", "1")));
	bconn_send(c, initialized, sizeof(initialized) - 1);
	tools = bconn_call_ok(c, "tools/list", NULL);
	if (!json_is_array(json_object_get(tools, "tools")) ||
	    json_array_size(json_object_get(tools, "tools")) == 0)
		bsys_fail("%s: tools/list without tools", c->name);
	json_decref(tools);
}

static struct bconn *fixture_open(const struct bench_opts *o)
{
	struct bconn *c = bconn_spawn("mcp-fixture (direct)",
				      (const char *const[]){ o->bins.fixture, "--mode", "echo",
							     NULL },
				      -1);

	bench_mcp_open(c);
	return c;
}

static void phase_floor(const struct bench_opts *o, struct bench_floor *f)
{
	const struct bload_target t = { .mcp = true };
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat));
	uint64_t *cold = xcalloc(o->cold_runs, sizeof(*cold));
	struct bconn *c;

	bsys_progress("floor: the fixture called directly over a pipe");
	c = fixture_open(o);
	bload_seq(c, &t, o->seq_warm, o->seq_n, lat);
	f->p50_ns = bstat_pct(lat, o->seq_n, 50);
	f->p99_ns = bstat_pct(lat, o->seq_n, 99);
	f->rate = bload_inflight(&c, 1, &t, INFLIGHT, o->tput_warm_ms, o->tput_ms);
	bconn_free(c);
	for (unsigned i = 0; i < o->cold_runs; i++) {
		uint64_t t0 = bsys_now_ns();

		c = fixture_open(o);
		cold[i] = c->t_answer - t0; /* spawn -> initialize -> tools/list answered */
		bconn_free(c);
	}
	f->cold_ns = bstat_median(cold, o->cold_runs);
	free(lat);
	free(cold);
}

/* ---- tandem: latency, throughput, cold start --------------------------- */

static void rows_latency(const struct bench_floor *f, uint64_t p50, uint64_t p99)
{
	btable_add("tool call p50, sequential", btable_us(p50), btable_us(f->p50_ns),
		   btable_fmt("%.1fx floor", (double)p50 / (double)f->p50_ns), "<= 150 us",
		   btable_check(p50 <= TARGET_P50_NS));
	btable_add("tool call p99, sequential", btable_us(p99), btable_us(f->p99_ns),
		   btable_fmt("%.1fx floor", (double)p99 / (double)f->p99_ns), "<= 1 ms",
		   btable_check(p99 <= TARGET_P99_NS));
}

static void rows_rate(const struct bench_floor *f, const char *what, double rate)
{
	btable_add(what, btable_fmt("%.0f/s", rate), btable_fmt("%.0f/s", f->rate),
		   btable_fmt("%.2fx floor", rate / f->rate), ">= 20000/s",
		   btable_check(rate >= TARGET_RATE));
}

/* CPU per answered call in each daemon (from /proc/PID/stat deltas over
 * the measured window; 10 ms clock ticks, thousands of calls). */
void rows_cpu(const char *what, const double cpu[2])
{
	btable_add(what, btable_fmt("%.1f us", cpu[0] + cpu[1]), NULL,
		   btable_fmt("orch %.1f + exec %.1f us", cpu[0], cpu[1]), "<= 40 us",
		   btable_check(cpu[0] + cpu[1] <= 40.0));
}

static double rate_conns(struct borch *orch, const struct bload_target *t,
			 const struct bench_opts *o)
{
	struct bconn *cs[CONNS] = { orch->c };
	double rate;

	for (unsigned i = 1; i < CONNS; i++)
		cs[i] = borch_connect(orch, btable_fmt("client %u", i + 1));
	rate = bload_inflight(cs, CONNS, t, INFLIGHT / CONNS, o->tput_warm_ms, o->tput_ms);
	for (unsigned i = 1; i < CONNS; i++)
		bconn_free(cs[i]);
	return rate;
}

/* From thread/start (one new plugin root) until mcpServerStatus/list
 * answers with its server connected and its tools. */
static uint64_t cold_start(struct borch *orch, const struct bench_opts *o, unsigned run)
{
	_cleanup_free_ char *path = xasprintf("%s/cold-%u", orch->dir, run);
	_cleanup_free_ char *id = xasprintf("cold-%u", run);
	const char *ids[] = { id }, *paths[] = { path };
	char *tid;
	uint64_t t0;

	borch_make_plugin(&o->bins, path, "fx"); /* a fresh copy: nothing can be reused */
	t0 = bsys_now_ns();
	tid = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	free(tid);
	return orch->c->t_answer - t0;
}

static void rows_cold(const struct bench_floor *f, uint64_t cold)
{
	int64_t extra = (int64_t)cold - (int64_t)f->cold_ns;

	btable_add("cold start, 1 plugin (median)", btable_ms(cold),
		   btable_ms(f->cold_ns), btable_fmt("%+.2f ms", (double)extra / 1e6),
		   "<= +5 ms", btable_check(extra <= (int64_t)TARGET_COLD_EXTRA_NS));
}

/* The same call once the daemon holds many more (idle) threads: each request
 * finds its thread by id, so this shows what that lookup costs. */
static uint64_t crowded_p50(struct borch *orch, const struct bench_opts *o,
			    const struct bload_target *t)
{
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat)), p50;

	for (size_t i = 0; i < o->idle_threads; i++)
		free(borch_thread_start(orch->c, NULL, NULL, 0));
	bload_seq(orch->c, t, o->seq_warm, o->seq_n, lat);
	p50 = bstat_pct(lat, o->seq_n, 50);
	free(lat);
	return p50;
}

/* Returns the p50 in a daemon crowded with idle threads; *p50 the first. */
static uint64_t phase_tandem(const struct bench_opts *o, const struct bench_floor *f,
			     uint64_t *p50)
{
	struct borch *orch = borch_start(&o->bins, "latency", NULL);
	_cleanup_free_ char *plugin = xasprintf("%s/plugin", orch->dir);
	const char *ids[] = { "bench" }, *paths[] = { plugin };
	char *tid;
	uint64_t *lat = xcalloc(MAX(o->seq_n, o->cold_runs), sizeof(*lat)), crowded;
	struct bload_target t = { .n_threads = 1, .server = "fx" };

	bsys_progress("latency: client -> orchestrator -> executor -> fixture");
	borch_make_plugin(&o->bins, plugin, "fx");
	tid = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	t.threads = (const char *const *)&tid;
	bload_seq(orch->c, &t, o->seq_warm, o->seq_n, lat);
	*p50 = bstat_pct(lat, o->seq_n, 50);
	rows_latency(f, *p50, bstat_pct(lat, o->seq_n, 99));
	bsys_progress("throughput: %u calls in flight", INFLIGHT);
	{
		pid_t pids[2] = { orch->pid, orch->exec_pid };
		double cpu[2] = { 0 };

		rows_rate(f, "throughput, 32 in flight, 1 connection",
			  bload_inflight_cpu(&orch->c, 1, &t, INFLIGHT, o->tput_warm_ms,
					     o->tput_ms, pids, 2, cpu));
		rows_cpu("CPU per call at 32 in flight (ipc link)", cpu);
	}
	rows_rate(f, "throughput, 32 in flight, 4 connections", rate_conns(orch, &t, o));
	bsys_progress("cold start: %u new plugin roots", o->cold_runs);
	for (unsigned i = 0; i < o->cold_runs; i++)
		lat[i] = cold_start(orch, o, i);
	rows_cold(f, bstat_median(lat, o->cold_runs));
	borch_check_server_starts(orch, 1 + (long long)o->cold_runs);
	bsys_progress("latency with %zu more threads", o->idle_threads);
	crowded = crowded_p50(orch, o, &t);
	borch_stop(orch);
	free(tid);
	free(lat);
	return crowded;
}

/* ---- set-up -------------------------------------------------------------- */

/* $var, else the build tree next to this binary (build/tests/bench/). */
static char *find_bin(const char *arg, const char *var, const char *rel)
{
	const char *v = arg ? arg : getenv(var);
	char self[PATH_MAX], *slash, *path, *real;
	ssize_t n;

	if (v && *v) {
		path = xstrdup(v);
	} else {
		n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		if (n < 0)
			bsys_fail("readlink /proc/self/exe: %s", strerror(errno));
		self[n] = '\0';
		slash = strrchr(self, '/');
		*slash = '\0';
		path = xasprintf("%s/%s", self, rel);
	}
	real = realpath(path, NULL);
	if (!real || access(real, X_OK) < 0)
		bsys_fail("%s: not an executable (set $%s or the option)", path, var);
	free(path);
	return real;
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tandem-bench [--orchestrator P] [--executor P] [--fixture P] [--fake P] "
		"[--quick] [--only PHASE,...]\n"
		"Phases: tandem, link, scale, turn, store, http, box, gateway, ws, fleet (the pipe\n"
		"floor always runs). --fleet is --only fleet.\n"
		"Measures tandem against the same MCP server called directly and prints one "
		"table.\n"
		"Binaries default to $TANDEM_ORCHESTRATOR, $TANDEM_EXECUTOR, $MCP_FIXTURE, else "
		"the build tree.\n"
		"The turn row needs --fake or $TANDEM_FAKE_RESPONSES "
		"(tests/fixtures/fake_responses.py); the MCP gateway rows, $TANDEM_NPM_PEERS.\n"
		"--only gateway runs the MCP gateway phase alone.\n"
		"Exit status: 0 measured (targets may be missed), 1 the system misbehaved.\n");
}

static void sizes(struct bench_opts *o)
{
	bool q = o->quick;

	o->seq_warm = q ? 100 : 500;
	o->seq_n = q ? 1000 : 5000;
	o->tput_warm_ms = q ? 100 : 300;
	o->tput_ms = q ? 500 : 3000;
	o->cold_runs = q ? 5 : 20;
	o->idle_threads = 1000;
	o->live_threads = 100;
	o->scale_n = q ? 500 : 2000;
	o->list_roots = 100;
	o->list_runs = q ? 5 : 20;
	o->turn_warm = q ? 1 : 3;
	o->turn_runs = q ? 5 : 20;
}

static int parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum { O_ORCH = 256, O_EXEC, O_FIX, O_FAKE, O_QUICK, O_ONLY, O_FLEET };
	static const struct option lopts[] = {
		{ "orchestrator", required_argument, NULL, O_ORCH },
		{ "executor", required_argument, NULL, O_EXEC },
		{ "fixture", required_argument, NULL, O_FIX },
		{ "fake", required_argument, NULL, O_FAKE },
		{ "quick", no_argument, NULL, O_QUICK },
		{ "only", required_argument, NULL, O_ONLY },
		{ "fleet", no_argument, NULL, O_FLEET },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *a[3] = { NULL };
	int c;

	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case O_ORCH: a[0] = optarg; break;
		case O_EXEC: a[1] = optarg; break;
		case O_FIX: a[2] = optarg; break;
		case O_FAKE: o->fake = optarg; break;
		case O_QUICK: o->quick = true; break;
		case O_ONLY: o->only = optarg; break;
		case O_FLEET: o->only = "fleet"; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return -1;
	}
	o->paths[0] = find_bin(a[0], "TANDEM_ORCHESTRATOR", "../../orchestrator/tandem-orchestrator");
	o->paths[1] = find_bin(a[1], "TANDEM_EXECUTOR", "../../executor/tandem-executor");
	o->paths[2] = find_bin(a[2], "MCP_FIXTURE", "../mcp-fixture");
	o->bins = (struct borch_bins){ o->paths[0], o->paths[1], o->paths[2] };
	if (!o->fake)
		o->fake = getenv("TANDEM_FAKE_RESPONSES");
	o->fake_script = getenv("TANDEM_FAKE_SCRIPT");
	sizes(o);
	return 0;
}

/* --only a,b: just those phases (the floor always runs). */
static bool wanted(const struct bench_opts *o, const char *phase)
{
	size_t n = strlen(phase);

	for (const char *p = o->only; p && *p; p += strcspn(p, ",") + (p[strcspn(p, ",")] != 0))
		if (strncmp(p, phase, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
	return !o->only;
}

static void print_header(const struct bench_opts *o)
{
	struct utsname u;
	time_t now = time(NULL);
	char when[64];

	uname(&u);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	printf("tandem-bench%s: %ld CPUs, %s %s %s, %s\n", o->quick ? " --quick" : "",
	       sysconf(_SC_NPROCESSORS_ONLN), u.sysname, u.release, u.machine, when);
	printf("floor = the same echo MCP server (%s) called directly over a pipe by this "
	       "program\n\n",
	       o->bins.fixture);
}

int main(int argc, char **argv)
{
	struct bench_opts o = { 0 };
	struct bench_floor f = { 0 };
	uint64_t crowded, p50, t0 = bsys_now_ns();

	bsys_init();
	if (parse_args(argc, argv, &o) < 0)
		return 2;
	phase_floor(&o, &f);
	if (wanted(&o, "tandem")) {
		crowded = phase_tandem(&o, &f, &p50);
		btable_add(btable_fmt("tool call p50, oldest of %zu+ threads", o.idle_threads + 1),
			   btable_us(crowded), btable_us(p50),
			   btable_fmt("%+.0f us vs 1 thread", ((double)crowded - (double)p50) / 1e3),
			   NULL, BTABLE_INFO);
	}
	if (wanted(&o, "link"))
		blink_run(&o, &f);
	if (wanted(&o, "scale"))
		bscale_run(&o);
	if (wanted(&o, "turn"))
		bturn_run(&o);
	if (wanted(&o, "store"))
		bstore_run(&o);
	if (wanted(&o, "http"))
		bhttpmcp_run(&o);
	if (wanted(&o, "box"))
		bbox_run(&o);
	if (wanted(&o, "gateway"))
		bgateway_run(&o);
	if (wanted(&o, "fleet"))
		bfleet_run(&o);
	if (wanted(&o, "ws"))
		bws_run(&o);
	print_header(&o);
	btable_print(stdout);
	printf("\n%u target(s) missed; %.1f s\n", btable_misses(),
	       (double)(bsys_now_ns() - t0) / 1e9);
	btable_free();
	bsys_cleanup();
	for (size_t i = 0; i < ARRAY_SIZE(o.paths); i++)
		free(o.paths[i]);
	return 0;
}
