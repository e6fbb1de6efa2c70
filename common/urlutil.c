/* urlutil.c - see urlutil.h. */
#include "urlutil.h"

#include "util.h"

#include <errno.h>
#include <stdint.h>
#include <strings.h>

#define WK_AS "/.well-known/oauth-authorization-server"
#define WK_OIDC "/.well-known/openid-configuration"
#define WK_PR "/.well-known/oauth-protected-resource"

/* ---- a growing string ---- */

struct sbuf {
	char *s;
	size_t len, cap;
};

static void sb_addn(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = MAX(2 * b->cap, b->len + n + 1);
		b->s = xrealloc(b->s, b->cap);
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void sb_add(struct sbuf *b, const char *s)
{
	sb_addn(b, s, strlen(s));
}

static char *sb_take(struct sbuf *b)
{
	if (!b->s)
		return xstrdup("");
	return TAKE_PTR(b->s);
}

/* ---- encoding ---- */

static bool is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

char *url_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len;
	char *out, *o;

	if (!s)
		return NULL;
	len = strlen(s);
	if (len > (SIZE_MAX - 1) / 3)
		return NULL;
	out = o = xmalloc(3 * len + 1);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (is_unreserved(*p)) {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*p >> 4];
		*o++ = hex[*p & 15];
	}
	*o = '\0';
	return out;
}

char *url_form(const char *const *kv)
{
	struct sbuf b = { 0 };

	if (!kv)
		return NULL;
	for (size_t i = 0; kv[i]; i += 2) {
		_cleanup_free_ char *k = NULL, *v = NULL;

		if (!kv[i + 1])
			continue;
		k = url_encode(kv[i]);
		v = url_encode(kv[i + 1]);
		if (b.len)
			sb_add(&b, "&");
		sb_add(&b, k);
		sb_add(&b, "=");
		sb_add(&b, v);
	}
	return sb_take(&b);
}

/* Decodes s[0..n) (form rules: '+' is a space). Returns the length, or -1
 * for a malformed escape. out holds n + 1 bytes; a NUL terminator follows. */
static ssize_t form_decode(const char *s, size_t n, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '+') {
			out[o++] = ' ';
		} else if (s[i] != '%') {
			out[o++] = s[i];
		} else if (i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			out[o++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
			i += 2;
		} else {
			return -1;
		}
	}
	out[o] = '\0';
	return (ssize_t)o;
}

char *url_query_get(const char *query, const char *name)
{
	size_t qlen, nlen;
	_cleanup_free_ char *buf = NULL;

	if (!query || !name || (qlen = strlen(query)) > URL_MAX_LEN)
		return NULL;
	/* A malformed escape anywhere makes the whole query suspect. */
	buf = xmalloc(qlen + 1);
	if (form_decode(query, qlen, buf) < 0)
		return NULL;
	nlen = strlen(name);
	for (const char *p = query; *p;) {
		size_t plen = strcspn(p, "&");
		const char *eq = memchr(p, '=', plen);
		size_t klen = eq ? (size_t)(eq - p) : plen;
		ssize_t dk = form_decode(p, klen, buf);

		if (dk >= 0 && (size_t)dk == nlen && memcmp(buf, name, nlen) == 0) {
			const char *v = eq ? eq + 1 : p + plen;
			ssize_t dv = form_decode(v, (size_t)(p + plen - v), buf);

			if (dv < 0 || strlen(buf) != (size_t)dv)
				return NULL; /* an embedded NUL */
			return xstrdup(buf);
		}
		p += plen;
		if (*p == '&')
			p++;
	}
	return NULL;
}

char *url_append_query(const char *url, const char *query)
{
	size_t ulen, base;
	const char *sep;

	if (!url || !query || (ulen = strlen(url)) > URL_MAX_LEN || strlen(query) > URL_MAX_LEN)
		return NULL;
	if (!*query)
		return xstrdup(url);
	base = strcspn(url, "#");
	if (!memchr(url, '?', base))
		sep = "?";
	else if (url[base - 1] == '?' || url[base - 1] == '&')
		sep = "";
	else
		sep = "&";
	return xasprintf("%.*s%s%s%s", (int)base, url, sep, query, url + base);
}

/* ---- parsing ---- */

struct url_parts {
	const char *scheme; /* "http" or "https" */
	const char *auth;
	size_t authlen;
	const char *path; /* may be empty */
	size_t pathlen;
	const char *query; /* after '?'; NULL when none */
	size_t querylen;
};

