/* test_utf8.c - cutting text on a character boundary (common/utf8.h): a cut
 * never leaves half a character, and never drops a whole one it could keep. */
#include "testmain.h"
#include "utf8.h"

#include <jansson.h>
#include <string.h>

/* "a" + e-acute (2 bytes) + euro (3) + G clef (4): 10 bytes. */
#define MIXED "a\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E"

START_TEST(trim_drops_only_an_incomplete_tail)
{
	ck_assert_uint_eq(utf8_trim(MIXED, 10), 10);
	ck_assert_uint_eq(utf8_trim(MIXED, 9), 6); /* 3 of the clef's 4 bytes */
	ck_assert_uint_eq(utf8_trim(MIXED, 7), 6); /* its lead byte alone */
	ck_assert_uint_eq(utf8_trim(MIXED, 6), 6);
	ck_assert_uint_eq(utf8_trim(MIXED, 5), 3); /* 2 of the euro's 3 */
	ck_assert_uint_eq(utf8_trim(MIXED, 2), 1); /* the e-acute's lead */
	ck_assert_uint_eq(utf8_trim(MIXED, 1), 1);
	ck_assert_uint_eq(utf8_trim("abc", 0), 0);
}
END_TEST

START_TEST(cut_bounds_a_string)
{
	ck_assert_int_eq(utf8_cut("short", 64), 5);
	ck_assert_int_eq(utf8_cut(MIXED, 10), 10);
	ck_assert_int_eq(utf8_cut(MIXED, 8), 6);
	ck_assert_int_eq(utf8_cut(MIXED, 3), 3);
	ck_assert_int_eq(utf8_cut(MIXED, 2), 1);
	ck_assert_int_eq(utf8_cut(MIXED, 0), 0);
}
END_TEST

/* Whatever the cut, the result is valid UTF-8 (jansson accepts it). */
START_TEST(every_cut_is_valid_utf8)
{
	const char *s = MIXED "xyz" MIXED;

	for (size_t max = 0; max <= strlen(s); max++) {
		int n = utf8_cut(s, max);
		json_t *j = json_stringn(s, (size_t)n);

		ck_assert_msg(j != NULL, "cut at %zu gave %d bytes that are not UTF-8", max, n);
		ck_assert_int_le(n, (int)max);
		ck_assert_int_ge(n, (int)max - 3); /* at most one character dropped */
		json_decref(j);
	}
}
END_TEST

static Suite *utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, trim_drops_only_an_incomplete_tail);
	tcase_add_test(tc, cut_bounds_a_string);
	tcase_add_test(tc, every_cut_is_valid_utf8);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(utf8_suite)
