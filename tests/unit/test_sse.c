/* test_sse.c - the event-stream rules, each checked for every way of
 * splitting the stream into feeds: whole, byte by byte, in two at every
 * offset, and in chunks of 2, 3 and 7 bytes. */
#include "sse.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ev {
	const char *event;
	const char *data;
	size_t len;
	const char *id; /* NULL: no last event id */
};

struct rec {
	struct ev *v;
	size_t n, cap;
};

static void rec_cb(const char *event, const char *data, size_t len, const char *id, void *arg)
{
	struct rec *r = arg;
	char *d = xmalloc(len + 1);

	/* The promised terminator: data[len] is '\0'. */
	ck_assert_int_eq(data[len], '\0');
	memcpy(d, data, len + 1);
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 8;
		r->v = xrealloc(r->v, r->cap * sizeof(*r->v));
	}
	r->v[r->n++] = (struct ev){ xstrdup(event), d, len, id ? xstrdup(id) : NULL };
}

static void rec_free(struct rec *r)
{
	for (size_t i = 0; i < r->n; i++) {
		free((char *)r->v[i].event);
		free((char *)r->v[i].data);
		free((char *)r->v[i].id);
	}
	free(r->v);
	*r = (struct rec){ 0 };
}

/* Feeds s in chunks whose ends are listed in cuts (ascending, the last one
 * being len). Returns the first error, and keeps feeding after it to check
 * that the error is sticky. */
static int run_cuts(const char *s, size_t len, size_t max, const size_t *cuts, size_t ncuts,
		    struct rec *out)
{
	struct sse p;
	size_t at = 0;
	int first = 0;

	sse_init(&p, max, rec_cb, out);
	for (size_t i = 0; i < ncuts; i++) {
		int r = sse_feed(&p, s + at, cuts[i] - at);

		if (first < 0)
			ck_assert_int_eq(r, first);
		else
			first = r;
		at = cuts[i];
	}
	sse_free(&p);
	return first;
}

static void expect_events(const struct rec *got, const struct ev *want, size_t nwant,
			  const char *how)
{
	ck_assert_msg(got->n == nwant, "%s: %zu events, want %zu", how, got->n, nwant);
	for (size_t i = 0; i < nwant; i++) {
		const struct ev *g = &got->v[i], *w = &want[i];

		ck_assert_msg(strcmp(g->event, w->event) == 0, "%s: event %zu type '%s' want '%s'",
			      how, i, g->event, w->event);
		ck_assert_msg(g->len == w->len && memcmp(g->data, w->data, w->len) == 0,
			      "%s: event %zu data '%s' want '%s'", how, i, g->data, w->data);
		if (w->id)
			ck_assert_msg(g->id && strcmp(g->id, w->id) == 0, "%s: event %zu id", how,
				      i);
		else
			ck_assert_msg(g->id == NULL, "%s: event %zu has id '%s'", how, i, g->id);
	}
}

static void check_cuts(const char *s, size_t len, size_t max, const size_t *cuts, size_t ncuts,
		       int want_rc, const struct ev *want, size_t nwant, const char *how)
{
	struct rec got = { 0 };
	int rc = run_cuts(s, len, max, cuts, ncuts, &got);

	ck_assert_msg(rc == want_rc, "%s: rc %d want %d", how, rc, want_rc);
	expect_events(&got, want, nwant, how);
	rec_free(&got);
}

static void check_chunked(const char *s, size_t len, size_t max, size_t step, int want_rc,
			  const struct ev *want, size_t nwant)
{
	size_t n = len / step + 2, k = 0;
	size_t *cuts = xcalloc(n, sizeof(*cuts));
	char how[64];

	for (size_t at = step; at < len; at += step)
		cuts[k++] = at;
	cuts[k++] = len;
	snprintf(how, sizeof(how), "chunks of %zu", step);
	check_cuts(s, len, max, cuts, k, want_rc, want, nwant, how);
	free(cuts);
}