static bool host_ok(const char *h, size_t n)
{
	if (n == 0)
		return false;
	if (h[0] == '[') {
		if (n < 3 || h[n - 1] != ']')
			return false;
		for (size_t i = 1; i + 1 < n; i++)
			if (hexval(h[i]) < 0 && h[i] != ':' && h[i] != '.')
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (!is_unreserved((unsigned char)h[i]))
			return false;
	return true;
}

static bool port_ok(const char *p, size_t n)
{
	unsigned long v = 0;

	if (n == 0 || n > 5)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	return v >= 1 && v <= 65535;
}

/* host [":" port], where an IPv6 host is bracketed. No userinfo. */
static bool authority_ok(const char *a, size_t n)
{
	const char *colon;
	size_t hlen;

	if (memchr(a, '@', n))
		return false;
	if (n && a[0] == '[') {
		const char *rb = memchr(a, ']', n);

		if (!rb)
			return false;
		hlen = (size_t)(rb - a) + 1;
		if (hlen < n && a[hlen] != ':')
			return false;
	} else {
		colon = memchr(a, ':', n);
		hlen = colon ? (size_t)(colon - a) : n;
	}
	if (!host_ok(a, hlen))
		return false;
	return hlen == n || port_ok(a + hlen + 1, n - hlen - 1);
}

static int url_parse(const char *url, struct url_parts *u)
{
	const char *p;
	size_t len;

	if (!url || (len = strlen(url)) > URL_MAX_LEN)
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
			return -EINVAL;
	if (strncasecmp(url, "https://", 8) == 0) {
		u->scheme = "https";
		p = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		u->scheme = "http";
		p = url + 7;
	} else {
		return -EINVAL;
	}
	u->auth = p;
	u->authlen = strcspn(p, "/?#");
	if (!authority_ok(u->auth, u->authlen))
		return -EINVAL;
	u->path = p + u->authlen;
	u->pathlen = strcspn(u->path, "?#");
	u->query = NULL;
	u->querylen = 0;
	if (u->path[u->pathlen] == '?') {
		u->query = u->path + u->pathlen + 1;
		u->querylen = strcspn(u->query, "#");
	}
	return 0;
}

static char *parts_origin(const struct url_parts *u)
{
	return xasprintf("%s://%.*s", u->scheme, (int)u->authlen, u->auth);
}

int url_split(const char *url, char **origin, char **path)
{
	struct url_parts u;

	if (!origin || !path || url_parse(url, &u) < 0)
		return -EINVAL;
	*origin = parts_origin(&u);
	if (u.pathlen == 1)
		*path = xstrdup("");
	else
		*path = xstrndup(u.path, u.pathlen);
	return 0;
}

/* ---- discovery ---- */

struct strv {
	char **v;
	size_t n;
};

/* Appends s (taken) unless an equal string is already there. */
static void strv_add_unique(struct strv *sv, char *s)
{
	for (size_t i = 0; i < sv->n; i++) {
		if (strcmp(sv->v[i], s) == 0) {
			free(s);
			return;
		}
	}
	sv->v = xrealloc(sv->v, (sv->n + 2) * sizeof(*sv->v));
	sv->v[sv->n++] = s;
	sv->v[sv->n] = NULL;
}

static char **strv_finish(struct strv *sv, size_t *n)
{
	if (n)
		*n = sv->n;
	return sv->v;
}

/* The path without one trailing "/" (so "/" becomes ""). */
static int path_trimmed(const struct url_parts *u)
{
	size_t n = u->pathlen;

	if (n && u->path[n - 1] == '/')
		n--;
	return (int)n; /* bounded by URL_MAX_LEN */
}

char **url_as_metadata_candidates(const char *issuer_or_url, size_t *n)
{
	struct url_parts u;
	struct strv sv = { 0 };
	_cleanup_free_ char *o = NULL;
	int pl;

	if (url_parse(issuer_or_url, &u) < 0)
		return NULL;
	o = parts_origin(&u);
	pl = path_trimmed(&u);
	strv_add_unique(&sv, xasprintf("%s" WK_AS "%.*s", o, pl, u.path));
	strv_add_unique(&sv, xasprintf("%s" WK_AS, o));
	strv_add_unique(&sv, xasprintf("%s" WK_OIDC "%.*s", o, pl, u.path));
	strv_add_unique(&sv, xasprintf("%s%.*s" WK_OIDC, o, pl, u.path));
	strv_add_unique(&sv, xasprintf("%s" WK_OIDC, o));
	return strv_finish(&sv, n);
}

char **url_resource_metadata_candidates(const char *resource_url, size_t *n)
{
	struct url_parts u;
	struct strv sv = { 0 };
	_cleanup_free_ char *o = NULL;

	if (url_parse(resource_url, &u) < 0)
		return NULL;
	o = parts_origin(&u);
	strv_add_unique(&sv, xasprintf("%s" WK_PR "%.*s%s%.*s", o, path_trimmed(&u), u.path,
				       u.query ? "?" : "", (int)u.querylen,
				       u.query ? u.query : ""));
	strv_add_unique(&sv, xasprintf("%s" WK_PR, o));
	return strv_finish(&sv, n);
}

static bool eq_trailing_slash(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen && a[alen - 1] == '/')
		alen--;
	if (blen && b[blen - 1] == '/')
		blen--;
	return alen == blen && memcmp(a, b, alen) == 0;
}

