/* test_lsess.c - link sessions' bookkeeping (proto/lsess.c): numbering,
 * acks freeing the replay buffer, in-order delivery with duplicates
 * dropped and gaps refused, the buffer's bounds and what an overflow does
 * to resuming, the header's format; and a session pair carried across
 * cuts that lose whatever was in flight: every frame arrives exactly once,
 * in order. */
#include "lsess.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <string.h>

static const uint8_t env8[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

START_TEST(test_numbering_and_acks)
{
	struct lsess *s = lsess_new(NULL, 0, 0);

	for (uint64_t i = 1; i <= 10; i++)
		ck_assert_uint_eq(lsess_push(s, env8, sizeof(env8))->seq, i);
	ck_assert_uint_eq(s->n, 10);
	ck_assert_uint_eq(s->bytes, 80);
	ck_assert_int_eq(lsess_ack(s, 4), 0);
	ck_assert_uint_eq(s->n, 6);
	ck_assert_uint_eq(s->head->seq, 5);
	/* An old ack changes nothing; an ack of a frame never sent is a lie. */
	ck_assert_int_eq(lsess_ack(s, 2), 0);
	ck_assert_uint_eq(s->tx_acked, 4);
	ck_assert_int_eq(lsess_ack(s, 11), -EPROTO);
	ck_assert_uint_eq(s->n, 6);
	ck_assert_int_eq(lsess_ack(s, 10), 0);
	ck_assert_ptr_null(s->head);
	ck_assert_uint_eq(s->bytes, 0);
	lsess_free(s);
}
END_TEST

START_TEST(test_in_order_dups_gaps)
{
	struct lsess *s = lsess_new(NULL, 0, 0);

	ck_assert_int_eq(lsess_rx(s, 0), LSESS_ACK_ONLY);
	ck_assert_int_eq(lsess_rx(s, 1), LSESS_DELIVER);
	ck_assert_int_eq(lsess_rx(s, 2), LSESS_DELIVER);
	ck_assert_int_eq(lsess_rx(s, 2), LSESS_DUP);
	ck_assert_int_eq(lsess_rx(s, 1), LSESS_DUP);
	ck_assert_uint_eq(s->dups, 2);
	ck_assert_int_eq(lsess_rx(s, 4), -EPROTO);
	ck_assert_uint_eq(s->rx_seq, 2);
	ck_assert(lsess_ack_due(s));
	s->rx_told = s->rx_seq;
	ck_assert(!lsess_ack_due(s));
	lsess_free(s);
}
END_TEST

START_TEST(test_bounds_and_overflow)
{
	struct lsess *s = lsess_new(NULL, 40, 3);
	char why[300];

	for (int i = 0; i < 3; i++)
		lsess_push(s, env8, sizeof(env8));
	ck_assert_uint_eq(s->lost_upto, 0);
	ck_assert_int_eq(lsess_can_resume(s, 0, why, sizeof(why)), 0);
	lsess_push(s, env8, sizeof(env8)); /* a 4th frame: over the count */
	ck_assert_uint_eq(s->n, 3);
	ck_assert_uint_eq(s->lost_upto, 1);
	ck_assert_uint_eq(s->head->seq, 2);
	/* A peer that has frame 1 can resume; one that does not, cannot. */
	ck_assert_int_eq(lsess_can_resume(s, 0, why, sizeof(why)), -ESTALE);
	ck_assert_ptr_nonnull(strstr(why, "overflowed"));
	ck_assert_int_eq(lsess_can_resume(s, 1, why, sizeof(why)), 0);
	/* Over the bytes: a 30-byte frame pushes the older ones out. */
	{
		uint8_t big[30] = { 0 };

		lsess_push(s, big, sizeof(big));
		ck_assert_uint_le(s->bytes, 40);
		ck_assert_uint_eq(s->tail->seq, 5);
		ck_assert_uint_eq(s->lost_upto, 3);
	}
	/* One frame over the byte bound alone is kept (it is the newest). */
	{
		uint8_t huge[100] = { 0 };

		lsess_push(s, huge, sizeof(huge));
		ck_assert_uint_eq(s->n, 1);
		ck_assert_uint_eq(s->lost_upto, 5);
	}
	ck_assert_int_eq(lsess_can_resume(s, 7, why, sizeof(why)), -EPROTO); /* never sent */
	ck_assert_int_eq(lsess_ack(s, 5), 0);
	ck_assert_int_eq(lsess_can_resume(s, 4, why, sizeof(why)), -ESTALE);
	lsess_free(s);
}
END_TEST

START_TEST(test_header)
{
	uint8_t h[LSESS_HDR + 1];
	uint64_t seq = 9, ack = 9;

	lsess_hdr_put(h, 0x0102030405060708ull, 42);
	ck_assert_uint_eq(h[0], 1);
	ck_assert_uint_eq(h[7], 8);
	ck_assert_int_eq(lsess_hdr_parse(h, LSESS_HDR + 1, &seq, &ack), 0);
	ck_assert_uint_eq(seq, 0x0102030405060708ull);
	ck_assert_uint_eq(ack, 42);
	/* A numbered frame carries an envelope; a pure ack carries none. */
	ck_assert_int_eq(lsess_hdr_parse(h, LSESS_HDR, &seq, &ack), -EBADMSG);
	lsess_hdr_put(h, 0, 3);
	ck_assert_int_eq(lsess_hdr_parse(h, LSESS_HDR, &seq, &ack), 0);
	ck_assert_uint_eq(seq, 0);
	ck_assert_int_eq(lsess_hdr_parse(h, LSESS_HDR + 1, &seq, &ack), -EBADMSG);
	ck_assert_int_eq(lsess_hdr_parse(h, LSESS_HDR - 1, &seq, &ack), -EBADMSG);
}
END_TEST

/* A one-way "connection": frames (seq, value) in flight; a cut loses
 * them all. */
struct wire {
	uint64_t seq[1024];
	uint32_t val[1024];
	unsigned n;
};

static void put(struct lsess *tx, struct wire *w, uint32_t v)
{
	const struct lsess_entry *e = lsess_push(tx, (const uint8_t *)&v, sizeof(v));

	ck_assert_uint_lt(w->n, 1024);
	w->seq[w->n] = e->seq;
	w->val[w->n++] = v;
}

/* Delivers the first k frames in flight; returns the values delivered. */
static unsigned arrive(struct lsess *rx, struct lsess *tx, struct wire *w, unsigned k,
		       uint32_t *got, unsigned ngot)
{
	for (unsigned i = 0; i < k && i < w->n; i++) {
		int r = lsess_rx(rx, w->seq[i]);

		ck_assert_int_ge(r, 0);
		if (r == LSESS_DELIVER)
			got[ngot++] = w->val[i];
	}
	k = MIN(k, w->n);
	memmove(w->seq, w->seq + k, (w->n - k) * sizeof(w->seq[0]));
	memmove(w->val, w->val + k, (w->n - k) * sizeof(w->val[0]));
	w->n -= k;
	/* The receiver's ack comes back on a frame of its own. */
	ck_assert_int_eq(lsess_ack(tx, rx->rx_seq), 0);
	return ngot;
}

START_TEST(test_cuts_lose_nothing_duplicate_nothing)
{
	struct lsess *a = lsess_new(NULL, 0, 0), *b = lsess_new(a->id, 0, 0);
	struct wire w = { 0 };
	uint32_t got[1000];
	unsigned ngot = 0, sent = 0;
	char why[300];

	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 7 + round % 5; i++)
			put(a, &w, sent++);
		ngot = arrive(b, a, &w, (unsigned)(round % 4), got, ngot);
		/* Cut: what was in flight is gone; the ack of the last frames
		 * that arrived may be lost too (the resume ack carries it). */
		w.n = 0;
		ck_assert_int_eq(lsess_can_resume(a, b->rx_seq, why, sizeof(why)), 0);
		ck_assert_int_eq(lsess_ack(a, b->rx_seq), 0);
		/* Resume: the unacked frames go again, in order. */
		for (const struct lsess_entry *e = a->head; e; e = e->next) {
			uint32_t v;

			memcpy(&v, e->data, sizeof(v));
			w.seq[w.n] = e->seq;
			w.val[w.n++] = v;
		}
		/* Some arrive twice (sent again after a lost ack). */
		if (round % 3 == 0 && w.n) {
			ck_assert_int_eq(lsess_rx(b, w.seq[0] - 1 ? w.seq[0] - 1 : 0) >= 0, 1);
		}
	}
	ngot = arrive(b, a, &w, w.n, got, ngot);
	ck_assert_uint_eq(ngot, sent);
	for (unsigned i = 0; i < ngot; i++)
		ck_assert_uint_eq(got[i], i);
	ck_assert_ptr_null(a->head);
	lsess_free(a);
	lsess_free(b);
}
END_TEST

static Suite *lsess_suite(void)
{
	Suite *s = suite_create("lsess");
	TCase *tc = tcase_create("lsess");

	tcase_add_test(tc, test_numbering_and_acks);
	tcase_add_test(tc, test_in_order_dups_gaps);
	tcase_add_test(tc, test_bounds_and_overflow);
	tcase_add_test(tc, test_header);
	tcase_add_test(tc, test_cuts_lose_nothing_duplicate_nothing);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(lsess_suite)
