/* test_child.c - child_* against real processes: the MCP fixture
 * (tests/fixtures/mcp-fixture.c) and a few /bin/sh one-liners.
 *
 * Needs $MCP_FIXTURE: the path of the built mcp-fixture binary. Every test
 * that uses it fails with a message saying so when it is unset.
 *
 * The loop runs until the condition a test waits for holds; each wait also
 * has a generous deadline so that a bug fails the test instead of hanging.
 */
#include "child.h"
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 20000u /* hang guard only, never a performance bound */
#define MAX_LINES 4096
#define MIB (1024u * 1024u)

struct rec {
	struct loop *loop;
	struct child *c;
	char *lines[MAX_LINES];
	size_t nlines; /* stored lines */
	size_t nall;   /* all lines seen */
	size_t nerr;
	char *first_err, *last_err;
	size_t first_err_len;
	bool exited;
	int wstatus;
	char *reason;
	bool timed_out;
	bool free_in_exit; /* child_free from inside exit_cb */
	bool free_in_line; /* child_free from inside line_cb */
	uint64_t expired[8]; /* call ids expired_cb reported */
	size_t nexpired;
};

static struct loop *loop;

static void setup(void)
{
	/* The daemons ignore SIGPIPE; child.h requires it. */
	signal(SIGPIPE, SIG_IGN);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
}

static void teardown(void) { loop = loop_free(loop); }

static const char *fixture(void)
{
	const char *f = getenv("MCP_FIXTURE");

	ck_assert_msg(f && *f, "MCP_FIXTURE must name the built tests/fixtures/mcp-fixture binary");
	ck_assert_msg(access(f, X_OK) == 0, "MCP_FIXTURE=%s is not executable", f);
	return f;
}

static void rec_line_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct rec *r = arg;

	ck_assert_ptr_eq(c, r->c);
	r->nall++;
	if (r->nlines < MAX_LINES)
		r->lines[r->nlines++] = strndup(line, len);
	if (r->free_in_line)
		r->c = child_free(c);
	loop_stop(r->loop);
}

static void rec_stderr_cb(struct child *c, const char *line, size_t len, void *arg)
{
	struct rec *r = arg;

	(void)c;
	if (r->nerr++ == 0) {
		r->first_err = strndup(line, len);
		r->first_err_len = len;
	}
	free(r->last_err);
	r->last_err = strndup(line, len);
	loop_stop(r->loop);
}

static void rec_exit_cb(struct child *c, int wstatus, const char *reason, void *arg)
{
	struct rec *r = arg;

	ck_assert_msg(!r->exited, "exit_cb called twice");
	r->exited = true;
	r->wstatus = wstatus;
	r->reason = strdup(reason);
	if (r->free_in_exit)
		r->c = child_free(c);
	loop_stop(r->loop);
}

static void rec_expired_cb(struct child *c, uint64_t call_id, void *arg)
{
	struct rec *r = arg;

	ck_assert_ptr_eq(c, r->c);
	if (r->nexpired < ARRAY_SIZE(r->expired))
		r->expired[r->nexpired++] = call_id;
	loop_stop(r->loop);
}

static const struct child_ops rec_ops = {
	.line_cb = rec_line_cb,
	.stderr_cb = rec_stderr_cb,
	.expired_cb = rec_expired_cb,
	.exit_cb = rec_exit_cb,
};

static void rec_clear(struct rec *r)
{
	for (size_t i = 0; i < r->nlines; i++)
		free(r->lines[i]);
	free(r->first_err);
	free(r->last_err);
	free(r->reason);
	r->c = child_free(r->c);
}

static void deadline_cb(struct loop_timer *t, void *arg)
{
	struct rec *r = arg;

	(void)t;
	r->timed_out = true;
	loop_stop(r->loop);
}

/* Runs the loop until pred(r, n) holds or the hang guard fires. */
static bool wait_for(struct rec *r, bool (*pred)(const struct rec *, size_t), size_t n)
{
	struct loop_timer *t = loop_timer_add(r->loop, WAIT_MS, deadline_cb, r);

	r->timed_out = false;
	while (!pred(r, n) && !r->timed_out)
		ck_assert_int_eq(loop_run(r->loop), 0);
	if (!r->timed_out)
		loop_timer_cancel(t);
	return pred(r, n);
}

static bool has_lines(const struct rec *r, size_t n) { return r->nlines >= n; }
static bool has_errs(const struct rec *r, size_t n) { return r->nerr >= n; }
static bool has_exited(const struct rec *r, size_t n)
{
	(void)n;
	return r->exited;
}

