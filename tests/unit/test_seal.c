/* test_seal.c - sealed frames with each AEAD: they open, and a tampered
 * byte (header or body), a replay, a reordering, a dropped frame, the other
 * direction's key or a truncated frame never do. chacha20poly1305 (OpenSSL)
 * also gives RFC 8439's published answer and the same bytes as libsodium's
 * independent implementation of the same algorithm. */
#include "frame.h"
#include "seal.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define PLEN 100u

static const enum seal_aead aeads[] = { SEAL_XCHACHA20POLY1305, SEAL_AES256GCM,
					SEAL_CHACHA20POLY1305 };
static const char *const names[] = { "xchacha20poly1305", "aes256gcm", "chacha20poly1305" };

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
	ck_assert_int_eq(seal_init(&p->tx, a, key, prefix), 0);
	ck_assert_int_eq(seal_init(&p->rx, a, key, prefix), 0);
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
	seal_wipe(&p.tx);
	seal_wipe(&p.rx);
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
	seal_wipe(&p.tx);
	seal_wipe(&p.rx);
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
	ck_assert_str_eq(seal_aead_name(aeads[_i]), names[_i]);
	ck_assert_int_eq(seal_aead_by_name(seal_aead_name(aeads[_i]),
					   strlen(seal_aead_name(aeads[_i]))), aeads[_i]);
	ck_assert_int_eq(seal_aead_by_name("aes256", 6), SEAL_NONE);
	ck_assert_int_eq(seal_aead_by_name("chacha20poly130", 15), SEAL_NONE);
	seal_wipe(&p.tx);
	ck_assert(!p.tx.on);
	ck_assert_ptr_null(p.tx.ctx);
	seal_wipe(&p.rx);
	seal_wipe(&q.tx);
	seal_wipe(&q.rx);
}
END_TEST

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	size_t got = 0;

	ck_assert_int_eq(sodium_hex2bin(out, n, hex, strlen(hex), " ", &got, NULL), 0);
	ck_assert_uint_eq(got, n);
}

/* RFC 8439 section 2.8.2 (AEAD_CHACHA20_POLY1305 test vector), through
 * seal_chacha_raw: its nonce 07000000 || 4041424344454647 is our
 * construction with prefix 07 00 00 00 and counter 0x4746454443424140. */
START_TEST(test_chacha_rfc8439)
{
	static const char pt[] = "Ladies and Gentlemen of the class of '99: If I could offer "
				 "you only one tip for the future, sunscreen would be it.";
	static const char ct_hex[] =
		"d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
		"3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
		"92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
		"3ff4def08e4b7a9de576d26586cec64b6116";
	static const char tag_hex[] = "1ae10b594f09e26a7e902ecbd0600691";
	uint8_t key[SEAL_KEY_LEN], prefix[SEAL_PREFIX_LEN] = { 7 }, ad[12], tag[SEAL_TAG_LEN];
	uint8_t want[sizeof(pt) - 1], want_tag[SEAL_TAG_LEN], buf[sizeof(pt) - 1];
	struct seal s;

	ck_assert_int_ge(sodium_init(), 0);
	if (!seal_aead_available(SEAL_CHACHA20POLY1305))
		ck_abort_msg("libcrypto has no ChaCha20-Poly1305");
	for (unsigned i = 0; i < SEAL_KEY_LEN; i++)
		key[i] = (uint8_t)(0x80 + i);
	unhex("50515253c0c1c2c3c4c5c6c7", ad, sizeof(ad));
	unhex(ct_hex, want, sizeof(want));
	unhex(tag_hex, want_tag, sizeof(want_tag));
	ck_assert_int_eq(seal_init(&s, SEAL_CHACHA20POLY1305, key, prefix), 0);
	s.counter = 0x4746454443424140ull;
	memcpy(buf, pt, sizeof(buf));
	ck_assert_int_eq(seal_chacha_raw(&s, true, ad, sizeof(ad), buf, sizeof(buf), tag), 0);
	ck_assert_int_eq(memcmp(buf, want, sizeof(want)), 0);
	ck_assert_int_eq(memcmp(tag, want_tag, sizeof(tag)), 0);
	/* and back, in a context that has encrypted before (the direction is
	 * set per call) */
	ck_assert_int_eq(seal_chacha_raw(&s, false, ad, sizeof(ad), buf, sizeof(buf), tag), 0);
	ck_assert_int_eq(memcmp(buf, pt, sizeof(buf)), 0);
	/* another counter is another nonce: the tag no longer checks */
	memcpy(buf, want, sizeof(buf));
	s.counter++;
	ck_assert_int_eq(seal_chacha_raw(&s, false, ad, sizeof(ad), buf, sizeof(buf), tag), -EBADMSG);
	ck_assert_int_eq(seal_chacha_raw(&s, true, ad, sizeof(ad), NULL, 0, tag), 0);
	seal_wipe(&s);
	/* The published vector is libsodium's IETF construction too. */
	{
		uint8_t nonce[12], out[sizeof(pt) - 1 + SEAL_TAG_LEN];
		unsigned long long olen;

		unhex("070000004041424344454647", nonce, sizeof(nonce));
		crypto_aead_chacha20poly1305_ietf_encrypt(out, &olen, (const uint8_t *)pt,
							  sizeof(pt) - 1, ad, sizeof(ad), NULL,
							  nonce, key);
		ck_assert_int_eq(memcmp(out, want, sizeof(want)), 0);
		ck_assert_int_eq(memcmp(out + sizeof(want), want_tag, SEAL_TAG_LEN), 0);
	}
}
END_TEST

