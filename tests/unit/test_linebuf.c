/* test_linebuf.c - newline framing over a real non-blocking pipe. */
#include "linebuf.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct fixture {
	struct linebuf lb;
	int p[2];
};

static void setup(struct fixture *f, size_t max_line)
{
	linebuf_init(&f->lb, max_line);
	ck_assert_int_eq(pipe2(f->p, O_CLOEXEC | O_NONBLOCK), 0);
}

static void teardown(struct fixture *f)
{
	linebuf_free(&f->lb);
	safe_close(f->p[0]);
	safe_close(f->p[1]);
}

static void feed(struct fixture *f, const char *s)
{
	size_t n = strlen(s);

	ck_assert_int_eq(write(f->p[1], s, n), (ssize_t)n);
	ck_assert_int_eq(linebuf_read(&f->lb, f->p[0]), (ssize_t)n);
}

static void expect_line(struct fixture *f, const char *want)
{
	const char *line = NULL;
	size_t len = 0;

	ck_assert_int_eq(linebuf_next(&f->lb, &line, &len), 1);
	ck_assert_uint_eq(len, strlen(want));
	ck_assert_mem_eq(line, want, len);
	/* Handed out in place, not copied. */
	ck_assert(line >= f->lb.buf && line + len <= f->lb.buf + f->lb.cap);
}

static void expect_none(struct fixture *f)
{
	const char *line = NULL;
	size_t len = 0;

	ck_assert_int_eq(linebuf_next(&f->lb, &line, &len), 0);
	ck_assert_ptr_null(line);
}

START_TEST(split_across_reads)
{
	struct fixture f;

	setup(&f, 100);
	feed(&f, "hel");
	expect_none(&f);
	ck_assert_uint_eq(linebuf_pending(&f.lb), 3);
	feed(&f, "lo\nwor");
	expect_line(&f, "hello");
	expect_none(&f);
	feed(&f, "l");
	expect_none(&f);
	feed(&f, "d\n");
	expect_line(&f, "world");
	expect_none(&f);
	ck_assert_uint_eq(linebuf_pending(&f.lb), 0);
	teardown(&f);
}
END_TEST

START_TEST(many_lines_one_read)
{
	struct fixture f;
	char all[4096] = "", want[32];

	setup(&f, 100);
	for (int i = 0; i < 200; i++) {
		snprintf(want, sizeof(want), "line %d\n", i);
		strcat(all, want);
	}
	feed(&f, all);
	for (int i = 0; i < 200; i++) {
		snprintf(want, sizeof(want), "line %d", i);
		expect_line(&f, want);
	}
	expect_none(&f);
	teardown(&f);
}
END_TEST

START_TEST(crlf_and_empty_lines)
{
	struct fixture f;

	setup(&f, 100);
	feed(&f, "a\r\n\n\r\n\nb\n");
	expect_line(&f, "a\r");
	expect_line(&f, "");
	expect_line(&f, "\r");
	expect_line(&f, "");
	expect_line(&f, "b");
	expect_none(&f);
	teardown(&f);
}
END_TEST

START_TEST(exact_max_accepted)
{
	struct fixture f;

	setup(&f, 10);
	feed(&f, "0123456789\n");
	expect_line(&f, "0123456789");
	/* A partial line of exactly max_line is still fine. */
	feed(&f, "abcdefghij");
	expect_none(&f);
	feed(&f, "\n");
	expect_line(&f, "abcdefghij");
	teardown(&f);
}
END_TEST

START_TEST(over_max_complete_line)
{
	struct fixture f;
	const char *line;
	size_t len;

	setup(&f, 10);
	feed(&f, "01234567890\nok\n");
	ck_assert_int_eq(linebuf_next(&f.lb, &line, &len), -E2BIG);
	ck_assert_int_eq(linebuf_next(&f.lb, &line, &len), -E2BIG);
	teardown(&f);
}
END_TEST

START_TEST(over_max_partial_line)
{
	struct fixture f;
	const char *line;
	size_t len;

	setup(&f, 10);
	feed(&f, "ok\n012345");
	expect_line(&f, "ok");
	expect_none(&f);
	feed(&f, "67890");
	ck_assert_int_eq(linebuf_next(&f.lb, &line, &len), -E2BIG);
	teardown(&f);
}
END_TEST

START_TEST(eof_with_partial_line)
{
	struct fixture f;

	setup(&f, 100);
	ck_assert_int_eq(linebuf_read(&f.lb, f.p[0]), -EAGAIN);
	feed(&f, "done\ntrail");
	f.p[1] = safe_close(f.p[1]);
	expect_line(&f, "done");
	expect_none(&f);
	ck_assert_int_eq(linebuf_read(&f.lb, f.p[0]), 0);
	ck_assert_uint_eq(linebuf_pending(&f.lb), 5);
	teardown(&f);
}
END_TEST

