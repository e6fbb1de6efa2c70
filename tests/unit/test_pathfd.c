/* test_pathfd.c - pathfd_* on a scratch tree, with openat2 and with the
 * O_NOFOLLOW walk used where the kernel has none. */
#include "pathfd.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];
static int rootfd = -1;

/* dir/root/{a/f, in -> a, out -> ../outside, abs -> /etc} and dir/outside/g */
static void setup(void)
{
	char p[256];
	FILE *f;

	snprintf(dir, sizeof(dir), "/tmp/tandem-pathfd-XXXXXX"); /* CK_FORK=no runs reuse it */
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/root", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/a", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/root/a/f", dir);
	f = fopen(p, "w");
	fputs("inside", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/outside", dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/outside/g", dir);
	f = fopen(p, "w");
	fputs("outside", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/root/in", dir);
	ck_assert_int_eq(symlink("a", p), 0);
	snprintf(p, sizeof(p), "%s/root/out", dir);
	ck_assert_int_eq(symlink("../outside", p), 0);
	snprintf(p, sizeof(p), "%s/root/abs", dir);
	ck_assert_int_eq(symlink("/etc", p), 0);
	snprintf(p, sizeof(p), "%s/root", dir);
	rootfd = open(p, O_PATH | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(rootfd, 0);
}

static void teardown(void)
{
	char cmd[300];

	close(rootfd);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
	pathfd_use_openat2(true);
}

static void expect_content(int fd, const char *want)
{
	char buf[64] = { 0 };

	ck_assert_int_ge(fd, 0);
	ck_assert_int_gt(read(fd, buf, sizeof(buf) - 1), 0);
	ck_assert_str_eq(buf, want);
	close(fd);
}

START_TEST(test_beneath_openat2)
{
	/* valgrind does not know openat2: then this is the walk again */
	expect_content(pathfd_open_beneath(rootfd, "a/f", O_RDONLY), "inside");
	expect_content(pathfd_open_beneath(rootfd, "./a//f", O_RDONLY), "inside");
	/* a symlink that stays inside is followed */
	expect_content(pathfd_open_beneath(rootfd, "in/f", O_RDONLY), "inside");
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "out/g", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "abs/passwd", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "../outside/g", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "/etc/passwd", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "a/missing", O_RDONLY), -ENOENT);
	{
		int fd = pathfd_open_beneath(rootfd, "", O_PATH | O_DIRECTORY);

		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
		close(fd);
	}
}
END_TEST

/* The same answers from the user-space walk. */
START_TEST(test_beneath_walk)
{
	char p[300];

	pathfd_use_openat2(false);
	expect_content(pathfd_open_beneath(rootfd, "a/f", O_RDONLY), "inside");
	expect_content(pathfd_open_beneath(rootfd, "./a/./f", O_RDONLY), "inside");
	expect_content(pathfd_open_beneath(rootfd, "in/f", O_RDONLY), "inside");
	expect_content(pathfd_open_beneath(rootfd, "a/../in/f", O_RDONLY), "inside");
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "out/g", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "abs/passwd", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "../outside/g", O_RDONLY), -EXDEV);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "a/missing", O_RDONLY), -ENOENT);
	{
		int fd = pathfd_open_beneath(rootfd, "in", O_PATH | O_DIRECTORY);

		ck_assert_int_ge(fd, 0);
		close(fd);
	}
	/* a loop ends */
	snprintf(p, sizeof(p), "%s/root/loop", dir);
	ck_assert_int_eq(symlink("loop", p), 0);
	ck_assert_int_eq(pathfd_open_beneath(rootfd, "loop", O_RDONLY), -ELOOP);
}
END_TEST

static void nosymlinks(void)
{
	char p[300];

	snprintf(p, sizeof(p), "%s/root/a/f", dir);
	expect_content(pathfd_open_nosymlinks(p, O_RDONLY), "inside");
	snprintf(p, sizeof(p), "%s/root/in/f", dir);
	ck_assert_int_eq(pathfd_open_nosymlinks(p, O_RDONLY), -ELOOP);
	ck_assert_int_eq(pathfd_open_nosymlinks("relative", O_RDONLY), -EINVAL);
}

START_TEST(test_nosymlinks) { nosymlinks(); }
END_TEST

START_TEST(test_nosymlinks_walk)
{
	pathfd_use_openat2(false);
	nosymlinks();
}
END_TEST

static Suite *pathfd_suite(void)
{
	Suite *s = suite_create("pathfd");
	TCase *tc = tcase_create("pathfd");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_beneath_openat2);
	tcase_add_test(tc, test_beneath_walk);
	tcase_add_test(tc, test_nosymlinks);
	tcase_add_test(tc, test_nosymlinks_walk);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(pathfd_suite)