/* seal_frame's chacha20poly1305 (OpenSSL) gives the bytes of libsodium's
 * crypto_aead_chacha20poly1305_ietf_encrypt (the same algorithm, written
 * independently) with nonce = 4 prefix bytes || counter (LE), the header
 * as associated data; and seal_open opens libsodium's frames. Lengths
 * around ChaCha's 64-byte block, counters with high bytes set. */
START_TEST(test_chacha_matches_libsodium)
{
	static const size_t lens[] = { 0, 1, 15, 16, 63, 64, 65, 200, 1000, 4096 };
	static const uint64_t counters[] = { 0, 1, 0x0102030405060708ull, UINT64_MAX - 1 };
	uint8_t key[SEAL_KEY_LEN], prefix[SEAL_PREFIX_LEN];
	uint8_t *f = xmalloc(FRAME_HDR + 4096 + SEAL_TAG_LEN), *g = xmalloc(4096 + SEAL_TAG_LEN);
	struct seal tx, rx;

	ck_assert_int_ge(sodium_init(), 0);
	ck_assert(seal_aead_available(SEAL_CHACHA20POLY1305));
	for (unsigned i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 7 + 1);
	for (unsigned i = 0; i < sizeof(prefix); i++)
		prefix[i] = (uint8_t)(0xa0 + i);
	ck_assert_int_eq(seal_init(&tx, SEAL_CHACHA20POLY1305, key, prefix), 0);
	ck_assert_int_eq(seal_init(&rx, SEAL_CHACHA20POLY1305, key, prefix), 0);
	for (size_t c = 0; c < ARRAY_SIZE(counters); c++) {
		for (size_t l = 0; l < ARRAY_SIZE(lens); l++) {
			size_t n = lens[l], plen;
			uint8_t nonce[12];
			unsigned long long glen;

			for (size_t i = 0; i < n; i++)
				f[FRAME_HDR + i] = (uint8_t)(i * 31 + c);
			memcpy(g, f + FRAME_HDR, n);
			tx.counter = rx.counter = counters[c];
			ck_assert_int_eq(seal_frame(&tx, f, n), 0);
			memcpy(nonce, prefix, 4);
			for (unsigned i = 0; i < 8; i++)
				nonce[4 + i] = (uint8_t)(counters[c] >> (8 * i));
			crypto_aead_chacha20poly1305_ietf_encrypt(g, &glen, g, n, f, FRAME_HDR, NULL,
								  nonce, key);
			ck_assert_uint_eq(glen, n + SEAL_TAG_LEN);
			ck_assert_msg(memcmp(f + FRAME_HDR, g, glen) == 0,
				      "OpenSSL and libsodium differ: %zu bytes, counter %zu", n, c);
			/* libsodium's frame opens here */
			memcpy(f + FRAME_HDR, g, glen);
			ck_assert_int_eq(seal_open(&rx, f, f + FRAME_HDR, glen, &plen), 0);
			ck_assert_uint_eq(plen, n);
			ck_assert_uint_eq(rx.counter, counters[c] + 1);
			for (size_t i = 0; i < n; i++)
				ck_assert_uint_eq(f[FRAME_HDR + i], (uint8_t)(i * 31 + c));
		}
	}
	/* the last counter value is never used: the seal is spent */
	tx.counter = UINT64_MAX;
	ck_assert_int_eq(seal_frame(&tx, f, 10), -EOVERFLOW);
	seal_wipe(&tx);
	seal_wipe(&rx);
	free(f);
	free(g);
}
END_TEST

