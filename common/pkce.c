/* pkce.c - see pkce.h. */
#include "pkce.h"

#include "util.h"

#include <sodium.h>
#include <string.h>

size_t pkce_b64url(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;

	if (n > (SIZE_MAX - 4) / 4 * 3 || outlen < sodium_base64_ENCODED_LEN(n, variant))
		return 0;
	sodium_bin2base64(out, outlen, in, n, variant);
	return strlen(out);
}

void pkce_challenge(const char *verifier, char out[PKCE_CHALLENGE_LEN + 1])
{
	uint8_t hash[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(hash, (const uint8_t *)verifier, strlen(verifier));
	pkce_b64url(hash, sizeof(hash), out, PKCE_CHALLENGE_LEN + 1);
	sodium_memzero(hash, sizeof(hash));
}

void pkce_new(struct pkce *p)
{
	uint8_t raw[PKCE_VERIFIER_BYTES];

	randombytes_buf(raw, sizeof(raw));
	pkce_b64url(raw, sizeof(raw), p->verifier, sizeof(p->verifier));
	sodium_memzero(raw, sizeof(raw));
	pkce_challenge(p->verifier, p->challenge);
}

void pkce_random_token(char *out, size_t nbytes)
{
	uint8_t *raw = xmalloc(nbytes ? nbytes : 1);

	randombytes_buf(raw, nbytes);
	pkce_b64url(raw, nbytes, out, PKCE_B64URL_SIZE(nbytes));
	sodium_memzero(raw, nbytes);
	free(raw);
}