/* Starts argv[0] (resolved by child.c) in cwd with envp. */
static int start_cmd(struct rec *r, const char *command, const char *const *argv,
		     const char *const *envp, const char *cwd, size_t max_line, size_t max_queue,
		     char *err, size_t errlen)
{
	struct child_spec spec = {
		.command = command,
		.argv = argv,
		.envp = envp,
		.cwd = cwd,
		.max_line = max_line,
		.max_stdin_queue = max_queue,
	};

	r->loop = loop;
	return child_start(loop, &spec, &rec_ops, r, &r->c, err, errlen);
}

/* Starts the fixture in `mode` with extra environment entries. */
static void start_fixture(struct rec *r, const char *mode, const char *const *extra_env)
{
	const char *argv[] = { fixture(), "--mode", mode, NULL };
	const char *envp[16] = { "PATH=/usr/bin:/bin" };
	char err[256] = "";
	size_t n = 1;

	for (; extra_env && *extra_env && n < 15; extra_env++)
		envp[n++] = *extra_env;
	envp[n] = NULL;
	ck_assert_msg(start_cmd(r, argv[0], argv, envp, "/", 16 * MIB, MIB, err, sizeof(err)) == 0,
		      "child_start: %s", err);
	ck_assert_ptr_nonnull(r->c);
	ck_assert_int_gt(child_pid(r->c), 0);
}

static void start_sh(struct rec *r, const char *script)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	char err[256] = "";

	ck_assert_msg(start_cmd(r, "sh", argv, envp, "/", 16 * MIB, MIB, err, sizeof(err)) == 0,
		      "child_start: %s", err);
}

static void send_str(struct rec *r, const char *s)
{
	ck_assert_int_eq(child_send(r->c, s, strlen(s)), 0);
}

static void stop_and_wait(struct rec *r)
{
	child_stop(r->c);
	ck_assert_msg(wait_for(r, has_exited, 0), "no exit_cb after child_stop");
}

static json_t *line_json(const struct rec *r, size_t i)
{
	json_t *j;

	ck_assert_uint_gt(r->nlines, i);
	j = json_loads(r->lines[i], 0, NULL);
	ck_assert_msg(j, "line %zu is not JSON: %s", i, r->lines[i]);
	return j;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Children of this process in state Z, from /proc/<pid>/stat. */
static int count_zombies(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d))) {
		char path[300], buf[512], *p, state;
		int ppid;
		FILE *f;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue; /* gone meanwhile */
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p && sscanf(p, ") %c %d", &state, &ppid) == 2 && ppid == getpid() &&
		    state == 'Z')
			n++;
	}
	closedir(d);
	return n;
}

/* Dead: gone from /proc, or a zombie waiting for whoever adopted it. */
static bool pid_dead(pid_t pid)
{
	char path[64], buf[512], *p = NULL, state = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	if (fgets(buf, sizeof(buf), f))
		p = strrchr(buf, ')');
	fclose(f);
	return p && sscanf(p, ") %c", &state) == 1 && (state == 'Z' || state == 'X');
}

/* Waits for a process that is not our child to die: a pidfd becomes
 * readable when it does; without pidfd_open (valgrind) poll /proc. */
static bool pid_exits(pid_t pid)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0u);
	struct pollfd p = { .fd = pfd, .events = POLLIN };
	int n;

	if (pfd < 0 && errno == ESRCH)
		return true;
	if (pfd >= 0) {
		n = poll(&p, 1, (int)WAIT_MS);
		close(pfd);
		return n == 1;
	}
	for (unsigned i = 0; i < WAIT_MS / 10 && !pid_dead(pid); i++)
		poll(NULL, 0, 10);
	return pid_dead(pid);
}

