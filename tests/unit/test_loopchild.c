/* test_loopchild.c - loop_child_add() and friends (common/loop.c) against
 * real child processes. Kept apart from test_loop.c, which covers the rest
 * of the loop. */
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS 20000u /* hang guard only */

struct seen {
	struct loop *l;
	int calls;
	pid_t pid;
	int wstatus;
	char state; /* the process state during the callback: 'Z' expected */
	bool del_inside;
	struct loop_child *w;
};

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *rp;
	FILE *f;
	char st = '?';

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '-';
	if (fgets(buf, sizeof(buf), f) && (rp = strrchr(buf, ')')))
		st = rp[2];
	fclose(f);
	return st;
}

static void seen_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg)
{
	struct seen *s = arg;

	ck_assert_ptr_eq(w, s->w);
	s->calls++;
	s->pid = pid;
	s->wstatus = wstatus;
	s->state = proc_state(pid);
	ck_assert(loop_child_watched(s->l, pid) == false);
	if (s->del_inside)
		loop_child_del(w);
	loop_stop(s->l);
}

static void guard_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	ck_abort_msg("no exit seen within %u ms", WAIT_MS);
	(void)arg;
}

static pid_t spawn(const char *script)
{
	pid_t pid = fork();

	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", script, (char *)NULL);
		_exit(126);
	}
	ck_assert_int_gt(pid, 0);
	return pid;
}

static void run_once(struct loop *l, struct seen *s)
{
	struct loop_timer *g = loop_timer_add(l, WAIT_MS, guard_cb, s);

	loop_run(l);
	loop_timer_cancel(g);
}

START_TEST(test_exit_status_zombie_then_reaped)
{
	struct loop *l = loop_new();
	struct seen s = { .l = l };
	pid_t pid = spawn("exit 7");

	s.w = loop_child_add(l, pid, seen_cb, &s);
	ck_assert_ptr_nonnull(s.w);
	ck_assert(loop_child_watched(l, pid));
	run_once(l, &s);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_int_eq(s.pid, pid);
	ck_assert(WIFEXITED(s.wstatus) && WEXITSTATUS(s.wstatus) == 7);
	ck_assert_int_eq(s.state, 'Z'); /* still holding its pid during the callback */
	/* reaped by the loop afterwards */
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	loop_free(l);
}
END_TEST

START_TEST(test_signal_status_and_del_inside)
{
	struct loop *l = loop_new();
	struct seen s = { .l = l, .del_inside = true };
	pid_t pid = spawn("kill -TERM $$; sleep 5");

	s.w = loop_child_add(l, pid, seen_cb, &s);
	run_once(l, &s);
	ck_assert_int_eq(s.calls, 1);
	ck_assert(WIFSIGNALED(s.wstatus) && WTERMSIG(s.wstatus) == SIGTERM);
	ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), -1);
	loop_free(l);
}
END_TEST

/* A deleted watch leaves the child to its owner: unreaped, no callback. */
START_TEST(test_del_before_exit)
{
	struct loop *l = loop_new();
	struct seen s = { .l = l };
	pid_t pid = spawn("exit 3");
	int st;

	s.w = loop_child_add(l, pid, seen_cb, &s);
	loop_child_del(s.w);
	ck_assert(!loop_child_watched(l, pid));
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 3);
	ck_assert_int_eq(s.calls, 0);
	loop_free(l);
}
END_TEST

/* Reaped behind the loop's back: -1, and the loop reaps nothing. */
START_TEST(test_reaped_elsewhere)
{
	struct loop *l = loop_new();
	struct seen s = { .l = l };
	pid_t pid = spawn("exit 0");

	s.w = loop_child_add(l, pid, seen_cb, &s);
	ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
	run_once(l, &s);
	ck_assert_int_eq(s.calls, 1);
	ck_assert_int_eq(s.wstatus, -1);
	loop_free(l);
}
END_TEST

/* Many at once, exiting in any order: each callback once, for its pid. */
struct many {
	int left;
	struct loop *l;
};

static void count_cb(struct loop_child *w, pid_t pid, int wstatus, void *arg)
{
	struct many *m = arg;

	(void)w;
	ck_assert(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == (pid & 0x7f));
	if (--m->left == 0)
		loop_stop(m->l);
}

START_TEST(test_many)
{
	struct many m = { 20, loop_new() };
	struct loop_timer *g;

	for (int i = 0; i < 20; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			usleep((unsigned)(20 - i) * 2000u);
			_exit(getpid() & 0x7f);
		}
		ck_assert_ptr_nonnull(loop_child_add(m.l, pid, count_cb, &m));
	}
	g = loop_timer_add(m.l, WAIT_MS, guard_cb, NULL);
	loop_run(m.l);
	loop_timer_cancel(g);
	ck_assert_int_eq(m.left, 0);
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	loop_free(m.l);
}
END_TEST

START_TEST(test_bad_arguments)
{
	struct loop *l = loop_new();

	ck_assert_ptr_null(loop_child_add(l, 0, seen_cb, NULL));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(loop_child_add(l, getpid(), NULL, NULL));
	loop_child_del(NULL);
	loop_free(l);
}
END_TEST

static Suite *loopchild_suite(void)
{
	Suite *s = suite_create("loopchild");
	TCase *tc = tcase_create("loop_child");

	tcase_add_test(tc, test_exit_status_zombie_then_reaped);
	tcase_add_test(tc, test_signal_status_and_del_inside);
	tcase_add_test(tc, test_del_before_exit);
	tcase_add_test(tc, test_reaped_elsewhere);
	tcase_add_test(tc, test_many);
	tcase_add_test(tc, test_bad_arguments);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(loopchild_suite)
