/* test_contain.c - issue 13's executor defects against a real
 * tandem-executor and real servers (tests/fixtures/hostile_mcp.py):
 *   defect 2  a server's daemons die with it (stop, exit, executor exit,
 *             executor SIGKILL), in both containment modes (contain.h);
 *   defect 3  plugin path checks hold against an attacker swapping paths
 *             (RENAME_EXCHANGE) during resolutions and before a start;
 *   defect 7  each detached process gets its own grace period;
 *   defect 8  a server that closes its stdout and keeps running is reported
 *             and stopped at once.
 * TANDEM_RACE_ITERATIONS raises the race tests' resolution count (the
 * ordinary suite runs a bounded number). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tclient.h"
#include "testmain.h"
#include "util.h"

#define T_MS 10000

static struct texec ex;
static struct tclient cl;
static pid_t daemons[16]; /* killed at teardown whatever happened */
static unsigned n_daemons;
static int next_id = 100;

static void teardown(void)
{
	for (unsigned i = 0; i < n_daemons; i++)
		if (daemons[i] > 0)
			kill(daemons[i], SIGKILL);
	n_daemons = 0;
}

/* Fails the test if pid is still there after timeout_ms, killing it first
 * so that a failure leaves nothing behind. */
static void assert_gone(pid_t pid, int timeout_ms, const char *what)
{
	if (pid_gone(pid, timeout_ms))
		return;
	kill(pid, SIGKILL);
	ck_abort_msg("%s (pid %d)", what, (int)pid);
}

static const char *hostile(void)
{
	static char path[4096];
	const char *fx = getenv("TANDEM_FIXTURES");

	ck_assert_msg(fx, "TANDEM_FIXTURES must name tests/fixtures");
	snprintf(path, sizeof(path), "%s/hostile_mcp.py", fx);
	return path;
}

static uint64_t start_hostile(const char *opt, uint32_t *pid)
{
	const char *argv[] = { "/usr/bin/python3", hostile(), opt, NULL };

	return tc_mcp_start(&cl, "hostile", argv, NULL, NULL, NULL, pid);
}

/* Sends a request and returns the response with its id (notifications and
 * other ids skipped), or NULL when none came. */
static json_t *request(uint64_t h, const char *method, json_t *params, int timeout_ms)
{
	int id = next_id++;
	json_t *req = json_pack("{s:s, s:i, s:s, s:o}", "jsonrpc", "2.0", "id", id, "method",
				method, "params", params ? params : json_object());
	char *text = json_dumps(req, JSON_COMPACT);

	json_decref(req);
	tc_mcp_send(&cl, h, text);
	free(text);
	for (;;) {
		char *line = tc_mcp_recv(&cl, h, timeout_ms);
		json_t *j;

		if (!line)
			return NULL;
		j = json_loads(line, 0, NULL);
		free(line);
		if (j && json_integer_value(json_object_get(j, "id")) == id)
			return j;
		json_decref(j);
	}
}

static void initialize(uint64_t h)
{
	json_t *j = request(h, "initialize",
			    json_pack("{s:s, s:{}, s:{s:s, s:s}}", "protocolVersion", "2025-06-18",
				      "capabilities", "clientInfo", "name", "t", "version", "1"),
			    T_MS);

	ck_assert_msg(j && json_object_get(j, "result"), "no initialize answer");
	json_decref(j);
}

/* tools/call; returns structuredContent (new reference). */
static json_t *tool(uint64_t h, const char *name, json_t *args)
{
	json_t *j = request(h, "tools/call", json_pack("{s:s, s:o}", "name", name, "arguments",
						       args ? args : json_object()),
			    T_MS),
	       *sc;

	ck_assert_msg(j, "no answer to tool %s", name);
	sc = json_incref(json_object_get(json_object_get(j, "result"), "structuredContent"));
	ck_assert_msg(sc, "tool %s: no structuredContent", name);
	json_decref(j);
	return sc;
}

