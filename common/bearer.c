/* bearer.c - see bearer.h. */
#include "bearer.h"

#include "secret.h"
#include "util.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <strings.h>

/* The largest token accepted in a header: longer ones are refused before
 * hashing, so a peer cannot make us hash megabytes. */
#define BEARER_MAX_PRESENTED 8192u

struct bearer {
	uint8_t *digest; /* sodium_malloc'd BEARER_DIGEST_LEN bytes */
};

static struct bearer *bearer_with(const uint8_t digest[BEARER_DIGEST_LEN])
{
	struct bearer *b = xcalloc(1, sizeof(*b));

	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing secure can run */
	b->digest = sodium_malloc(BEARER_DIGEST_LEN);
	if (!b->digest)
		abort(); /* as xmalloc */
	memcpy(b->digest, digest, BEARER_DIGEST_LEN);
	sodium_mprotect_readonly(b->digest);
	return b;
}

int bearer_from_token(const char *token, size_t len, struct bearer **out)
{
	uint8_t d[BEARER_DIGEST_LEN];

	if (!token || len == 0)
		return -EINVAL;
	if (sodium_init() < 0)
		abort();
	crypto_hash_sha256(d, (const unsigned char *)token, len);
	*out = bearer_with(d);
	sodium_memzero(d, sizeof(d));
	return 0;
}

int bearer_from_file(const char *path, struct bearer **out, char *err, size_t errlen)
{
	struct secret *s = NULL;
	int r = secret_from_file(path, &s);

	if (r == -EPERM)
		snprintf(err, errlen, "token file %s: group or others may access it (chmod 600)",
			 path);
	else if (r == -EINVAL)
		snprintf(err, errlen, "token file %s: not a regular file, or empty", path);
	else if (r < 0)
		snprintf(err, errlen, "token file %s: %s", path, strerror(-r));
	if (r < 0)
		return r;
	r = bearer_from_token(secret_data(s), secret_len(s), out);
	secret_free(s);
	if (r < 0)
		snprintf(err, errlen, "token file %s is empty", path);
	return r;
}

int bearer_from_sha256_hex(const char *hex, struct bearer **out, char *err, size_t errlen)
{
	uint8_t d[BEARER_DIGEST_LEN];
	size_t n = 0;
	const char *end = NULL;

	if (!hex || strlen(hex) != 2 * BEARER_DIGEST_LEN ||
	    sodium_hex2bin(d, sizeof(d), hex, strlen(hex), NULL, &n, &end) != 0 ||
	    n != BEARER_DIGEST_LEN || *end) {
		snprintf(err, errlen, "a token SHA-256 is %u hex digits", 2 * BEARER_DIGEST_LEN);
		return -EINVAL;
	}
	*out = bearer_with(d);
	return 0;
}

static bool is_token68(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-._~+/", c));
}

const char *bearer_token_of(const char *h, size_t *len)
{
	const char *t, *e;

	if (!h || strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
		return NULL;
	for (t = h + 6; *t == ' ' || *t == '\t'; t++)
		;
	for (e = t; is_token68(*e); e++)
		;
	while (*e == '=')
		e++;
	if (e == t || *e)
		return NULL;
	*len = (size_t)(e - t);
	return t;
}

bool bearer_check(const struct bearer *b, const char *token, size_t len)
{
	uint8_t d[BEARER_DIGEST_LEN];
	bool ok;

	if (!b || !token || len == 0 || len > BEARER_MAX_PRESENTED)
		return false;
	crypto_hash_sha256(d, (const unsigned char *)token, len);
	ok = sodium_memcmp(d, b->digest, BEARER_DIGEST_LEN) == 0;
	sodium_memzero(d, sizeof(d));
	return ok;
}

bool bearer_check_header(const struct bearer *b, const char *authorization)
{
	size_t len = 0;
	const char *t = bearer_token_of(authorization, &len);

	return t && bearer_check(b, t, len);
}

struct bearer *bearer_free(struct bearer *b)
{
	if (!b)
		return NULL;
	sodium_free(b->digest); /* wipes */
	free(b);
	return NULL;
}