/* The whole stream, then every other way of cutting it. */
static void check_all(const char *s, size_t len, size_t max, int want_rc, const struct ev *want,
		      size_t nwant)
{
	static const size_t steps[] = { 1, 2, 3, 7 };
	char how[64];

	check_cuts(s, len, max, &len, 1, want_rc, want, nwant, "whole");
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++)
		check_chunked(s, len, max, steps[i], want_rc, want, nwant);
	for (size_t k = 0; k <= len; k++) {
		size_t cuts[2] = { k, len };

		snprintf(how, sizeof(how), "split at %zu", k);
		check_cuts(s, len, max, cuts, 2, want_rc, want, nwant, how);
	}
}

#define BIG ((size_t)1 << 20)
/* A string literal with its exact length (it may hold NUL bytes). */
#define S(lit) lit, sizeof(lit) - 1
#define EV(type, lit, id) { type, lit, sizeof(lit) - 1, id }
#define CHECK(lit, ...)                                                        \
	do {                                                                   \
		static const struct ev want_[] = { __VA_ARGS__ };              \
		check_all(S(lit), BIG, 0, want_, ARRAY_SIZE(want_));           \
	} while (0)
#define CHECK_NONE(lit) check_all(S(lit), BIG, 0, NULL, 0)

START_TEST(basic_fields)
{
	CHECK("data: hello\n\n", EV("message", "hello", NULL));
	CHECK("event: add\ndata: 1\n\n", EV("add", "1", NULL));
	CHECK("data: a: b\n\n", EV("message", "a: b", NULL));
	CHECK("event: a\nevent: b\ndata: x\n\n", EV("b", "x", NULL));
	/* An empty event type means "message". */
	CHECK("event:\ndata: a\n\n", EV("message", "a", NULL));
	CHECK("\n\n\ndata: a\n\n\n\n", EV("message", "a", NULL));
}
END_TEST

START_TEST(data_lines_joined)
{
	CHECK("data: a\ndata: b\ndata: c\n\n", EV("message", "a\nb\nc", NULL));
	CHECK("data: a\ndata:\ndata: c\n\n", EV("message", "a\n\nc", NULL));
	/* Lone "data" is a data line with an empty value: dispatched. */
	CHECK("data\n\n", EV("message", "", NULL));
	CHECK("data\ndata\n\n", EV("message", "\n", NULL));
	CHECK("data: a\0b\n\n", EV("message", "a\0b", NULL));
}
END_TEST

START_TEST(one_space_stripped)
{
	CHECK("data:x\n\n", EV("message", "x", NULL));
	CHECK("data:  two\n\n", EV("message", " two", NULL));
	CHECK("data:\tx\n\n", EV("message", "\tx", NULL));
	CHECK("event:  sp\ndata: x\n\n", EV(" sp", "x", NULL));
	CHECK("data: \n\n", EV("message", "", NULL));
	/* The field name is exact: no trimming around it. */
	CHECK_NONE("data : x\n\n");
	CHECK_NONE(" data: x\n\nDATA: y\n\n");
}
END_TEST

START_TEST(line_endings)
{
	static const struct ev three[] = {
		EV("message", "a", NULL), EV("message", "b", NULL), EV("message", "c", NULL)
	};

	check_all(S("data: a\r\n\r\ndata: b\r\rdata: c\n\n"), BIG, 0, three, 3);
	check_all(S("data: a\n\r\ndata: b\r\n\ndata: c\r\n\r"), BIG, 0, three, 3);
	/* CRLF is one ending, CR CR two, LF CR two: the blank line
	 * dispatches in each case, so one event per stream. */
	CHECK("data: a\r\ndata: b\r\n\r\n", EV("message", "a\nb", NULL));
	CHECK("data: a\rdata: b\r\r", EV("message", "a\nb", NULL));
	CHECK("data: a\n\rdata: b\n\n", EV("message", "a", NULL), EV("message", "b", NULL));
	/* LF CR LF: the CR ends a blank line, the LF after it belongs to it. */
	CHECK("data: a\n\r\ndata: b\n\n", EV("message", "a", NULL), EV("message", "b", NULL));
}
END_TEST

