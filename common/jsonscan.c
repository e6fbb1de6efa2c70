/* jsonscan.c - see jsonscan.h. A recursive descent over the text; the
 * recursion is bounded by JSCAN_MAX_DEPTH. Every function returns 0 and
 * moves s->p past what it read, or -1: the text is declined. */
#include "jsonscan.h"

#include <limits.h>
#include <string.h>

struct scan {
	const unsigned char *p, *end;
	/* The keys of every object being read, innermost object's last: its
	 * new key is compared with its own earlier ones only. */
	struct {
		const unsigned char *p;
		size_t n;
	} keys[JSCAN_MAX_KEYS];
	unsigned nkeys;
	/* jscan_object_with: the top-level member whose object's members
	 * are listed in the same pass. */
	const char *cap_key;
	size_t cap_klen, cap_max, cap_n;
	struct jscan_member *cap_out;
	bool captured;
};

static int value(struct scan *s, unsigned depth);

/* Space and tab only: see the header on line breaks. */
static void skip_space(struct scan *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
		s->p++;
}

static bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

static int hex4(const unsigned char *p, unsigned *v)
{
	*v = 0;
	for (unsigned i = 0; i < 4; i++) {
		unsigned char c = p[i];
		unsigned d = is_digit(c)	      ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a') + 10u
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A') + 10u
						    : 16u;

		if (d == 16)
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* The length of the UTF-8 sequence at p (first byte >= 0x80), or 0 when
 * jansson would refuse it: a stray continuation byte, an overlong form, a
 * surrogate, a code point past U+10FFFF, a cut sequence. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], cp;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1fu;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0fu;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07u;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0u) != 0x80u)
			return 0;
		cp = cp << 6 | (p[i] & 0x3fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A \u escape, *pp at its 'u': one code unit, or a surrogate pair
 * written as two escapes. */
static int unicode_escape(struct scan *s, const unsigned char **pp)
{
	const unsigned char *p = *pp;
	unsigned v, lo;

	if (s->end - p < 5 || hex4(p + 1, &v) < 0)
		return -1;
	p += 5;
	if (v == 0 || (v >= 0xdc00 && v <= 0xdfff)) /* jansson refuses both */
		return -1;
	if (v >= 0xd800 && v <= 0xdbff) {
		if (s->end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
		    lo < 0xdc00 || lo > 0xdfff)
			return -1;
		p += 6;
	}
	*pp = p;
	return 0;
}

/* A string at s->p (its opening quote). *escaped: it had a backslash. */
static int string(struct scan *s, bool *escaped)
{
	const unsigned char *p = s->p + 1, *end = s->end;

	*escaped = false;
	while (p < end) {
		unsigned char c = *p;
		size_t n;

		if (c == '"') {
			s->p = p + 1;
			return 0;
		}
		if (c >= 0x20 && c < 0x80 && c != '\\') {
			p++;
			continue;
		}
		if (c < 0x20)
			return -1;
		if (c >= 0x80) {
			if (!(n = utf8_len(p, end)))
				return -1;
			p += n;
			continue;
		}
		*escaped = true;
		if (++p == end)
			return -1;
		if (*p == 'u') {
			if (unicode_escape(s, &p) < 0)
				return -1;
		} else if (*p && strchr("\"\\/bfnrt", *p)) {
			p++;
		} else {
			return -1;
		}
	}
	return -1;
}

/* The digits at p: their count, p moved past them. */
static size_t digits(const unsigned char **p, const unsigned char *end)
{
	const unsigned char *q = *p;
	size_t n;

	while (q < end && is_digit(*q))
		q++;
	n = (size_t)(q - *p);
	*p = q;
	return n;
}

static int number(struct scan *s)
{
	const unsigned char *p = s->p, *start = p;
	size_t int_digits;
	bool real = false;

	if (*p == '-')
		p++;
	if (p == s->end || !is_digit(*p))
		return -1;
	if (*p == '0')
		p++, int_digits = 1;
	else
		int_digits = digits(&p, s->end);
	if (p < s->end && *p == '.') {
		p++;
		real = true;
		if (!digits(&p, s->end))
			return -1;
	}
	if (p < s->end && (*p == 'e' || *p == 'E')) {
		size_t n;

		p++;
		real = true;
		if (p < s->end && (*p == '+' || *p == '-'))
			p++;
		n = digits(&p, s->end);
		if (n == 0 || n > 2)
			return -1;
	}
	/* Bounded so that jansson's strtoll or strtod never overflows. */
	if ((!real && int_digits > 18) || p - start > 32)
		return -1;
	s->p = p;
	return 0;
}

static int literal(struct scan *s, const char *lit, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return -1;
	s->p += n;
	return 0;
}

static int array(struct scan *s, unsigned depth)
{
	s->p++;
	skip_space(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		if (value(s, depth + 1) < 0)
			return -1;
		skip_space(s);
		if (s->p == s->end)
			return -1;
		if (*s->p == ']') {
			s->p++;
			return 0;
		}
		if (*s->p != ',')
			return -1;
		s->p++;
		skip_space(s);
	}
}

/* A new key of the innermost object, unless it repeats one of its own. */
static int key_add(struct scan *s, unsigned base, const unsigned char *k, size_t n)
{
	if (s->nkeys - base == JSCAN_MAX_OBJECT_KEYS || s->nkeys == JSCAN_MAX_KEYS)
		return -1;
	for (unsigned i = base; i < s->nkeys; i++)
		if (s->keys[i].n == n && memcmp(s->keys[i].p, k, n) == 0)
			return -1;
	s->keys[s->nkeys].p = k;
	s->keys[s->nkeys].n = n;
	s->nkeys++;
	return 0;
}

/* An object at s->p; its members go to out[0..max) when out is set. */
static int object(struct scan *s, unsigned depth, struct jscan_member *out, size_t max,
		  size_t *count)
{
	unsigned base = s->nkeys;
	size_t n = 0;

	s->p++;
	skip_space(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		*count = 0;
		return 0;
	}
	for (;;) {
		const unsigned char *k, *v;
		size_t klen;
		bool escaped;

		if (s->p == s->end || *s->p != '"')
			return -1;
		k = s->p + 1;
		if (string(s, &escaped) < 0 || escaped)
			return -1;
		klen = (size_t)(s->p - 1 - k);
		if (key_add(s, base, k, klen) < 0)
			return -1;
		skip_space(s);
		if (s->p == s->end || *s->p != ':')
			return -1;
		s->p++;
		skip_space(s);
		v = s->p;
		if (depth == 1 && s->cap_key && klen == s->cap_klen &&
		    memcmp(k, s->cap_key, klen) == 0 && v < s->end && *v == '{') {
			if (object(s, depth + 1, s->cap_out, s->cap_max, &s->cap_n) < 0)
				return -1;
			s->captured = true;
		} else if (value(s, depth + 1) < 0) {
			return -1;
		}
		if (out && n < max)
			out[n] = (struct jscan_member){ .key = (const char *)k,
							.key_len = klen,
							.val = (const char *)v,
							.val_len = (size_t)(s->p - v) };
		n++;
		skip_space(s);
		if (s->p == s->end)
			return -1;
		if (*s->p == '}') {
			s->p++;
			break;
		}
		if (*s->p != ',')
			return -1;
		s->p++;
		skip_space(s);
	}
	s->nkeys = base;
	*count = n;
	return 0;
}

static int value(struct scan *s, unsigned depth)
{
	size_t unused;
	bool escaped;

	if (s->p == s->end)
		return -1;
	switch (*s->p) {
	case '{': return depth > JSCAN_MAX_DEPTH ? -1 : object(s, depth, NULL, 0, &unused);
	case '[': return depth > JSCAN_MAX_DEPTH ? -1 : array(s, depth);
	case '"': return string(s, &escaped);
	case 't': return literal(s, "true", 4);
	case 'f': return literal(s, "false", 5);
	case 'n': return literal(s, "null", 4);
	default: return number(s);
	}
}

int jscan_object_with(const char *buf, size_t len, struct jscan_member *out, size_t max,
		      const char *key, struct jscan_member *inner, size_t inner_max, int *inner_n)
{
	struct scan s;
	size_t count;

	if (inner_n)
		*inner_n = -1;
	if (!buf || len > INT_MAX)
		return -1;
	s.p = (const unsigned char *)buf;
	s.end = s.p + len;
	s.nkeys = 0;
	s.cap_key = key && inner_n ? key : NULL;
	s.cap_klen = key ? strlen(key) : 0;
	s.cap_out = inner;
	s.cap_max = inner ? inner_max : 0;
	s.cap_n = 0;
	s.captured = false;
	skip_space(&s);
	if (s.p == s.end || *s.p != '{' || object(&s, 1, out, out ? max : 0, &count) < 0)
		return -1;
	skip_space(&s);
	if (s.p != s.end)
		return -1;
	if (s.captured)
		*inner_n = (int)s.cap_n;
	return (int)count;
}

int jscan_object(const char *buf, size_t len, struct jscan_member *out, size_t max)
{
	return jscan_object_with(buf, len, out, max, NULL, NULL, 0, NULL);
}

const struct jscan_member *jscan_find(const struct jscan_member *m, size_t n, const char *key)
{
	size_t kl = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (m[i].key_len == kl && memcmp(m[i].key, key, kl) == 0)
			return &m[i];
	return NULL;
}

bool jscan_is(const struct jscan_member *m, const char *lit)
{
	size_t n = strlen(lit);

	return m && m->val_len == n && memcmp(m->val, lit, n) == 0;
}

bool jscan_uint(const struct jscan_member *m, uint64_t *out)
{
	uint64_t v = 0;

	if (!m || m->val_len == 0 || m->val_len > 18)
		return false;
	for (size_t i = 0; i < m->val_len; i++) {
		if (!is_digit((unsigned char)m->val[i]))
			return false;
		v = v * 10 + (uint64_t)(m->val[i] - '0');
	}
	*out = v;
	return true;
}
