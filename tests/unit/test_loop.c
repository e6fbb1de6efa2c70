/* test_loop.c - event loop: io, timers, signals, posts, teardown. */
#include "loop.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static void make_pipe(int p[2])
{
	ck_assert_int_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
}

/* ---- io ---- */

struct io_ctx {
	struct loop *l;
	char buf[16];
	ssize_t got;
	uint32_t revents;
	int calls;
};

static void read_once_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct io_ctx *c = arg;

	(void)io;
	c->calls++;
	c->revents = revents;
	c->got = read(fd, c->buf, sizeof(c->buf));
	loop_stop(c->l);
}

START_TEST(io_pipe_readiness)
{
	struct io_ctx c = { .l = loop_new() };
	struct loop_io *io;
	int p[2];

	make_pipe(p);
	io = loop_io_add(c.l, p[0], LOOP_READ, read_once_cb, &c);
	ck_assert_ptr_nonnull(io);
	ck_assert_int_eq(write(p[1], "hello", 5), 5);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.got, 5);
	ck_assert(c.revents & LOOP_READ);
	ck_assert_mem_eq(c.buf, "hello", 5);
	loop_io_del(io);
	loop_free(c.l);
	close(p[0]);
	close(p[1]);
}
END_TEST

START_TEST(io_hup_reported)
{
	struct io_ctx c = { .l = loop_new() };
	struct loop_io *io;
	int p[2];

	make_pipe(p);
	io = loop_io_add(c.l, p[0], LOOP_READ, read_once_cb, &c);
	close(p[1]);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert(c.revents & LOOP_HUP);
	ck_assert_int_eq(c.got, 0);
	loop_io_del(io);
	loop_free(c.l);
	close(p[0]);
}
END_TEST

START_TEST(io_add_rejected_fd)
{
	struct loop *l = loop_new();
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int p[2];

	/* epoll refuses regular files and character devices like /dev/null
	 * report EPERM; a duplicate registration reports EEXIST. */
	errno = 0;
	ck_assert_ptr_null(loop_io_add(l, fd, LOOP_READ, read_once_cb, NULL));
	ck_assert_int_eq(errno, EPERM);
	make_pipe(p);
	ck_assert_ptr_nonnull(loop_io_add(l, p[0], LOOP_READ, read_once_cb, NULL));
	ck_assert_ptr_null(loop_io_add(l, p[0], LOOP_READ, read_once_cb, NULL));
	ck_assert_int_eq(errno, EEXIST);
	loop_free(l);
	close(fd);
	close(p[0]);
	close(p[1]);
}
END_TEST

static void del_self_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct io_ctx *c = arg;

	(void)fd;
	(void)revents;
	c->calls++;
	/* Deliberately leave the data unread: if the deletion did not take,
	 * level-triggered epoll would call us again (on a freed handle). */
	loop_io_del(io);
}

static void stop_timer_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	loop_stop(arg);
}

START_TEST(io_del_inside_own_callback)
{
	struct io_ctx c = { .l = loop_new() };
	int p[2];

	make_pipe(p);
	loop_io_add(c.l, p[0], LOOP_READ, del_self_cb, &c);
	ck_assert_int_eq(write(p[1], "x", 1), 1);
	/* Run a few iterations: the stop timer fires only after epoll had
	 * several chances to report the still-readable pipe again. */
	loop_timer_add(c.l, 30, stop_timer_cb, c.l);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls, 1);
	loop_free(c.l);
	close(p[0]);
	close(p[1]);
}
END_TEST

struct pair_ctx {
	struct loop *l;
	struct loop_io *io[2];
	int calls[2];
};

static void del_other_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct pair_ctx *c = arg;
	int me = io == c->io[0] ? 0 : 1;

	(void)fd;
	(void)revents;
	c->calls[me]++;
	loop_io_del(c->io[!me]);
	loop_io_del(io);
	c->io[0] = c->io[1] = NULL;
	loop_stop(c->l);
}

