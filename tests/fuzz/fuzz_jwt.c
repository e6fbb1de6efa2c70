/* fuzz_jwt.c - libFuzzer target for HS256 JWT verification (common/jwt.c).
 *
 * First byte even: the rest is a token as a client sends it (the fuzzer
 * cannot forge the HMAC, so this reaches shape, header and signature
 * checks). Odd: the rest is "HEADER\nPAYLOAD" JSON text that this target
 * encodes and signs with the right secret, which takes the fuzzer into the
 * header and claims checks. Beyond "no crash, no leak": the answer is 0 or
 * -EACCES with a reason, the same twice, and an accepted token always
 * satisfies the rules jwt.h lists (checked again here independently).
 */
#include "jwt.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SECRET "fuzz-secret-fuzz-secret-fuzz-secret!"
#define NOW 1800000000LL
#define SKEW 60

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_jwt: %s\n", what);
		abort();
	}
}

static char *b64url(const void *p, size_t n)
{
	size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char *out = malloc(cap);

	expect(out != NULL, "out of memory");
	sodium_bin2base64(out, cap, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return out;
}

static char *sign(const char *h, size_t hn, const char *p, size_t pn)
{
	char *hb = b64url(h, hn), *pb = b64url(p, pn), *sb, *out;
	size_t n = strlen(hb) + strlen(pb) + 1;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	crypto_auth_hmacsha256_state st;

	out = malloc(n + 64);
	expect(out != NULL, "out of memory");
	snprintf(out, n + 1, "%s.%s", hb, pb);
	crypto_auth_hmacsha256_init(&st, (const unsigned char *)SECRET, strlen(SECRET));
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)out, n);
	crypto_auth_hmacsha256_final(&st, mac);
	sb = b64url(mac, sizeof(mac));
	snprintf(out + n, 64, ".%s", sb);
	free(hb);
	free(pb);
	free(sb);
	return out;
}

/* What an accepted token must satisfy, read without jwt.c. */
static void recheck(const char *payload, size_t n)
{
	json_t *p = json_loadb(payload, n, JSON_REJECT_DUPLICATES, NULL);
	json_t *exp;

	expect(json_is_object(p), "accepted a payload that is not an object");
	exp = json_object_get(p, "exp");
	expect(json_is_number(exp) && json_number_value(exp) > NOW - SKEW, "accepted a bad exp");
	expect(json_is_string(json_object_get(p, "iss")) &&
	       strcmp(json_string_value(json_object_get(p, "iss")), "iss") == 0,
	       "accepted a wrong issuer");
	json_decref(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct jwt_verifier *v;
	struct jwt_config cfg = { .issuer = "iss", .audience = "aud", .max_skew_s = SKEW };
	char err[128] = "", err2[128] = "";
	char *tok;
	const char *nl = NULL;
	int r;

	if (!v)
		expect(jwt_verifier_new(SECRET, strlen(SECRET), &cfg, &v) == 0, "verifier");
	if (size == 0)
		return 0;
	if (data[0] & 1) {
		nl = memchr(data + 1, '\n', size - 1);
		if (!nl)
			return 0;
		tok = sign((const char *)data + 1, (size_t)(nl - (const char *)data - 1), nl + 1,
			   size - (size_t)(nl + 1 - (const char *)data));
	} else {
		tok = malloc(size);
		expect(tok != NULL, "out of memory");
		memcpy(tok, data + 1, size - 1);
		tok[size - 1] = '\0';
	}
	r = jwt_verify(v, tok, (data[0] & 1) ? strlen(tok) : size - 1, NOW, err, sizeof(err));
	expect(r == 0 || (r == -EACCES && err[0]), "neither 0 nor -EACCES with a reason");
	expect(jwt_verify(v, tok, (data[0] & 1) ? strlen(tok) : size - 1, NOW, err2,
			  sizeof(err2)) == r && strcmp(err, err2) == 0, "not deterministic");
	if (r == 0 && nl)
		recheck(nl + 1, size - (size_t)(nl + 1 - (const char *)data));
	free(tok);
	return 0;
}
