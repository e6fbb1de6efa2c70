/* test_sandbox.c - sandbox_* and landlock_* against real children: a
 * /bin/sh run inside the box tries to read, write and execute, and the
 * test reads what held back through a pipe. Skips (loudly) where the
 * kernel has no Landlock. */
#include "landlock.h"
#include "sandbox.h"
#include "spawnproc.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64];
static int abi;

static void setup(void)
{
	char p[256];
	FILE *f;

	abi = landlock_abi();
	snprintf(dir, sizeof(dir), "/tmp/tandem-sandbox-XXXXXX"); /* CK_FORK=no runs reuse it */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	for (const char *const *d = (const char *const[]){ "root", "private", "outside", NULL }; *d;
	     d++) {
		snprintf(p, sizeof(p), "%s/%s", dir, *d);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	}
	snprintf(p, sizeof(p), "%s/root/in.txt", dir);
	f = fopen(p, "w");
	fputs("inside", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/outside/out.txt", dir);
	f = fopen(p, "w");
	fputs("outside", f);
	fclose(f);
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int open_dir(const char *sub)
{
	char p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	return open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/* Runs script in the box and returns its stdout (caller frees). */
static char *boxed(const struct sandbox_spec *spec, const char *script)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct sandbox *b = NULL;
	struct spawnproc_fd fds[2];
	struct spawnproc_opts o = { .command = "/bin/sh", .argv = argv, .envp = envp,
				    .fds = fds, .n_fds = 2 };
	char err[512], *out = xcalloc(1, 4096);
	size_t len = 0;
	ssize_t n;
	int p[2];
	pid_t pid;

	ck_assert_msg(sandbox_new(spec, &b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fds[0] = (struct spawnproc_fd){ p[1], 1 };
	fds[1] = (struct spawnproc_fd){ p[1], 2 };
	o.hook = sandbox_hook(b);
	ck_assert_msg(spawnproc_start(&o, &pid, err, sizeof(err)) == 0, "%s", err);
	close(p[1]);
	while ((n = read(p[0], out + len, 4095 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	sandbox_free(b);
	return out;
}

START_TEST(test_landlock_box)
{
	struct sandbox_spec s = { .pids_procs_fd = -1 };
	char script[1024], *out;

	if (abi <= 0) {
		fprintf(stderr, "SKIP: no Landlock here (%s)\n", strerror(-abi));
		return;
	}
	s.landlock_abi = abi;
	s.root_fd = open_dir("root");
	s.private_fd = open_dir("private");
	snprintf(script, sizeof(script),
		 "D=%s; cat $D/root/in.txt; echo;"
		 "cat $D/outside/out.txt || echo OUT-DENIED;"
		 "echo x > $D/private/w && echo PRIV-OK;"
		 "echo x > $D/root/w || echo ROOT-RO;"
		 "echo x > $D/outside/w || echo OUT-RO;"
		 "cat /etc/shadow >/dev/null 2>&1 || echo SHADOW-DENIED;"
		 /* the shell's own /proc entry (read by the shell itself) */
		 "while read k v; do [ \"$k\" = NoNewPrivs: ] && echo NNP=$v; done "
		 "< /proc/self/status;"
		 "cat /proc/1/environ >/dev/null 2>&1 || echo PROC-1-DENIED;"
		 "cat /proc/self/status >/dev/null 2>&1 || echo CHILD-NO-PROC",
		 dir);
	out = boxed(&s, script);
	ck_assert_msg(strstr(out, "inside\n"), "%s", out);
	ck_assert_msg(strstr(out, "OUT-DENIED"), "%s", out);
	ck_assert_msg(strstr(out, "PRIV-OK"), "%s", out);
	ck_assert_msg(strstr(out, "ROOT-RO"), "%s", out);
	ck_assert_msg(strstr(out, "OUT-RO"), "%s", out);
	ck_assert_msg(strstr(out, "SHADOW-DENIED"), "%s", out);
	ck_assert_msg(strstr(out, "NNP=1"), "%s", out);
	ck_assert_msg(strstr(out, "PROC-1-DENIED"), "%s", out);
	ck_assert_msg(strstr(out, "CHILD-NO-PROC"), "%s", out);
	free(out);
	close(s.root_fd);
	close(s.private_fd);
}
END_TEST

START_TEST(test_grants_and_limits)
{
	struct sandbox_spec s = { .pids_procs_fd = -1, .max_open_files = 64,
				  .max_address_space = 1ull << 32 };
	int grant;
	char script[512], *out;

	if (abi <= 0)
		return;
	s.landlock_abi = abi;
	s.root_fd = -1;
	s.private_fd = -1;
	grant = open_dir("outside");
	s.read_fds = &grant;
	s.n_read = 1;
	snprintf(script, sizeof(script),
		 "cat %s/outside/out.txt; echo; ulimit -n; ulimit -v", dir);
	out = boxed(&s, script);
	ck_assert_msg(strstr(out, "outside\n64\n4194304\n"), "%s", out);
	free(out);
	close(grant);
}
END_TEST

/* In new PID and mount namespaces under an init, the box gets a /proc of
 * its own: its processes only, readable by all of them. */
START_TEST(test_private_proc)
{
	struct sandbox_spec s = { .pids_procs_fd = -1, .private_proc = true };
	const char *argv[] = { "sh", "-c",
			       "ls /proc | grep -c '^[0-9]'; cat /proc/self/status | grep -c Pid", NULL };
	const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
	struct sandbox *b = NULL;
	struct spawnproc_fd fds[1];
	int p[2], report = -1;
	struct spawnproc_opts o = { .command = "/bin/sh", .argv = argv, .envp = envp,
				    .fds = fds, .n_fds = 1,
				    .flags = SPAWNPROC_INIT,
				    .namespaces = CLONE_NEWPID,
				    .report_fd = &report };
	char err[512], out[256] = { 0 };
	pid_t pid;

	if (abi <= 0 || geteuid() != 0) {
		fprintf(stderr, "SKIP: needs Landlock and root\n");
		return;
	}
	s.landlock_abi = abi;
	s.root_fd = s.private_fd = -1;
	ck_assert_msg(sandbox_new(&s, &b, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	fds[0] = (struct spawnproc_fd){ p[1], 1 };
	o.hook = sandbox_hook(b);
	ck_assert_msg(spawnproc_start(&o, &pid, err, sizeof(err)) == 0, "%s", err);
	close(p[1]);
	for (size_t len = 0;;) {
		ssize_t n = read(p[0], out + len, sizeof(out) - 1 - len);

		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	close(report);
	sandbox_free(b);
	for (char *q = out; *q; q++)
		*q = *q == '\n' ? '|' : *q; /* one line in the TAP message */
	/* init, sh, ls (and grep): a handful, not the machine's hundreds; a
	 * child (cat) reads its own /proc/self */
	{
		int n = 0, pids = 0;

		ck_assert_msg(sscanf(out, "%d|%d", &n, &pids) == 2, "%s", out);
		ck_assert_int_le(n, 6);
		ck_assert_int_ge(pids, 1);
	}
}
END_TEST

/* Without Landlock rules the box still limits and marks (containment). */
START_TEST(test_no_landlock)
{
	/* RLIMIT_NPROC, not NOFILE: valgrind refuses a NOFILE below its own fds */
	struct sandbox_spec s = { .pids_procs_fd = -1, .max_processes = 77, .subreaper = true };
	char script[256], *out;

	snprintf(script, sizeof(script),
		 "cat %s/outside/out.txt; echo; grep -o 'Max processes *77 *77' /proc/$$/limits",
		 dir);
	out = boxed(&s, script);
	ck_assert_msg(strstr(out, "outside\nMax processes"), "%s", out);
	free(out);
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("sandbox");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_landlock_box);
	tcase_add_test(tc, test_grants_and_limits);
	tcase_add_test(tc, test_no_landlock);
	tcase_add_test(tc, test_private_proc);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(sandbox_suite)