START_TEST(test_echo_roundtrip)
{
	struct rec r = { 0 };
	json_t *a, *b;

	start_fixture(&r, "echo", NULL);
	send_str(&r, "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
		     "\"params\":{\"protocolVersion\":\"2025-03-26\"}}");
	send_str(&r, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
	send_str(&r, "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"tools/call\","
		     "\"params\":{\"name\":\"echo\",\"arguments\":{\"message\":\"h\xc3\xa9\"}}}");
	ck_assert(wait_for(&r, has_lines, 2));
	a = line_json(&r, 0);
	b = line_json(&r, 1);
	ck_assert_int_eq(json_integer_value(json_object_get(a, "id")), 0);
	ck_assert(json_is_integer(json_object_get(a, "id")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a, "result"),
							   "protocolVersion")),
			 "2025-03-26");
	ck_assert_str_eq(json_string_value(json_object_get(b, "id")), "x");
	/* Raw bytes: the UTF-8 of the message arrives untouched. */
	ck_assert_ptr_nonnull(strstr(r.lines[1], "\"message\":\"h\xc3\xa9\""));
	json_decref(a);
	json_decref(b);
	ck_assert(!r.exited);
	stop_and_wait(&r);
	ck_assert_uint_eq(r.nlines, 2);
	rec_clear(&r);
}
END_TEST

/* env(1) prints its environment: it must be exactly envp, and "env" must be
 * found through the PATH in envp. */
START_TEST(test_env_exact)
{
	const char *argv[] = { "env", NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", "ONLY_ME=yes", "EMPTY=", NULL };
	struct rec r = { 0 };
	char err[256] = "";

	ck_assert_msg(start_cmd(&r, "env", argv, envp, "/", MIB, MIB, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0);
	ck_assert_uint_eq(r.nlines, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(r.lines[i], envp[i]);
	rec_clear(&r);
}
END_TEST

START_TEST(test_env_fixture)
{
	const char *env[] = { "FIXTURE_ECHO_ENV=TEST_CHILD_PARENT_ONLY", "SECRET_X=42", NULL };
	struct rec r = { 0 };
	json_t *j, *sc;

	/* Set here, must not reach the child. */
	ck_assert_int_eq(setenv("TEST_CHILD_PARENT_ONLY", "1", 1), 0);
	start_fixture(&r, "echo", env);
	send_str(&r, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"env\","
		     "\"arguments\":{\"name\":\"SECRET_X\"}}}");
	send_str(&r, "{\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
		     "\"arguments\":{\"message\":\"m\"}}}");
	ck_assert(wait_for(&r, has_lines, 2));
	j = line_json(&r, 0);
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "value")), "42");
	json_decref(j);
	j = line_json(&r, 1);
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert(json_is_null(json_object_get(json_object_get(sc, "env"),
					       "TEST_CHILD_PARENT_ONLY")));
	json_decref(j);
	stop_and_wait(&r);
	rec_clear(&r);
}
END_TEST

START_TEST(test_cwd)
{
	char tmpl[] = "/tmp/test_child.XXXXXX", real[PATH_MAX];
	const char *dir = mkdtemp(tmpl);
	const char *argv[] = { fixture(), NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct rec r = { 0 };
	char err[256] = "";
	json_t *j, *sc;

	ck_assert_ptr_nonnull(dir);
	ck_assert_ptr_nonnull(realpath(dir, real));
	ck_assert_int_eq(start_cmd(&r, argv[0], argv, envp, dir, MIB, MIB, err, sizeof(err)), 0);
	send_str(&r, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
		     "\"arguments\":{\"message\":\"m\"}}}");
	ck_assert(wait_for(&r, has_lines, 1));
	j = line_json(&r, 0);
	sc = json_object_get(json_object_get(j, "result"), "structuredContent");
	ck_assert_str_eq(json_string_value(json_object_get(sc, "cwd")), real);
	json_decref(j);
	stop_and_wait(&r);
	rec_clear(&r);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* A command with a '/' but not absolute is relative to the child's cwd. */
START_TEST(test_relative_command)
{
	const char *f = fixture(), *slash = strrchr(f, '/');
	const char *envp[] = { "FIXTURE_EXIT_CODE=4", NULL };
	char dir[PATH_MAX], cmd[PATH_MAX], err[256] = "";
	const char *argv[] = { cmd, "--mode", "exit", NULL };
	struct rec r = { 0 };

	ck_assert_msg(slash, "MCP_FIXTURE must be a path");
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - f), f);
	snprintf(cmd, sizeof(cmd), ".%s", slash);
	ck_assert_msg(start_cmd(&r, cmd, argv, envp, *dir ? dir : "/", MIB, MIB, err,
				sizeof(err)) == 0,
		      "%s", err);
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 4);
	rec_clear(&r);
}
END_TEST