START_TEST(bom_skipped_once)
{
	CHECK("\xEF\xBB\xBF" "data: a\n\n", EV("message", "a", NULL));
	/* A second BOM is part of the field name, which is then unknown. */
	CHECK("\xEF\xBB\xBF\xEF\xBB\xBF" "data: a\n\ndata: b\n\n", EV("message", "b", NULL));
	/* Not a BOM after all: its bytes stay in the line. */
	CHECK("\xEF\xBB" "data: a\n\ndata: b\n\n", EV("message", "b", NULL));
	CHECK("\xEF" "data: a\n\ndata: b\n\n", EV("message", "b", NULL));
	/* Only at stream start. */
	CHECK("data: a\n\n\xEF\xBB\xBF" "data: b\n\n", EV("message", "a", NULL));
	CHECK("data: \xEF\xBB\xBF\n\n", EV("message", "\xEF\xBB\xBF", NULL));
	CHECK_NONE("\xEF\xBB\xBF");
	CHECK_NONE("\xEF\xBB");
}
END_TEST

START_TEST(comments_and_ignored_fields)
{
	CHECK(": hi\ndata: a\n:x\n\n", EV("message", "a", NULL));
	CHECK(":\n:\n\ndata: a\n\n", EV("message", "a", NULL));
	CHECK("retry: 1000\nfoo: bar\nretry\ndata: a\n\n", EV("message", "a", NULL));
	CHECK_NONE(": only a comment\n\n");
}
END_TEST

START_TEST(no_data_no_event)
{
	CHECK_NONE("event: x\n\n");
	/* The type does not leak into the next event. */
	CHECK("event: x\n\ndata: y\n\n", EV("message", "y", NULL));
	CHECK("event: x\nid: 4\n\ndata: y\n\n", EV("message", "y", "4"));
}
END_TEST

START_TEST(ids)
{
	CHECK("id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\n", EV("message", "a", "1"),
	      EV("message", "b", "1"), EV("message", "c", NULL));
	/* Set anywhere in the event, before the blank line. */
	CHECK("data: a\nid: 7\n\n", EV("message", "a", "7"));
	CHECK("id: 1\nid: 2\ndata: a\n\n", EV("message", "a", "2"));
	/* An id holding NUL is ignored. */
	CHECK("id: 2\ndata: a\n\nid: 3\0x\ndata: b\n\n", EV("message", "a", "2"),
	      EV("message", "b", "2"));
	CHECK("id:\ndata: a\n\n", EV("message", "a", NULL));
}
END_TEST

START_TEST(unterminated_dropped)
{
	CHECK("data: a\n\ndata: b\n", EV("message", "a", NULL));
	CHECK("data: a\n\ndata: b", EV("message", "a", NULL));
	CHECK("data: a\n\ndata: b\r", EV("message", "a", NULL));
	CHECK_NONE("");
}
END_TEST

START_TEST(bound_per_event)
{
	static const struct ev a[] = { EV("message", "a", NULL) };
	static const struct ev two[] = { EV("message", "aa\nbb", NULL) };
	static const struct ev five[] = { EV("message", "12345", NULL) };

	/* "data: 12345" is 11 bytes. */
	check_all(S("data: 12345\n\n"), 11, 0, five, 1);
	check_all(S("data: 12345\n\n"), 10, -E2BIG, NULL, 0);
	/* Lines of one event add up: 8 + 8. */
	check_all(S("data: aa\ndata: bb\n\n"), 16, 0, two, 1);
	check_all(S("data: aa\ndata: bb\n\n"), 15, -E2BIG, NULL, 0);
	/* Events before the offending one are delivered; the count starts
	 * afresh with each event. */
	check_all(S("data: a\n\ndata: 0123456789\n\ndata: b\n\n"), 8, -E2BIG, a, 1);
	check_all(S("data: a\n\nevent: x\n\ndata: 01\n\n"), 8, 0,
		  (const struct ev[]){ EV("message", "a", NULL), EV("message", "01", NULL) }, 2);
	/* An over-long line that never ends fails too. */
	check_all(S("data: a\n\ndata: 0123456789"), 8, -E2BIG, a, 1);
}
END_TEST

