/* test_bearer.c - capability tokens from a file or a SHA-256, checked
 * against Authorization headers. */
#include "bearer.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define TOKEN "s3cret-token"

static char *token_file(const char *content, mode_t mode, char *dir)
{
	char *path;
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/token", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void rm(char *path, char *dir)
{
	unlink(path);
	rmdir(dir);
	free(path);
}

START_TEST(file_token_checks_headers)
{
	char dir[] = "/tmp/tdm-bearer-XXXXXX", err[256] = "";
	char *path = token_file(TOKEN "\n", 0600, dir);
	struct bearer *b = NULL;

	ck_assert_int_eq(bearer_from_file(path, &b, err, sizeof(err)), 0);
	ck_assert(bearer_check_header(b, "Bearer " TOKEN));
	ck_assert(bearer_check_header(b, "bearer   " TOKEN));
	ck_assert(!bearer_check_header(b, "Bearer " TOKEN "\n"));
	ck_assert(!bearer_check_header(b, "Bearer " TOKEN "x"));
	ck_assert(!bearer_check_header(b, "Bearer s3cret-toke"));
	ck_assert(!bearer_check_header(b, "Basic " TOKEN));
	ck_assert(!bearer_check_header(b, "Bearer" TOKEN));
	ck_assert(!bearer_check_header(b, "Bearer "));
	ck_assert(!bearer_check_header(b, ""));
	ck_assert(!bearer_check_header(b, NULL));
	ck_assert(!bearer_check_header(NULL, "Bearer " TOKEN));
	bearer_free(b);
	rm(path, dir);
}
END_TEST

START_TEST(lax_file_modes_are_refused)
{
	static const mode_t bad[] = { 0640, 0604, 0644, 0660, 0666 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char dir[] = "/tmp/tdm-bearer-XXXXXX", err[256] = "";
		char *path = token_file(TOKEN, bad[i], dir);
		struct bearer *b = NULL;

		ck_assert_int_eq(bearer_from_file(path, &b, err, sizeof(err)), -EPERM);
		ck_assert_ptr_null(b);
		ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
		ck_assert_ptr_null(strstr(err, TOKEN));
		rm(path, dir);
	}
	{
		char dir[] = "/tmp/tdm-bearer-XXXXXX", err[256] = "";
		char *path = token_file(TOKEN, 0400, dir);
		struct bearer *b = NULL;

		ck_assert_int_eq(bearer_from_file(path, &b, err, sizeof(err)), 0);
		bearer_free(b);
		rm(path, dir);
	}
}
END_TEST

START_TEST(empty_and_missing_files)
{
	char dir[] = "/tmp/tdm-bearer-XXXXXX", err[256] = "";
	char *path = token_file("\n", 0600, dir);
	struct bearer *b = NULL;

	ck_assert_int_lt(bearer_from_file(path, &b, err, sizeof(err)), 0);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(bearer_from_file("/nonexistent/tdm-token", &b, err, sizeof(err)),
			 -ENOENT);
	ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tdm-token"));
	rm(path, dir);
}
END_TEST

START_TEST(sha256_form)
{
	char err[256] = "";
	struct bearer *b = NULL;
	/* A well-formed digest, of some other token. */
	const char *hex = "2e6e1f9b0f8bd2c2ff6c8d0e3aa0b6e1e8f0bd6d69c0d8e0b4b6a8b1d0c1c2c3";

	ck_assert_int_eq(bearer_from_sha256_hex(hex, &b, err, sizeof(err)), 0);
	ck_assert(!bearer_check_header(b, "Bearer " TOKEN)); /* not this token's digest */
	bearer_free(b);
	ck_assert_int_eq(bearer_from_sha256_hex("abc", &b, err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(bearer_from_sha256_hex("zz6e1f9b0f8bd2c2ff6c8d0e3aa0b6e1e8f0bd6d69c0d8e0b"
						"4b6a8b1d0c1c2c3",
						&b, err, sizeof(err)),
			 -EINVAL);
	ck_assert_int_eq(bearer_from_sha256_hex(NULL, &b, err, sizeof(err)), -EINVAL);
}
END_TEST

START_TEST(sha256_of_real_token)
{
	/* The digest as an operator makes it: coreutils' sha256sum. */
	char err[256] = "", hex[65];
	FILE *p = popen("printf %s s3cret-token | sha256sum", "r");
	struct bearer *b = NULL;

	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%64s", hex), 1);
	pclose(p);
	ck_assert_int_eq(bearer_from_sha256_hex(hex, &b, err, sizeof(err)), 0);
	ck_assert(bearer_check_header(b, "Bearer " TOKEN));
	ck_assert(!bearer_check_header(b, "Bearer " TOKEN "2"));
	bearer_free(b);
	for (char *c = hex; *c; c++)
		*c = (char)toupper((unsigned char)*c);
	ck_assert_int_eq(bearer_from_sha256_hex(hex, &b, err, sizeof(err)), 0);
	ck_assert(bearer_check(b, TOKEN, strlen(TOKEN)));
	bearer_free(b);
}
END_TEST

START_TEST(token_syntax)
{
	size_t len = 0;
	const char *t = bearer_token_of("Bearer abc.DEF-_~+/==", &len);

	ck_assert_ptr_nonnull(t);
	ck_assert_uint_eq(len, strlen("abc.DEF-_~+/=="));
	ck_assert_ptr_null(bearer_token_of("Bearer a b", &len));
	ck_assert_ptr_null(bearer_token_of("Bearer a=b", &len));
	ck_assert_ptr_null(bearer_token_of("Bearer \"a\"", &len));
	ck_assert_ptr_null(bearer_token_of("Bearerx a", &len));
	ck_assert_ptr_null(bearer_free(NULL));
}
END_TEST

static Suite *bearer_suite(void)
{
	Suite *s = suite_create("bearer");
	TCase *tc = tcase_create("bearer");

	tcase_add_test(tc, file_token_checks_headers);
	tcase_add_test(tc, lax_file_modes_are_refused);
	tcase_add_test(tc, empty_and_missing_files);
	tcase_add_test(tc, sha256_form);
	tcase_add_test(tc, sha256_of_real_token);
	tcase_add_test(tc, token_syntax);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(bearer_suite)