static pid_t start_daemon(uint64_t h)
{
	json_t *sc = tool(h, "daemon", NULL);
	pid_t pid = (pid_t)json_integer_value(json_object_get(sc, "pid"));

	json_decref(sc);
	ck_assert_int_gt(pid, 1);
	ck_assert_msg(!pid_gone(pid, 0), "daemon %d not running", (int)pid);
	daemons[n_daemons++] = pid;
	return pid;
}

static void wait_exited(uint64_t h, char *reason, size_t len)
{
	struct tframe f = { 0 };

	ck_assert_msg(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS) == 0,
		      "no MCP_EXITED for handle %llu", (unsigned long long)h);
	if (reason)
		snprintf(reason, len, "%.*s", (int)f.m.u.mcp_exited.reason.len,
			 f.m.u.mcp_exited.reason.ptr);
	tframe_free(&f);
}

static void stop(uint64_t h)
{
	struct proto_mcp_stop_body b = { .handle = h };
	struct tframe f = { 0 };

	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_STOP, &b, &f, T_MS), 0);
	ck_assert_int_eq(f.m.env.status, 0);
	tframe_free(&f);
}

static const char *const track_args[] = { "--no-pidns", NULL };

/* ---- defect 2: daemons ---- */

static void daemon_dies_with_stop(const char *const *args)
{
	uint64_t h;
	pid_t d;

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile(NULL, NULL);
	initialize(h);
	d = start_daemon(h);
	stop(h);
	wait_exited(h, NULL, 0);
	assert_gone(d, 5000, "setsid'd daemon outlived MCP_STOP");
	tc_close(&cl);
	texec_stop(&ex);
}

START_TEST(test_daemon_dies_with_stop) { daemon_dies_with_stop(NULL); }
END_TEST
START_TEST(test_daemon_dies_with_stop_track) { daemon_dies_with_stop(track_args); }
END_TEST

static void daemon_dies_with_exit(const char *const *args)
{
	uint64_t h;
	pid_t d;
	char reason[256];

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile(NULL, NULL);
	initialize(h);
	d = start_daemon(h);
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"exit\",\"arguments\":{\"code\":4}}}");
	wait_exited(h, reason, sizeof(reason));
	/* The server's own status, even under an init (SPAWNPROC_INIT). */
	ck_assert_msg(strstr(reason, "exited with status 4"), "reason: %s", reason);
	assert_gone(d, 5000, "daemon outlived its server's exit");
	/* ... and the executor reaps what it killed (at its SIGCHLD). */
	for (int i = 0; i < 500 && proc_zombie_children(ex.pid) > 0; i++)
		usleep(10 * 1000);
	ck_assert_int_eq(proc_zombie_children(ex.pid), 0);
	tc_close(&cl);
	texec_stop(&ex);
}

START_TEST(test_daemon_dies_with_exit) { daemon_dies_with_exit(NULL); }
END_TEST
START_TEST(test_daemon_dies_with_exit_track) { daemon_dies_with_exit(track_args); }
END_TEST

static void daemon_dies_with_executor(const char *const *args)
{
	uint64_t h;
	pid_t d;

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile(NULL, NULL);
	initialize(h);
	d = start_daemon(h);
	tc_close(&cl);
	texec_stop(&ex); /* SIGTERM: exits 0 */
	assert_gone(d, 5000, "daemon outlived the executor");
}

START_TEST(test_daemon_dies_with_executor) { daemon_dies_with_executor(NULL); }
END_TEST
START_TEST(test_daemon_dies_with_executor_track) { daemon_dies_with_executor(track_args); }
END_TEST

/* Only the PID namespace mode covers this (contain.h says so). */
START_TEST(test_daemon_dies_with_executor_kill9)
{
	uint64_t h;
	pid_t d;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: PID namespaces need root here\n");
		return;
	}
	texec_start(&ex, NULL, NULL);
	ck_assert(texec_log_contains(&ex, "own PID namespace"));
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile(NULL, NULL);
	initialize(h);
	d = start_daemon(h);
	texec_kill9(&ex);
	assert_gone(d, 5000, "daemon outlived kill -9 of the executor");
	tc_close(&cl);
}
END_TEST

