/* test_seal.c - sealed frames with both AEADs: they open, and a tampered
 * byte (header or body), a replay, a reordering, a dropped frame, the other
 * direction's key or a truncated frame never do. */
#include "frame.h"
#include "seal.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

#define PLEN 100u

static const enum seal_aead aeads[] = { SEAL_XCHACHA20POLY1305, SEAL_AES256GCM };

struct pair {
	struct seal tx, rx;
};

static bool setup(struct pair *p, enum seal_aead a)
{
	uint8_t key[SEAL_KEY_LEN], prefix[SEAL_PREFIX_LEN];

	ck_assert_int_ge(sodium_init(), 0);
	if (!seal_aead_available(a))
		return false;
	randombytes_buf(key, sizeof(key));
	randombytes_buf(prefix, sizeof(prefix));
	seal_init(&p->tx, a, key, prefix);
	seal_init(&p->rx, a, key, prefix);
	return true;
}

/* A sealed frame of PLEN bytes of `fill` into f (4 + PLEN + 16 bytes). */
static void make(struct pair *p, uint8_t *f, uint8_t fill)
{
	memset(f + FRAME_HDR, fill, PLEN);
	ck_assert_int_eq(seal_frame(&p->tx, f, PLEN), 0);
	ck_assert_uint_eq(frame_get_len(f), PLEN + SEAL_TAG_LEN);
}

static int open1(struct pair *p, uint8_t *f, size_t *plen)
{
	return seal_open(&p->rx, f, f + FRAME_HDR, frame_get_len(f), plen);
}

START_TEST(test_roundtrip_and_tamper)
{
	struct pair p;
	uint8_t f[FRAME_HDR + PLEN + SEAL_TAG_LEN], g[sizeof(f)];
	size_t plen;

	if (!setup(&p, aeads[_i]))
		return; /* no AES-NI here: the handshake never offers AES-256-GCM */
	make(&p, f, 0x41);
	{
		size_t same = 0;

		for (size_t i = 0; i < PLEN; i++)
			same += f[FRAME_HDR + i] == 0x41;
		ck_assert_uint_lt(same, PLEN / 4); /* the body is not sent in clear */
	}
	memcpy(g, f, sizeof(f));
	ck_assert_int_eq(open1(&p, g, &plen), 0);
	ck_assert_uint_eq(plen, PLEN);
	for (size_t i = 0; i < PLEN; i++)
		ck_assert_uint_eq(g[FRAME_HDR + i], 0x41);
	/* The next frame, every byte flipped in turn (the header too: it is
	 * the associated data): none opens, and the counter does not move. */
	make(&p, f, 0x42);
	for (size_t i = 0; i < sizeof(f); i++) {
		memcpy(g, f, sizeof(f));
		g[i] ^= 0x01;
		ck_assert_msg(seal_open(&p.rx, g, g + FRAME_HDR, PLEN + SEAL_TAG_LEN, &plen) == -EBADMSG,
			      "byte %zu tampered and still opened", i);
	}
	memcpy(g, f, sizeof(f));
	ck_assert_int_eq(open1(&p, g, &plen), 0);
}
END_TEST

START_TEST(test_replay_reorder_drop)
{
	struct pair p;
	uint8_t a[FRAME_HDR + PLEN + SEAL_TAG_LEN], b[sizeof(a)], c[sizeof(a)], x[sizeof(a)];
	size_t plen;

	if (!setup(&p, aeads[_i]))
		return;
	make(&p, a, 1);
	make(&p, b, 2);
	make(&p, c, 3);
	/* reordered: b before a */
	memcpy(x, b, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), -EBADMSG);
	memcpy(x, a, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), 0);
	/* replayed: a again */
	memcpy(x, a, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), -EBADMSG);
	/* dropped: c without b */
	memcpy(x, c, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), -EBADMSG);
	memcpy(x, b, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), 0);
	memcpy(x, c, sizeof(x));
	ck_assert_int_eq(open1(&p, x, &plen), 0);
	/* truncated below a tag */
	ck_assert_int_eq(seal_open(&p.rx, x, x + FRAME_HDR, SEAL_TAG_LEN - 1, &plen), -EBADMSG);
}
END_TEST

START_TEST(test_other_key_or_aead)
{
	struct pair p, q;
	uint8_t f[FRAME_HDR + PLEN + SEAL_TAG_LEN];
	size_t plen;

	if (!setup(&p, aeads[_i]) || !setup(&q, aeads[_i]))
		return;
	make(&p, f, 7);
	ck_assert_int_eq(seal_open(&q.rx, f, f + FRAME_HDR, frame_get_len(f), &plen), -EBADMSG);
	ck_assert_str_eq(seal_aead_name(aeads[_i]),
			 _i ? "aes256gcm" : "xchacha20poly1305");
	ck_assert_int_eq(seal_aead_by_name(seal_aead_name(aeads[_i]),
					   strlen(seal_aead_name(aeads[_i]))), aeads[_i]);
	ck_assert_int_eq(seal_aead_by_name("aes256", 6), SEAL_NONE);
	seal_wipe(&p.tx);
	ck_assert(!p.tx.on);
}
END_TEST

static Suite *seal_suite(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");

	tcase_add_loop_test(tc, test_roundtrip_and_tamper, 0, ARRAY_SIZE(aeads));
	tcase_add_loop_test(tc, test_replay_reorder_drop, 0, ARRAY_SIZE(aeads));
	tcase_add_loop_test(tc, test_other_key_or_aead, 0, ARRAY_SIZE(aeads));
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(seal_suite)