START_TEST(io_del_other_in_same_batch)
{
	struct pair_ctx c = { .l = loop_new() };
	int p[2], q[2];

	make_pipe(p);
	make_pipe(q);
	c.io[0] = loop_io_add(c.l, p[0], LOOP_READ, del_other_cb, &c);
	c.io[1] = loop_io_add(c.l, q[0], LOOP_READ, del_other_cb, &c);
	/* Both ready before the first epoll_wait: one batch carries both. */
	ck_assert_int_eq(write(p[1], "a", 1), 1);
	ck_assert_int_eq(write(q[1], "b", 1), 1);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls[0] + c.calls[1], 1);
	loop_free(c.l);
	close(p[0]);
	close(p[1]);
	close(q[0]);
	close(q[1]);
}
END_TEST

static void count_write_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	struct io_ctx *c = arg;

	(void)fd;
	c->calls++;
	c->revents = revents;
	ck_assert_int_eq(loop_io_mod(io, LOOP_READ), 0);
	loop_stop(c->l);
}

START_TEST(io_mod_switches_interest)
{
	struct io_ctx c = { .l = loop_new() };
	struct loop_io *io;
	int p[2];

	make_pipe(p);
	/* The write end of an empty pipe is writable, never readable. */
	io = loop_io_add(c.l, p[1], 0, count_write_cb, &c);
	ck_assert_int_eq(loop_io_mod(io, LOOP_WRITE), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert(c.revents & LOOP_WRITE);
	loop_io_del(io);
	loop_free(c.l);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* ---- timers ---- */

struct order_ctx {
	struct loop *l;
	int order[1100];
	int n;
	int expect;
	struct loop_timer *victim;
	int rearms;
};

struct tag {
	struct order_ctx *c;
	int id;
};

static void record_cb(struct loop_timer *t, void *arg)
{
	struct tag *g = arg;

	(void)t;
	g->c->order[g->c->n++] = g->id;
	if (g->c->n == g->c->expect)
		loop_stop(g->c->l);
}

/* Timers armed from one callback share the iteration's cached time, so
 * their expected order does not depend on how fast the machine is. */
static struct tag order_tags[5];

static void arm_five_cb(void *arg)
{
	struct order_ctx *c = arg;
	const uint64_t ms[5] = { 30, 10, 20, 10, 0 };

	for (int i = 0; i < 5; i++) {
		order_tags[i] = (struct tag){ c, i };
		loop_timer_add(c->l, ms[i], record_cb, &order_tags[i]);
	}
}

START_TEST(timers_fire_in_order)
{
	struct order_ctx c = { .l = loop_new(), .expect = 5 };
	const int want[5] = { 4, 1, 3, 2, 0 };

	ck_assert_int_eq(loop_post(c.l, arm_five_cb, &c), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.n, 5);
	/* By due time; equal delays in arming order. */
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(c.order[i], want[i]);
	loop_free(c.l);
}
END_TEST

static void cancel_victim_cb(struct loop_timer *t, void *arg)
{
	struct tag *g = arg;

	record_cb(t, arg);
	loop_timer_cancel(g->c->victim);
	g->c->victim = NULL;
}

static void cancelled_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	ck_abort_msg("cancelled timer fired");
}

static struct tag cancel_tags[2];

static void arm_cancel_case_cb(void *arg)
{
	struct order_ctx *c = arg;

	/* a and the victim are due in the same iteration; a fires first
	 * (armed first) and cancels the victim before it can fire. */
	cancel_tags[0] = (struct tag){ c, 1 };
	cancel_tags[1] = (struct tag){ c, 2 };
	loop_timer_add(c->l, 10, cancel_victim_cb, &cancel_tags[0]);
	c->victim = loop_timer_add(c->l, 10, cancelled_cb, NULL);
	loop_timer_add(c->l, 40, record_cb, &cancel_tags[1]);
}

START_TEST(timer_cancel)
{
	struct order_ctx c = { .l = loop_new(), .expect = 2 };
	struct loop_timer *gone;

	gone = loop_timer_add(c.l, 5, cancelled_cb, NULL);
	loop_timer_cancel(gone);
	loop_timer_cancel(NULL);
	ck_assert_int_eq(loop_post(c.l, arm_cancel_case_cb, &c), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.n, 2);
	ck_assert_int_eq(c.order[0], 1);
	ck_assert_int_eq(c.order[1], 2);
	ck_assert_ptr_null(c.victim);
	loop_free(c.l);
}
END_TEST

static void rearm_cb(struct loop_timer *t, void *arg)
{
	struct order_ctx *c = arg;

	c->order[c->n++] = (int)loop_now_ms(c->l);
	if (++c->rearms < 5)
		loop_timer_rearm(t, 2);
	else
		loop_stop(c->l);
}

START_TEST(timer_rearm_from_callback)
{
	struct order_ctx c = { .l = loop_new() };

	loop_timer_add(c.l, 0, rearm_cb, &c);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.rearms, 5);
	for (int i = 1; i < 5; i++)
		ck_assert_int_ge(c.order[i], c.order[i - 1] + 2);
	loop_free(c.l);
}
END_TEST

