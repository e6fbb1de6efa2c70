/* test_pkce.c - PKCE S256 against RFC 7636 Appendix B, base64url against
 * the RFC 4648 vectors, and the shape of fresh verifiers and tokens. */
#include "pkce.h"
#include "testmain.h"

#include <sodium.h>
#include <stdbool.h>
#include <string.h>

static void setup(void)
{
	ck_assert_int_ge(sodium_init(), 0);
}

static bool all_b64url(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

START_TEST(rfc7636_appendix_b)
{
	char ch[PKCE_CHALLENGE_LEN + 1];

	pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", ch);
	/* The value printed in RFC 7636 Appendix B (and what hashlib gives). */
	ck_assert_str_eq(ch, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(rfc7636_verifier_encoding)
{
	/* Appendix B's 32 octets encode to its verifier. */
	static const uint8_t raw[32] = { 116, 24,  223, 180, 151, 153, 224, 37,  79,  250, 96,
					 125, 216, 173, 187, 186, 22,  212, 37,  77,  105, 214,
					 191, 240, 91,  88,  5,   88,  83,  132, 141, 121 };
	char out[PKCE_B64URL_SIZE(32)];

	ck_assert_uint_eq(pkce_b64url(raw, sizeof(raw), out, sizeof(out)), 43);
	ck_assert_str_eq(out, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
}
END_TEST

START_TEST(b64url_vectors)
{
	static const struct {
		const char *in;
		const char *out;
	} v[] = {
		{ "", "" },	       { "f", "Zg" },	      { "fo", "Zm8" },
		{ "foo", "Zm9v" },     { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" }, { "\xfb\xff", "-_8" }, { "\xfb\xff\xbf", "-_-_" },
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		size_t n = strlen(v[i].in);
		char out[16];

		ck_assert_uint_eq(PKCE_B64URL_SIZE(n), strlen(v[i].out) + 1);
		ck_assert_uint_eq(pkce_b64url((const uint8_t *)v[i].in, n, out, PKCE_B64URL_SIZE(n)),
				  strlen(v[i].out));
		ck_assert_str_eq(out, v[i].out);
	}
}
END_TEST

START_TEST(b64url_short_buffer)
{
	char out[8];

	memset(out, 'x', sizeof(out));
	/* "foobar" needs 8 + 1 bytes. */
	ck_assert_uint_eq(pkce_b64url((const uint8_t *)"foobar", 6, out, 8), 0);
	ck_assert_int_eq(out[0], 'x');
	ck_assert_uint_eq(pkce_b64url((const uint8_t *)"fooba", 5, out, 8), 7);
	ck_assert_str_eq(out, "Zm9vYmE");
}
END_TEST

START_TEST(new_shape_and_freshness)
{
	struct pkce a, b;
	char ch[PKCE_CHALLENGE_LEN + 1];

	pkce_new(&a);
	pkce_new(&b);
	ck_assert_uint_eq(strlen(a.verifier), PKCE_VERIFIER_LEN);
	ck_assert_uint_eq(strlen(a.challenge), PKCE_CHALLENGE_LEN);
	ck_assert(all_b64url(a.verifier));
	ck_assert(all_b64url(a.challenge));
	pkce_challenge(a.verifier, ch);
	ck_assert_str_eq(ch, a.challenge);
	ck_assert_str_ne(a.verifier, b.verifier);
	ck_assert_str_ne(a.challenge, b.challenge);
}
END_TEST

START_TEST(random_token_sizes)
{
	for (size_t n = 0; n <= 40; n++) {
		char out[64];
		size_t need = PKCE_B64URL_SIZE(n);

		ck_assert_uint_le(need, 4 * n / 3 + 2);
		memset(out, '#', sizeof(out));
		pkce_random_token(out, n);
		ck_assert_uint_eq(strlen(out), need - 1);
		ck_assert(all_b64url(out));
		ck_assert_int_eq(out[need], '#'); /* nothing past the promised size */
	}
}
END_TEST

START_TEST(random_token_differs)
{
	char a[PKCE_B64URL_SIZE(32)], b[PKCE_B64URL_SIZE(32)];

	pkce_random_token(a, 32);
	pkce_random_token(b, 32);
	ck_assert_uint_eq(strlen(a), 43);
	ck_assert_str_ne(a, b);
}
END_TEST

static Suite *pkce_suite(void)
{
	Suite *s = suite_create("pkce");
	TCase *tc = tcase_create("pkce");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, rfc7636_appendix_b);
	tcase_add_test(tc, rfc7636_verifier_encoding);
	tcase_add_test(tc, b64url_vectors);
	tcase_add_test(tc, b64url_short_buffer);
	tcase_add_test(tc, new_shape_and_freshness);
	tcase_add_test(tc, random_token_sizes);
	tcase_add_test(tc, random_token_differs);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(pkce_suite)
