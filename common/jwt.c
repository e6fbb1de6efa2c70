/* jwt.c - see jwt.h.
 *
 * Order of checks: shape and sizes, header (alg), signature, then claims.
 * Every decoded part is bounded by JWT_MAX_LEN before anything is
 * allocated.
 */
#include "jwt.h"

#include "secret.h"
#include "util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

struct jwt_verifier {
	unsigned char *key; /* sodium_malloc'd */
	size_t keylen;
	char *issuer, *audience;
	uint64_t max_skew_s;
};

static int refuse(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EACCES;
}

int jwt_verifier_new(const void *secret, size_t len, const struct jwt_config *cfg,
		     struct jwt_verifier **out)
{
	struct jwt_verifier *v;

	if (!secret || len < JWT_MIN_SECRET || len > SECRET_MAX || !cfg)
		return -EINVAL;
	if (sodium_init() < 0)
		abort(); /* no usable random source: nothing secure can run */
	v = xcalloc(1, sizeof(*v));
	v->key = sodium_malloc(len);
	if (!v->key)
		abort(); /* as xmalloc */
	memcpy(v->key, secret, len);
	sodium_mprotect_readonly(v->key);
	v->keylen = len;
	v->issuer = cfg->issuer ? xstrdup(cfg->issuer) : NULL;
	v->audience = cfg->audience ? xstrdup(cfg->audience) : NULL;
	v->max_skew_s = cfg->max_skew_s;
	*out = v;
	return 0;
}

int jwt_verifier_from_file(const char *path, const struct jwt_config *cfg,
			   struct jwt_verifier **out, char *err, size_t errlen)
{
	struct secret *s = NULL;
	int r = secret_from_file(path, &s);

	if (r == -EPERM)
		snprintf(err, errlen, "shared secret file %s: group or others may access it "
			 "(chmod 600)", path);
	else if (r == -EINVAL)
		snprintf(err, errlen, "shared secret file %s: not a regular file, or empty", path);
	else if (r < 0)
		snprintf(err, errlen, "shared secret file %s: %s", path, strerror(-r));
	if (r < 0)
		return r;
	r = jwt_verifier_new(secret_data(s), secret_len(s), cfg, out);
	secret_free(s);
	if (r < 0)
		snprintf(err, errlen, "shared secret file %s: an HS256 secret has at least %u bytes",
			 path, JWT_MIN_SECRET);
	return r;
}

struct jwt_verifier *jwt_verifier_free(struct jwt_verifier *v)
{
	if (!v)
		return NULL;
	sodium_free(v->key); /* wipes */
	free(v->issuer);
	free(v->audience);
	free(v);
	return NULL;
}

/* ---- pieces ---- */

/* Decodes one base64url part (no padding) into a new NUL-terminated
 * buffer; NULL when malformed. n is bounded by JWT_MAX_LEN. */
