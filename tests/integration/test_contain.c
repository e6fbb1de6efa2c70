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
#include <glob.h>
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
static int next_id = 100;

/* What a test leaves behind when it fails half-way (a daemon that escaped,
 * a scratch tree) is noted in a file that the suite's teardown, in the
 * parent process, cleans up: a failed test ends its forked process at once. */
static char leftovers_path[] = "/tmp/tandem-contain-leftovers-XXXXXX";

static void note_leftover(const char *kind, const char *what)
{
	FILE *f = fopen(leftovers_path, "a");

	if (f) {
		fprintf(f, "%s %s\n", kind, what);
		fclose(f);
	}
}

static void rm_tree(const char *dir);

static void suite_setup(void)
{
	int fd = mkstemp(leftovers_path);

	ck_assert_int_ge(fd, 0);
	close(fd);
}

static void suite_teardown(void)
{
	char line[4400], cmd[4500];
	FILE *f = fopen(leftovers_path, "r");

	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "pid ", 4) == 0) {
			kill((pid_t)atoi(line + 4), SIGKILL);
		} else if (strncmp(line, "dir ", 4) == 0 && strncmp(line + 4, "/tmp/tandem-", 12) == 0) {
			snprintf(cmd, sizeof(cmd), "rm -rf '%s'", line + 4);
			(void)!system(cmd);
		}
	}
	if (f)
		fclose(f);
	unlink(leftovers_path);
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
	{
		char num[32];

		snprintf(num, sizeof(num), "%d", (int)pid);
		note_leftover("pid", num);
	}
	ck_assert_msg(!pid_gone(pid, 0), "daemon %d not running", (int)pid);
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

static bool glob_exists(const char *pattern)
{
	glob_t g;
	bool found = glob(pattern, 0, NULL, &g) == 0 && g.gl_pathc > 0;

	globfree(&g);
	return found;
}

/* What a SIGKILLed executor could not remove (its servers' private
 * directories, its pids cgroups) goes at the next start in the same place. */
START_TEST(test_stale_box_state_removed)
{
	char dir[] = "/tmp/tandem-stale-XXXXXX", pat[256], cg[128];
	const char *args[] = { "--sandbox-dir", dir, NULL };
	pid_t old;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	note_leftover("dir", dir);
	texec_start(&ex, args, NULL);
	old = ex.pid;
	snprintf(pat, sizeof(pat), "%s/tandem-executor.%d.*", dir, (int)old);
	snprintf(cg, sizeof(cg), "/sys/fs/cgroup/pids/tandem-exec.%d", (int)old);
	ck_assert_msg(glob_exists(pat), "no private directory base %s", pat);
	texec_kill9(&ex);
	ck_assert(glob_exists(pat));
	texec_start(&ex, args, NULL);
	ck_assert_msg(!glob_exists(pat), "the dead executor's %s is still there", pat);
	ck_assert_msg(access(cg, F_OK) != 0, "the dead executor's %s is still there", cg);
	texec_stop(&ex);
	rm_tree(dir);
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

/* ---- defect 3: paths swapped under the executor ---- */

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_msg(f, "cannot write %s", path);
	fputs(text, f);
	fclose(f);
}