static struct tag rearm_tags[3];

static void arm_rearm_case_cb(void *arg)
{
	struct order_ctx *c = arg;
	struct loop_timer *t0, *t2;

	for (int i = 0; i < 3; i++)
		rearm_tags[i] = (struct tag){ c, i };
	t0 = loop_timer_add(c->l, 5, record_cb, &rearm_tags[0]);
	loop_timer_add(c->l, 20, record_cb, &rearm_tags[1]);
	t2 = loop_timer_add(c->l, 1000000, record_cb, &rearm_tags[2]);
	loop_timer_rearm(t0, 40); /* now later than [1] */
	loop_timer_rearm(t2, 0);  /* now the earliest */
}

START_TEST(timer_rearm_pending_reorders)
{
	struct order_ctx c = { .l = loop_new(), .expect = 3 };

	ck_assert_int_eq(loop_post(c.l, arm_rearm_case_cb, &c), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.order[0], 2);
	ck_assert_int_eq(c.order[1], 1);
	ck_assert_int_eq(c.order[2], 0);
	loop_free(c.l);
}
END_TEST

static void rearm_then_cancel_cb(struct loop_timer *t, void *arg)
{
	struct order_ctx *c = arg;

	c->n++;
	loop_timer_rearm(t, 1);
	loop_timer_cancel(t);
	loop_timer_add(c->l, 20, stop_timer_cb, c->l);
}

START_TEST(timer_cancel_self_after_rearm)
{
	struct order_ctx c = { .l = loop_new() };

	loop_timer_add(c.l, 0, rearm_then_cancel_cb, &c);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.n, 1);
	loop_free(c.l);
}
END_TEST

static struct tag many_tags[1000];
static struct loop_timer *many_handles[1000];
static uint64_t many_delay[1000];

static void arm_many_cb(struct loop_timer *t, void *arg)
{
	struct order_ctx *c = arg;
	unsigned seed = 12345;

	(void)t;
	/* Armed within one callback, so all share the same cached now and
	 * the expected order is a stable sort by delay. */
	for (int i = 0; i < 1000; i++) {
		many_delay[i] = rand_r(&seed) % 40;
		many_tags[i] = (struct tag){ c, i };
		many_handles[i] = loop_timer_add(c->l, many_delay[i], record_cb, &many_tags[i]);
	}
	for (int i = 0; i < 1000; i += 3)
		loop_timer_cancel(many_handles[i]);
}

START_TEST(timers_thousand)
{
	struct order_ctx c = { .l = loop_new() };
	int want[1000], nwant = 0;

	c.expect = 1000 - 334;
	loop_timer_add(c.l, 0, arm_many_cb, &c);
	ck_assert_int_eq(loop_run(c.l), 0);
	/* Expected: survivors of the cancellation, stable-sorted by delay. */
	for (uint64_t d = 0; d < 40; d++)
		for (int i = 0; i < 1000; i++)
			if (i % 3 != 0 && many_delay[i] == d)
				want[nwant++] = i;
	ck_assert_int_eq(nwant, 666);
	ck_assert_int_eq(c.n, 666);
	for (int i = 0; i < nwant; i++)
		ck_assert_int_eq(c.order[i], want[i]);
	loop_free(c.l);
}
END_TEST

struct zero_ctx {
	struct loop *l;
	int n;
};

static void zero_rearm_cb(struct loop_timer *t, void *arg)
{
	struct zero_ctx *z = arg;

	/* Re-arming at 0 ms must not keep this iteration busy forever: each
	 * firing has to wait for the next iteration. */
	if (++z->n < 100)
		loop_timer_rearm(t, 0);
	else
		loop_stop(z->l);
}

