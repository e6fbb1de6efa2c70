/* metrics_tandem.c - see metrics_tandem.h. The catalogue is one table of
 * descriptors; the event functions map their arguments to label indexes. */
#include "metrics_tandem.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "version.h"

/* Every client method tandem answers or is about to (issue 15's list), so
 * that each gets its own series; anything else is "other". */
static const char *const methods[] = {
	"initialize", "initialized", "thread/start", "thread/resume", "thread/fork",
	"thread/list", "thread/loaded/list", "thread/read", "thread/turns/list",
	"thread/items/list", "thread/name/set", "thread/readState/update", "thread/unsubscribe",
	"thread/archive", "thread/unarchive", "thread/delete", "turn/start", "turn/interrupt",
	"mcpServerStatus/list", "mcpServer/tool/call", "mcpServer/resource/read",
	"mcpServer/oauth/login", "config/mcpServer/reload", "config/read",
	"configRequirements/read", "model/list", "hooks/list", "skills/list", "plugin/installed",
	"collaborationMode/list", "account/read", "account/login/start", "account/logout",
	"account/bedrock/checkGovCloudRequirements", "environment/status", "environment/add",
	"environment/remove", "environment/list",
	"debug/counters", METRICS_OTHER, NULL,
};
static const char *const rpc_outcomes[] = {
	"ok", "parse_error", "invalid_request", "method_not_found", "invalid_params",
	"internal_error", "overloaded", METRICS_OTHER, NULL,
};
/* In enum metrics_tool_outcome order. */
static const char *const tool_outcomes[] = {
	"ok", "tool_error", "failed", "timeout", "cancelled", "unavailable", "unknown", NULL,
};
static const char *const turn_statuses[] = { "completed", "failed", "interrupted", NULL };
static const char *const ok_error[] = { "ok", "error", NULL };
static const char *const directions[] = { "sent", "received", NULL };
static const char *const refusal_reasons[] = {
	"bad_proof", "no_hello", "timeout", "malformed", "busy", "version", METRICS_OTHER, NULL,
};
static const char *const relay_outcomes[] = { "ok", "error", "aborted", NULL };
static const char *const env_states[] = { "connecting", "ready", "disconnected", NULL };
static const char *const daemons[] = { "tandem-orchestrator", "tandem-executor", NULL };
static const char *const versions[] = { TANDEM_VERSION, NULL };
static const char *const ops_paths[] = { "/livez", "/readyz", "/metrics", METRICS_OTHER, NULL };

/* Seconds: tool calls are ~100 us locally, seconds through a slow server. */
static const double fast_buckets[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 300,
};
/* Seconds: model requests and turns take tens of ms to minutes. */
static const double slow_buckets[] = {
	0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600,
};

enum {
	M_BUILD, M_CPU, M_RSS, M_VSZ, M_FDS, M_MAXFDS, M_START, M_THREADS,
	M_CLIENT_REQ, M_TOOL_CALLS, M_TOOL_DUR, M_TURNS, M_TURN_DUR, M_MODEL_DUR,
	M_LINK_FRAMES, M_LINK_BYTES, M_RECONNECTS, M_REFUSALS, M_PROCS, M_RESTARTS,
	M_RELAY, M_ENVS, M_READY, M_LAG, M_OPS_REQ, M_COUNT
};

static struct {
	struct metrics *reg;
	struct metric *m[M_COUNT];
	pthread_t owner;
	const char *daemon;
	double start_time;
	struct metrics_tandem_gauges gauges;
} mt;

/* ---- process figures, read at scrape time --------------------------------- */

static double read_cpu(const unsigned *idx, void *arg)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		return NAN;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
	       ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
}

/* /proc/self/statm: size resident ... in pages. field 0 = VSZ, 1 = RSS. */
static double read_statm(const unsigned *idx, void *arg)
{
	unsigned long v[2];
	int field = arg ? 1 : 0;
	FILE *f = fopen("/proc/self/statm", "re");
	int n;

	if (!f)
		return NAN;
	n = fscanf(f, "%lu %lu", &v[0], &v[1]);
	fclose(f);
	if (n != 2)
		return NAN;
	return (double)v[field] * (double)sysconf(_SC_PAGESIZE);
}