/* A scratch tree: <dir>/root (a plugin) and <dir>/outside. */
static void make_tree(char *dir, const char *mcp_json)
{
	char p[4200];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	note_leftover("dir", dir);
	snprintf(p, sizeof(p), "%s/root", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/.codex-plugin", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/.codex-plugin/plugin.json", dir);
	write_text(p, "{\"name\":\"inside\"}");
	snprintf(p, sizeof(p), "%s/outside", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/outside/plugin.json", dir);
	write_text(p, "{\"name\":\"outside-evil\"}");
	if (mcp_json) {
		snprintf(p, sizeof(p), "%s/root/.mcp.json", dir);
		write_text(p, mcp_json);
	}
	/* A boxed server reads only its root: it gets its own copy. */
	snprintf(p, sizeof(p), "cp '%s' '%s/root/hostile_mcp.py'", hostile(), dir);
	ck_assert_int_eq(system(p), 0);
}

static void rm_tree(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

struct swapper {
	char a[4200], b[4200];
	atomic_bool stop;
	atomic_ulong swaps;
};

static void *swap_loop(void *arg)
{
	struct swapper *s = arg;

	while (!atomic_load(&s->stop))
		if (syscall(SYS_renameat2, AT_FDCWD, s->a, AT_FDCWD, s->b, 2 /* RENAME_EXCHANGE */) ==
		    0)
			atomic_fetch_add(&s->swaps, 1);
	return NULL;
}

static unsigned race_iterations(unsigned dflt)
{
	const char *v = getenv("TANDEM_RACE_ITERATIONS");

	return v && atoi(v) > 0 ? (unsigned)atoi(v) : dflt;
}

/* .codex-plugin exchanged, again and again, with a symlink to a directory
 * outside the root while the executor resolves the root: no resolution
 * may read the outside manifest. */
START_TEST(test_manifest_swap_race)
{
	char dir[] = "/tmp/tandem-race-XXXXXX", root[1024], out[1024];
	unsigned n = race_iterations(5000), inside = 0, refused = 0;
	struct swapper sw = { 0 };
	pthread_t th;

	make_tree(dir, NULL);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(out, sizeof(out), "%s/outside", dir);
	snprintf(sw.a, sizeof(sw.a), "%s/.codex-plugin", root);
	snprintf(sw.b, sizeof(sw.b), "%s/evil", root);
	ck_assert_int_eq(symlink(out, sw.b), 0);
	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	ck_assert_int_eq(pthread_create(&th, NULL, swap_loop, &sw), 0);
	for (unsigned i = 0; i < n; i++) {
		struct proto_root_resolve_body b = { 0 };
		struct tframe f = { 0 };

		b.root_id = proto_str_c("race");
		b.path = proto_str_c(root);
		b.environment_id = proto_str_c("e1");
		ck_assert_int_eq(tc_call(&cl, PROTO_ROOT_RESOLVE, &b, &f, T_MS), 0);
		if (f.m.env.status == 0) {
			const struct proto_root_resolve_reply *r = &f.m.u.root_resolve_reply;

			if (PROTO_HAS(r, 3) && memmem(r->name.ptr, r->name.len, "outside", 7)) {
				atomic_store(&sw.stop, true);
				pthread_join(th, NULL);
				rm_tree(dir);
				ck_abort_msg("resolution %u of %u read the manifest outside the root",
					     i, n);
			}
			inside += PROTO_HAS(r, 3) != 0;
		} else {
			refused++;
		}
		tframe_free(&f);
	}
	atomic_store(&sw.stop, true);
	pthread_join(th, NULL);
	fprintf(stderr, "%u resolutions: %u read the root's manifest, %u refused, %lu swaps\n", n,
		inside, refused, atomic_load(&sw.swaps));
	/* The race really ran: both states were seen. */
	ck_assert_uint_gt(atomic_load(&sw.swaps), 100);
	ck_assert_uint_gt(inside, 0);
	tc_close(&cl);
	texec_stop(&ex);
	rm_tree(dir);
}
END_TEST

static uint64_t start_in(const char *cwd, const char *root, int32_t *status, char *err,
			 size_t errlen)
{
	struct proto_mcp_start_body b = { 0 };
	char script[1200];
	struct proto_str args[1];

	/* the copy in the tree's root: <dir>/root/<...> */
	snprintf(script, sizeof(script), "%.*s/hostile_mcp.py",
		 (int)(strstr(cwd, "/root") ? strstr(cwd, "/root") - cwd + 5 : (long)strlen(cwd)),
		 cwd);
	args[0] = proto_str_c(script);
	struct tframe f = { 0 };
	uint64_t h = 0;

	b.server_name = proto_str_c("s");
	b.command = proto_str_c("/usr/bin/python3");
	b.args.items = args;
	b.args.n = 1;
	b.cwd = proto_str_c(cwd);
	PROTO_MARK(&b, mcp_start_body, cwd);
	if (root) {
		b.root = proto_str_c(root);
		PROTO_MARK(&b, mcp_start_body, root);
	}
	PROTO_MARK(&b, mcp_start_body, args);
	ck_assert_int_eq(tc_call(&cl, PROTO_MCP_START, &b, &f, T_MS), 0);
	*status = f.m.env.status;
	if (*status == 0)
		h = f.m.u.mcp_start_reply.handle;
	else
		snprintf(err, errlen, "%.*s", (int)f.m.err_message.len, f.m.err_message.ptr);
	tframe_free(&f);
	return h;
}

static void resolve_root(const char *root)
{
	struct proto_root_resolve_body b = { 0 };
	struct tframe f = { 0 };

	b.root_id = proto_str_c("r");
	b.path = proto_str_c(root);
	b.environment_id = proto_str_c("e1");
	ck_assert_int_eq(tc_call(&cl, PROTO_ROOT_RESOLVE, &b, &f, T_MS), 0);
	ck_assert_msg(f.m.env.status == 0, "resolve: %.*s", (int)f.m.err_message.len,
		      f.m.err_message.ptr);
	tframe_free(&f);
}

static void swap_cwd_for_symlink(const char *root, const char *out)
{
	char work[4200], real[4200];

	snprintf(work, sizeof(work), "%s/work", root);
	snprintf(real, sizeof(real), "%s/work.real", root);
	ck_assert_int_eq(rename(work, real), 0);
	ck_assert_int_eq(symlink(out, work), 0);
}

/* The orchestrator restarts a plugin server with the cwd it was given at
 * resolution time; by then the cwd is a symlink to a directory outside the
 * root. The server must not start there. */
START_TEST(test_cwd_swap_before_restart)
{
	char dir[] = "/tmp/tandem-cwd-XXXXXX", root[1024], work[2048], out[1024], err[512];
	int32_t st;
	uint64_t h;
	json_t *sc;

	make_tree(dir, "{\"mcpServers\":{\"s\":{\"command\":\"/usr/bin/python3\",\"cwd\":"
		       "\"./work\"}}}");
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(work, sizeof(work), "%s/work", root);
	snprintf(out, sizeof(out), "%s/outside", dir);
	ck_assert_int_eq(mkdir(work, 0755), 0);
	texec_start(&ex, NULL, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	resolve_root(root);
	/* Today's orchestrator sends no root: the executor knows it. */
	h = start_in(work, NULL, &st, err, sizeof(err));
	ck_assert_msg(st == 0, "first start: %s", err);
	initialize(h);
	sc = tool(h, "whoami", NULL);
	ck_assert_str_eq(json_string_value(json_object_get(sc, "cwd")), work);
	json_decref(sc);
	stop(h);
	wait_exited(h, NULL, 0);
	swap_cwd_for_symlink(root, out);
	h = start_in(work, NULL, &st, err, sizeof(err));
	if (st == 0) {
		initialize(h);
		sc = tool(h, "whoami", NULL);
		rm_tree(dir);
		ck_abort_msg("restart after the swap started the server in '%s'",
			     json_string_value(json_object_get(sc, "cwd")));
	}
	ck_assert_int_eq(st, PROTO_E_DENIED);
	ck_assert_msg(strstr(err, "no longer resolves inside the plugin root"), "%s", err);
	/* The same with the root named in MCP_START. */
	h = start_in(work, root, &st, err, sizeof(err));
	ck_assert_int_eq(st, PROTO_E_DENIED);
	tc_close(&cl);
	texec_stop(&ex);
	rm_tree(dir);
}
END_TEST

/* A root named in MCP_START is checked against --root-allow again. */
START_TEST(test_start_root_outside_allow)
{
	char dir[] = "/tmp/tandem-allow-XXXXXX", root[1024], allowed[1024], err[512];
	const char *args[] = { "--root-allow", allowed, NULL };
	int32_t st;

	make_tree(dir, NULL);
	snprintf(root, sizeof(root), "%s/root", dir);
	snprintf(allowed, sizeof(allowed), "%s/outside", dir);
	texec_start(&ex, args, NULL);
	tc_connect(&cl, ex.url, ex.secret);
	start_in(root, root, &st, err, sizeof(err));
	ck_assert_int_eq(st, PROTO_E_DENIED);
	ck_assert_msg(strstr(err, "outside the allowed roots"), "%s", err);
	tc_close(&cl);
	texec_stop(&ex);
	rm_tree(dir);
}
END_TEST

static Suite *contain_suite(void)
{
	Suite *s = suite_create("contain");
	TCase *tc = tcase_create("contain");

	tcase_set_timeout(tc, 120);
	tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
	tcase_add_test(tc, test_daemon_dies_with_stop);
	tcase_add_test(tc, test_daemon_dies_with_stop_track);
	tcase_add_test(tc, test_daemon_dies_with_exit);
	tcase_add_test(tc, test_daemon_dies_with_exit_track);
	tcase_add_test(tc, test_daemon_dies_with_executor);
	tcase_add_test(tc, test_daemon_dies_with_executor_track);
	tcase_add_test(tc, test_daemon_dies_with_executor_kill9);
	tcase_add_test(tc, test_stale_box_state_removed);
	tcase_add_test(tc, test_crash_signal_under_init);
	tcase_add_test(tc, test_grace_per_process);
	tcase_add_test(tc, test_closed_stdout_after_init);
	tcase_add_test(tc, test_closed_stdout_mid_call);
	tcase_add_test(tc, test_manifest_swap_race);
	tcase_add_test(tc, test_cwd_swap_before_restart);
	tcase_add_test(tc, test_start_root_outside_allow);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(contain_suite)
