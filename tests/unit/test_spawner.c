/* test_spawner.c - the orchestrator's spawner (orchestrator/spawner*.c)
 * with real processes: what it starts and reports, what it refuses, what
 * it removes and stops when the orchestrator is gone, and a hostile peer
 * on its socket (it ends, and takes what it started with it). */
#include "loop.h"
#include "spawner.h"
#include "spawner_int.h"
#include "spawnproc.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define BOUND_MS 10000u

static struct loop *loop;
static char dir[64];

struct exit_seen {
	pid_t pid;
	int wstatus;
	int count;
};

static void exit_cb(pid_t pid, int wstatus, void *arg)
{
	struct exit_seen *x = arg;

	x->pid = pid;
	x->wstatus = wstatus;
	x->count++;
}

static void tick_cb(struct loop_timer *t, void *arg)
{
	*(bool *)arg = true;
	loop_stop(loop);
}

/* Runs the loop until *count > 0 or BOUND_MS. */
static bool run_until_exit(const int *count)
{
	uint64_t end = now_ms() + BOUND_MS;

	while (*count == 0 && now_ms() < end) {
		bool fired = false;
		struct loop_timer *t = loop_timer_add(loop, 20, tick_cb, &fired);

		loop_run(loop);
		if (!fired)
			loop_timer_cancel(t);
	}
	return *count > 0;
}

static void run_for(unsigned ms)
{
	bool fired = false;

	loop_timer_add(loop, ms, tick_cb, &fired);
	while (!fired)
		loop_run(loop);
}