START_TEST(bad_fd_reports_errno)
{
	struct linebuf lb;

	linebuf_init(&lb, 10);
	ck_assert_int_eq(linebuf_read(&lb, -1), -EBADF);
	linebuf_free(&lb);
	linebuf_free(NULL);
}
END_TEST

START_TEST(full_buffer_is_not_eof)
{
	struct fixture f;
	char chunk[4096];
	ssize_t r;
	int reads = 0;

	/* A caller that never takes lines fills the buffer; the read must
	 * then say so instead of returning 0, which would look like EOF. */
	setup(&f, 10);
	memset(chunk, '\n', sizeof(chunk));
	for (;;) {
		(void)!write(f.p[1], chunk, sizeof(chunk));
		r = linebuf_read(&f.lb, f.p[0]);
		ck_assert_int_ne(r, 0);
		if (r < 0)
			break;
		ck_assert_uint_le(f.lb.cap, f.lb.limit);
		ck_assert_int_lt(++reads, 100);
	}
	ck_assert_int_eq(r, -ENOBUFS);
	ck_assert_uint_eq(f.lb.cap, 10 + 1 + LINEBUF_CHUNK);
	teardown(&f);
}
END_TEST

/* Random lines (0..max_line bytes, no '\n') pushed through the pipe in
 * random chunk sizes; what comes out must be byte-identical. */
START_TEST(large_volume_random_chunks)
{
	enum { TOTAL = 10 * 1024 * 1024, MAXL = 3000 };
	struct fixture f;
	unsigned seed = 4242;
	char *data = xmalloc(TOTAL);
	size_t nlines = 0, wpos = 0, rpos = 0;
	bool eof = false;

	for (size_t i = 0; i < TOTAL;) {
		size_t len = (size_t)rand_r(&seed) % (MAXL + 1);

		if (rand_r(&seed) % 8 == 0)
			len = MAXL; /* exercise the exact bound often */
		if (i + len + 1 > TOTAL)
			len = TOTAL - i - 1;
		for (size_t k = 0; k < len; k++) {
			char c = (char)(rand_r(&seed) % 255 + 1);

			data[i + k] = c == '\n' ? 'n' : c;
		}
		data[i + len] = '\n';
		i += len + 1;
		nlines++;
	}
	setup(&f, MAXL);
	while (!eof) {
		const char *line;
		size_t len;
		int r;

		if (wpos < TOTAL) {
			size_t r1 = (size_t)rand_r(&seed) % 70000 + 1;
			size_t want = MIN(r1, TOTAL - wpos);
			ssize_t w = write(f.p[1], data + wpos, want);

			if (w > 0)
				wpos += (size_t)w;
			if (wpos == TOTAL)
				f.p[1] = safe_close(f.p[1]);
		}
		ssize_t n = linebuf_read(&f.lb, f.p[0]);

		ck_assert(n > 0 || n == -EAGAIN || n == 0);
		eof = n == 0;
		while ((r = linebuf_next(&f.lb, &line, &len)) == 1) {
			ck_assert_uint_le(rpos + len + 1, TOTAL);
			ck_assert_mem_eq(line, data + rpos, len);
			ck_assert_int_eq(data[rpos + len], '\n');
			rpos += len + 1;
			nlines--;
		}
		ck_assert_int_eq(r, 0);
		ck_assert_uint_le(f.lb.cap, MAXL + 1 + LINEBUF_CHUNK);
	}
	ck_assert_uint_eq(rpos, TOTAL);
	ck_assert_uint_eq(nlines, 0);
	ck_assert_uint_eq(linebuf_pending(&f.lb), 0);
	free(data);
	teardown(&f);
}
END_TEST

static Suite *linebuf_suite(void)
{
	Suite *s = suite_create("linebuf");
	TCase *tc = tcase_create("framing");

	tcase_add_test(tc, split_across_reads);
	tcase_add_test(tc, many_lines_one_read);
	tcase_add_test(tc, crlf_and_empty_lines);
	tcase_add_test(tc, exact_max_accepted);
	tcase_add_test(tc, over_max_complete_line);
	tcase_add_test(tc, over_max_partial_line);
	tcase_add_test(tc, eof_with_partial_line);
	tcase_add_test(tc, bad_fd_reports_errno);
	tcase_add_test(tc, full_buffer_is_not_eof);
	tcase_add_test(tc, large_volume_random_chunks);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(linebuf_suite)
