/* test_jwt.c - HS256 JWT verification: tokens are signed here with
 * libsodium's HMAC-SHA256 and base64url, then tampered with. */
#include "jwt.h"
#include "testmain.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#define SECRET "0123456789abcdef0123456789abcdef-shared"
#define NOW 1800000000LL

static char *b64url(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = xmalloc(cap);

	sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

/* header.payload.signature with key (NULL: SECRET). */
static char *sign(const char *header, const char *payload, const char *key)
{
	_cleanup_free_ char *h = b64url(header, strlen(header));
	_cleanup_free_ char *p = b64url(payload, strlen(payload));
	_cleanup_free_ char *signing = xasprintf("%s.%s", h, p);
	_cleanup_free_ char *s = NULL;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;

	key = key ? key : SECRET;
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)key, strlen(key));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)signing, strlen(signing));
	crypto_auth_hmacsha256_final(&st, mac);
	s = b64url(mac, sizeof(mac));
	return xasprintf("%s.%s", signing, s);
}

#define HS256 "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

static struct jwt_verifier *verifier(const char *iss, const char *aud, uint64_t skew)
{
	struct jwt_config cfg = { .issuer = iss, .audience = aud, .max_skew_s = skew };
	struct jwt_verifier *v = NULL;

	ck_assert_int_eq(jwt_verifier_new(SECRET, strlen(SECRET), &cfg, &v), 0);
	return v;
}

static int verify(struct jwt_verifier *v, const char *tok, char *err)
{
	return jwt_verify(v, tok, strlen(tok), NOW, err, 128);
}

static void expect_refused(struct jwt_verifier *v, const char *tok, const char *why)
{
	char err[128] = "";

	ck_assert_msg(verify(v, tok, err) == -EACCES, "accepted: %s", tok);
	ck_assert_msg(strstr(err, why), "reason '%s', want '%s'", err, why);
}

START_TEST(valid_tokens)
{
	struct jwt_verifier *v = verifier("https://issuer.example", "tandem", 30);
	char err[128] = "";
	static const char *const payloads[] = {
		"{\"iss\":\"https://issuer.example\",\"aud\":\"tandem\",\"exp\":1800000100}",
		"{\"iss\":\"https://issuer.example\",\"aud\":[\"x\",\"tandem\"],\"exp\":1800000100,"
		"\"nbf\":1800000000,\"iat\":1799999000,\"sub\":\"u\"}",
		/* Within the skew on every side. */
		"{\"iss\":\"https://issuer.example\",\"aud\":\"tandem\",\"exp\":1799999975,"
		"\"nbf\":1800000025,\"iat\":1800000029.5}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(payloads); i++) {
		_cleanup_free_ char *t = sign(HS256, payloads[i], NULL);

		ck_assert_msg(verify(v, t, err) == 0, "payload %zu: %s", i, err);
	}
	jwt_verifier_free(v);
}
END_TEST

START_TEST(algorithms_other_than_hs256)
{
	struct jwt_verifier *v = verifier(NULL, NULL, 0);
	static const char *const headers[] = {
		"{\"alg\":\"none\"}",         "{\"alg\":\"HS512\"}", "{\"alg\":\"RS256\"}",
		"{\"alg\":\"hs256\"}",        "{\"typ\":\"JWT\"}",  "{\"alg\":[\"HS256\"]}",
		"{\"alg\":\"HS256\",\"crit\":[\"b64\"]}",
	};
	const char *payload = "{\"exp\":1800000100}";

	for (size_t i = 0; i < ARRAY_SIZE(headers); i++) {
		_cleanup_free_ char *t = sign(headers[i], payload, NULL);

		expect_refused(v, t, i == 6 ? "critical" : "algorithm");
	}
	{
		/* alg none with an empty signature, as attackers send it. */
		_cleanup_free_ char *h = b64url("{\"alg\":\"none\"}", 14);
		_cleanup_free_ char *p = b64url(payload, strlen(payload));
		_cleanup_free_ char *t = xasprintf("%s.%s.", h, p);

		expect_refused(v, t, "algorithm");
	}
	jwt_verifier_free(v);
}
END_TEST

START_TEST(signatures)
{
	struct jwt_verifier *v = verifier(NULL, NULL, 0);
	_cleanup_free_ char *good = sign(HS256, "{\"exp\":1800000100}", NULL);
	_cleanup_free_ char *other = sign(HS256, "{\"exp\":1800000100}",
					  "another-secret-of-at-least-32-bytes!!");
	_cleanup_free_ char *swapped = NULL, *padded = NULL, *cut = NULL;
	char *dot = strrchr(good, '.');
	_cleanup_free_ char *forged = sign(HS256, "{\"exp\":9999999999}", "x");
	char err[128];

	ck_assert_int_eq(verify(v, good, err), 0);
	expect_refused(v, other, "bad token signature");
	/* The payload of one token under the signature of another. */
	swapped = xasprintf("%.*s%s", (int)(strrchr(forged, '.') - forged), forged, dot);
	expect_refused(v, swapped, "bad token signature");
	padded = xasprintf("%s=", good);
	expect_refused(v, padded, "signature");
	cut = xstrndup(good, strlen(good) - 2);
	expect_refused(v, cut, "signature");
	{
		char *flip = xstrdup(good);

		flip[strlen(flip) - 5] ^= 1;
		expect_refused(v, flip, "signature");
		free(flip);
	}
	jwt_verifier_free(v);
}
END_TEST

