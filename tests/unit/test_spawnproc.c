/* test_spawnproc.c - spawnproc_* against real processes (/bin/sh one-liners
 * whose output the test reads back through a pipe). */
#include "spawnproc.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *const clean_env[] = { "PATH=/usr/bin:/bin", "ONLY=this", NULL };

/* Runs `sh -c script` with stdout on a pipe (and extra fds), returns what
 * it printed (caller frees) and its wait status. */
static char *run_sh(const char *script, struct spawnproc_opts *o, int *wstatus)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	struct spawnproc_fd fds[SPAWNPROC_MAX_FDS];
	char err[512], *buf = xcalloc(1, 65536);
	size_t len = 0, n = 0;
	int p[2];
	pid_t pid;
	ssize_t r;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	for (size_t i = 0; i < o->n_fds; i++)
		fds[n++] = o->fds[i];
	fds[n++] = (struct spawnproc_fd){ p[1], 1 };
	o->command = "sh";
	o->argv = argv;
	o->fds = fds;
	o->n_fds = n;
	o->flags |= SPAWNPROC_SEARCH_PATH;
	ck_assert_msg(spawnproc_start(o, &pid, err, sizeof(err)) == 0, "%s", err);
	close(p[1]);
	while ((r = read(p[0], buf + len, 65535 - len)) > 0)
		len += (size_t)r;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, wstatus, 0), pid);
	return buf;
}

START_TEST(test_env_exact_and_fds_closed)
{
	struct spawnproc_opts o = { .envp = clean_env };
	int leak = open("/dev/null", O_RDONLY); /* not CLOEXEC: must still not leak */
	char script[256], *out;
	int st;

	ck_assert_int_ge(leak, 0);
	snprintf(script, sizeof(script), "env | sort; [ -e /proc/self/fd/%d ] && echo LEAK", leak);
	out = run_sh(script, &o, &st);
	ck_assert(WIFEXITED(st));
	ck_assert_ptr_nonnull(strstr(out, "ONLY=this\n"));
	ck_assert_ptr_null(strstr(out, "LEAK"));
	ck_assert_ptr_null(strstr(out, "HOME="));
	free(out);
	close(leak);
}
END_TEST

/* Sources that sit on each other's targets (3 -> 4 and 4 -> 3) arrive
 * intact, and /dev/null can be asked for. */
START_TEST(test_fd_map_swaps)
{
	int a[2], b[2], st;
	struct spawnproc_fd fds[] = { { -1, 3 }, { -1, 4 }, { SPAWNPROC_DEVNULL, 0 } };
	struct spawnproc_opts o = { .fds = fds, .n_fds = 3, .envp = clean_env };
	char *out;

	ck_assert_int_eq(pipe2(a, O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(b, O_CLOEXEC), 0);
	ck_assert_int_eq(write(a[1], "from-a", 6), 6);
	ck_assert_int_eq(write(b[1], "from-b", 6), 6);
	close(a[1]);
	close(b[1]);
	/* a's read end to child fd 4, b's to child fd 3. */
	fds[0].fd = b[0];
	fds[1].fd = a[0];
	out = run_sh("echo \"3=$(cat <&3) 4=$(cat <&4) 0=$(cat)\"", &o, &st);
	ck_assert_str_eq(out, "3=from-b 4=from-a 0=\n");
	free(out);
	close(a[0]);
	close(b[0]);
}
END_TEST

START_TEST(test_cwd_fd_and_session)
{
	char dir[] = "/tmp/tandem-spawn-XXXXXX", *out, *want;
	struct spawnproc_opts o = { .envp = clean_env, .flags = SPAWNPROC_NEW_SESSION };
	int fd, st;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	o.cwd_fd = fd;
	o.cwd = "/nonexistent"; /* cwd_fd wins */
	out = run_sh("pwd; ps -o sid= -p $$; echo $$", &o, &st);
	want = xasprintf("%s\n", dir);
	ck_assert_msg(strncmp(out, want, strlen(want)) == 0, "%s", out);
	{
		int sid = 0, pid = 1;

		ck_assert_int_eq(sscanf(out + strlen(want), " %d %d", &sid, &pid), 2);
		ck_assert_int_eq(sid, pid); /* a session leader */
	}
	free(want);
	free(out);
	close(fd);
	rmdir(dir);
}
END_TEST

START_TEST(test_signals_reset)
{
	struct spawnproc_opts o = { .envp = clean_env };
	sigset_t block, old;
	char *out;
	int st;

	signal(SIGUSR1, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGUSR2);
	sigprocmask(SIG_BLOCK, &block, &old);
	out = run_sh("grep -E '^Sig(Blk|Ign)' /proc/self/status", &o, &st);
	ck_assert_ptr_nonnull(strstr(out, "SigBlk:\t0000000000000000"));
	ck_assert_ptr_nonnull(strstr(out, "SigIgn:\t0000000000000000"));
	free(out);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR1, SIG_DFL);
}
END_TEST

