/* test_wqueue.c - bounded output queue against a real pipe with a slow or
 * absent reader. */
#include "testmain.h"
#include "util.h"
#include "wqueue.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <unistd.h>

struct fixture {
	struct wqueue q;
	int p[2];
	size_t pipe_cap;
};

static void setup(struct fixture *f, size_t max_bytes)
{
	int sz;

	wqueue_init(&f->q, max_bytes);
	ck_assert_int_eq(pipe2(f->p, O_CLOEXEC | O_NONBLOCK), 0);
	/* The smallest pipe makes partial writes frequent. */
	(void)fcntl(f->p[1], F_SETPIPE_SZ, 4096);
	sz = fcntl(f->p[1], F_GETPIPE_SZ);
	ck_assert_int_gt(sz, 0);
	f->pipe_cap = (size_t)sz;
}

static void teardown(struct fixture *f)
{
	wqueue_free(&f->q);
	safe_close(f->p[0]);
	safe_close(f->p[1]);
}

/* Fills the pipe completely so that the next write gets EAGAIN; returns
 * the bytes written. */
static size_t fill_pipe(struct fixture *f)
{
	char junk[512];
	size_t total = 0;
	ssize_t n;

	memset(junk, 'j', sizeof(junk));
	while ((n = write(f->p[1], junk, sizeof(junk))) > 0)
		total += (size_t)n;
	ck_assert_int_eq(errno, EAGAIN);
	return total;
}

static void drain_pipe(struct fixture *f)
{
	char junk[4096];

	while (read(f->p[0], junk, sizeof(junk)) > 0)
		;
}

START_TEST(bound_enforced)
{
	struct wqueue q;
	char buf[100] = { 0 };

	wqueue_init(&q, 100);
	ck_assert_int_eq(wqueue_push(&q, buf, 60), 0);
	ck_assert_int_eq(wqueue_push(&q, buf, 41), -ENOBUFS);
	ck_assert_uint_eq(wqueue_pending(&q), 60);
	/* push2 is all or nothing. */
	ck_assert_int_eq(wqueue_push2(&q, buf, 30, buf, 11), -ENOBUFS);
	ck_assert_uint_eq(wqueue_pending(&q), 60);
	ck_assert_int_eq(wqueue_push2(&q, buf, 30, buf, 10), 0);
	ck_assert_uint_eq(wqueue_pending(&q), 100);
	ck_assert_int_eq(wqueue_push(&q, buf, 1), -ENOBUFS);
	ck_assert_int_eq(wqueue_push(&q, buf, 0), 0);
	/* Lengths near SIZE_MAX must not wrap the bound check. */
	ck_assert_int_eq(wqueue_push2(&q, buf, SIZE_MAX, buf, 2), -ENOBUFS);
	ck_assert_uint_le(q.cap, 100);
	wqueue_free(&q);
	wqueue_free(NULL);
}
END_TEST

START_TEST(absent_reader_keeps_bytes)
{
	struct fixture f;
	char msg[1000];

	setup(&f, 1 << 20);
	memset(msg, 'm', sizeof(msg));
	fill_pipe(&f);
	ck_assert_int_eq(wqueue_push(&f.q, msg, sizeof(msg)), 0);
	ck_assert_int_eq(wqueue_flush(&f.q, f.p[1]), 1);
	ck_assert_uint_eq(wqueue_pending(&f.q), sizeof(msg));
	ck_assert_int_eq(wqueue_write(&f.q, f.p[1], msg, 10, "\n", 1), 1);
	ck_assert_uint_eq(wqueue_pending(&f.q), sizeof(msg) + 11);
	teardown(&f);
}
END_TEST