/* Reaps pid, our own child, within BOUND_MS. */
static bool reaped(pid_t pid)
{
	uint64_t end = now_ms() + BOUND_MS;

	while (now_ms() < end) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static bool gone(pid_t pid)
{
	uint64_t end = now_ms() + BOUND_MS;

	while (now_ms() < end) {
		if (kill(pid, 0) < 0 && errno == ESRCH)
			return true;
		usleep(10 * 1000);
	}
	return false;
}

static void setup(void)
{
	char err[256];

	snprintf(dir, sizeof(dir), "/tmp/tandem-spawner-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_msg(spawner_fork(err, sizeof(err)) == 0, "%s", err);
	loop = loop_new();
	ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
	char cmd[128];

	spawner_shutdown(BOUND_MS);
	ck_assert_int_eq(spawner_pid(), 0);
	loop = loop_free(loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static pid_t start_sh(const char *script, int out, struct exit_seen *x, char *err, size_t errlen,
		      int *rc)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", "FOO=bar", "LD_PRELOAD=/nonexistent.so",
			       NULL };
	struct spawnproc_fd fds[] = { { SPAWNPROC_DEVNULL, 0 }, { out, 1 } };
	struct spawnproc_opts o = { .command = "/bin/sh", .argv = argv, .envp = envp,
				    .fds = fds, .n_fds = out >= 0 ? 2 : 1 };
	pid_t pid = 0;

	*rc = spawner_start(&o, exit_cb, x, &pid, err, errlen);
	return pid;
}

START_TEST(starts_allowed_programs_and_reports_their_exit)
{
	struct exit_seen x = { 0 };
	char err[256], out[64] = { 0 };
	int p[2], rc;
	pid_t pid;

	ck_assert_msg(spawner_allow("/bin/sh", err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_lt(spawner_allow("/no/such/program", err, sizeof(err)), 0);
	ck_assert_ptr_nonnull(strstr(err, "cannot find"));
	ck_assert_msg(spawner_seal(err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(spawner_attach(loop), 0);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = start_sh("echo \"[$LD_PRELOAD][$FOO]\"; exit 3", p[1], &x, err, sizeof(err), &rc);
	ck_assert_msg(rc == 0 && pid > 0, "%s", err);
	close(p[1]);
	ck_assert_int_gt(read(p[0], out, sizeof(out) - 1), 0);
	close(p[0]);
	ck_assert_str_eq(out, "[][bar]\n"); /* the loader's variables are dropped */
	ck_assert(run_until_exit(&x.count));
	ck_assert_int_eq(x.pid, pid);
	ck_assert(WIFEXITED(x.wstatus) && WEXITSTATUS(x.wstatus) == 3);
}
END_TEST

START_TEST(refuses_what_was_not_allowed_and_exec_errors_are_synchronous)
{
	const char *argv[] = { "x", NULL }, *envp[] = { NULL };
	struct spawnproc_opts o = { .command = "/bin/true", .argv = argv, .envp = envp };
	struct exit_seen x = { 0 };
	char err[256];
	pid_t pid;

	ck_assert_int_eq(spawner_allow("/bin/sh", err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_seal(err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_start(&o, exit_cb, &x, &pid, err, sizeof(err)), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "not a program this orchestrator may start"));
	/* a missing working directory fails the start itself */
	o.command = "/bin/sh";
	o.cwd = "/no/such/dir";
	ck_assert_int_eq(spawner_start(&o, exit_cb, &x, &pid, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/no/such/dir"));
	/* what spawner_start does not take */
	o.cwd = NULL;
	o.namespaces = 1;
	ck_assert_int_eq(spawner_start(&o, exit_cb, &x, &pid, err, sizeof(err)), -EINVAL);
	/* the spawner is still there */
	o.namespaces = 0;
	argv[0] = "sh";
	ck_assert_int_eq(spawner_start(&o, exit_cb, &x, &pid, err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_attach(loop), 0);
	ck_assert(run_until_exit(&x.count));
}
END_TEST

START_TEST(stop_terms_then_kills_and_forgets)
{
	struct exit_seen x = { 0 }, y = { 0 };
	char err[256];
	pid_t a, b;
	int rc;

	ck_assert_int_eq(spawner_allow("/bin/sh", err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_seal(err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_attach(loop), 0);
	a = start_sh("exec sleep 60", -1, &x, err, sizeof(err), &rc);
	ck_assert_int_eq(rc, 0);
	b = start_sh("trap '' TERM; sleep 60 & wait", -1, &y, err, sizeof(err), &rc);
	ck_assert_int_eq(rc, 0);
	usleep(100 * 1000); /* the trap is set */
	spawner_stop(a, 5000);
	spawner_stop(b, 200); /* ignores SIGTERM: SIGKILL after 200 ms */
	ck_assert(gone(a));
	ck_assert(gone(b));
	run_for(300); /* nothing comes: stopped ones are forgotten */
	ck_assert_int_eq(x.count + y.count, 0);
}
END_TEST

/* The orchestrator goes away: everything it started is stopped (SIGKILL for
 * what ignores SIGTERM) and what was registered is removed. */
START_TEST(at_the_end_children_stop_and_registered_paths_go)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char err[256], sock[128], sub[128], other[128];
	struct exit_seen x = { 0 };
	pid_t a, b, spawner = spawner_pid();
	int fd, rc;

	snprintf(sock, sizeof(sock), "%s/client.sock", dir);
	snprintf(sub, sizeof(sub), "%s/run", dir);
	snprintf(other, sizeof(other), "%s/keep.txt", dir);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(sa.sun_path, sock, strlen(sock));
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/run/e-1", dir);
	ck_assert_int_eq(mkdir(sa.sun_path, 0700), 0);
	ck_assert_int_eq(close(open(other, O_WRONLY | O_CREAT | O_CLOEXEC, 0600)), 0);
	ck_assert_int_eq(spawner_remove_at_exit(sock, err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_remove_at_exit(sub, err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_remove_at_exit(other, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(spawner_allow("/bin/sh", err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_seal(err, sizeof(err)), 0);
	a = start_sh("exec sleep 60", -1, &x, err, sizeof(err), &rc);
	b = start_sh("trap '' TERM; sleep 60 & wait", -1, &x, err, sizeof(err), &rc);
	usleep(100 * 1000);
	spawner_shutdown(BOUND_MS);
	ck_assert_int_eq(spawner_pid(), 0); /* reaped */
	ck_assert(gone(a) && gone(b) && gone(spawner));
	ck_assert_int_eq(access(sock, F_OK), -1);
	ck_assert_int_eq(access(sub, F_OK), -1);
	ck_assert_int_eq(access(other, F_OK), 0);
}
END_TEST

/* After the seal a setup request means the orchestrator is not itself: the
 * spawner stops what it started and ends. */
START_TEST(a_setup_request_after_the_seal_ends_it)
{
	struct exit_seen x = { 0 };
	char err[256];
	pid_t a, spawner = spawner_pid();
	int rc;

	ck_assert_int_eq(spawner_allow("/bin/sh", err, sizeof(err)), 0);
	ck_assert_int_eq(spawner_seal(err, sizeof(err)), 0);
	a = start_sh("exec sleep 60", -1, &x, err, sizeof(err), &rc);
	ck_assert_int_eq(rc, 0);
	ck_assert_int_lt(spawner_allow("/bin/sh", err, sizeof(err)), 0);
	ck_assert(gone(a));
	ck_assert(reaped(spawner));
	ck_assert_int_lt(start_sh("true", -1, &x, err, sizeof(err), &rc), 1);
	ck_assert_int_lt(rc, 0);
}
END_TEST

/* ---- a hostile peer on the spawner's own socket ---- */

static void send_raw(int fd, const void *p, size_t n) { (void)!send(fd, p, n, MSG_NOSIGNAL); }

static int spawner_status_after(void (*attack)(int fd))
{
	int sv[2], st = -1;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		spawner_proc_main(sv[1]);
	}
	close(sv[1]);
	attack(sv[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid); /* it ends by itself */
	close(sv[0]);
	return st;
}

static void garbage(int fd) { send_raw(fd, "\x04\0\0\0\x01\0\0\0\xff\xff\xff\xff", 12); }
static void unknown_type(int fd) { send_raw(fd, "\x63\0\0\0\x01\0\0\0", 8); }

static void undeclared_fds(int fd)
{
	struct spw_out o = { 0 };
	int fds[2] = { 0, 1 };

	spw_begin(&o, SPW_SEAL, 1);
	ck_assert_int_eq(spw_send(fd, &o, fds, 2), 0);
	spw_out_free(&o);
}

static void start_unallowed_then_flood(int fd)
{
	struct spw_out o = { 0 };
	char ans[SPW_MSG_MAX];

	spw_begin(&o, SPW_START, 7);
	spw_put_str(&o, "/bin/sh");
	spw_put_str(&o, "");
	spw_put_u32(&o, 0);
	spw_put_u32(&o, 1);
	spw_put_str(&o, "sh");
	spw_put_u32(&o, 0);
	spw_put_u32(&o, 0);
	ck_assert_int_eq(spw_send(fd, &o, NULL, 0), 0);
	ck_assert_int_gt(recv(fd, ans, sizeof(ans), 0), 8); /* refused, answered */
	spw_out_free(&o);
	spw_begin(&o, SPW_STOP, 0);
	spw_put_u32(&o, 1); /* init: not one of its children, ignored */
	spw_put_u32(&o, 10);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(spw_send(fd, &o, NULL, 0), 0);
	spw_out_free(&o);
	garbage(fd);
}

START_TEST(a_hostile_peer_ends_the_spawner)
{
	int st;

	st = spawner_status_after(garbage);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	st = spawner_status_after(unknown_type);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	st = spawner_status_after(undeclared_fds);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
	st = spawner_status_after(start_unallowed_then_flood);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1);
}
END_TEST

static Suite *spawner_suite(void)
{
	Suite *s = suite_create("spawner");
	TCase *tc = tcase_create("spawner");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, starts_allowed_programs_and_reports_their_exit);
	tcase_add_test(tc, refuses_what_was_not_allowed_and_exec_errors_are_synchronous);
	tcase_add_test(tc, stop_terms_then_kills_and_forgets);
	tcase_add_test(tc, at_the_end_children_stop_and_registered_paths_go);
	tcase_add_test(tc, a_setup_request_after_the_seal_ends_it);
	tcase_add_test(tc, a_hostile_peer_ends_the_spawner);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(spawner_suite)