static double read_fds(const unsigned *idx, void *arg)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	double n = 0;

	if (!d)
		return NAN;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own descriptor */
}

static double read_maxfds(const unsigned *idx, void *arg)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return NAN;
	return rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur;
}

static double read_start(const unsigned *idx, void *arg)
{
	return mt.start_time;
}

static double read_threads(const unsigned *idx, void *arg)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	double v = NAN;
	unsigned n;

	if (!f)
		return NAN;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %u", &n) == 1) {
			v = n;
			break;
		}
	fclose(f);
	return v;
}

/* The process start time from /proc (field 22, in clock ticks since boot)
 * and the boot time; falls back to now. */
static double process_start_time(void)
{
	struct timespec now, up;
	char buf[1024], *p;
	unsigned long long ticks = 0;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
	clock_gettime(CLOCK_REALTIME, &now);
	clock_gettime(CLOCK_BOOTTIME, &up);
	p = strrchr(buf, ')');
	/* after ')': state is field 3; starttime is field 22 */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
			 "%*d %*d %*d %*d %llu", &ticks) != 1)
		return (double)now.tv_sec;
	return (double)now.tv_sec - (double)up.tv_sec +
	       (double)ticks / (double)sysconf(_SC_CLK_TCK);
}

static double read_build(const unsigned *idx, void *arg)
{
	return !strcmp(daemons[idx[0]], mt.daemon) ? 1 : NAN;
}

static double read_procs(const unsigned *idx, void *arg)
{
	return mt.gauges.processes ? mt.gauges.processes(mt.gauges.arg) : NAN;
}

static double read_envs(const unsigned *idx, void *arg)
{
	return mt.gauges.env_count ? mt.gauges.env_count(env_states[idx[0]], mt.gauges.arg) : NAN;
}

static double read_ready(const unsigned *idx, void *arg)
{
	char reason[256];

	if (!mt.gauges.ready)
		return NAN;
	return mt.gauges.ready(reason, sizeof(reason), mt.gauges.arg) == 0 ? 1 : 0;
}

/* ---- the catalogue ---------------------------------------------------------- */

#define L1(n, v) .labels = { { n, v } }
#define L2(n1, v1, n2, v2) .labels = { { n1, v1 }, { n2, v2 } }
#define FAST .buckets = fast_buckets, .n_buckets = ARRAY_SIZE(fast_buckets)
#define SLOW .buckets = slow_buckets, .n_buckets = ARRAY_SIZE(slow_buckets)

