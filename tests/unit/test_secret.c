/* test_secret.c - secrets held out of the environment (secret_env_*) and
 * taken from it (secret_from_env). */
#include "secret.h"
#include "testmain.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void teardown(void) { secret_env_release_all(); }

START_TEST(a_held_variable_leaves_the_environment_and_its_memory)
{
	char *where;

	ck_assert_int_eq(setenv("TEST_SECRET_KEY", "sk-0123456789", 1), 0);
	where = getenv("TEST_SECRET_KEY");
	ck_assert_int_eq(secret_env_hold("TEST_SECRET_KEY"), 0);
	ck_assert_ptr_null(getenv("TEST_SECRET_KEY"));
	/* the bytes where the value lay are gone too (what a fork copies) */
	for (size_t i = 0; i < strlen("sk-0123456789"); i++)
		ck_assert_int_eq(where[i], 0);
	ck_assert(secret_env_held("TEST_SECRET_KEY"));
	ck_assert_str_eq(secret_getenv("TEST_SECRET_KEY"), "sk-0123456789");
	ck_assert_uint_eq(secret_env_count(), 1);
	ck_assert_str_eq(secret_env_name(0), "TEST_SECRET_KEY");
	ck_assert_int_eq(secret_env_hold("TEST_SECRET_KEY"), 0); /* again: no-op */
	ck_assert_uint_eq(secret_env_count(), 1);
}
END_TEST

START_TEST(children_do_not_inherit_a_held_variable)
{
	int p[2], st;
	char out[64] = { 0 };
	pid_t pid;

	ck_assert_int_eq(setenv("TEST_SECRET_KEY", "sk-child", 1), 0);
	ck_assert_int_eq(secret_env_hold("TEST_SECRET_KEY"), 0);
	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		execl("/bin/sh", "sh", "-c", "echo \"[${TEST_SECRET_KEY-unset}]\"", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	ck_assert_int_gt(read(p[0], out, sizeof(out) - 1), 0);
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_str_eq(out, "[unset]\n");
}
END_TEST

START_TEST(secret_from_env_copies_a_held_one_for_every_user)
{
	struct secret *a = NULL, *b = NULL;

	ck_assert_int_eq(setenv("TEST_LINK_TOKEN", "tok-abc\n", 1), 0);
	ck_assert_int_eq(secret_env_hold("TEST_LINK_TOKEN"), 0);
	ck_assert_int_eq(secret_from_env("TEST_LINK_TOKEN", &a), 0);
	ck_assert_int_eq(secret_from_env("TEST_LINK_TOKEN", &b), 0);
	ck_assert_str_eq(secret_data(a), "tok-abc"); /* trailing whitespace trimmed */
	ck_assert_str_eq(secret_data(b), "tok-abc");
	ck_assert(secret_env_held("TEST_LINK_TOKEN"));
	secret_free(a);
	secret_free(b);
	/* not held: taken once, then gone */
	ck_assert_int_eq(setenv("TEST_ONCE", "once", 1), 0);
	ck_assert_int_eq(secret_from_env("TEST_ONCE", &a), 0);
	ck_assert_ptr_null(getenv("TEST_ONCE"));
	ck_assert_int_eq(secret_from_env("TEST_ONCE", &b), -ENOENT);
	secret_free(a);
}
END_TEST

START_TEST(empty_unset_and_bad_names)
{
	ck_assert_int_eq(setenv("TEST_EMPTY", "", 1), 0);
	ck_assert_int_eq(secret_env_hold("TEST_EMPTY"), -ENOENT);
	ck_assert_ptr_null(getenv("TEST_EMPTY")); /* removed all the same */
	ck_assert(!secret_env_held("TEST_EMPTY"));
	ck_assert_int_eq(secret_env_hold("TEST_NEVER_SET_X"), -ENOENT);
	ck_assert_int_eq(secret_env_hold("A=B"), -EINVAL);
	ck_assert_int_eq(secret_env_hold(""), -EINVAL);
	ck_assert_int_eq(secret_env_hold(NULL), -EINVAL);
	/* secret_getenv falls back to the environment */
	ck_assert_int_eq(setenv("TEST_PLAIN", "plain", 1), 0);
	ck_assert_str_eq(secret_getenv("TEST_PLAIN"), "plain");
	unsetenv("TEST_PLAIN");
}
END_TEST

START_TEST(release_forgets_and_the_table_is_bounded)
{
	char name[32];
	int r = 0;

	for (unsigned i = 0; i <= SECRET_ENV_MAX && r == 0; i++) {
		snprintf(name, sizeof(name), "TEST_MANY_%u", i);
		ck_assert_int_eq(setenv(name, "v", 1), 0);
		r = secret_env_hold(name);
	}
	ck_assert_int_eq(r, -ENOSPC);
	ck_assert_uint_eq(secret_env_count(), SECRET_ENV_MAX);
	ck_assert_ptr_nonnull(getenv(name)); /* not held: left in place */
	unsetenv(name);
	secret_env_release_all();
	ck_assert_uint_eq(secret_env_count(), 0);
	ck_assert(!secret_env_held("TEST_MANY_0"));
	ck_assert_ptr_null(secret_getenv("TEST_MANY_0"));
}
END_TEST

static Suite *secret_suite(void)
{
	Suite *s = suite_create("secret");
	TCase *tc = tcase_create("secret");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, a_held_variable_leaves_the_environment_and_its_memory);
	tcase_add_test(tc, children_do_not_inherit_a_held_variable);
	tcase_add_test(tc, secret_from_env_copies_a_held_one_for_every_user);
	tcase_add_test(tc, empty_unset_and_bad_names);
	tcase_add_test(tc, release_forgets_and_the_table_is_bounded);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(secret_suite)