START_TEST(bound_skips_comments)
{
	char *s = xmalloc(100000);
	size_t n = 0;
	static const struct ev want[] = { EV("message", "a", NULL) };
	struct rec got = { 0 };
	size_t cuts[3];

	for (int i = 0; i < 10; i++) {
		n += (size_t)sprintf(s + n, ":");
		memset(s + n, 'x', 5000);
		n += 5000;
		s[n++] = '\n';
	}
	n += (size_t)sprintf(s + n, "data: a\n\n");
	/* Cut inside a comment so that one is carried across feeds. */
	cuts[0] = 100;
	cuts[1] = 7000;
	cuts[2] = n;
	ck_assert_int_eq(run_cuts(s, n, 8, cuts, 3, &got), 0);
	expect_events(&got, want, 1, "comments");
	rec_free(&got);
	check_chunked(s, n, 8, 1, 0, want, 1);
	free(s);
}
END_TEST

START_TEST(error_is_sticky)
{
	struct rec got = { 0 };
	struct sse p;

	sse_init(&p, 8, rec_cb, &got);
	ck_assert_int_eq(sse_feed(&p, S("data: 0123456789\n\n")), -E2BIG);
	ck_assert_int_eq(sse_feed(&p, S("data: a\n\n")), -E2BIG);
	ck_assert_uint_eq(got.n, 0);
	sse_free(&p);
	sse_free(NULL);
	rec_free(&got);
}
END_TEST

/* A 1 MiB event fed one byte at a time: also a guard against quadratic
 * behaviour, which would not finish within the test timeout. */
START_TEST(large_event_bytewise)
{
	size_t n = BIG, len = 0;
	char *s = xmalloc(n + 64);
	struct rec got = { 0 };
	struct sse p;
	int rc = 0;

	len += (size_t)sprintf(s, "id: big\ndata: ");
	for (size_t i = 0; i < n; i++)
		s[len++] = (char)('a' + i % 26);
	len += (size_t)sprintf(s + len, "\ndata: end\n\n");
	sse_init(&p, 2 * BIG, rec_cb, &got);
	/* No ck_assert per byte: each one is a write to check's pipe. */
	for (size_t i = 0; i < len; i++)
		rc |= sse_feed(&p, s + i, 1);
	sse_free(&p);
	ck_assert_int_eq(rc, 0);
	ck_assert_uint_eq(got.n, 1);
	ck_assert_uint_eq(got.v[0].len, n + 4);
	ck_assert_mem_eq(got.v[0].data, s + 14, n);
	ck_assert_mem_eq(got.v[0].data + n, "\nend", 4);
	ck_assert_str_eq(got.v[0].id, "big");
	rec_free(&got);
	free(s);
}
END_TEST

/* The reason for the parser: an OpenAI Responses stream. */
START_TEST(responses_stream)
{
	CHECK("event: response.created\r\n"
	      "data: {\"type\":\"response.created\"}\r\n\r\n"
	      ": keep-alive\r\n\r\n"
	      "event: response.output_text.delta\r\n"
	      "data: {\"delta\":\"hi\"}\r\n\r\n"
	      "data: [DONE]\r\n\r\n",
	      EV("response.created", "{\"type\":\"response.created\"}", NULL),
	      EV("response.output_text.delta", "{\"delta\":\"hi\"}", NULL),
	      EV("message", "[DONE]", NULL));
}
END_TEST

static Suite *sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("rules");

	tcase_add_test(tc, basic_fields);
	tcase_add_test(tc, data_lines_joined);
	tcase_add_test(tc, one_space_stripped);
	tcase_add_test(tc, line_endings);
	tcase_add_test(tc, bom_skipped_once);
	tcase_add_test(tc, comments_and_ignored_fields);
	tcase_add_test(tc, no_data_no_event);
	tcase_add_test(tc, ids);
	tcase_add_test(tc, unterminated_dropped);
	tcase_add_test(tc, responses_stream);
	suite_add_tcase(s, tc);
	tc = tcase_create("bounds");
	tcase_add_test(tc, bound_per_event);
	tcase_add_test(tc, bound_skips_comments);
	tcase_add_test(tc, error_is_sticky);
	tcase_add_test(tc, large_event_bytewise);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(sse_suite)