START_TEST(test_start_errors)
{
	const char *argv[] = { "x", NULL };
	const char *envp[] = { "PATH=/nonexistent:/usr/bin:/bin", NULL };
	char tmpl[] = "/tmp/test_child.XXXXXX", path[PATH_MAX], err[256];
	const char *dir = mkdtemp(tmpl);
	int fds = count_fds(), fd;
	struct rec r = { 0 };

	ck_assert_ptr_nonnull(dir);
	strcpy(err, "untouched");
	ck_assert_int_eq(start_cmd(&r, "tandem-no-such-command", argv, envp, "/", MIB, MIB, err,
				   sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "cannot execute 'tandem-no-such-command': No such file or directory");
	ck_assert_ptr_null(r.c);

	ck_assert_int_eq(start_cmd(&r, "/bin/true", argv, envp, "/nonexistent-dir", MIB, MIB,
				   err, sizeof(err)),
			 -ENOENT);
	ck_assert_str_eq(err, "cannot change directory to '/nonexistent-dir': No such file or "
			      "directory");

	/* Found but not executable. */
	snprintf(path, sizeof(path), "%s/noexec", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(start_cmd(&r, path, argv, envp, "/", MIB, MIB, err, sizeof(err)),
			 -EACCES);
	ck_assert_ptr_nonnull(strstr(err, "cannot execute '"));
	ck_assert_ptr_nonnull(strstr(err, "Permission denied"));

	ck_assert_int_eq(start_cmd(&r, "", argv, envp, "/", MIB, MIB, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(start_cmd(&r, "/bin/true", argv, envp, "/", 0, MIB, err, sizeof(err)),
			 -EINVAL);
	ck_assert_ptr_null(r.c);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(count_zombies(), 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_exit_status)
{
	const char *env[] = { "FIXTURE_EXIT_CODE=7", NULL };
	struct rec r = { 0 };

	start_fixture(&r, "exit", env);
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus));
	ck_assert_int_eq(WEXITSTATUS(r.wstatus), 7);
	ck_assert_str_eq(r.reason, "exited with status 7");
	ck_assert_int_eq(child_send(r.c, "x", 1), -EPIPE);
	rec_clear(&r);
}
END_TEST

START_TEST(test_crash_signal)
{
	struct rec r = { 0 };

	start_fixture(&r, "crash", NULL);
	send_str(&r, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFSIGNALED(r.wstatus));
	ck_assert_int_eq(WTERMSIG(r.wstatus), SIGABRT);
	ck_assert_msg(strncmp(r.reason, "killed by signal 6", 18) == 0, "reason: %s", r.reason);
	rec_clear(&r);
}
END_TEST

START_TEST(test_huge_line_kills)
{
	const char *argv[] = { fixture(), "--mode", "huge", NULL };
	const char *envp[] = { "FIXTURE_HUGE_BYTES=8388608", NULL };
	struct rec r = { 0 };
	char err[256] = "";

	ck_assert_int_eq(start_cmd(&r, argv[0], argv, envp, "/", MIB, MIB, err, sizeof(err)), 0);
	send_str(&r, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\"}}");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert_uint_eq(r.nlines, 0);
	ck_assert(WIFSIGNALED(r.wstatus));
	ck_assert_int_eq(WTERMSIG(r.wstatus), SIGKILL);
	ck_assert_str_eq(r.reason, "stdout line exceeded 1048576 bytes");
	rec_clear(&r);
}
END_TEST

static void spin_stop_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	loop_stop(arg);
}

/* One loop iteration: lets pending writes happen. */
static void spin(void)
{
	loop_timer_add(loop, 0, spin_stop_cb, loop);
	ck_assert_int_eq(loop_run(loop), 0);
}

/* A child that never reads: the queue stops at its bound. */
START_TEST(test_noread_backpressure)
{
	const char *argv[] = { fixture(), "--mode", "noread", NULL };
	const char *envp[] = { NULL };
	const size_t bound = 64 * 1024, msg = 1000;
	char buf[1000], err[256] = "";
	struct rec r = { 0 };
	size_t sent = 0;
	int rc = 0;

	memset(buf, 'a', sizeof(buf));
	ck_assert_int_eq(start_cmd(&r, argv[0], argv, envp, "/", MIB, bound, err, sizeof(err)), 0);
	for (size_t i = 0; i < 100000 && rc == 0; i++) {
		rc = child_send(r.c, buf, msg);
		sent += rc == 0;
		spin();
	}
	ck_assert_int_eq(rc, -ENOBUFS);
	ck_assert_uint_le(child_stdin_pending(r.c), bound);
	/* pending counts each held message's bookkeeping (< 64 bytes) too */
	ck_assert_uint_gt(child_stdin_pending(r.c) + msg + 1 + 64, bound);
	/* Accepted = the queue plus what the pipe took (its buffer is at most
	 * /proc/sys/fs/pipe-max-size, 1 MiB by default). */
	ck_assert_uint_le(sent * (msg + 1), bound + MIB);
	stop_and_wait(&r);
	ck_assert(WIFSIGNALED(r.wstatus) && WTERMSIG(r.wstatus) == SIGTERM);
	ck_assert_int_eq(child_send(r.c, buf, msg), -EPIPE);
	rec_clear(&r);
}
END_TEST

/* A call is the server's only once its first byte is in the pipe: until
 * then child_withdraw takes it back and a passed deadline drops it
 * (expired_cb); what was begun is delivered whole, in order. */
START_TEST(test_withdraw_and_expire_held)
{
	const size_t big = 200 * 1024; /* more than a pipe holds */
	char *buf = malloc(big);
	struct rec r = { 0 };

	memset(buf, 'a', big);
	start_sh(&r, "sleep 0.4; exec cat");
	ck_assert_int_eq(child_send_call(r.c, buf, big, 6, 0), 0); /* begun, not all written */
	ck_assert_int_eq(child_send_call(r.c, "victim", 6, 7, 0), 0);
	ck_assert_int_eq(child_send(r.c, "plain", 5), 0);
	ck_assert_int_eq(child_send_call(r.c, "late", 4, 9, loop_now_ms(loop) + 1), 0);
	ck_assert_int_eq(child_send_call(r.c, "keep", 4, 8, 0), 0);
	ck_assert(!child_withdraw(r.c, 6)); /* begun: the server's */
	ck_assert(child_withdraw(r.c, 7));
	ck_assert(!child_withdraw(r.c, 7)); /* once */
	ck_assert(!child_withdraw(r.c, 0));
	ck_assert(!child_withdraw(r.c, 12345));
	ck_assert_msg(wait_for(&r, has_lines, 3), "only %zu lines", r.nlines);
	ck_assert_uint_eq(strlen(r.lines[0]), big);
	ck_assert_str_eq(r.lines[1], "plain");
	ck_assert_str_eq(r.lines[2], "keep");
	ck_assert_uint_eq(r.nexpired, 1);
	ck_assert_uint_eq(r.expired[0], 9);
	ck_assert_uint_eq(child_stdin_pending(r.c), 0);
	/* nothing else arrives: the withdrawn and the expired were never written */
	ck_assert_int_eq(child_send(r.c, "end", 3), 0);
	ck_assert_msg(wait_for(&r, has_lines, 4), "no end line");
	ck_assert_str_eq(r.lines[3], "end");
	stop_and_wait(&r);
	rec_clear(&r);
	free(buf);
}
END_TEST

/* Messages sent in one loop turn after a direct write wait for the turn's
 * end and then leave together, in order: until then they are held (a
 * cancel still takes one back), and a deadline passing meanwhile drops
 * its message only. */
START_TEST(test_turn_batch)
{
	struct rec r = { 0 };

	start_sh(&r, "exec cat");
	ck_assert_int_eq(child_send_call(r.c, "one", 3, 1, 0), 0); /* written now */
	ck_assert_uint_eq(child_stdin_pending(r.c), 0);
	ck_assert_int_eq(child_send_call(r.c, "two", 3, 2, 0), 0);
	ck_assert_int_eq(child_send_call(r.c, "gone", 4, 3, 0), 0);
	ck_assert_int_eq(child_send_call(r.c, "late", 4, 4, loop_now_ms(loop)), 0);
	ck_assert_int_eq(child_send(r.c, "three", 5), 0);
	ck_assert_uint_gt(child_stdin_pending(r.c), 0); /* held for the turn's end */
	ck_assert(!child_withdraw(r.c, 1));
	ck_assert(child_withdraw(r.c, 3));
	ck_assert_msg(wait_for(&r, has_lines, 3), "only %zu lines", r.nlines);
	ck_assert_str_eq(r.lines[0], "one");
	ck_assert_str_eq(r.lines[1], "two");
	ck_assert_str_eq(r.lines[2], "three");
	ck_assert_uint_eq(r.nexpired, 1);
	ck_assert_uint_eq(r.expired[0], 4);
	ck_assert_uint_eq(child_stdin_pending(r.c), 0);
	ck_assert_int_eq(child_send(r.c, "end", 3), 0);
	ck_assert_msg(wait_for(&r, has_lines, 4), "no end line");
	ck_assert_str_eq(r.lines[3], "end");
	stop_and_wait(&r);
	rec_clear(&r);
}
END_TEST

/* Held messages go with stdin: a stopped child frees them (ASan/valgrind
 * see a leak otherwise) and later sends fail. */
START_TEST(test_held_dropped_on_stop)
{
	const size_t big = 200 * 1024;
	char *buf = malloc(big);
	struct rec r = { 0 };

	memset(buf, 'b', big);
	start_sh(&r, "sleep 5");
	ck_assert_int_eq(child_send_call(r.c, buf, big, 1, 0), 0);
	ck_assert_int_eq(child_send_call(r.c, "held", 4, 2, 0), 0);
	ck_assert_uint_gt(child_stdin_pending(r.c), 4);
	stop_and_wait(&r);
	ck_assert_uint_eq(child_stdin_pending(r.c), 0);
	ck_assert(!child_withdraw(r.c, 2));
	ck_assert_int_eq(child_send_call(r.c, "x", 1, 3, 0), -EPIPE);
	ck_assert_uint_eq(r.nlines, 0);
	rec_clear(&r);
	free(buf);
}
END_TEST

START_TEST(test_stderr_lines)
{
	const char *env[] = { "FIXTURE_STDERR_LINES=5000", NULL };
	struct rec r = { 0 };

	start_fixture(&r, "stderr", env);
	ck_assert(wait_for(&r, has_errs, 5000));
	ck_assert_str_eq(r.first_err, "mcp-fixture: stderr line 0");
	ck_assert_str_eq(r.last_err, "mcp-fixture: stderr line 4999");
	/* And it still answers on stdout. */
	send_str(&r, "{\"id\":1,\"method\":\"ping\"}");
	ck_assert(wait_for(&r, has_lines, 1));
	ck_assert_str_eq(r.lines[0], "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
	stop_and_wait(&r);
	ck_assert_uint_eq(r.nerr, 5000);
	rec_clear(&r);
}
END_TEST

/* An overlong stderr line is cut, not fatal; a last line without '\n' is
 * still delivered. */
START_TEST(test_stderr_truncated)
{
	struct rec r = { 0 };

	start_sh(&r, "head -c 10000 /dev/zero | tr '\\000' a >&2; echo >&2; echo short >&2;"
		     " printf tail >&2; echo out");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0);
	ck_assert_uint_eq(r.nerr, 3);
	ck_assert_uint_eq(r.first_err_len, CHILD_STDERR_LINE_MAX);
	ck_assert_int_eq(r.first_err[0], 'a');
	ck_assert_str_eq(r.last_err, "tail");
	ck_assert_uint_eq(r.nlines, 1);
	ck_assert_str_eq(r.lines[0], "out");
	rec_clear(&r);
}
END_TEST

/* Every line written before exit arrives before exit_cb; bytes pass
 * through as they are ('\r' kept), empty lines are skipped. */
START_TEST(test_lines_before_exit)
{
	struct rec r = { 0 };

	start_sh(&r, "i=0; while [ $i -lt 1000 ]; do echo line$i; i=$((i+1)); done;"
		     " printf 'cr\\r\\n\\n\\nlast\\npartial'; exit 5");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert_uint_eq(r.nlines, 1002);
	ck_assert_str_eq(r.lines[0], "line0");
	ck_assert_str_eq(r.lines[999], "line999");
	ck_assert_str_eq(r.lines[1000], "cr\r");
	ck_assert_str_eq(r.lines[1001], "last");
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 5);
	ck_assert_str_eq(r.reason, "exited with status 5; 7 bytes of unterminated stdout dropped");
	rec_clear(&r);
}
END_TEST

/* Output still unread when the exit is noticed: run the loop only once the
 * fixture is a zombie, with ~600 KB in its pipe, more than one stdout event
 * reads. Every line must come before exit_cb. */
START_TEST(test_burst_before_exit)
{
	struct rec r = { 0 };

	start_fixture(&r, "burst", NULL);
	/* Bounded wait: if the pipe could not grow, the writer blocks and we
	 * simply go on (the test then checks less, but still checks). */
	for (int i = 0; i < 2000 && !pid_dead(child_pid(r.c)); i++)
		poll(NULL, 0, 5);
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0);
	ck_assert_uint_eq(r.nlines, MAX_LINES);
	ck_assert_str_eq(r.lines[0], "{\"jsonrpc\":\"2.0\",\"method\":\"fixture/burst\","
				     "\"params\":{\"n\":0}}");
	ck_assert_uint_eq(r.nall, 10000);
	ck_assert_str_eq(r.reason, "exited with status 0");
	rec_clear(&r);
}
END_TEST