static unsigned char *b64url(const char *s, size_t n, size_t *outlen)
{
	size_t cap = n * 3 / 4 + 1, got = 0;
	const char *end = NULL;
	unsigned char *out = xmalloc(cap + 1);

	if (sodium_base642bin(out, cap, s, n, NULL, &got, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    end != s + n) {
		free(out);
		return NULL;
	}
	out[got] = '\0';
	*outlen = got;
	return out;
}

static json_t *json_part(const char *s, size_t n)
{
	size_t len = 0;
	_cleanup_free_ unsigned char *raw = b64url(s, n, &len);
	json_t *j;

	if (!raw)
		return NULL;
	j = json_loadb((const char *)raw, len, JSON_REJECT_DUPLICATES, NULL);
	if (j && !json_is_object(j)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int check_header(const char *s, size_t n, char *err, size_t errlen)
{
	json_t *h = json_part(s, n);
	const char *alg;
	int r = 0;

	if (!h)
		return refuse(err, errlen, "malformed token header");
	alg = json_string_value(json_object_get(h, "alg"));
	if (!alg || strcmp(alg, "HS256") != 0)
		r = refuse(err, errlen, "token algorithm is not HS256");
	else if (json_object_get(h, "crit"))
		r = refuse(err, errlen, "token header has critical extensions");
	json_decref(h);
	return r;
}

static int check_signature(const struct jwt_verifier *v, const char *signed_part, size_t n,
			   const char *sig64, size_t sn, char *err, size_t errlen)
{
	crypto_auth_hmacsha256_state st;
	unsigned char mac[crypto_auth_hmacsha256_BYTES];
	size_t len = 0;
	unsigned char *sig = b64url(sig64, sn, &len);
	int r = 0;

	if (!sig || len != sizeof(mac)) {
		free(sig);
		return refuse(err, errlen, "malformed token signature");
	}
	crypto_auth_hmacsha256_init(&st, v->key, v->keylen);
	crypto_auth_hmacsha256_update(&st, (const unsigned char *)signed_part, n);
	crypto_auth_hmacsha256_final(&st, mac);
	if (sodium_memcmp(mac, sig, sizeof(mac)) != 0)
		r = refuse(err, errlen, "bad token signature");
	sodium_memzero(&st, sizeof(st));
	sodium_memzero(mac, sizeof(mac));
	free(sig);
	return r;
}

/* A NumericDate claim: -ENOENT when absent, -EINVAL when not a number. */
static int date_claim(json_t *p, const char *name, double *out)
{
	json_t *d = json_object_get(p, name);

	if (!d)
		return -ENOENT;
	if (!json_is_number(d))
		return -EINVAL;
	*out = json_number_value(d);
	return isfinite(*out) ? 0 : -EINVAL;
}

static int check_times(const struct jwt_verifier *v, json_t *p, int64_t now, char *err,
		       size_t errlen)
{
	double t, lo = (double)now - (double)v->max_skew_s, hi = (double)now + (double)v->max_skew_s;
	int r = date_claim(p, "exp", &t);

	if (r == -ENOENT)
		return refuse(err, errlen, "token has no expiry (exp)");
	if (r < 0)
		return refuse(err, errlen, "token exp is not a number");
	if (t <= lo)
		return refuse(err, errlen, "token expired");
	r = date_claim(p, "nbf", &t);
	if (r == -EINVAL)
		return refuse(err, errlen, "token nbf is not a number");
	if (r == 0 && t > hi)
		return refuse(err, errlen, "token not valid yet (nbf)");
	r = date_claim(p, "iat", &t);
	if (r == -EINVAL)
		return refuse(err, errlen, "token iat is not a number");
	if (r == 0 && t > hi)
		return refuse(err, errlen, "token issued in the future (iat)");
	return 0;
}

static bool aud_has(json_t *aud, const char *want)
{
	size_t i;
	json_t *a;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, a)
		if (json_is_string(a) && strcmp(json_string_value(a), want) == 0)
			return true;
	return false;
}

static int check_claims(const struct jwt_verifier *v, const char *s, size_t n, int64_t now,
			char *err, size_t errlen)
{
	json_t *p = json_part(s, n);
	const char *iss;
	int r;

	if (!p)
		return refuse(err, errlen, "malformed token payload");
	r = check_times(v, p, now, err, errlen);
	iss = json_string_value(json_object_get(p, "iss"));
	if (r == 0 && v->issuer && (!iss || strcmp(iss, v->issuer) != 0))
		r = refuse(err, errlen, "token issuer does not match");
	if (r == 0 && v->audience && !aud_has(json_object_get(p, "aud"), v->audience))
		r = refuse(err, errlen, "token audience does not match");
	json_decref(p);
	return r;
}

int jwt_verify(const struct jwt_verifier *v, const char *token, size_t len, int64_t now,
	       char *err, size_t errlen)
{
	const char *d1, *d2;
	int r;

	if (!v || !token || len == 0 || len > JWT_MAX_LEN || memchr(token, '\0', len))
		return refuse(err, errlen, "no token, or one over %u bytes", JWT_MAX_LEN);
	d1 = memchr(token, '.', len);
	d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
	if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)))
		return refuse(err, errlen, "a token has three parts");
	r = check_header(token, (size_t)(d1 - token), err, errlen);
	if (r == 0)
		r = check_signature(v, token, (size_t)(d2 - token), d2 + 1,
				    len - (size_t)(d2 + 1 - token), err, errlen);
	if (r == 0)
		r = check_claims(v, d1 + 1, (size_t)(d2 - d1 - 1), now, err, errlen);
	return r;
}