START_TEST(time_claims)
{
	struct jwt_verifier *v = verifier(NULL, NULL, 30);
	static const struct {
		const char *payload, *why;
	} cases[] = {
		{ "{}", "no expiry" },
		{ "{\"exp\":\"1800000100\"}", "exp is not a number" },
		{ "{\"exp\":1799999970}", "expired" },
		{ "{\"exp\":1800000100,\"nbf\":1800000031}", "not valid yet" },
		{ "{\"exp\":1800000100,\"nbf\":null}", "nbf is not a number" },
		{ "{\"exp\":1800000100,\"iat\":1800000031}", "issued in the future" },
		{ "{\"exp\":1800000100,\"iat\":true}", "iat is not a number" },
		{ "{\"exp\":-1e308}", "expired" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *t = sign(HS256, cases[i].payload, NULL);

		expect_refused(v, t, cases[i].why);
	}
	jwt_verifier_free(v);
}
END_TEST

START_TEST(issuer_and_audience)
{
	struct jwt_verifier *v = verifier("iss-a", "aud-a", 0);
	static const struct {
		const char *payload, *why;
	} cases[] = {
		{ "{\"exp\":1800000100,\"aud\":\"aud-a\"}", "issuer" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-b\",\"aud\":\"aud-a\"}", "issuer" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-a\"}", "audience" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-a\",\"aud\":\"aud-b\"}", "audience" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-a\",\"aud\":[\"aud-b\",1]}", "audience" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-a\",\"aud\":{\"aud-a\":1}}", "audience" },
		{ "{\"exp\":1800000100,\"iss\":\"iss-a\",\"iss\":\"iss-a\",\"aud\":\"aud-a\"}",
		  "malformed" },
		{ "[1]", "malformed" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *t = sign(HS256, cases[i].payload, NULL);

		expect_refused(v, t, cases[i].why);
	}
	jwt_verifier_free(v);
}
END_TEST

START_TEST(shapes)
{
	struct jwt_verifier *v = verifier(NULL, NULL, 0);
	_cleanup_free_ char *good = sign(HS256, "{\"exp\":1800000100}", NULL);
	_cleanup_free_ char *four = xasprintf("%s.x", good);
	char *huge = xmalloc(JWT_MAX_LEN + 2);
	char err[128];

	expect_refused(v, "", "no token");
	expect_refused(v, "abc", "three parts");
	expect_refused(v, "a.b", "three parts");
	expect_refused(v, four, "three parts");
	expect_refused(v, "..", "header");
	expect_refused(v, "!!.e30.e30", "header");
	memset(huge, 'a', JWT_MAX_LEN + 1);
	huge[JWT_MAX_LEN + 1] = '\0';
	expect_refused(v, huge, "over");
	ck_assert_int_eq(jwt_verify(v, good, strlen(good) + 1, NOW, err, sizeof(err)), -EACCES);
	free(huge);
	jwt_verifier_free(v);
}
END_TEST

START_TEST(secret_file_rules)
{
	char dir[] = "/tmp/tdm-jwt-XXXXXX", err[256] = "";
	_cleanup_free_ char *path = NULL;
	struct jwt_config cfg = { .audience = "tandem" };
	struct jwt_verifier *v = NULL;
	_cleanup_free_ char *tok = sign(HS256, "{\"exp\":1800000100,\"aud\":\"tandem\"}", NULL);
	int fd;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = xasprintf("%s/secret", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, SECRET "\n", strlen(SECRET) + 1), (ssize_t)strlen(SECRET) + 1);
	ck_assert_int_eq(fchmod(fd, 0644), 0);
	ck_assert_int_eq(jwt_verifier_from_file(path, &cfg, &v, err, sizeof(err)), -EPERM);
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	ck_assert_int_eq(fchmod(fd, 0600), 0);
	/* The trailing newline is not part of the secret. */
	ck_assert_int_eq(jwt_verifier_from_file(path, &cfg, &v, err, sizeof(err)), 0);
	ck_assert_int_eq(jwt_verify(v, tok, strlen(tok), NOW, err, sizeof(err)), 0);
	v = jwt_verifier_free(v);
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, "short\n", 6, 0), 6);
	ck_assert_int_eq(jwt_verifier_from_file(path, &cfg, &v, err, sizeof(err)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "at least"));
	ck_assert_ptr_null(strstr(err, "short"));
	close(fd);
	unlink(path);
	rmdir(dir);
}
END_TEST

static Suite *jwt_suite(void)
{
	Suite *s = suite_create("jwt");
	TCase *tc = tcase_create("jwt");

	tcase_add_test(tc, valid_tokens);
	tcase_add_test(tc, algorithms_other_than_hs256);
	tcase_add_test(tc, signatures);
	tcase_add_test(tc, time_claims);
	tcase_add_test(tc, issuer_and_audience);
	tcase_add_test(tc, shapes);
	tcase_add_test(tc, secret_file_rules);
	suite_add_tcase(s, tc);
	return s;
}

TEST_MAIN(jwt_suite)