static const struct metrics_desc catalogue[M_COUNT] = {
	[M_BUILD] = { .name = "tandem_build_info", .type = METRICS_GAUGE,
		.help = "Always 1: the daemon and its version.",
		L2("daemon", daemons, "version", versions), .read = read_build },
	[M_CPU] = { .name = "process_cpu_seconds_total", .type = METRICS_COUNTER,
		.help = "User and system CPU time spent, in seconds.",
		.read = read_cpu },
	[M_RSS] = { .name = "process_resident_memory_bytes", .type = METRICS_GAUGE,
		.help = "Resident memory size in bytes.",
		.read = read_statm, .read_arg = (void *)1 },
	[M_VSZ] = { .name = "process_virtual_memory_bytes", .type = METRICS_GAUGE,
		.help = "Virtual memory size in bytes.",
		.read = read_statm },
	[M_FDS] = { .name = "process_open_fds", .type = METRICS_GAUGE,
		.help = "Open file descriptors.",
		.read = read_fds },
	[M_MAXFDS] = { .name = "process_max_fds", .type = METRICS_GAUGE,
		.help = "Soft limit on open file descriptors.",
		.read = read_maxfds },
	[M_START] = { .name = "process_start_time_seconds", .type = METRICS_GAUGE,
		.help = "Start time of the process since the Unix epoch, in seconds.",
		.read = read_start },
	[M_THREADS] = { .name = "process_threads", .type = METRICS_GAUGE,
		.help = "OS threads in the process (the loop, nng, libcurl).",
		.read = read_threads },
	[M_CLIENT_REQ] = { .name = "tandem_client_requests_total", .type = METRICS_COUNTER,
		.help = "Client API requests answered, by method and outcome.",
		L2("method", methods, "outcome", rpc_outcomes) },
	[M_TOOL_CALLS] = { .name = "tandem_tool_calls_total", .type = METRICS_COUNTER,
		.help = "MCP tool calls completed, by outcome.",
		L1("outcome", tool_outcomes) },
	[M_TOOL_DUR] = { .name = "tandem_tool_call_duration_seconds", .type = METRICS_HISTOGRAM,
		.help = "MCP tool call duration, request to result, by outcome.",
		L1("outcome", tool_outcomes), FAST },
	[M_TURNS] = { .name = "tandem_turns_total", .type = METRICS_COUNTER,
		.help = "Turns completed, by final status.",
		L1("status", turn_statuses) },
	[M_TURN_DUR] = { .name = "tandem_turn_duration_seconds", .type = METRICS_HISTOGRAM,
		.help = "Turn duration, start to completion.",
		SLOW },
	[M_MODEL_DUR] = { .name = "tandem_model_request_duration_seconds",
		.type = METRICS_HISTOGRAM,
		.help = "Model API request duration, until the stream ended, by outcome.",
		L1("outcome", ok_error), SLOW },
	[M_LINK_FRAMES] = { .name = "tandem_link_frames_total", .type = METRICS_COUNTER,
		.help = "Frames on orchestrator-executor links, by direction.",
		L1("direction", directions) },
	[M_LINK_BYTES] = { .name = "tandem_link_bytes_total", .type = METRICS_COUNTER,
		.help = "Frame bytes on orchestrator-executor links, by direction.",
		L1("direction", directions) },
	[M_RECONNECTS] = { .name = "tandem_link_reconnects_total", .type = METRICS_COUNTER,
		.help = "Links re-established after a loss.", },
	[M_REFUSALS] = { .name = "tandem_link_handshake_refusals_total", .type = METRICS_COUNTER,
		.help = "Link peers refused during the handshake, by reason.",
		L1("reason", refusal_reasons) },
	[M_PROCS] = { .name = "tandem_mcp_processes", .type = METRICS_GAUGE,
		.help = "Live stdio MCP server processes (executor).",
		.read = read_procs },
	[M_RESTARTS] = { .name = "tandem_mcp_server_restarts_total", .type = METRICS_COUNTER,
		.help = "MCP servers restarted.", },
	[M_RELAY] = { .name = "tandem_http_relay_requests_total", .type = METRICS_COUNTER,
		.help = "HTTP requests relayed for the orchestrator (executor), by outcome.",
		L1("outcome", relay_outcomes) },
	[M_ENVS] = { .name = "tandem_environments", .type = METRICS_GAUGE,
		.help = "Environments by state (orchestrator).",
		L1("state", env_states), .read = read_envs },
	[M_READY] = { .name = "tandem_ready", .type = METRICS_GAUGE,
		.help = "1 when /readyz answers 200, else 0.",
		.read = read_ready },
	[M_LAG] = { .name = "tandem_loop_lag_seconds", .type = METRICS_HISTOGRAM,
		.help = "How late a periodic timer fires on the event loop thread.",
		FAST },
	[M_OPS_REQ] = { .name = "tandem_ops_requests_total", .type = METRICS_COUNTER,
		.help = "Requests to the operations endpoint, by path.",
		L1("path", ops_paths) },
};

int metrics_tandem_init(const char *daemon, char *err, size_t errlen)
{
	if (mt.reg) {
		snprintf(err, errlen, "metrics already initialized");
		return -EALREADY;
	}
	mt.reg = metrics_new();
	mt.owner = pthread_self();
	mt.daemon = daemon;
	mt.start_time = process_start_time();
	for (size_t i = 0; i < M_COUNT; i++) {
		mt.m[i] = metrics_add(mt.reg, &catalogue[i], err, errlen);
		if (!mt.m[i]) {
			metrics_tandem_free();
			return -EINVAL;
		}
	}
	return 0;
}

struct metrics *metrics_tandem_registry(void)
{
	return mt.reg;
}