static void count_iter_cb(struct loop_io *io, int fd, uint32_t revents, void *arg)
{
	int *iters = arg;

	(void)io;
	(void)fd;
	(void)revents;
	++*iters;
}

START_TEST(timer_zero_rearm_yields)
{
	struct loop *l = loop_new();
	struct zero_ctx z = { .l = l };
	int iters = 0, p[2];
	struct loop_io *io;

	make_pipe(p);
	/* An always-writable fd counts the iterations. */
	io = loop_io_add(l, p[1], LOOP_WRITE, count_iter_cb, &iters);
	loop_timer_add(l, 0, zero_rearm_cb, &z);
	ck_assert_int_eq(loop_run(l), 0);
	ck_assert_int_eq(z.n, 100);
	ck_assert_int_ge(iters, 100);
	loop_io_del(io);
	loop_free(l);
	close(p[0]);
	close(p[1]);
}
END_TEST

struct early_ctx {
	struct loop *l;
	uint64_t armed_at, fired_at;
};

static void early_fire_cb(struct loop_timer *t, void *arg)
{
	struct early_ctx *e = arg;

	(void)t;
	e->fired_at = loop_now_ms(e->l);
	loop_stop(e->l);
}

static void early_arm_cb(void *arg)
{
	struct early_ctx *e = arg;

	e->armed_at = loop_now_ms(e->l);
	loop_timer_add(e->l, 30, early_fire_cb, e);
}

