/* test_frame.c - the link's framing reader (every split of a frame, the
 * bound checked before anything else, length 0) and the byte buffer. */
#include "frame.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <string.h>

START_TEST(test_every_split)
{
	uint8_t buf[4 + 300];
	const uint8_t *payload = NULL;
	size_t plen = 0, need = 0;

	frame_put_len(buf, 300);
	for (size_t i = 0; i < 300; i++)
		buf[4 + i] = (uint8_t)i;
	ck_assert_uint_eq(frame_get_len(buf), 300);
	for (size_t have = 0; have < sizeof(buf); have++) {
		ck_assert_int_eq(frame_parse(buf, have, 1000, &payload, &plen, &need), -EAGAIN);
		ck_assert_uint_eq(need, have < 4 ? 4 : sizeof(buf));
	}
	ck_assert_int_eq(frame_parse(buf, sizeof(buf), 1000, &payload, &plen, &need), 0);
	ck_assert_ptr_eq(payload, buf + 4);
	ck_assert_uint_eq(plen, 300);
	/* Trailing bytes of the next frame are not this frame's business. */
	ck_assert_int_eq(frame_parse(buf, sizeof(buf) - 1 + 1, 300, &payload, &plen, &need), 0);
}
END_TEST

START_TEST(test_bound_before_anything)
{
	uint8_t hdr[4];
	const uint8_t *payload = NULL;
	size_t plen = 7, need = 7;

	/* Over the bound: refused from the header alone, nothing waited for. */
	frame_put_len(hdr, 1001);
	ck_assert_int_eq(frame_parse(hdr, 4, 1000, &payload, &plen, &need), -E2BIG);
	ck_assert_uint_eq(need, 7); /* outputs untouched */
	frame_put_len(hdr, 0xffffffffu);
	ck_assert_int_eq(frame_parse(hdr, 4, 1000, &payload, &plen, &need), -E2BIG);
	frame_put_len(hdr, 1000);
	ck_assert_int_eq(frame_parse(hdr, 4, 1000, &payload, &plen, &need), -EAGAIN);
	ck_assert_uint_eq(need, 1004);
	frame_put_len(hdr, 0);
	ck_assert_int_eq(frame_parse(hdr, 4, 1000, &payload, &plen, &need), -EBADMSG);
}
END_TEST

START_TEST(test_fbuf)
{
	struct fbuf b = { 0 };

	for (int i = 0; i < 1000; i++)
		ck_assert_int_eq(fbuf_write(&b, "abc", 3), 0);
	ck_assert_uint_eq(b.len, 3000);
	ck_assert(b.cap >= b.len);
	ck_assert_int_eq(memcmp(b.p + 2997, "abc", 3), 0);
	fbuf_append(&b, NULL, 0);
	ck_assert_uint_eq(b.len, 3000);
	fbuf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len + b.cap, 0);
}
END_TEST

static Suite *frame_suite(void)
{
	Suite *s = suite_create("frame");
	TCase *tc = tcase_create("frame");

	tcase_add_test(tc, test_every_split);
	tcase_add_test(tc, test_bound_before_anything);
	tcase_add_test(tc, test_fbuf);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(frame_suite)