START_TEST(test_stop_ignoring_sigterm)
{
	struct rec r = { 0 };

	start_fixture(&r, "noterm", NULL);
	/* Wait until it runs its own code (SIGTERM ignored from then on). */
	send_str(&r, "{\"id\":1,\"method\":\"ping\"}");
	ck_assert(wait_for(&r, has_lines, 1));
	stop_and_wait(&r);
	ck_assert(WIFSIGNALED(r.wstatus));
	ck_assert_int_eq(WTERMSIG(r.wstatus), SIGKILL);
	ck_assert_str_eq(r.reason, "killed by signal 9");
	rec_clear(&r);
}
END_TEST

START_TEST(test_cycles_no_leak)
{
	int fds, i;

	(void)fixture();
	fds = count_fds();
	for (i = 0; i < 200; i++) {
		struct rec r = { .free_in_exit = i % 2 == 0 };

		start_fixture(&r, "echo", NULL);
		if (i % 3 == 0)
			send_str(&r, "{\"id\":1,\"method\":\"ping\"}");
		stop_and_wait(&r);
		rec_clear(&r);
	}
	ck_assert_int_eq(count_zombies(), 0);
	/* Stronger still: no child of ours is left at all. */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	ck_assert_int_eq(count_fds(), fds);
}
END_TEST

