/* jwt.h - HS256 JSON Web Token verification (RFC 7519, RFC 7515) for the
 * WebSocket listener's `--ws-auth signed-bearer-token`: the client sends
 * "Authorization: Bearer <JWT>" signed with a secret shared with us
 * (`--ws-shared-secret-file`), and we check the claims we were given
 * (`--ws-issuer`, `--ws-audience`, `--ws-max-clock-skew-seconds`).
 *
 * Rules (a token failing any one is refused):
 * - three base64url parts without padding, at most JWT_MAX_LEN bytes;
 * - the header is a JSON object whose "alg" is exactly "HS256" ("none",
 *   other HMACs and every asymmetric algorithm are refused: the key is a
 *   shared secret) and that has no "crit" (no extension is understood);
 * - the signature is HMAC-SHA256 over "header.payload" with the shared
 *   secret, compared in constant time; nothing of the payload is read
 *   before it has been verified;
 * - the payload is a JSON object without duplicate keys; "exp" is required
 *   (a token that never expires is a permanent credential) and must be in
 *   the future, "nbf" (if present) not in the future, "iat" (if present)
 *   not in the future, each with the configured skew; numeric dates are
 *   JSON numbers (seconds since the epoch);
 * - with an issuer configured, "iss" must equal it; with an audience
 *   configured, "aud" (a string or an array of strings) must contain it.
 *
 * The secret lives in sodium_malloc memory, wiped on free. Nothing here
 * logs; reasons never contain the token or the secret.
 */
#ifndef TANDEM_JWT_H
#define TANDEM_JWT_H

#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_LEN 8192u
/* RFC 7518 §3.2: an HS256 key has at least 256 bits. */
#define JWT_MIN_SECRET 32u

struct jwt_verifier;

struct jwt_config {
	const char *issuer;   /* NULL: "iss" not checked */
	const char *audience; /* NULL: "aud" not checked */
	uint64_t max_skew_s;  /* allowed clock difference, seconds */
};

/* The shared secret from a file: mode 0600 or stricter, trailing newline
 * trimmed, at least JWT_MIN_SECRET bytes. cfg's strings are copied.
 * Returns 0 or -errno with a reason in err. */
int jwt_verifier_from_file(const char *path, const struct jwt_config *cfg,
			   struct jwt_verifier **out, char *err, size_t errlen);
/* The same from bytes in memory (copied). -EINVAL for a short secret. */
int jwt_verifier_new(const void *secret, size_t len, const struct jwt_config *cfg,
		     struct jwt_verifier **out);

/* Verifies token[0..len) at time now (seconds since the epoch). Returns 0,
 * or -EACCES with the first rule it breaks in err ("bad signature",
 * "expired", ...). */
int jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, int64_t now,
	       char *err, size_t errlen);

/* Wipes and frees; accepts NULL; returns NULL. */
struct jwt_verifier *jwt_verifier_free(struct jwt_verifier *v);

#endif
