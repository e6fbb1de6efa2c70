/* blink.c - see blink.h. */
#include "blink.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bconn.h"
#include "bload.h"
#include "borch.h"
#include "bstat.h"
#include "bsys.h"
#include "btable.h"
#include "frame.h"
#include "seal.h"
#include "util.h"

#define INFLIGHT 32u
#define READY_TIMEOUT_MS 10000u
#define SEAL_FRAME_PAYLOAD 200u /* about an MCP_SEND of a small tools/call */

/* ns per frame for seal + open of frames of `len` bytes. */
static double seal_cost(enum seal_aead aead, size_t len, unsigned n)
{
	uint8_t key[SEAL_KEY_LEN], prefix[SEAL_PREFIX_LEN];
	uint8_t *buf = xcalloc(1, FRAME_HDR + len + SEAL_TAG_LEN);
	struct seal tx, rx;
	size_t plen;
	uint64_t t0;

	randombytes_buf(key, sizeof(key));
	randombytes_buf(prefix, sizeof(prefix));
	seal_init(&tx, aead, key, prefix);
	seal_init(&rx, aead, key, prefix);
	t0 = bsys_now_ns();
	for (unsigned i = 0; i < n; i++) {
		if (seal_frame(&tx, buf, len) < 0 ||
		    seal_open(&rx, buf, buf + FRAME_HDR, len + SEAL_TAG_LEN, &plen) < 0 || plen != len)
			bsys_fail("seal: frame %u did not open", i);
	}
	t0 = bsys_now_ns() - t0;
	free(buf);
	return (double)t0 / n;
}

static void row_seal(enum seal_aead aead)
{
	double small = seal_cost(aead, SEAL_FRAME_PAYLOAD, 200000);
	double big = seal_cost(aead, 64 * 1024, 2000);

	/* A tool call is two frames (MCP_SEND out, MCP_OUTPUT back), each
	 * sealed by one daemon and opened by the other. */
	btable_add(btable_fmt("sealing per frame, %s (200 B)", seal_aead_name(aead)),
		   btable_fmt("%.2f us", small / 1e3), NULL,
		   btable_fmt("%.2f us per call (2 frames); 64 KiB: %.1f us", 2 * small / 1e3,
			      big / 1e3),
		   "<= 3 us/call", btable_check(2 * small <= 3000.0));
}

static void rows_seal(void)
{
	if (seal_aead_available(SEAL_AES256GCM))
		row_seal(SEAL_AES256GCM);
	row_seal(SEAL_XCHACHA20POLY1305);
}

/* An executor on tcp://127.0.0.1:0 with a token; returns its pid and sets
 * *port from its log. */
static pid_t start_sealed_executor(const struct bench_opts *o, const char *dir,
				   const char *token_file, int *port)
{
	_cleanup_free_ char *log = xasprintf("%s/executor.log", dir);
	uint64_t deadline = bsys_now_ns() + READY_TIMEOUT_MS * 1000000ull;
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid_t pid;

	if (fd < 0)
		bsys_fail("open %s: %s", log, strerror(errno));
	bsys_show_on_fail(log);
	pid = bsys_spawn((const char *const[]){ o->bins.executor, "--listen", "tcp://127.0.0.1:0",
						"--auth-token-file", token_file, "--id",
						"bench-sealed", "--log-level", "info", NULL },
			 -1, -1, fd, NULL);
	close(fd);
	for (*port = 0; !*port;) {
		_cleanup_free_ char *text = bsys_read_file(log, NULL);
		const char *p = text ? strstr(text, "listening on tcp://127.0.0.1:") : NULL;

		if (p)
			*port = atoi(p + strlen("listening on tcp://127.0.0.1:"));
		else if (bsys_now_ns() > deadline)
			bsys_fail("the sealed-link executor did not listen (see %s)", log);
		else
			bsys_sleep_ms(5);
	}
	bsys_forget_on_fail(log);
	return pid;
}