/* child_free from line_cb kills and reaps at once; no exit_cb follows. */
START_TEST(test_free_from_line_cb)
{
	struct rec r = { .free_in_line = true };
	int fds;

	(void)fixture();
	fds = count_fds();
	start_fixture(&r, "echo", NULL);
	send_str(&r, "{\"id\":1,\"method\":\"ping\"}");
	send_str(&r, "{\"id\":2,\"method\":\"ping\"}");
	ck_assert(wait_for(&r, has_lines, 1));
	ck_assert_ptr_null(r.c);
	ck_assert_uint_eq(r.nlines, 1);
	ck_assert(!r.exited);
	ck_assert_int_eq(count_fds(), fds);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	rec_clear(&r);
}
END_TEST

static pid_t grandchild_pid(const struct rec *r)
{
	json_t *j = line_json(r, 0);
	json_int_t pid = json_integer_value(
		json_object_get(json_object_get(j, "params"), "pid"));

	ck_assert_str_eq(json_string_value(json_object_get(j, "method")), "fixture/grandchild");
	json_decref(j);
	ck_assert_int_gt(pid, 0);
	return (pid_t)pid;
}

START_TEST(test_grandchild_killed_by_stop)
{
	struct rec r = { 0 };
	pid_t g;

	start_fixture(&r, "grandchild", NULL);
	ck_assert(wait_for(&r, has_lines, 1));
	g = grandchild_pid(&r);
	ck_assert_int_eq(kill(g, 0), 0);
	stop_and_wait(&r);
	ck_assert_msg(pid_exits(g), "grandchild %d survived child_stop", (int)g);
	rec_clear(&r);
}
END_TEST

