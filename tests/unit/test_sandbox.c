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
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif

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

/* ---- sandbox_confine_self: a forked child confines itself ---- */

static void *thread_fn(void *arg) { return arg; }

static bool under_valgrind(void)
{
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
	return RUNNING_ON_VALGRIND;
#endif
#endif
	return false;
}

static void *sleeper_fn(void *arg)
{
	pause();
	return arg;
}

/* In the child: what each probe gave, appended to buf. */
static void probe(char *buf, size_t len, const char *name, int rc)
{
	size_t n = strlen(buf);

	snprintf(buf + n, len - n, "%s=%s ", name, rc >= 0 ? "ok" : strerror(errno));
}

static void confined_child(int out)
{
	char p[256], buf[2048] = "", err[256], desc[160];
	struct sandbox_path paths[2];
	struct sandbox_self_spec spec = { .paths = paths, .n_paths = 2, .scope_signals = true,
					  .seccomp = true };
	pthread_t th;
	pid_t kid;
	int fd;

	snprintf(p, sizeof(p), "%s/root", dir);
	paths[0] = (struct sandbox_path){ xstrdup(p), LL_READ };
	snprintf(p, sizeof(p), "%s/private", dir);
	paths[1] = (struct sandbox_path){ xstrdup(p), LL_READ_WRITE };
	if (sandbox_confine_self(&spec, desc, sizeof(desc), err, sizeof(err)) < 0) {
		dprintf(out, "FAILED %s", err);
		_exit(1);
	}
	snprintf(buf, sizeof(buf), "desc=[%s] ", sandbox_self_describe());
	snprintf(p, sizeof(p), "%s/root/in.txt", dir);
	probe(buf, sizeof(buf), "read-root", fd = open(p, O_RDONLY | O_CLOEXEC));
	safe_close(fd);
	snprintf(p, sizeof(p), "%s/outside/out.txt", dir);
	probe(buf, sizeof(buf), "read-outside", fd = open(p, O_RDONLY | O_CLOEXEC));
	safe_close(fd);
	snprintf(p, sizeof(p), "%s/private/new", dir);
	probe(buf, sizeof(buf), "write-private",
	      fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	safe_close(fd);
	snprintf(p, sizeof(p), "%s/root/new", dir);
	probe(buf, sizeof(buf), "write-root", fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	safe_close(fd);
	errno = 0;
	probe(buf, sizeof(buf), "thread", -(pthread_create(&th, NULL, thread_fn, NULL) != 0));
	pthread_join(th, NULL);
	probe(buf, sizeof(buf), "personality-query", personality(0xffffffff));
	probe(buf, sizeof(buf), "personality-set", personality(PER_LINUX32));
	probe(buf, sizeof(buf), "unshare", unshare(CLONE_NEWUSER));
	probe(buf, sizeof(buf), "mount", mount("none", "/mnt", "tmpfs", 0, NULL));
	probe(buf, sizeof(buf), "signal-outside", kill(getppid(), 0));
	kid = fork();
	if (kid == 0)
		_exit(0);
	if (kid > 0)
		waitpid(kid, NULL, 0);
	probe(buf, sizeof(buf), "fork", kid);
	dprintf(out, "%s", buf);
	buf[0] = '\0'; /* an exec that works ends the probes here */
	probe(buf, sizeof(buf), "exec", execl("/bin/true", "true", (char *)NULL));
	dprintf(out, "%s", buf);
	_exit(0);
}

START_TEST(test_confine_self)
{
	char out[4096] = { 0 };
	size_t len = 0;
	ssize_t n;
	int p[2], st;
	pid_t pid;

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(p[0]);
		confined_child(p[1]);
	}
	close(p[1]);
	while ((n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
		len += (size_t)n;
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", out);
	ck_assert_msg(strstr(out, "thread=ok"), "%s", out);
	if (under_valgrind()) { /* it neither knows Landlock nor installs filters */
		fprintf(stderr, "SKIP: under valgrind: %s\n", out);
		return;
	}
	/* seccomp, whatever the kernel's Landlock */
	ck_assert_msg(strstr(out, "personality-query=ok"), "%s", out);
	ck_assert_msg(strstr(out, "personality-set=Operation not permitted"), "%s", out);
	ck_assert_msg(strstr(out, "unshare=Operation not permitted"), "%s", out);
	ck_assert_msg(strstr(out, "mount=Operation not permitted"), "%s", out);
	if (!sandbox_sanitizer_build()) {
		ck_assert_msg(strstr(out, "fork=Operation not permitted"), "%s", out);
		ck_assert_msg(strstr(out, "exec=Operation not permitted"), "%s", out);
	}
	if (abi <= 0) {
		fprintf(stderr, "SKIP: no Landlock here (%s): seccomp only\n", strerror(-abi));
		ck_assert_msg(strstr(out, "desc=[no Landlock"), "%s", out);
		return;
	}
	ck_assert_msg(strstr(out, "desc=[landlock ABI"), "%s", out);
	ck_assert_msg(strstr(out, "read-root=ok"), "%s", out);
	ck_assert_msg(strstr(out, "read-outside=Permission denied"), "%s", out);
	ck_assert_msg(strstr(out, "write-private=ok"), "%s", out);
	ck_assert_msg(strstr(out, "write-root=Permission denied"), "%s", out);
	if (abi >= 6)
		ck_assert_msg(strstr(out, "signal-outside=Operation not permitted"), "%s", out);
}
END_TEST

/* Landlock would leave running threads unconfined: refused. */
START_TEST(test_confine_self_refuses_threads)
{
	struct sandbox_self_spec spec = { .seccomp = true };
	char err[256] = "", desc[64];
	pthread_t th;
	pid_t pid;
	int st, p[2];

	ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	if (pid == 0) {
		int rc;

		pthread_create(&th, NULL, sleeper_fn, NULL);
		rc = sandbox_confine_self(&spec, desc, sizeof(desc), err, sizeof(err));
		dprintf(p[1], "%d %s", rc, err);
		_exit(0);
	}
	close(p[1]);
	memset(err, 0, sizeof(err));
	ck_assert_int_gt(read(p[0], err, sizeof(err) - 1), 0);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(strncmp(err, "-16 ", 4) == 0 && strstr(err, "threads"), "%s", err);
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
	tcase_add_test(tc, test_confine_self);
	tcase_add_test(tc, test_confine_self_refuses_threads);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(sandbox_suite)