START_TEST(timer_never_fires_early)
{
	struct early_ctx e = { .l = loop_new() };
	int iters = 0, p[2];
	struct loop_io *io;
	uint64_t real_start = now_ms();

	make_pipe(p);
	/* A busy fd keeps the loop iterating, so only the due check holds the
	 * timer back, not the epoll timeout. */
	io = loop_io_add(e.l, p[1], LOOP_WRITE, count_iter_cb, &iters);
	ck_assert_int_eq(loop_post(e.l, early_arm_cb, &e), 0);
	ck_assert_int_eq(loop_run(e.l), 0);
	ck_assert_uint_ge(e.fired_at, e.armed_at + 30);
	ck_assert_uint_ge(now_ms(), real_start + 30);
	ck_assert_int_gt(iters, 1);
	loop_io_del(io);
	loop_free(e.l);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* ---- signals ---- */

static void sig_cb(int signo, void *arg)
{
	struct io_ctx *c = arg;

	c->calls++;
	c->revents = (uint32_t)signo;
	loop_stop(c->l);
}

START_TEST(signal_delivery)
{
	struct io_ctx c = { .l = loop_new() };

	ck_assert_int_eq(loop_signal_add(c.l, SIGUSR1, sig_cb, &c), 0);
	ck_assert_int_eq(loop_signal_add(c.l, SIGUSR1, sig_cb, &c), -EEXIST);
	ck_assert_int_eq(loop_signal_add(c.l, SIGKILL, sig_cb, &c), -EINVAL);
	ck_assert_int_eq(loop_signal_add(c.l, 0, sig_cb, &c), -EINVAL);
	ck_assert_int_eq(kill(getpid(), SIGUSR1), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls, 1);
	ck_assert_int_eq(c.revents, SIGUSR1);
	loop_free(c.l);
}
END_TEST

START_TEST(signal_two_numbers)
{
	struct io_ctx c = { .l = loop_new() };
	struct io_ctx d = { .l = c.l };

	ck_assert_int_eq(loop_signal_add(c.l, SIGUSR1, sig_cb, &c), 0);
	ck_assert_int_eq(loop_signal_add(c.l, SIGUSR2, sig_cb, &d), 0);
	ck_assert_int_eq(kill(getpid(), SIGUSR2), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(d.calls, 1);
	ck_assert_int_eq(d.revents, SIGUSR2);
	loop_free(c.l);
}
END_TEST

/* ---- posts ---- */

#define POST_THREADS 4
#define POSTS_EACH 10000

struct post_ctx {
	struct loop *l;
	unsigned char seen[POST_THREADS][POSTS_EACH];
	int last[POST_THREADS];
	int total;
	bool out_of_order;
	bool dup;
};

static struct post_ctx *pctx;

static void post_cb(void *arg)
{
	uintptr_t v = (uintptr_t)arg;
	int th = (int)(v / POSTS_EACH), i = (int)(v % POSTS_EACH);

	if (pctx->seen[th][i]++)
		pctx->dup = true;
	if (i != pctx->last[th] + 1)
		pctx->out_of_order = true;
	pctx->last[th] = i;
	if (++pctx->total == POST_THREADS * POSTS_EACH)
		loop_stop(pctx->l);
}

static void *poster(void *arg)
{
	uintptr_t th = (uintptr_t)arg;

	for (uintptr_t i = 0; i < POSTS_EACH; i++)
		ck_assert_int_eq(loop_post(pctx->l, post_cb, (void *)(th * POSTS_EACH + i)), 0);
	return NULL;
}

START_TEST(posts_from_threads)
{
	pthread_t t[POST_THREADS];

	pctx = xcalloc(1, sizeof(*pctx));
	pctx->l = loop_new();
	for (int i = 0; i < POST_THREADS; i++)
		pctx->last[i] = -1;
	for (uintptr_t i = 0; i < POST_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, poster, (void *)i), 0);
	ck_assert_int_eq(loop_run(pctx->l), 0);
	for (int i = 0; i < POST_THREADS; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(pctx->total, POST_THREADS * POSTS_EACH);
	ck_assert(!pctx->dup);
	ck_assert(!pctx->out_of_order);
	for (int th = 0; th < POST_THREADS; th++)
		for (int i = 0; i < POSTS_EACH; i++)
			ck_assert_int_eq(pctx->seen[th][i], 1);
	loop_free(pctx->l);
	free(pctx);
	pctx = NULL;
}
END_TEST

struct chain_ctx {
	struct loop *l;
	int n;
};

static void chain_cb(void *arg)
{
	struct chain_ctx *c = arg;

	/* Posting from the loop thread itself, from inside a post. */
	if (++c->n < 1000)
		ck_assert_int_eq(loop_post(c->l, chain_cb, c), 0);
	else
		loop_stop(c->l);
}

START_TEST(post_from_post_callback)
{
	struct chain_ctx c = { .l = loop_new() };

	ck_assert_int_eq(loop_post(c.l, chain_cb, &c), 0);
	ck_assert_int_eq(loop_run(c.l), 0);
	ck_assert_int_eq(c.n, 1000);
	loop_free(c.l);
}
END_TEST

/* ---- stop and teardown ---- */

static atomic_bool loop_running;

static void mark_running_cb(struct loop_timer *t, void *arg)
{
	(void)t;
	(void)arg;
	atomic_store(&loop_running, true);
}

static void *stopper(void *arg)
{
	while (!atomic_load(&loop_running))
		sched_yield();
	loop_stop(arg);
	return NULL;
}

START_TEST(stop_from_other_thread)
{
	struct loop *l = loop_new();
	pthread_t t;

	atomic_store(&loop_running, false);
	/* After this timer the loop has no sources left and would sleep in
	 * epoll_wait forever unless loop_stop wakes it. */
	loop_timer_add(l, 0, mark_running_cb, NULL);
	ck_assert_int_eq(pthread_create(&t, NULL, stopper, l), 0);
	ck_assert_int_eq(loop_run(l), 0);
	pthread_join(t, NULL);
	ck_assert(atomic_load(&loop_running));
	/* The stop request was consumed: a second run needs a new one. */
	loop_stop(l);
	ck_assert_int_eq(loop_run(l), 0);
	loop_free(l);
}
END_TEST

static void never_post_cb(void *arg)
{
	(void)arg;
	ck_abort_msg("post ran after loop_free");
}

START_TEST(free_with_pending_sources)
{
	struct loop *l = loop_new();
	struct io_ctx c = { .l = l };
	int p[2];

	make_pipe(p);
	ck_assert_ptr_nonnull(loop_io_add(l, p[0], LOOP_READ, read_once_cb, &c));
	ck_assert_ptr_nonnull(loop_io_add(l, p[1], LOOP_WRITE, read_once_cb, &c));
	for (int i = 0; i < 50; i++)
		ck_assert_ptr_nonnull(loop_timer_add(l, 1000 + (uint64_t)i, stop_timer_cb, l));
	ck_assert_int_eq(loop_signal_add(l, SIGUSR2, sig_cb, &c), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(loop_post(l, never_post_cb, NULL), 0);
	ck_assert_ptr_null(loop_free(l));
	ck_assert_ptr_null(loop_free(NULL));
	ck_assert_int_eq(c.calls, 0);
	close(p[0]);
	close(p[1]);
}
END_TEST

/* Sleeps at least ms on the monotonic clock (nanosleep measures it). */
static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

#define NOW_GAP_MS 20u

struct now_probe {
	struct loop *l;
	uint64_t first, again, second_timer, next_iter;
	int fired;
};

static void now_next_iter_cb(struct loop_timer *t, void *arg)
{
	struct now_probe *p = arg;

	p->next_iter = loop_now_ms(p->l);
	loop_stop(p->l);
}

/* Both timers are due in the same iteration; the first one sleeps. */
static void now_first_cb(struct loop_timer *t, void *arg)
{
	struct now_probe *p = arg;

	p->first = loop_now_ms(p->l);
	sleep_ms(NOW_GAP_MS);
	p->again = loop_now_ms(p->l);
	/* Armed from a callback with 0 ms: fires in the next iteration. */
	loop_timer_add(p->l, 0, now_next_iter_cb, p);
	p->fired++;
}

static void now_second_cb(struct loop_timer *t, void *arg)
{
	struct now_probe *p = arg;

	p->second_timer = loop_now_ms(p->l);
	p->fired++;
}

/* Monotonic: a reading after a sleep is later by at least the sleep.
 * Cached: every read within one iteration (same callback after a sleep, a
 * later callback of the same batch) gives the same value; the next
 * iteration reads the clock again. */
START_TEST(now_is_monotonic_and_cached)
{
	struct now_probe p = { .l = loop_new() };
	uint64_t created = loop_now_ms(p.l), before_run;

	ck_assert_uint_gt(created, 0);
	sleep_ms(NOW_GAP_MS);
	loop_timer_add(p.l, 0, now_first_cb, &p);
	loop_timer_add(p.l, 0, now_second_cb, &p);
	before_run = now_ms();
	ck_assert_int_eq(loop_run(p.l), 0);
	ck_assert_int_eq(p.fired, 2);
	ck_assert_uint_ge(p.first, created + NOW_GAP_MS);
	ck_assert_uint_ge(p.first, before_run);
	ck_assert_uint_eq(p.again, p.first);
	ck_assert_uint_eq(p.second_timer, p.first);
	ck_assert_uint_ge(p.next_iter, p.first + NOW_GAP_MS);
	ck_assert_uint_le(p.next_iter, now_ms());
	loop_free(p.l);
}
END_TEST

static Suite *loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *io = tcase_create("io");
	TCase *tm = tcase_create("timer");
	TCase *sg = tcase_create("signal");
	TCase *po = tcase_create("post");
	TCase *lc = tcase_create("lifecycle");

	tcase_add_test(io, io_pipe_readiness);
	tcase_add_test(io, io_hup_reported);
	tcase_add_test(io, io_add_rejected_fd);
	tcase_add_test(io, io_del_inside_own_callback);
	tcase_add_test(io, io_del_other_in_same_batch);
	tcase_add_test(io, io_mod_switches_interest);
	tcase_add_test(tm, timers_fire_in_order);
	tcase_add_test(tm, timer_cancel);
	tcase_add_test(tm, timer_rearm_from_callback);
	tcase_add_test(tm, timer_rearm_pending_reorders);
	tcase_add_test(tm, timer_cancel_self_after_rearm);
	tcase_add_test(tm, timers_thousand);
	tcase_add_test(tm, timer_zero_rearm_yields);
	tcase_add_test(tm, timer_never_fires_early);
	tcase_add_test(sg, signal_delivery);
	tcase_add_test(sg, signal_two_numbers);
	tcase_add_test(po, posts_from_threads);
	tcase_add_test(po, post_from_post_callback);
	tcase_add_test(lc, stop_from_other_thread);
	tcase_add_test(lc, free_with_pending_sources);
	tcase_add_test(lc, now_is_monotonic_and_cached);
	tcase_set_timeout(po, 30);
	suite_add_tcase(s, io);
	suite_add_tcase(s, tm);
	suite_add_tcase(s, sg);
	suite_add_tcase(s, po);
	suite_add_tcase(s, lc);
	return s;
}

TEST_MAIN(loop_suite)