/* When the server itself exits, the rest of its group goes with it. */
START_TEST(test_grandchild_killed_on_exit)
{
	struct rec r = { 0 };
	pid_t g;

	start_fixture(&r, "grandchild", NULL);
	ck_assert(wait_for(&r, has_lines, 1));
	g = grandchild_pid(&r);
	send_str(&r, "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"crash\"}}");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 3);
	ck_assert_msg(pid_exits(g), "grandchild %d survived its parent", (int)g);
	rec_clear(&r);
}
END_TEST

/* A descendant that escaped the group holds stdout open: exit_cb still
 * comes, with the lines written before the exit. */
START_TEST(test_escaped_holder)
{
	struct rec r = { 0 };
	pid_t g;

	/* Print the pid only once setsid() has happened (session id = pid). */
	start_sh(&r, "setsid sleep 60 & p=$!;"
		     " until [ \"$(cut -d' ' -f6 /proc/$p/stat)\" = $p ]; do :; done;"
		     " echo $p; exit 2");
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert_uint_eq(r.nlines, 1);
	g = (pid_t)atoi(r.lines[0]);
	ck_assert_int_gt(g, 0);
	(void)kill(g, SIGKILL);
	ck_assert(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 2);
	rec_clear(&r);
}
END_TEST

/* Runs argv (found through PATH) to its exit; its stdout lines go to r. */
static void run_collect(struct rec *r, const char *const *argv)
{
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	char err[256] = "";

	ck_assert_msg(start_cmd(r, argv[0], argv, envp, "/", MIB, MIB, err, sizeof(err)) == 0,
		      "%s", err);
	ck_assert(wait_for(r, has_exited, 0));
	ck_assert(WIFEXITED(r->wstatus) && WEXITSTATUS(r->wstatus) == 0);
}

