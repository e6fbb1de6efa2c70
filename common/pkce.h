/* pkce.h - PKCE (RFC 7636, method S256) and random URL-safe tokens.
 *
 * Built on libsodium: the caller must have called sodium_init() (the daemons
 * do at start-up) before any function here.
 *
 * Everything writes into caller buffers; nothing is allocated that outlives
 * a call. struct pkce holds the verifier, a secret until the token request
 * is sent: keep it short-lived and secure_wipe() it when done.
 *
 * Encoding: base64url (RFC 4648 §5) without padding, as RFC 7636 requires.
 */
#ifndef TANDEM_PKCE_H
#define TANDEM_PKCE_H

#include <stddef.h>
#include <stdint.h>

#define PKCE_VERIFIER_BYTES 48 /* random bytes behind a verifier */
#define PKCE_VERIFIER_LEN 64   /* chars: base64url of 48 bytes */
#define PKCE_CHALLENGE_LEN 43  /* chars: base64url(SHA-256(verifier)) */
/* Buffer size, NUL included, for the base64url form of n bytes. */
#define PKCE_B64URL_SIZE(n) (((n) / 3) * 4 + ((n) % 3 ? (n) % 3 + 1 : 0) + 1)

struct pkce {
	char verifier[PKCE_VERIFIER_LEN + 1];
	char challenge[PKCE_CHALLENGE_LEN + 1];
};

/* A fresh random verifier and its S256 challenge. */
void pkce_new(struct pkce *p);
/* challenge = base64url(SHA-256(verifier)), NUL-terminated. */
void pkce_challenge(const char *verifier, char out[PKCE_CHALLENGE_LEN + 1]);
/* base64url of in[0..n) without padding into out. Returns the number of
 * characters written (a NUL follows; n == 0 gives "" and 0), or 0 if
 * outlen < PKCE_B64URL_SIZE(n) (then out is untouched). */
size_t pkce_b64url(const uint8_t *in, size_t n, char *out, size_t outlen);
/* nbytes random bytes as base64url (OAuth state, nonces). out must hold
 * PKCE_B64URL_SIZE(nbytes) chars (at most 4*nbytes/3 + 2). */
void pkce_random_token(char *out, size_t nbytes);

#endif