START_TEST(epipe_reported)
{
	struct fixture f;

	signal(SIGPIPE, SIG_IGN);
	setup(&f, 1000);
	f.p[0] = safe_close(f.p[0]);
	ck_assert_int_eq(wqueue_push(&f.q, "abc", 3), 0);
	ck_assert_int_eq(wqueue_flush(&f.q, f.p[1]), -EPIPE);
	ck_assert_uint_eq(wqueue_pending(&f.q), 3);
	wqueue_free(&f.q);
	ck_assert_int_eq(wqueue_write(&f.q, f.p[1], "abc", 3, NULL, 0), -EPIPE);
	ck_assert_uint_eq(wqueue_pending(&f.q), 0);
	teardown(&f);
}
END_TEST

START_TEST(write_fast_path_copies_nothing)
{
	struct fixture f;
	char got[32];

	setup(&f, 1000);
	ck_assert_int_eq(wqueue_write(&f.q, f.p[1], "hello", 5, "\n", 1), 0);
	ck_assert_uint_eq(wqueue_pending(&f.q), 0);
	ck_assert_ptr_null(f.q.buf);
	ck_assert_int_eq(read(f.p[0], got, sizeof(got)), 6);
	ck_assert_mem_eq(got, "hello\n", 6);
	ck_assert_int_eq(wqueue_flush(&f.q, f.p[1]), 0);
	teardown(&f);
}
END_TEST

/* The fd takes only part of a (or part of b): the remainder is queued and
 * the bytes arrive in order. */
static void partial_split_case(size_t room, size_t alen, size_t blen)
{
	struct fixture f;
	char a[8192], b[8192], out[16384], junk[8192];
	size_t got = 0, prefill;
	int r;

	for (size_t i = 0; i < sizeof(a); i++) {
		a[i] = (char)('a' + i % 26);
		b[i] = (char)('A' + i % 26);
	}
	setup(&f, 65536);
	prefill = fill_pipe(&f);
	/* Free one page: a write larger than that is cut short. */
	ck_assert_int_eq(read(f.p[0], junk, room), (ssize_t)room);
	prefill -= room;
	r = wqueue_write(&f.q, f.p[1], a, alen, b, blen);
	ck_assert_int_eq(r, 1);
	ck_assert_uint_gt(wqueue_pending(&f.q), 0);
	ck_assert_uint_lt(wqueue_pending(&f.q), alen + blen);
	/* Where the cut fell: inside a, or inside b. */
	ck_assert_int_eq(wqueue_pending(&f.q) > blen, alen > room);
	/* Drain: the prefill junk, then our bytes. */
	while (got < prefill + alen + blen) {
		ssize_t n = read(f.p[0], out, sizeof(out));

		bool ok = true;

		for (ssize_t i = 0; i < n; i++, got++) {
			char want = got < prefill          ? 'j'
			            : got < prefill + alen ? a[got - prefill]
			                                   : b[got - prefill - alen];
			ok &= out[i] == want;
		}
		ck_assert_msg(ok, "stream corrupted before byte %zu", got);
		r = wqueue_flush(&f.q, f.p[1]);
		ck_assert_int_ge(r, 0);
	}
	ck_assert_int_eq(r, 0);
	ck_assert_uint_eq(wqueue_pending(&f.q), 0);
	teardown(&f);
}

START_TEST(write_partial_inside_a)
{
	partial_split_case(4096, 6000, 100);
}
END_TEST

START_TEST(write_partial_inside_b)
{
	partial_split_case(4096, 1000, 6000);
}
END_TEST

START_TEST(write_behind_queue_keeps_order)
{
	struct fixture f;
	char out[64];
	ssize_t n;

	setup(&f, 1000);
	fill_pipe(&f);
	ck_assert_int_eq(wqueue_write(&f.q, f.p[1], "first", 5, NULL, 0), 1);
	ck_assert_int_eq(wqueue_write(&f.q, f.p[1], "second", 6, "\n", 1), 1);
	drain_pipe(&f);
	ck_assert_int_eq(wqueue_flush(&f.q, f.p[1]), 0);
	n = read(f.p[0], out, sizeof(out));
	ck_assert_int_eq(n, 12);
	ck_assert_mem_eq(out, "firstsecond\n", 12);
	teardown(&f);
}
END_TEST