/* abort() still reports SIGABRT under the init (the server is not pid 1). */
START_TEST(test_crash_signal_under_init)
{
	const char *argv[] = { "/bin/sh", "-c", "read x; kill -ABRT $$", NULL };
	struct tframe f = { 0 };
	uint64_t h;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = tc_mcp_start(&cl, "abrt", argv, NULL, NULL, NULL, NULL);
	tc_mcp_send(&cl, h, "{}");
	ck_assert_int_eq(tc_wait_event(&cl, PROTO_MCP_EXITED, h, &f, T_MS), 0);
	ck_assert_uint_eq(f.m.u.mcp_exited.signal, SIGABRT);
	tframe_free(&f);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

/* ---- defect 7: grace per process ---- */

START_TEST(test_grace_per_process)
{
	const char *args[] = { "--grace-sec", "4", NULL };
	const char *argv[] = { fixture_path(), NULL };
	uint32_t pid_a, pid_b;

	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	tc_mcp_start(&cl, "a", argv, NULL, NULL, NULL, &pid_a);
	tc_close(&cl); /* first drop: a's grace runs out 4 s from now */
	usleep(2000 * 1000);
	/* A new orchestrator starts b (and does not attach a), then drops too. */
	tc_connect(&cl, ex.url, ex.secret);
	tc_mcp_start(&cl, "b", argv, NULL, NULL, NULL, &pid_b);
	tc_close(&cl); /* second drop: b's grace runs out 4 s from now */
	assert_gone((pid_t)pid_a, 10000, "a outlived its grace period");
	/* a's deadline has passed; b's is 2 s later. */
	ck_assert_msg(!pid_gone((pid_t)pid_b, 0),
		      "b was stopped at the first drop's deadline, not its own");
	assert_gone((pid_t)pid_b, 10000, "b outlived its grace period");
	texec_stop(&ex);
}
END_TEST

/* ---- defect 8: closed stdout ---- */

START_TEST(test_closed_stdout_after_init)
{
	char reason[256];
	uint32_t pid;
	uint64_t h;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile("--close-stdout-after-init", &pid);
	initialize(h);
	/* No request needed: the session is dead and the executor says so. */
	wait_exited(h, reason, sizeof(reason));
	ck_assert_msg(strstr(reason, "closed its stdout"), "reason: %s", reason);
	assert_gone((pid_t)pid, 5000, "the server is still running");
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

START_TEST(test_closed_stdout_mid_call)
{
	char reason[256];
	uint64_t h;
	pid_t d;

	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	h = start_hostile(NULL, NULL);
	initialize(h);
	d = start_daemon(h); /* its descendants go too */
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"close_stdout\",\"arguments\":{}}}");
	wait_exited(h, reason, sizeof(reason));
	ck_assert_msg(strstr(reason, "closed its stdout"), "reason: %s", reason);
	assert_gone(d, 5000, "the server's daemon survived");
	/* An ordinary exit is still reported as the exit. */
	h = start_hostile(NULL, NULL);
	initialize(h);
	tc_mcp_send(&cl, h, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
			    "{\"name\":\"exit\",\"arguments\":{\"code\":0}}}");
	wait_exited(h, reason, sizeof(reason));
	ck_assert_msg(strstr(reason, "exited with status 0"), "reason: %s", reason);
	tc_close(&cl);
	texec_stop(&ex);
}
END_TEST

static Suite *contain_suite(void)
{
	Suite *s = suite_create("contain");
	TCase *tc = tcase_create("contain");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, test_daemon_dies_with_stop);
	tcase_add_test(tc, test_daemon_dies_with_stop_track);
	tcase_add_test(tc, test_daemon_dies_with_exit);
	tcase_add_test(tc, test_daemon_dies_with_exit_track);
	tcase_add_test(tc, test_daemon_dies_with_executor);
	tcase_add_test(tc, test_daemon_dies_with_executor_track);
	tcase_add_test(tc, test_daemon_dies_with_executor_kill9);
	tcase_add_test(tc, test_crash_signal_under_init);
	tcase_add_test(tc, test_grace_per_process);
	tcase_add_test(tc, test_closed_stdout_after_init);
	tcase_add_test(tc, test_closed_stdout_mid_call);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(contain_suite)
