/* bhttpmcp.c - see bhttpmcp.h.
 *
 * One thread selects a plugin whose .mcp.json declares the fixture's URL
 * (server "relayed", reached through the local executor) while config.toml
 * declares the same URL (server "direct", reached from the orchestrator).
 * Both answer from the same Python process over keep-alive connections, so
 * the server's own time is the same on both sides and cancels out of the
 * difference. Calls alternate in blocks so that a slow spell of the machine
 * hits both. */
#include "bhttpmcp.h"

#include <jansson.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bconn.h"
#include "bload.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "util.h"

#define FIXTURE_START_MS 15000u
#define BLOCKS 4u
#define MAX_PER_BLOCK 500u /* the Python server takes ~0.3 ms a call */
#define TARGET_EXTRA_NS 300000u /* the relay may add this much per call */
#define WHAT_P50 "HTTP MCP tool call p50, via executor"
#define WHAT_P99 "HTTP MCP tool call p99, via executor"

static void skip(const char *why)
{
	bsys_progress("http mcp: skipped: %s", why);
	btable_add(WHAT_P50, NULL, NULL, why, "<= +300 us", BTABLE_SKIP);
}

static struct bconn *fixture_start(const char *python, const char *script, int *port)
{
	_cleanup_free_ char *log = xasprintf("%s/httpmcp/fixture.log", bsys_tmpdir());

	return bconn_spawn_listening("http_mcp_server",
				     (const char *const[]){ python, script, "--port", "0", NULL },
				     log, FIXTURE_START_MS, port);
}

static void write_plugin(const char *dir, const char *url)
{
	_cleanup_free_ char *meta = xasprintf("%s/.codex-plugin", dir);
	_cleanup_free_ char *manifest = xasprintf("%s/plugin.json", meta);
	_cleanup_free_ char *mcp = xasprintf("%s/.mcp.json", dir);
	_cleanup_free_ char *servers =
		xasprintf("{\"mcpServers\":{\"relayed\":{\"url\":\"%s\"}}}\n", url);

	bsys_mkdir(dir);
	bsys_mkdir(meta);
	bsys_write_file(manifest, "{\"name\":\"bench-http\",\"version\":\"1.0.0\"}\n");
	bsys_write_file(mcp, servers);
}

static void measure(const struct bench_opts *o, struct borch *orch, const char *tid)
{
	size_t per = MIN(MAX(o->seq_n / BLOCKS, (size_t)50), (size_t)MAX_PER_BLOCK);
	size_t n = per * BLOCKS;
	uint64_t *direct = xcalloc(n, sizeof(*direct)), *relayed = xcalloc(n, sizeof(*relayed));
	struct bload_target td = { .threads = &tid, .n_threads = 1, .server = "direct" };
	struct bload_target tr = { .threads = &tid, .n_threads = 1, .server = "relayed" };
	uint64_t d50, r50, d99, r99;

	bsys_progress("http mcp: %zu calls each, orchestrator-direct and through the executor", n);
	for (unsigned b = 0; b < BLOCKS; b++) {
		bload_seq(orch->c, &td, b ? 10 : o->seq_warm / 4, per, direct + b * per);
		bload_seq(orch->c, &tr, b ? 10 : o->seq_warm / 4, per, relayed + b * per);
	}
	d50 = bstat_pct(direct, n, 50);
	r50 = bstat_pct(relayed, n, 50);
	d99 = bstat_pct(direct, n, 99);
	r99 = bstat_pct(relayed, n, 99);
	btable_add(WHAT_P50, btable_us(r50), btable_fmt("direct %s", btable_us(d50)),
		   btable_fmt("%+.0f us", ((double)r50 - (double)d50) / 1e3), "<= +300 us",
		   btable_check(r50 <= d50 + TARGET_EXTRA_NS));
	btable_add(WHAT_P99, btable_us(r99), btable_fmt("direct %s", btable_us(d99)),
		   btable_fmt("%+.0f us", ((double)r99 - (double)d99) / 1e3), "info", BTABLE_INFO);
	free(direct);
	free(relayed);
}

void bhttpmcp_run(const struct bench_opts *o)
{
	_cleanup_free_ char *fdir = NULL, *script = NULL, *python = NULL, *dir = NULL;
	_cleanup_free_ char *plugin = NULL, *url = NULL, *cfg = NULL;
	const char *ids[] = { "http" }, *paths[1];
	struct bconn *fx;
	struct borch *orch;
	char *tid;
	int port;

	if (!o->fake || !*o->fake) {
		skip("TANDEM_FAKE_RESPONSES not set (the fixtures directory)");
		return;
	}
	fdir = xstrdup(o->fake);
	script = xasprintf("%s/http_mcp_server.py", dirname(fdir));
	python = bsys_which("python3");
	if (access(script, R_OK) < 0 || !python) {
		skip(python ? "no http_mcp_server.py" : "no python3");
		return;
	}
	dir = xasprintf("%s/httpmcp", bsys_tmpdir());
	bsys_mkdir(dir);
	fx = fixture_start(python, script, &port);
	url = xasprintf("http://127.0.0.1:%d/mcp", port);
	cfg = xasprintf("[mcp_servers.direct]\nurl = \"%s\"\n", url);
	plugin = xasprintf("%s/plugin", dir);
	write_plugin(plugin, url);
	orch = borch_start(&o->bins, "httpmcp-orch", cfg);
	paths[0] = plugin;
	tid = borch_thread_start(orch->c, ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 2));
	measure(o, orch, tid);
	free(tid);
	borch_stop(orch);
	bconn_free(fx);
}
