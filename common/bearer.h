/* bearer.h - capability-token checks for the WebSocket listener
 * (`--ws-auth capability-token`): the client sends
 * "Authorization: Bearer <token>"; the listener knows the token from a file
 * (`--ws-token-file F`) or only its SHA-256 (`--ws-token-sha256 HEX`).
 *
 * Only the SHA-256 digest of the token is kept, in guarded libsodium memory
 * (sodium_malloc, wiped on free); a presented token is hashed and the
 * digests compared with sodium_memcmp, so the time taken depends neither on
 * the token nor on how much of it matches. Nothing here logs; reasons never
 * contain a token.
 */
#ifndef TANDEM_BEARER_H
#define TANDEM_BEARER_H

#include <stdbool.h>
#include <stddef.h>

#define BEARER_DIGEST_LEN 32u

struct bearer;

/* The token in a file: a regular file of mode 0600 or stricter (group and
 * others have no access), at most SECRET_MAX bytes, trailing newline (and
 * other trailing whitespace) trimmed, not empty. Returns 0 or -errno
 * (-EPERM for a lax mode) with a reason in err. */
int bearer_from_file(const char *path, struct bearer **out, char *err, size_t errlen);
/* The token's SHA-256 as 64 hex digits (either case). 0 or -EINVAL. */
int bearer_from_sha256_hex(const char *hex, struct bearer **out, char *err, size_t errlen);
/* The token itself (tests, and callers that hold it in memory). */
int bearer_from_token(const char *token, size_t len, struct bearer **out);

/* True when the Authorization header value is "Bearer <token>" (scheme
 * case-insensitive, RFC 6750 token68 syntax) with the right token. NULL
 * or anything else: false. */
bool bearer_check_header(const struct bearer *b, const char *authorization);
/* True for the right token. */
bool bearer_check(const struct bearer *b, const char *token, size_t len);

/* The token in "Bearer <token>", pointing into the header, or NULL when
 * the value is not of that form. *len gets its length. */
const char *bearer_token_of(const char *authorization, size_t *len);

/* Wipes and frees; accepts NULL; returns NULL. */
struct bearer *bearer_free(struct bearer *b);

#endif