void metrics_tandem_free(void)
{
	metrics_free(mt.reg);
	memset(&mt, 0, sizeof(mt));
}

void metrics_tandem_gauges(const struct metrics_tandem_gauges *g)
{
	mt.gauges = g ? *g : (struct metrics_tandem_gauges){ 0 };
}

void metrics_tandem_check(void)
{
	assert(!mt.reg || pthread_equal(mt.owner, pthread_self()));
}

/* ---- events ----------------------------------------------------------------- */

/* The series of metric i for label values v0 (and v1); -1 before init. */
static int series2(int i, const char *v0, const char *v1)
{
	unsigned idx[2];
	int a, b = 0;

	if (!mt.reg)
		return -1;
	metrics_tandem_check();
	a = metrics_label_index(mt.m[i], 0, v0);
	if (v1)
		b = metrics_label_index(mt.m[i], 1, v1);
	if (a < 0 || b < 0)
		return -1;
	idx[0] = (unsigned)a;
	idx[1] = (unsigned)b;
	return metrics_series(mt.m[i], idx);
}

static const char *rpc_outcome(int code)
{
	switch (code) {
	case 0: return "ok";
	case -32700: return "parse_error";
	case -32600: return "invalid_request";
	case -32601: return "method_not_found";
	case -32602: return "invalid_params";
	case -32603: return "internal_error";
	case -32000: return "overloaded";
	default: return METRICS_OTHER;
	}
}

void metrics_client_request(const char *method, int error_code)
{
	int s = series2(M_CLIENT_REQ, method, rpc_outcome(error_code));

	metrics_add_value(mt.m[M_CLIENT_REQ], s, 1);
}

void metrics_tool_call(enum metrics_tool_outcome outcome, double seconds)
{
	const char *o = (unsigned)outcome < ARRAY_SIZE(tool_outcomes) - 1
		? tool_outcomes[outcome] : "failed";

	metrics_add_value(mt.m[M_TOOL_CALLS], series2(M_TOOL_CALLS, o, NULL), 1);
	metrics_observe(mt.m[M_TOOL_DUR], series2(M_TOOL_DUR, o, NULL), seconds);
}

void metrics_turn(const char *status, double seconds)
{
	int s = series2(M_TURNS, status, NULL);

	if (s < 0)
		return; /* not one of the three: a caller bug, not a new series */
	metrics_add_value(mt.m[M_TURNS], s, 1);
	metrics_observe(mt.m[M_TURN_DUR], 0, seconds);
}

void metrics_model_request(bool ok, double seconds)
{
	metrics_observe(mt.m[M_MODEL_DUR], series2(M_MODEL_DUR, ok ? "ok" : "error", NULL),
			seconds);
}

void metrics_link_frame(bool sent, size_t bytes)
{
	const char *d = sent ? "sent" : "received";

	metrics_add_value(mt.m[M_LINK_FRAMES], series2(M_LINK_FRAMES, d, NULL), 1);
	metrics_add_value(mt.m[M_LINK_BYTES], series2(M_LINK_BYTES, d, NULL), (double)bytes);
}

void metrics_link_reconnect(void)
{
	metrics_tandem_check();
	metrics_add_value(mt.m[M_RECONNECTS], 0, 1);
}

void metrics_handshake_refused(const char *reason)
{
	metrics_add_value(mt.m[M_REFUSALS], series2(M_REFUSALS, reason, NULL), 1);
}

void metrics_server_restart(void)
{
	metrics_tandem_check();
	metrics_add_value(mt.m[M_RESTARTS], 0, 1);
}

void metrics_http_relay_request(const char *outcome)
{
	metrics_add_value(mt.m[M_RELAY], series2(M_RELAY, outcome, NULL), 1);
}

void metrics_loop_lag(double seconds)
{
	if (!mt.reg)
		return;
	metrics_tandem_check();
	metrics_observe(mt.m[M_LAG], 0, seconds);
}

void metrics_ops_request(const char *path)
{
	metrics_add_value(mt.m[M_OPS_REQ], series2(M_OPS_REQ, path, NULL), 1);
}