static bool has_prefix_segment(const char *p, size_t n, const char *wk)
{
	size_t wl = strlen(wk);

	return n >= wl && memcmp(p, wk, wl) == 0 && (n == wl || p[wl] == '/');
}

bool url_issuer_matches(const char *issuer, const char *metadata_url)
{
	struct url_parts u;
	_cleanup_free_ char *want = NULL;
	const char *rest;
	size_t restlen, wl = strlen(WK_OIDC);

	if (!issuer || url_parse(metadata_url, &u) < 0 || strcspn(metadata_url, "?#") !=
	    strlen(metadata_url))
		return false;
	if (has_prefix_segment(u.path, u.pathlen, WK_AS)) {
		rest = u.path + strlen(WK_AS);
		restlen = u.pathlen - strlen(WK_AS);
	} else if (has_prefix_segment(u.path, u.pathlen, WK_OIDC)) {
		rest = u.path + wl;
		restlen = u.pathlen - wl;
	} else if (u.pathlen > wl && memcmp(u.path + u.pathlen - wl, WK_OIDC, wl) == 0) {
		rest = u.path;
		restlen = u.pathlen - wl;
	} else {
		return false;
	}
	want = xasprintf("%s://%.*s%.*s", u.scheme, (int)u.authlen, u.auth, (int)restlen, rest);
	return eq_trailing_slash(issuer, strlen(issuer), want, strlen(want));
}

/* ---- WWW-Authenticate (RFC 9110 §11.6.1) ---- */

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token68(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("-._~+/", c));
}

static const char *skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* If a token68 starts at p and is all that is left of its challenge,
 * returns the position after it; else NULL. */
static const char *token68_end(const char *p)
{
	const char *q = p;

	while (is_token68(*q))
		q++;
	if (q == p)
		return NULL;
	while (*q == '=')
		q++;
	q = skip_ows(q);
	return *q == ',' || !*q ? q : NULL;
}

/* Reads a token or quoted-string value at p into a new string; *end gets
 * the position after it. NULL when malformed. */
static char *auth_value(const char *p, const char **end)
{
	struct sbuf b = { 0 };
	const char *q = p;

	if (*p != '"') {
		while (is_tchar(*q))
			q++;
		if (q == p)
			return NULL;
		*end = q;
		return xstrndup(p, (size_t)(q - p));
	}
	for (q = p + 1; *q != '"'; q++) {
		if (*q == '\\')
			q++;
		if (!*q || ((unsigned char)*q < 0x20 && *q != '\t') || *q == 0x7f) {
			free(b.s);
			return NULL;
		}
		sb_addn(&b, q, 1);
	}
	*end = q + 1;
	return sb_take(&b);
}

char *url_www_auth_param(const char *header, const char *param)
{
	const char *p;
	bool bearer = false, have_scheme = false;
	char *found = NULL;

	if (!header || !param || strlen(header) > URL_MAX_LEN)
		return NULL;
	for (p = header;;) {
		const char *name, *q;
		size_t nlen;
		char *v;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		for (name = p; is_tchar(*p); p++)
			;
		nlen = (size_t)(p - name);
		if (nlen == 0)
			goto bad;
		q = skip_ows(p);
		if (*q != '=') {
			/* A new challenge: its scheme, then a token68, params or nothing. */
			if (*p && *p != ' ' && *p != '\t' && *p != ',')
				goto bad;
			have_scheme = true;
			bearer = nlen == 6 && strncasecmp(name, "Bearer", 6) == 0;
			q = skip_ows(p);
			if (q != p && (q = token68_end(q)))
				p = q;
			continue;
		}
		if (!have_scheme)
			goto bad;
		v = auth_value(skip_ows(q + 1), &p);
		if (!v)
			goto bad;
		if (bearer && !found && strlen(param) == nlen && strncasecmp(name, param, nlen) == 0)
			found = v;
		else
			free(v);
		p = skip_ows(p);
		if (*p && *p != ',')
			goto bad;
	}
	return found;
bad:
	free(found);
	return NULL;
}