/* The parent's blocked and ignored signals and its fds without CLOEXEC do
 * not reach the child, and the child leads its own process group. */
START_TEST(test_process_setup)
{
	const char *ls[] = { "ls", "/proc/self/fd", NULL };
	const char *cut[] = { "cut", "-d", " ", "-f1,5", "/proc/self/stat", NULL };
	const char *grep[] = { "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL };
	int leak = open("/dev/null", O_RDONLY); /* no O_CLOEXEC on purpose */
	struct rec r1 = { 0 }, r2 = { 0 }, r3 = { 0 };
	char pid[32], pgid[32];
	sigset_t set;

	ck_assert_int_ge(leak, 3);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &set, NULL), 0);
	signal(SIGUSR2, SIG_IGN);

	run_collect(&r1, ls); /* ls itself holds fd 3 for the directory */
	ck_assert_uint_eq(r1.nlines, 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert_int_eq(atoi(r1.lines[i]), (int)i);

	run_collect(&r2, cut);
	ck_assert_uint_eq(r2.nlines, 1);
	ck_assert_int_eq(sscanf(r2.lines[0], "%31s %31s", pid, pgid), 2);
	ck_assert_str_eq(pid, pgid);

	run_collect(&r3, grep);
	ck_assert_uint_eq(r3.nlines, 2);
	ck_assert_str_eq(r3.lines[0], "SigBlk:\t0000000000000000");
	ck_assert_str_eq(r3.lines[1], "SigIgn:\t0000000000000000");
	rec_clear(&r1);
	rec_clear(&r2);
	rec_clear(&r3);
	close(leak);
}
END_TEST

static void *spawn_thread(void *arg)
{
	start_fixture(arg, "noread", NULL);
	return NULL;
}

/* PR_SET_PDEATHSIG follows the thread that forked: when it ends, the child
 * gets SIGKILL. */
START_TEST(test_pdeathsig)
{
	struct rec r = { 0 };
	pthread_t t;

	(void)fixture();
	ck_assert_int_eq(pthread_create(&t, NULL, spawn_thread, &r), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_ptr_nonnull(r.c);
	ck_assert(wait_for(&r, has_exited, 0));
	ck_assert(WIFSIGNALED(r.wstatus));
	ck_assert_int_eq(WTERMSIG(r.wstatus), SIGKILL);
	rec_clear(&r);
}
END_TEST

static Suite *child_suite(void)
{
	Suite *s = suite_create("child");
	TCase *tc = tcase_create("child");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_echo_roundtrip);
	tcase_add_test(tc, test_env_exact);
	tcase_add_test(tc, test_env_fixture);
	tcase_add_test(tc, test_cwd);
	tcase_add_test(tc, test_relative_command);
	tcase_add_test(tc, test_start_errors);
	tcase_add_test(tc, test_exit_status);
	tcase_add_test(tc, test_crash_signal);
	tcase_add_test(tc, test_huge_line_kills);
	tcase_add_test(tc, test_noread_backpressure);
	tcase_add_test(tc, test_withdraw_and_expire_held);
	tcase_add_test(tc, test_turn_batch);
	tcase_add_test(tc, test_held_dropped_on_stop);
	tcase_add_test(tc, test_stderr_lines);
	tcase_add_test(tc, test_stderr_truncated);
	tcase_add_test(tc, test_lines_before_exit);
	tcase_add_test(tc, test_burst_before_exit);
	tcase_add_test(tc, test_stop_ignoring_sigterm);
	tcase_add_test(tc, test_cycles_no_leak);
	tcase_add_test(tc, test_free_from_line_cb);
	tcase_add_test(tc, test_grandchild_killed_by_stop);
	tcase_add_test(tc, test_grandchild_killed_on_exit);
	tcase_add_test(tc, test_escaped_holder);
	tcase_add_test(tc, test_process_setup);
	tcase_add_test(tc, test_pdeathsig);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(child_suite)