START_TEST(test_exec_errors_are_synchronous)
{
	const char *argv[] = { "x", NULL };
	struct spawnproc_opts o = { .command = "tandem-no-such-program", .argv = argv,
				    .envp = clean_env, .flags = SPAWNPROC_SEARCH_PATH };
	char err[512];
	pid_t pid = 0;

	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "cannot execute 'tandem-no-such-program'"));
	o.command = "/etc/passwd"; /* not executable */
	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -EACCES);
	o.command = "/bin/true";
	o.cwd = "/nonexistent/dir";
	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "cannot change directory to '/nonexistent/dir'"));
	ck_assert_int_eq(pid, 0);
	/* no zombie left behind by the failures */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

static int hook_fail(void *arg, int *step)
{
	(void)arg;
	*step = 7;
	return EPERM;
}

static const char *hook_describe(int step, void *arg)
{
	(void)arg;
	return step == 7 ? "apply the test rule" : NULL;
}

static int hook_mark(void *arg, int *step)
{
	(void)step;
	/* async-signal-safe: write to an fd the parent gave us */
	(void)!write(*(int *)arg, "hooked", 6);
	return 0;
}

START_TEST(test_hook)
{
	const char *argv[] = { "true", NULL };
	struct spawnproc_hook h = { hook_fail, hook_describe, NULL };
	struct spawnproc_opts o = { .command = "/bin/true", .argv = argv, .envp = clean_env,
				    .hook = &h };
	char err[512], buf[16] = { 0 };
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -EPERM);
	ck_assert_str_eq(err, "cannot apply the test rule for '/bin/true': Operation not permitted");
	/* The hook still sees the parent's descriptors; the program does not. */
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	h = (struct spawnproc_hook){ hook_mark, NULL, &p[1] };
	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), 0);
	close(p[1]);
	ck_assert_int_eq(read(p[0], buf, sizeof(buf) - 1), 6);
	ck_assert_str_eq(buf, "hooked");
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(p[0]);
}
END_TEST

START_TEST(test_pid_namespace)
{
	struct spawnproc_opts o = { .envp = clean_env, .namespaces = CLONE_NEWPID };
	char *out;
	int st;

	if (geteuid() != 0)
		return; /* CLONE_NEWPID needs CAP_SYS_ADMIN; covered where tests run as root */
	out = run_sh("echo $$", &o, &st);
	ck_assert_str_eq(out, "1\n");
	free(out);
}
END_TEST

/* SPAWNPROC_INIT: the init stays as the program's parent (the program is
 * vforked from it); an exec or hook failure in the program is still a
 * synchronous error, and the program's exit status reaches the report
 * pipe. */
START_TEST(test_init_reports_and_fails_synchronously)
{
	const char *argv[] = { "sh", "-c", "exit 7", NULL };
	struct spawnproc_hook h = { hook_fail, hook_describe, NULL };
	int report = -1, wstatus = 0, st;
	struct spawnproc_opts o = { .command = "/bin/sh", .argv = argv, .envp = clean_env,
				    .flags = SPAWNPROC_INIT, .report_fd = &report,
				    .namespaces = geteuid() == 0 ? CLONE_NEWPID : 0 };
	char err[512];
	pid_t pid = 0;

	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), 0);
	ck_assert_int_ge(report, 0);
	ck_assert_int_eq(read(report, &wstatus, sizeof(wstatus)), (ssize_t)sizeof(wstatus));
	ck_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 7);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 7);
	close(report);
	report = -1;
	pid = 0;
	o.command = "tandem-no-such-program";
	o.flags |= SPAWNPROC_SEARCH_PATH;
	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "cannot execute 'tandem-no-such-program'"));
	o.command = "/bin/sh";
	o.hook = &h;
	ck_assert_int_eq(spawnproc_start(&o, &pid, err, sizeof(err)), -EPERM);
	ck_assert_str_eq(err, "cannot apply the test rule for '/bin/sh': Operation not permitted");
	ck_assert_int_eq(pid, 0);
	ck_assert_int_eq(report, -1);
	/* neither the failed programs nor their inits are left behind */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
}
END_TEST

START_TEST(test_find)
{
	const char *env[] = { "PATH=/nonexistent:/bin", NULL };
	char *p = NULL;

	ck_assert_int_eq(spawnproc_find("sh", env, &p), 0);
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p[0], '/');
	ck_assert_int_eq(access(p, X_OK), 0);
	free(p);
	ck_assert_int_eq(spawnproc_find("tandem-no-such-program", env, &p), -ENOENT);
	ck_assert_int_eq(spawnproc_find("/etc/passwd", env, &p), -EACCES);
}
END_TEST

static Suite *spawnproc_suite(void)
{
	Suite *s = suite_create("spawnproc");
	TCase *tc = tcase_create("spawnproc");

	tcase_add_test(tc, test_env_exact_and_fds_closed);
	tcase_add_test(tc, test_fd_map_swaps);
	tcase_add_test(tc, test_cwd_fd_and_session);
	tcase_add_test(tc, test_signals_reset);
	tcase_add_test(tc, test_exec_errors_are_synchronous);
	tcase_add_test(tc, test_hook);
	tcase_add_test(tc, test_pid_namespace);
	tcase_add_test(tc, test_init_reports_and_fails_synchronously);
	tcase_add_test(tc, test_find);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(spawnproc_suite)