/* A slow reader takes random amounts while the writer pushes random
 * messages; the ring wraps and grows; the stream must arrive intact and
 * the bound must hold throughout. */
START_TEST(slow_reader_stream_intact)
{
	enum { TOTAL = 4 * 1024 * 1024, BOUND = 20000 };
	struct fixture f;
	unsigned seed = 99;
	size_t sent = 0, recvd = 0, refused = 0;
	char msg[3000], out[8192];

	setup(&f, BOUND);
	while (recvd < TOTAL) {
		if (sent < TOTAL) {
			size_t r1 = (size_t)rand_r(&seed) % sizeof(msg) + 1;
			size_t len = MIN(r1, TOTAL - sent);
			size_t split = (size_t)rand_r(&seed) % (len + 1);
			int r;

			for (size_t i = 0; i < len; i++)
				msg[i] = (char)((sent + i) * 7 % 251);
			if (rand_r(&seed) % 2)
				r = wqueue_write(&f.q, f.p[1], msg, split, msg + split, len - split);
			else
				r = wqueue_push2(&f.q, msg, split, msg + split, len - split);
			if (r == -ENOBUFS)
				refused++;
			else
				sent += len;
			ck_assert(r == 0 || r == 1 || r == -ENOBUFS);
			ck_assert_uint_le(wqueue_pending(&f.q), BOUND);
			ck_assert_uint_le(f.q.cap, BOUND);
		}
		ck_assert_int_ge(wqueue_flush(&f.q, f.p[1]), 0);
		/* Slower than the writer on average until the writer is done. */
		size_t want = (size_t)rand_r(&seed) % (sent < TOTAL ? 1500 : sizeof(out)) + 1;
		ssize_t n = read(f.p[0], out, want);
		bool ok = true;

		for (ssize_t i = 0; i < n; i++, recvd++)
			ok &= (unsigned char)out[i] == (unsigned char)(recvd * 7 % 251);
		ck_assert_msg(ok, "stream corrupted before byte %zu", recvd);
	}
	ck_assert_uint_eq(recvd, TOTAL);
	ck_assert_uint_eq(wqueue_pending(&f.q), 0);
	/* The bound was actually reached at some point. */
	ck_assert_uint_gt(refused, 0);
	teardown(&f);
}
END_TEST

START_TEST(large_ring_released_when_drained)
{
	struct fixture f;
	static char big[200000];
	int r;

	setup(&f, sizeof(big));
	fill_pipe(&f);
	ck_assert_int_eq(wqueue_push(&f.q, big, sizeof(big)), 0);
	ck_assert_uint_ge(f.q.cap, sizeof(big));
	do {
		drain_pipe(&f);
		r = wqueue_flush(&f.q, f.p[1]);
	} while (r == 1);
	ck_assert_int_eq(r, 0);
	ck_assert_ptr_null(f.q.buf);
	ck_assert_uint_eq(f.q.cap, 0);
	/* Still usable afterwards. */
	ck_assert_int_eq(wqueue_push(&f.q, "x", 1), 0);
	ck_assert_uint_eq(wqueue_pending(&f.q), 1);
	teardown(&f);
}
END_TEST

static Suite *wqueue_suite(void)
{
	Suite *s = suite_create("wqueue");
	TCase *tc = tcase_create("queue");

	tcase_add_test(tc, bound_enforced);
	tcase_add_test(tc, absent_reader_keeps_bytes);
	tcase_add_test(tc, epipe_reported);
	tcase_add_test(tc, write_fast_path_copies_nothing);
	tcase_add_test(tc, write_partial_inside_a);
	tcase_add_test(tc, write_partial_inside_b);
	tcase_add_test(tc, write_behind_queue_keeps_order);
	tcase_add_test(tc, slow_reader_stream_intact);
	tcase_add_test(tc, large_ring_released_when_drained);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(wqueue_suite)
