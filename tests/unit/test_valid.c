/* test_valid.c - the one rule for each kind of name (common/valid.h): the
 * bounds, the character sets, and the bytes that must never pass (NUL, '=',
 * control bytes, non-ASCII). */
#include "testmain.h"
#include "valid.h"

#include <string.h>

static char *repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

START_TEST(ident_and_env_id)
{
	char buf[VALID_ENV_ID_MAX + 2];

	ck_assert(valid_env_id("a"));
	ck_assert(valid_env_id("Build_host-2"));
	ck_assert(valid_env_id(repeat(buf, '7', VALID_ENV_ID_MAX)));
	ck_assert(!valid_env_id(repeat(buf, '7', VALID_ENV_ID_MAX + 1)));
	ck_assert(!valid_env_id(""));
	ck_assert(!valid_env_id(NULL));
	ck_assert(!valid_env_id("a.b"));
	ck_assert(!valid_env_id("a/b"));
	ck_assert(!valid_env_id("a b"));
	ck_assert(!valid_env_id("\xC3\xA9"));
	ck_assert(valid_ident("ab", 2));
	ck_assert(!valid_ident("abc", 2));
}
END_TEST

START_TEST(env_name)
{
	char buf[VALID_ENV_NAME_MAX + 2];

	ck_assert(valid_env_name("PATH"));
	ck_assert(valid_env_name("_x1"));
	ck_assert(valid_env_name(repeat(buf, 'A', VALID_ENV_NAME_MAX)));
	ck_assert(!valid_env_name(repeat(buf, 'A', VALID_ENV_NAME_MAX + 1)));
	ck_assert(!valid_env_name(""));
	ck_assert(!valid_env_name(NULL));
	ck_assert(!valid_env_name("1ABC"));
	ck_assert(!valid_env_name("A=B"));
	ck_assert(!valid_env_name("A-B"));
	ck_assert(!valid_env_name("A\nB"));
	/* Length-bounded form: a NUL inside is refused, not a terminator. */
	ck_assert(valid_env_name_n("HOMEx", 4));
	ck_assert(!valid_env_name_n("HO\0ME", 5));
	ck_assert(!valid_env_name_n("HOME", 0));
	ck_assert(!valid_env_name_n(NULL, 3));
}
END_TEST

START_TEST(header_name)
{
	char buf[VALID_HEADER_NAME_MAX + 2];

	ck_assert(valid_header_name("Authorization"));
	ck_assert(valid_header_name("X-Custom_1.a!#$%&'*+^`|~"));
	ck_assert(valid_header_name(repeat(buf, 'h', VALID_HEADER_NAME_MAX)));
	ck_assert(!valid_header_name(repeat(buf, 'h', VALID_HEADER_NAME_MAX + 1)));
	ck_assert(!valid_header_name(""));
	ck_assert(!valid_header_name(NULL));
	ck_assert(!valid_header_name("X:Y"));
	ck_assert(!valid_header_name("X Y"));
	ck_assert(!valid_header_name("X\r\nY"));
	ck_assert(!valid_header_name("(x)"));
}
END_TEST

static Suite *valid_suite(void)
{
	Suite *s = suite_create("valid");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, ident_and_env_id);
	tcase_add_test(tc, env_name);
	tcase_add_test(tc, header_name);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(valid_suite)
