/* test_penalty.c - per-source penalties: growth and cap, lapse, the /64
 * and IPv4-mapped grouping, sources without an address, and the table's
 * bound under a flood of distinct sources. */
#include "penalty.h"
#include "testmain.h"
#include "util.h"

#include <string.h>

static struct penalty_key v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
	uint8_t ip[4] = { a, b, c, d };

	return penalty_key_ipv4(ip);
}

START_TEST(test_growth_and_cap)
{
	struct penalty *p = penalty_new();
	struct penalty_key k = v4(10, 0, 0, 1), other = v4(10, 0, 0, 2);
	uint64_t now = 1000000, want = PENALTY_BASE_MS;

	ck_assert_uint_eq(penalty_remaining(p, &k, now), 0);
	for (int i = 0; i < 12; i++) {
		ck_assert_uint_eq(penalty_add(p, &k, now), want);
		ck_assert_uint_eq(penalty_remaining(p, &k, now), want);
		ck_assert_uint_eq(penalty_remaining(p, &k, now + want - 1), 1);
		ck_assert_uint_eq(penalty_remaining(p, &k, now + want), 0);
		want = MIN(want * 2, PENALTY_MAX_MS);
	}
	ck_assert_uint_eq(penalty_remaining(p, &other, now), 0); /* others unaffected */
	/* Long after the last penalty ended it lapses: back to the base. */
	now += PENALTY_MAX_MS + PENALTY_FORGET_MS + 1;
	ck_assert_uint_eq(penalty_add(p, &k, now), PENALTY_BASE_MS);
	penalty_free(p);
}
END_TEST

START_TEST(test_grouping)
{
	struct penalty *p = penalty_new();
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t b6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 9, 9, 9, 9, 9, 9, 9, 9 };
	uint8_t c6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1 };
	uint8_t m6[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7 };
	struct penalty_key a = penalty_key_ipv6(a6), b = penalty_key_ipv6(b6),
			   c = penalty_key_ipv6(c6), m = penalty_key_ipv6(m6),
			   v = v4(192, 0, 2, 7), none = { 0 };

	penalty_add(p, &a, 0);
	ck_assert_uint_gt(penalty_remaining(p, &b, 0), 0); /* the same /64 */
	ck_assert_uint_eq(penalty_remaining(p, &c, 0), 0); /* another /64 */
	penalty_add(p, &m, 0);
	ck_assert_uint_gt(penalty_remaining(p, &v, 0), 0); /* ::ffff:192.0.2.7 is 192.0.2.7 */
	/* No address (a local socket): never penalised. */
	ck_assert_uint_eq(penalty_add(p, &none, 0), 0);
	ck_assert_uint_eq(penalty_remaining(p, &none, 0), 0);
	penalty_free(p);
}
END_TEST

START_TEST(test_bounded)
{
	struct penalty *p = penalty_new();
	struct penalty_key k;

	/* Far more sources than slots: the table never grows past its bound,
	 * and the newest offenders are still known. */
	for (uint32_t i = 0; i < 3 * PENALTY_SLOTS; i++) {
		k = v4(10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i);
		penalty_add(p, &k, i);
		ck_assert_uint_le(penalty_count(p), PENALTY_SLOTS);
	}
	ck_assert_uint_gt(penalty_remaining(p, &k, 3 * PENALTY_SLOTS), 0);
	penalty_free(p);
	penalty_free(NULL);
}
END_TEST

static Suite *penalty_suite(void)
{
	Suite *s = suite_create("penalty");
	TCase *tc = tcase_create("penalty");

	tcase_add_test(tc, test_growth_and_cap);
	tcase_add_test(tc, test_grouping);
	tcase_add_test(tc, test_bounded);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(penalty_suite)