/* A frame that fails to open leaves none of what OpenSSL decrypted (it
 * decrypts before it checks the tag). */
START_TEST(test_chacha_failed_open_leaves_nothing)
{
	struct pair p;
	uint8_t f[FRAME_HDR + PLEN + SEAL_TAG_LEN];
	size_t plen;

	ck_assert(setup(&p, SEAL_CHACHA20POLY1305));
	make(&p, f, 0x41);
	f[FRAME_HDR + PLEN] ^= 1; /* the tag */
	ck_assert_int_eq(open1(&p, f, &plen), -EBADMSG);
	for (size_t i = 0; i < PLEN; i++)
		ck_assert_uint_ne(f[FRAME_HDR + i], 0x41);
	seal_wipe(&p.tx);
	seal_wipe(&p.rx);
}
END_TEST

/* OpenSSL's allocations fail on demand (CRYPTO_set_mem_functions must come
 * before its first allocation: this test runs in its own forked child). */
static bool fail_alloc;

static void *t_malloc(size_t n, const char *file, int line)
{
	return fail_alloc ? NULL : malloc(n);
}

static void *t_realloc(void *p, size_t n, const char *file, int line)
{
	return fail_alloc ? NULL : realloc(p, n);
}

static void t_free(void *p, const char *file, int line) { free(p); }

/* A cipher context that cannot be allocated: seal_init says so, and the
 * seal is on but broken: nothing is sealed (no plain text goes out) and
 * nothing opens. An unknown AEAD is refused the same way. */
START_TEST(test_init_failure_is_safe)
{
	uint8_t key[SEAL_KEY_LEN] = { 1 }, prefix[SEAL_PREFIX_LEN] = { 2 };
	uint8_t f[FRAME_HDR + PLEN + SEAL_TAG_LEN] = { 0 };
	struct seal s;
	size_t plen;

	if (CRYPTO_set_mem_functions(t_malloc, t_realloc, t_free) != 1)
		return; /* CK_FORK=no: OpenSSL has allocated already */
	ck_assert(seal_aead_available(SEAL_CHACHA20POLY1305));
	fail_alloc = true;
	ck_assert_int_eq(seal_init(&s, SEAL_CHACHA20POLY1305, key, prefix), -ENOMEM);
	fail_alloc = false;
	ck_assert(s.on && s.broken);
	memset(f + FRAME_HDR, 0x41, PLEN);
	ck_assert_int_eq(seal_frame(&s, f, PLEN), -EIO);
	ck_assert_int_eq(seal_open(&s, f, f + FRAME_HDR, PLEN + SEAL_TAG_LEN, &plen), -EBADMSG);
	seal_wipe(&s);
	ck_assert_int_eq(seal_init(&s, (enum seal_aead)99, key, prefix), -EINVAL);
	ck_assert(s.on && s.broken);
	ck_assert_int_eq(seal_frame(&s, f, PLEN), -EIO);
	seal_wipe(&s);
}
END_TEST

static Suite *seal_suite(void)
{
	Suite *s = suite_create("seal");
	TCase *tc = tcase_create("seal");

	tcase_add_loop_test(tc, test_roundtrip_and_tamper, 0, ARRAY_SIZE(aeads));
	tcase_add_loop_test(tc, test_replay_reorder_drop, 0, ARRAY_SIZE(aeads));
	tcase_add_loop_test(tc, test_other_key_or_aead, 0, ARRAY_SIZE(aeads));
	tcase_add_test(tc, test_chacha_rfc8439);
	tcase_add_test(tc, test_chacha_matches_libsodium);
	tcase_add_test(tc, test_chacha_failed_open_leaves_nothing);
	tcase_add_test(tc, test_init_failure_is_safe);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(seal_suite)