static void wait_ready(struct bconn *c, const char *env)
{
	uint64_t deadline = bsys_now_ns() + READY_TIMEOUT_MS * 1000000ull;

	for (;;) {
		json_t *r = bconn_call_ok(c, "environment/status", json_pack("{s:s}", "environmentId",
									    env));
		const char *st = json_string_value(json_object_get(r, "status"));
		bool ready = st && strcmp(st, "ready") == 0;

		json_decref(r);
		if (ready)
			return;
		if (bsys_now_ns() > deadline)
			bsys_fail("environment '%s' not ready after %u ms", env, READY_TIMEOUT_MS);
		bsys_sleep_ms(5);
	}
}

static void rows_sealed(const struct bench_opts *o, const struct bench_floor *f)
{
	_cleanup_free_ char *dir = xasprintf("%s/sealed", bsys_tmpdir());
	_cleanup_free_ char *token = xasprintf("%s/token", dir);
	_cleanup_free_ char *toml = NULL, *plugin = NULL, *tokdir = NULL, *tokfile = NULL;
	struct bload_target t = { .n_threads = 1, .server = "fx" };
	uint64_t *lat = xcalloc(o->seq_n, sizeof(*lat));
	const char *ids[] = { "sealed" }, *paths[1];
	struct borch *orch;
	pid_t exec, pids[2];
	double cpu[2] = { 0 }, rate;
	char *tid;
	int port;

	bsys_mkdir(dir);
	bsys_write_file(token, "bench-sealed-link-token-0123456789abcdef\n");
	chmod(token, 0600);
	exec = start_sealed_executor(o, dir, token, &port);
	toml = xasprintf("[[environments]]\nid = \"sealed\"\nurl = \"tcp://127.0.0.1:%d\"\n", port);
	orch = borch_start_env(&o->bins, "sealed-orch", NULL, toml, "sealed", token);
	plugin = xasprintf("%s/plugin", orch->dir);
	borch_make_plugin(&o->bins, plugin, "fx");
	paths[0] = plugin;
	wait_ready(orch->c, "sealed");
	tid = borch_thread_start_env(orch->c, "sealed", ids, paths, 1);
	json_decref(borch_status_ok(orch->c, tid, 1));
	t.threads = (const char *const *)&tid;
	bload_seq(orch->c, &t, o->seq_warm, o->seq_n, lat);
	btable_add("sealed tcp link: tool call p50", btable_us(bstat_pct(lat, o->seq_n, 50)),
		   btable_us(f->p50_ns),
		   btable_fmt("%.1fx floor; p99 %.0f us",
			      (double)bstat_pct(lat, o->seq_n, 50) / (double)f->p50_ns,
			      (double)bstat_pct(lat, o->seq_n, 99) / 1e3),
		   "<= 80 us", btable_check(bstat_pct(lat, o->seq_n, 50) <= 80000));
	pids[0] = orch->pid;
	pids[1] = exec;
	rate = bload_inflight_cpu(&orch->c, 1, &t, INFLIGHT, o->tput_warm_ms, o->tput_ms, pids, 2,
				  cpu);
	btable_add("sealed tcp link: 32 in flight", btable_fmt("%.0f/s", rate),
		   btable_fmt("%.0f/s", f->rate), btable_fmt("%.2fx floor", rate / f->rate),
		   ">= 40000/s", btable_check(rate >= 40000.0));
	rows_cpu("CPU per call at 32 in flight (sealed)", cpu);
	borch_stop(orch);
	if (!WIFEXITED(bsys_stop(exec, 5000)))
		bsys_fail("the sealed-link executor did not exit cleanly");
	free(tid);
	free(lat);
}

void blink_run(const struct bench_opts *o, const struct bench_floor *f)
{
	bsys_progress("link: sealing cost, and a sealed tcp:// link");
	if (sodium_init() < 0)
		bsys_fail("sodium_init failed");
	rows_seal();
	rows_sealed(o, f);
}
