/* toml.c - see toml.h. A recursive-descent reader over the whole input.
 *
 * Size: about 1,500 lines for one job, the TOML 1.0 grammar (strings of
 * four kinds, numbers, dates, tables, arrays of tables, the "defined once"
 * index), one file so the scanner's state stays private to it.
 *
 * The input is checked up front (valid UTF-8, none of the control
 * characters TOML forbids anywhere, CR only before LF), so the scanner can
 * treat a NUL byte as the end of input and never looks at encoding again.
 *
 * TOML's "defined once" rules depend on how each table came to be, which a
 * jansson object cannot record. The index keeps, per (container, key) and
 * per (array, element), the kind of definition and its position. It is keyed
 * by container pointer rather than by path string so that its size stays
 * linear in the input however long the keys are.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* strtod_l */
#endif
#include "toml.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* How a key came to be; decides what later lines may do to it. */
enum kind {
	K_VALUE,          /* string, number, boolean */
	K_ARRAY,          /* static array: closed once written */
	K_AOT,            /* array of tables: each [[x]] appends */
	K_TABLE_IMPLICIT, /* created as a parent by a [a.b] header */
	K_TABLE_HEADER,   /* defined by [x], or an element of [[x]] */
	K_TABLE_DOTTED,   /* created by a dotted key a.b = v */
	K_TABLE_INLINE,   /* { ... }: closed once written */
};

static void oom(void)
{
	fputs("tandem: out of memory in toml\n", stderr);
	abort();
}

static json_t *must(json_t *j)
{
	if (!j)
		oom();
	return j;
}

/* ---- growable byte buffer ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static void buf_put(struct buf *b, const void *d, size_t n)
{
	if (n > b->cap - b->len) {
		size_t cap = b->cap ? b->cap : 32;

		while (cap - b->len < n)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void buf_putc(struct buf *b, char c) { buf_put(b, &c, 1); }

/* NUL-terminates without counting the NUL, for use as a C string. */
static const char *buf_str(struct buf *b)
{
	buf_putc(b, '\0');
	b->len--;
	return b->p;
}

static void buf_put_utf8(struct buf *b, uint32_t cp)
{
	char u[4];
	size_t n;

	if (cp < 0x80) {
		u[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | (cp >> 6));
		u[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | (cp >> 12));
		u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		u[0] = (char)(0xF0 | (cp >> 18));
		u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	buf_put(b, u, n);
}

/* ---- character classes and escapes (shared by parser and paths) ---- */

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_bare(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || is_digit(c) ||
	       c == '_' || c == '-';
}

static bool is_bare_key(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_bare(s[i]))
			return false;
	return true;
}

/* Appends key to b as one path segment, quoted when it is not bare. */
static void path_quote(struct buf *b, const char *s, size_t n)
{
	if (is_bare_key(s, n)) {
		buf_put(b, s, n);
		return;
	}
	buf_putc(b, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			buf_putc(b, '\\');
			buf_putc(b, (char)c);
		} else if (c < 0x20 || c == 0x7F) {
			snprintf(esc, sizeof(esc), "\\u%04X", c);
			buf_put(b, esc, 6);
		} else {
			buf_putc(b, (char)c);
		}
	}
	buf_putc(b, '"');
}

enum esc_result { ESC_OK, ESC_BAD, ESC_HEX, ESC_SCALAR };

/* Decodes the escape whose letter is at s[*i] (just after the backslash)
 * into b and moves *i past it. */
static enum esc_result decode_escape(const char *s, size_t len, size_t *i, struct buf *b)
{
	static const char from[] = "btnfr\"\\", to[] = "\b\t\n\f\r\"\\";
	char c = *i < len ? s[*i] : '\0';
	const char *hit = c ? strchr(from, c) : NULL;
	size_t digits = c == 'u' ? 4 : c == 'U' ? 8 : 0;
	uint32_t cp = 0;

	if (hit) {
		buf_putc(b, to[hit - from]);
		(*i)++;
		return ESC_OK;
	}
	if (!digits)
		return ESC_BAD;
	if (len - *i - 1 < digits)
		return ESC_HEX;
	for (size_t k = 1; k <= digits; k++) {
		int v = hexval(s[*i + k]);

		if (v < 0)
			return ESC_HEX;
		cp = cp << 4 | (uint32_t)v;
	}
	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return ESC_SCALAR;
	buf_put_utf8(b, cp);
	*i += digits + 1;
	return ESC_OK;
}

/* ---- index: how and where each key and element was defined ---- */

struct entry {
	const json_t *parent; /* NULL marks a free slot */
	char *key;            /* NULL for an array element */
	size_t klen;          /* key length, or the element's index */
	int line, col;
	enum kind kind;
};

struct index {
	struct entry *tab;
	size_t cap, n; /* cap is 0 or a power of two */
};

static uint64_t entry_hash(const json_t *parent, const char *key, size_t klen)
{
	uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)(uintptr_t)parent * 0x9E3779B97F4A7C15ull);

	if (key) {
		for (size_t i = 0; i < klen; i++)
			h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	} else {
		h = (h ^ klen ^ 0x5bd1e995u) * 0x100000001b3ull;
	}
	return h ^ (h >> 31);
}

static bool entry_is(const struct entry *e, const json_t *parent, const char *key, size_t klen)
{
	if (e->parent != parent || e->klen != klen || !e->key != !key)
		return false;
	return !key || memcmp(e->key, key, klen) == 0;
}

/* Finds the slot holding (parent, key), or the free slot where it belongs. */
static struct entry *index_slot(const struct index *ix, const json_t *parent, const char *key,
				size_t klen)
{
	size_t mask = ix->cap - 1, i = entry_hash(parent, key, klen) & mask;

	while (ix->tab[i].parent && !entry_is(&ix->tab[i], parent, key, klen))
		i = (i + 1) & mask;
	return &ix->tab[i];
}

static struct entry *index_find(const struct index *ix, const json_t *parent, const char *key,
				size_t klen)
{
	struct entry *e;

	if (!ix->cap)
		return NULL;
	e = index_slot(ix, parent, key, klen);
	return e->parent ? e : NULL;
}

static void index_grow(struct index *ix)
{
	struct index big = {.cap = ix->cap ? ix->cap * 2 : 64};

	big.tab = xcalloc(big.cap, sizeof(*big.tab));
	for (size_t i = 0; i < ix->cap; i++) {
		const struct entry *e = &ix->tab[i];

		if (e->parent)
			*index_slot(&big, e->parent, e->key, e->klen) = *e;
	}
	free(ix->tab);
	ix->tab = big.tab;
	ix->cap = big.cap;
}

/* Adds (parent, key) which must not be present; key is copied. */
static struct entry *index_add(struct index *ix, const json_t *parent, const char *key,
			       size_t klen, enum kind kind, int line, int col)
{
	struct entry *e;

	if ((ix->n + 1) * 4 > ix->cap * 3)
		index_grow(ix);
	e = index_slot(ix, parent, key, klen);
	*e = (struct entry){.parent = parent,
			    .key = key ? xstrndup(key, klen) : NULL,
			    .klen = klen,
			    .line = line,
			    .col = col,
			    .kind = kind};
	ix->n++;
	return e;
}

static void index_clear(struct index *ix)
{
	for (size_t i = 0; i < ix->cap; i++)
		free(ix->tab[i].key);
	free(ix->tab);
	*ix = (struct index){0};
}

/* ---- document and parser state ---- */

struct toml_doc {
	json_t *root;
	struct index idx;
};

struct parser {
	const char *s;
	size_t len, pos;
	struct toml_doc *doc;
	json_t *cur;      /* table that key/value lines go into */
	int cur_depth;    /* its depth below the root */
	int inline_depth; /* > 0 inside { } */
	struct buf path;  /* path of what is being parsed, for messages */
	struct toml_error *err;
	size_t start;   /* first byte of line 1 (after a BOM) */
	size_t loc_off; /* locate() resumes here: offsets mostly grow */
	int loc_line, loc_col;
};

/* A key as written: its segments, each with its source offset. */
struct seg {
	char *s;
	size_t len, off;
};

struct key {
	struct seg *seg;
	int n, cap;
};

static void key_free(struct key *k)
{
	for (int i = 0; i < k->n; i++)
		free(k->seg[i].s);
	free(k->seg);
}

/* Line and column (characters) of byte offset off. Scans forward from the
 * last answer, so the parser's mostly increasing queries cost linear time. */
static void locate(struct parser *p, size_t off, int *line, int *col)
{
	if (off < p->loc_off) {
		p->loc_off = p->start;
		p->loc_line = 1;
		p->loc_col = 1;
	}
	for (; p->loc_off < off && p->loc_off < p->len; p->loc_off++) {
		unsigned char c = (unsigned char)p->s[p->loc_off];

		if (c == '\n') {
			p->loc_line++;
			p->loc_col = 1;
		} else if ((c & 0xC0) != 0x80) {
			p->loc_col++;
		}
	}
	*line = p->loc_line;
	*col = p->loc_col;
}

__attribute__((format(printf, 3, 4))) static int fail_at(struct parser *p, size_t off,
							  const char *fmt, ...)
{
	va_list ap;

	locate(p, off, &p->err->line, &p->err->col);
	va_start(ap, fmt);
	vsnprintf(p->err->reason, sizeof(p->err->reason), fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static const char *path_str(struct parser *p) { return buf_str(&p->path); }

static void path_push_key(struct parser *p, const struct seg *sg)
{
	if (p->path.len)
		buf_putc(&p->path, '.');
	path_quote(&p->path, sg->s, sg->len);
}

static void path_push_index(struct parser *p, size_t i)
{
	char tmp[32];
	int n = snprintf(tmp, sizeof(tmp), "[%zu]", i);

	buf_put(&p->path, tmp, (size_t)n);
}

/* Adds n levels to *depth; fails once the tree would nest too deep. */
static int deeper(struct parser *p, size_t off, int *depth, int n)
{
	*depth += n;
	if (*depth > TOML_MAX_DEPTH)
		return fail_at(p, off, "nesting deeper than %d levels", TOML_MAX_DEPTH);
	return 0;
}

static void obj_set(json_t *t, const struct seg *sg, json_t *v)
{
	if (json_object_setn_new(t, sg->s, sg->len, v) < 0)
		oom();
}

static struct entry *find_key(struct parser *p, const json_t *t, const struct seg *sg)
{
	return index_find(&p->doc->idx, t, sg->s, sg->len);
}

static void add_key(struct parser *p, const json_t *t, const struct seg *sg, enum kind kind)
{
	int line, col;

	locate(p, sg->off, &line, &col);
	index_add(&p->doc->idx, t, sg->s, sg->len, kind, line, col);
}

/* ---- input check ---- */

static bool is_cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid:
 * no overlong forms, no surrogates, nothing above U+10FFFF. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0], lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		return n >= 2 && is_cont(s[1]) ? 2 : 0;
	if (c >= 0xE0 && c <= 0xEF) {
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
		return n >= 3 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) ? 3 : 0;
	}
	if (c >= 0xF0 && c <= 0xF4) {
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
		return n >= 4 && s[1] >= lo && s[1] <= hi && is_cont(s[2]) && is_cont(s[3]) ? 4
											     : 0;
	}
	return 0;
}

static int check_text(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;

	for (size_t i = p->pos; i < p->len;) {
		unsigned char c = s[i];
		size_t n;

		if (c == '\r') {
			if (i + 1 < p->len && s[i + 1] == '\n') {
				i += 2;
				continue;
			}
			return fail_at(p, i, "carriage return not followed by a line feed");
		}
		if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
			return fail_at(p, i, "control character U+%04X is not allowed", c);
		n = utf8_len(s + i, p->len - i);
		if (!n)
			return fail_at(p, i, "invalid UTF-8");
		i += n;
	}
	return 0;
}

/* ---- scanning ---- */

static char peek_at(const struct parser *p, size_t k)
{
	return p->pos + k < p->len ? p->s[p->pos + k] : '\0';
}

static char peek(const struct parser *p) { return peek_at(p, 0); }

static void skip_ws(struct parser *p)
{
	while (peek(p) == ' ' || peek(p) == '\t')
		p->pos++;
}

/* A CR always comes with an LF (check_text made sure). */
static bool at_newline(const struct parser *p) { return peek(p) == '\n' || peek(p) == '\r'; }

static void skip_newline(struct parser *p) { p->pos += peek(p) == '\r' ? 2 : 1; }

static void skip_comment(struct parser *p)
{
	while (p->pos < p->len && !at_newline(p))
		p->pos++;
}

/* Whitespace, newlines and comments, as allowed between array elements. */
static void skip_blank(struct parser *p)
{
	for (;;) {
		skip_ws(p);
		if (peek(p) == '#')
			skip_comment(p);
		if (!at_newline(p))
			return;
		skip_newline(p);
	}
}

/* ---- strings ---- */

static int parse_escape(struct parser *p, struct buf *b)
{
	size_t at = p->pos - 1; /* the backslash */
	char c = peek(p);

	switch (decode_escape(p->s, p->len, &p->pos, b)) {
	case ESC_OK:
		return 0;
	case ESC_HEX:
		return fail_at(p, at, "\\%c escape needs %d hex digits", c, c == 'u' ? 4 : 8);
	case ESC_SCALAR:
		return fail_at(p, at, "\\%c%.*s is not a Unicode scalar value", c, c == 'u' ? 4 : 8,
			       p->s + at + 2);
	case ESC_BAD:
	default:
		if (c > ' ' && c < 0x7F)
			return fail_at(p, at, "invalid escape sequence \\%c", c);
		return fail_at(p, at, "invalid escape sequence");
	}
}

/* A one-line string: "basic" (escapes) or 'literal' (none). */
static int parse_line_string(struct parser *p, struct buf *b, char quote)
{
	size_t open = p->pos++;

	for (;;) {
		char c = peek(p);

		if (p->pos >= p->len || c == '\n' || c == '\r')
			return fail_at(p, open, "unterminated string");
		p->pos++;
		if (c == quote)
			return 0;
		if (c == '\\' && quote == '"') {
			int r = parse_escape(p, b);

			if (r < 0)
				return r;
			continue;
		}
		buf_putc(b, c);
	}
}

/* In a """ string, a backslash ending a line (trailing blanks allowed)
 * swallows the newline and all whitespace after it. Returns false when the
 * backslash at p->pos does not end its line. */
static bool trim_line_end(struct parser *p)
{
	size_t j = p->pos + 1;

	while (j < p->len && (p->s[j] == ' ' || p->s[j] == '\t'))
		j++;
	if (j >= p->len || (p->s[j] != '\n' && p->s[j] != '\r'))
		return false;
	p->pos = j;
	while (p->pos < p->len && (p->s[p->pos] == ' ' || p->s[p->pos] == '\t' ||
				   p->s[p->pos] == '\r' || p->s[p->pos] == '\n'))
		p->pos++;
	return true;
}

/* A multi-line string, """basic""" or '''literal'''. Up to two quotes may
 * sit right before the closing three and belong to the content. */
static int parse_ml_string(struct parser *p, struct buf *b, char quote)
{
	size_t open = p->pos;

	p->pos += 3;
	if (at_newline(p))
		skip_newline(p);
	for (;;) {
		size_t run = 0;
		char c = peek(p);

		if (p->pos >= p->len)
			return fail_at(p, open, "unterminated multi-line string");
		while (peek_at(p, run) == quote)
			run++;
		if (run >= 3) {
			if (run > 5)
				return fail_at(p, p->pos + 5,
					       "too many quotes at the end of a multi-line string");
			buf_put(b, p->s + p->pos, run - 3);
			p->pos += run;
			return 0;
		}
		if (run) {
			buf_put(b, p->s + p->pos, run);
			p->pos += run;
			continue;
		}
		if (c == '\\' && quote == '"') {
			int r;

			if (trim_line_end(p))
				continue;
			p->pos++;
			r = parse_escape(p, b);
			if (r < 0)
				return r;
			continue;
		}
		buf_putc(b, c);
		p->pos++;
	}
}

static int parse_string(struct parser *p, json_t **out)
{
	struct buf b = {0};
	char q = peek(p);
	int r;

	if (peek_at(p, 1) == q && peek_at(p, 2) == q)
		r = parse_ml_string(p, &b, q);
	else
		r = parse_line_string(p, &b, q);
	if (r == 0)
		*out = must(json_stringn(b.p ? b.p : "", b.len));
	free(b.p);
	return r;
}

/* ---- keys ---- */

static int expected_key(struct parser *p)
{
	char c = peek(p);

	if (p->inline_depth && (at_newline(p) || c == '#'))
		return fail_at(p, p->pos, "newline is not allowed in an inline table");
	if (p->pos >= p->len)
		return fail_at(p, p->pos, "expected a key, found end of input");
	if (c > ' ' && c < 0x7F)
		return fail_at(p, p->pos, "expected a key, found '%c'", c);
	return fail_at(p, p->pos, "expected a key");
}

static void key_push(struct key *k, struct buf *b, size_t off)
{
	if (k->n == k->cap) {
		k->cap = k->cap ? k->cap * 2 : 4;
		k->seg = xrealloc(k->seg, (size_t)k->cap * sizeof(*k->seg));
	}
	/* An empty quoted key "" still needs a real string for jansson. */
	k->seg[k->n++] = (struct seg){.s = b->p ? b->p : xstrdup(""), .len = b->len, .off = off};
	*b = (struct buf){0};
}

/* key = simple-key *( ws "." ws simple-key ), with whitespace around. */
static int parse_key(struct parser *p, struct key *k)
{
	for (;;) {
		struct buf b = {0};
		size_t off;
		char c;

		skip_ws(p);
		off = p->pos;
		c = peek(p);
		if (c == '"' || c == '\'') {
			int r = parse_line_string(p, &b, c);

			if (r < 0) {
				free(b.p);
				return r;
			}
		} else if (is_bare(c)) {
			while (is_bare(peek(p)))
				p->pos++;
			buf_put(&b, p->s + off, p->pos - off);
		} else {
			return expected_key(p);
		}
		if (k->n == TOML_MAX_DEPTH) {
			free(b.p);
			return fail_at(p, off, "nesting deeper than %d levels", TOML_MAX_DEPTH);
		}
		key_push(k, &b, off);
		skip_ws(p);
		if (peek(p) != '.')
			return 0;
		p->pos++;
	}
}

/* ---- numbers ---- */

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
	c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (!c_locale)
		oom();
}

/* Scans DIGIT *( ["_"] DIGIT ) at t[*i]; false when there is no digit. An
 * underscore not between two digits stops the scan (and so fails later). */
static bool scan_digits(const char *t, size_t n, size_t *i, size_t *ndigits)
{
	size_t j = *i, d = 0;

	while (j < n) {
		if (is_digit(t[j]))
			d++;
		else if (t[j] != '_' || !d || !is_digit(t[j - 1]) || j + 1 == n ||
			 !is_digit(t[j + 1]))
			break;
		j++;
	}
	*i = j;
	*ndigits = d;
	return d > 0;
}

/* 0x, 0o or 0b digits (prefix already skipped), unsigned, must fit int64. */
static int parse_radix(struct parser *p, size_t off, const char *t, size_t n, unsigned radix,
		       json_t **out)
{
	uint64_t v = 0;
	bool prev_digit = false;

	for (size_t i = 0; i < n; i++) {
		int d = hexval(t[i]);

		if (t[i] == '_' && prev_digit && i + 1 < n) {
			prev_digit = false;
			continue;
		}
		if (d < 0 || (unsigned)d >= radix)
			return fail_at(p, off, "invalid digit in base-%u integer", radix);
		if (v > ((uint64_t)INT64_MAX - (unsigned)d) / radix)
			return fail_at(p, off, "integer out of range");
		v = v * radix + (unsigned)d;
		prev_digit = true;
	}
	if (!prev_digit)
		return fail_at(p, off, "invalid number");
	*out = must(json_integer((json_int_t)v));
	return 0;
}

static int decimal_int(struct parser *p, size_t off, const char *t, size_t n, bool neg,
		       json_t **out)
{
	uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;

	for (size_t i = 0; i < n; i++) {
		unsigned d = (unsigned)(t[i] - '0');

		if (t[i] == '_' || t[i] == '+' || t[i] == '-')
			continue;
		if (v > (limit - d) / 10)
			return fail_at(p, off, "integer out of range");
		v = v * 10 + d;
	}
	/* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
	*out = must(json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v));
	return 0;
}

static int decimal_float(struct parser *p, size_t off, const char *t, size_t n, json_t **out)
{
	_cleanup_free_ char *clean = xmalloc(n + 1);
	size_t k = 0;
	double d;

	for (size_t i = 0; i < n; i++)
		if (t[i] != '_')
			clean[k++] = t[i];
	clean[k] = '\0';
	pthread_once(&c_locale_once, c_locale_init);
	d = strtod_l(clean, NULL, c_locale);
	if (isinf(d))
		return fail_at(p, off, "float out of range");
	*out = must(json_real(d));
	return 0;
}

/* dec-int [ "." digits ] [ ("e"|"E") [sign] digits ], t[i] after the sign. */
static int parse_decimal(struct parser *p, size_t off, const char *t, size_t n, size_t i,
			 json_t **out)
{
	size_t start = i, nd;
	bool is_float = false;

	if (!scan_digits(t, n, &i, &nd))
		return fail_at(p, off, "invalid number");
	if (t[start] == '0' && nd > 1)
		return fail_at(p, off, "leading zeros are not allowed");
	if (i < n && t[i] == '.') {
		i++;
		is_float = true;
		if (!scan_digits(t, n, &i, &nd))
			return fail_at(p, off, "a decimal point must be followed by digits");
	}
	if (i < n && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		is_float = true;
		if (i < n && (t[i] == '+' || t[i] == '-'))
			i++;
		if (!scan_digits(t, n, &i, &nd))
			return fail_at(p, off, "an exponent must be followed by digits");
	}
	if (i != n)
		return fail_at(p, off, "invalid number");
	if (is_float)
		return decimal_float(p, off, t, n, out);
	return decimal_int(p, off, t, n, t[0] == '-', out);
}

static bool looks_like_datetime(const struct parser *p)
{
	for (size_t k = 0; k < 4; k++)
		if (!is_digit(peek_at(p, k)))
			return k == 2 && peek_at(p, 2) == ':';
	return peek_at(p, 4) == '-';
}

static int parse_number(struct parser *p, json_t **out)
{
	size_t off = p->pos, n, i = 0;
	const char *t = p->s + off;

	if (looks_like_datetime(p))
		return fail_at(p, off, "date-time values are not supported");
	while (is_bare(peek(p)) || peek(p) == '.' || peek(p) == '+')
		p->pos++;
	n = p->pos - off;
	if (t[0] == '+' || t[0] == '-')
		i = 1;
	if (n - i == 3 && (!memcmp(t + i, "inf", 3) || !memcmp(t + i, "nan", 3)))
		return fail_at(p, off, "inf and nan are not supported");
	if (i == n || !is_digit(t[i]))
		return fail_at(p, off, "invalid value");
	if (n - i >= 2 && t[i] == '0' && strchr("xob", t[i + 1])) {
		if (i)
			return fail_at(p, off,
				       "a sign is not allowed on a hex, octal or binary integer");
		return parse_radix(p, off, t + 2, n - 2,
				   t[1] == 'x' ? 16u : t[1] == 'o' ? 8u : 2u, out);
	}
	return parse_decimal(p, off, t, n, i, out);
}

/* ---- values ---- */

static int parse_value(struct parser *p, int depth, json_t **out, enum kind *kind);
static int parse_keyval(struct parser *p, json_t *t, int depth);

static int parse_bool(struct parser *p, json_t **out)
{
	bool v = peek(p) == 't';
	size_t n = v ? 4 : 5;

	if (p->len - p->pos < n || memcmp(p->s + p->pos, v ? "true" : "false", n) ||
	    is_bare(peek_at(p, n)))
		return fail_at(p, p->pos, "invalid value");
	p->pos += n;
	*out = must(json_boolean(v));
	return 0;
}

static int array_element(struct parser *p, json_t *arr, int depth)
{
	size_t i = json_array_size(arr), mark = p->path.len;
	json_t *v = NULL;
	enum kind kind;
	int line, col, r;

	locate(p, p->pos, &line, &col);
	path_push_index(p, i);
	r = parse_value(p, depth, &v, &kind);
	p->path.len = mark;
	if (r < 0)
		return r;
	if (json_array_append_new(arr, v) < 0)
		oom();
	index_add(&p->doc->idx, arr, NULL, i, kind, line, col);
	return 0;
}

/* depth is the array's own; elements sit one level deeper. */
static int parse_array(struct parser *p, int depth, json_t **out)
{
	size_t open = p->pos++;
	json_t *arr = must(json_array());
	int r = 0;

	for (;;) {
		skip_blank(p);
		if (p->pos >= p->len) {
			r = fail_at(p, open, "unterminated array");
			break;
		}
		if (peek(p) == ']')
			break;
		if (depth + 1 > TOML_MAX_DEPTH)
			r = fail_at(p, p->pos, "nesting deeper than %d levels", TOML_MAX_DEPTH);
		else
			r = array_element(p, arr, depth + 1);
		if (r < 0)
			break;
		skip_blank(p);
		if (peek(p) == ',') {
			p->pos++;
			continue;
		}
		if (peek(p) != ']') {
			r = p->pos >= p->len ? fail_at(p, open, "unterminated array")
					     : fail_at(p, p->pos, "expected ',' or ']' in array");
			break;
		}
		break;
	}
	if (r < 0) {
		json_decref(arr);
		return r;
	}
	p->pos++;
	*out = arr;
	return 0;
}

/* One line only, no trailing comma (TOML 1.0). */
static int inline_body(struct parser *p, size_t open, json_t *obj, int depth)
{
	skip_ws(p);
	if (peek(p) == '}')
		return 0;
	for (;;) {
		int r = parse_keyval(p, obj, depth);

		if (r < 0)
			return r;
		skip_ws(p);
		if (peek(p) == '}')
			return 0;
		if (at_newline(p) || peek(p) == '#')
			return fail_at(p, p->pos, "newline is not allowed in an inline table");
		if (p->pos >= p->len)
			return fail_at(p, open, "unterminated inline table");
		if (peek(p) != ',')
			return fail_at(p, p->pos, "expected ',' or '}' in inline table");
		p->pos++;
		skip_ws(p);
		if (peek(p) == '}')
			return fail_at(p, p->pos,
				       "trailing comma is not allowed in an inline table");
	}
}

static int parse_inline_table(struct parser *p, int depth, json_t **out)
{
	json_t *obj = must(json_object());
	int r;

	size_t open = p->pos++;

	p->inline_depth++;
	r = inline_body(p, open, obj, depth);
	p->inline_depth--;
	if (r < 0) {
		json_decref(obj);
		return r;
	}
	p->pos++;
	*out = obj;
	return 0;
}

/* depth is the level the value itself sits at. */
static int parse_value(struct parser *p, int depth, json_t **out, enum kind *kind)
{
	char c = peek(p);

	*kind = K_VALUE;
	switch (c) {
	case '"':
	case '\'':
		return parse_string(p, out);
	case 't':
	case 'f':
		return parse_bool(p, out);
	case '[':
		*kind = K_ARRAY;
		return parse_array(p, depth, out);
	case '{':
		*kind = K_TABLE_INLINE;
		return parse_inline_table(p, depth, out);
	default:
		if (is_digit(c) || c == '+' || c == '-' || c == 'i' || c == 'n')
			return parse_number(p, out);
		if (p->pos >= p->len || at_newline(p) || c == '#')
			return fail_at(p, p->pos, "expected a value");
		return fail_at(p, p->pos, "invalid value");
	}
}

/* ---- tables and key/value pairs ---- */

/* Why the existing key e cannot be entered as a table at off. */
static int cannot_enter(struct parser *p, size_t off, const struct entry *e)
{
	const char *path = path_str(p);

	switch (e->kind) {
	case K_ARRAY:
		return fail_at(p, off,
			       "cannot extend static array '%s' (defined at line %d, column %d)",
			       path, e->line, e->col);
	case K_TABLE_INLINE:
		return fail_at(p, off,
			       "cannot extend inline table '%s' (defined at line %d, column %d)",
			       path, e->line, e->col);
	case K_TABLE_HEADER:
	case K_TABLE_IMPLICIT:
		return fail_at(p, off,
			       "cannot add to table '%s' with dotted keys: it is defined by a "
			       "[table] header at line %d, column %d",
			       path, e->line, e->col);
	case K_AOT:
		return fail_at(p, off,
			       "cannot add to array of tables '%s' with dotted keys (defined at "
			       "line %d, column %d)",
			       path, e->line, e->col);
	case K_VALUE:
	case K_TABLE_DOTTED:
	default:
		return fail_at(p, off,
			       "key '%s' is a value, not a table (defined at line %d, column %d)",
			       path, e->line, e->col);
	}
}

/* Enters (creating if needed) the table for one non-final part of a dotted
 * key in *t. Only tables that dotted keys created may be entered. */
static int dotted_step(struct parser *p, json_t **t, int *depth, const struct seg *sg)
{
	json_t *c = json_object_getn(*t, sg->s, sg->len);
	const struct entry *e;

	path_push_key(p, sg);
	if (deeper(p, sg->off, depth, 1) < 0)
		return -EINVAL;
	if (!c) {
		c = must(json_object());
		obj_set(*t, sg, c);
		add_key(p, *t, sg, K_TABLE_DOTTED);
	} else if ((e = find_key(p, *t, sg))->kind != K_TABLE_DOTTED) {
		return cannot_enter(p, sg->off, e);
	}
	*t = c;
	return 0;
}

static int assign(struct parser *p, json_t *t, int depth, const struct key *k)
{
	const struct seg *last = &k->seg[k->n - 1];
	const struct entry *e;
	enum kind kind;
	json_t *v;
	int line, col, r;

	for (int i = 0; i + 1 < k->n; i++) {
		r = dotted_step(p, &t, &depth, &k->seg[i]);
		if (r < 0)
			return r;
	}
	path_push_key(p, last);
	if (deeper(p, last->off, &depth, 1) < 0)
		return -EINVAL;
	e = find_key(p, t, last);
	if (e)
		return fail_at(p, last->off,
			       "duplicate key '%s' (first defined at line %d, column %d)",
			       path_str(p), e->line, e->col);
	locate(p, last->off, &line, &col);
	skip_ws(p);
	r = parse_value(p, depth, &v, &kind);
	if (r < 0)
		return r;
	obj_set(t, last, v);
	index_add(&p->doc->idx, t, last->s, last->len, kind, line, col);
	return 0;
}

/* key = value, into table t at depth. Leaves p->path as it found it. */
static int parse_keyval(struct parser *p, json_t *t, int depth)
{
	struct key k = {0};
	size_t mark = p->path.len;
	int r = parse_key(p, &k);

	if (r == 0 && peek(p) != '=')
		r = fail_at(p, p->pos, "expected '=' after key");
	if (r == 0) {
		p->pos++;
		r = assign(p, t, depth, &k);
	}
	key_free(&k);
	p->path.len = mark;
	return r;
}

/* Enters one non-final name of a [header]: any table, or the last element
 * of an array of tables; missing tables are created implicitly. */
static int header_step(struct parser *p, json_t **t, int *depth, const struct seg *sg)
{
	json_t *c = json_object_getn(*t, sg->s, sg->len);
	const struct entry *e;

	path_push_key(p, sg);
	if (deeper(p, sg->off, depth, 1) < 0)
		return -EINVAL;
	if (!c) {
		c = must(json_object());
		obj_set(*t, sg, c);
		add_key(p, *t, sg, K_TABLE_IMPLICIT);
		*t = c;
		return 0;
	}
	e = find_key(p, *t, sg);
	switch (e->kind) {
	case K_TABLE_IMPLICIT:
	case K_TABLE_HEADER:
	case K_TABLE_DOTTED:
		*t = c;
		return 0;
	case K_AOT:
		if (deeper(p, sg->off, depth, 1) < 0)
			return -EINVAL;
		path_push_index(p, json_array_size(c) - 1);
		*t = json_array_get(c, json_array_size(c) - 1);
		return 0;
	default:
		return cannot_enter(p, sg->off, e);
	}
}

/* The final name of [a.b]: new, or so far only implied by other headers. */
static int header_table(struct parser *p, json_t **t, int *depth, const struct seg *sg)
{
	json_t *c = json_object_getn(*t, sg->s, sg->len);
	struct entry *e;

	path_push_key(p, sg);
	if (deeper(p, sg->off, depth, 1) < 0)
		return -EINVAL;
	if (!c) {
		c = must(json_object());
		obj_set(*t, sg, c);
		add_key(p, *t, sg, K_TABLE_HEADER);
		*t = c;
		return 0;
	}
	e = find_key(p, *t, sg);
	if (e->kind != K_TABLE_IMPLICIT)
		return fail_at(p, sg->off, "'%s' is already defined at line %d, column %d",
			       path_str(p), e->line, e->col);
	e->kind = K_TABLE_HEADER;
	locate(p, sg->off, &e->line, &e->col);
	*t = c;
	return 0;
}

/* The final name of [[a.b]]: appends a table to the array of tables. */
static int header_aot(struct parser *p, json_t **t, int *depth, const struct seg *sg)
{
	json_t *arr = json_object_getn(*t, sg->s, sg->len), *elem;
	const struct entry *e;
	int line, col;

	path_push_key(p, sg);
	if (deeper(p, sg->off, depth, 2) < 0)
		return -EINVAL;
	if (!arr) {
		arr = must(json_array());
		obj_set(*t, sg, arr);
		add_key(p, *t, sg, K_AOT);
	} else if ((e = find_key(p, *t, sg))->kind != K_AOT) {
		return fail_at(p, sg->off,
			       "cannot define array of tables '%s': already defined at line %d, "
			       "column %d",
			       path_str(p), e->line, e->col);
	}
	elem = must(json_object());
	if (json_array_append_new(arr, elem) < 0)
		oom();
	locate(p, sg->off, &line, &col);
	index_add(&p->doc->idx, arr, NULL, json_array_size(arr) - 1, K_TABLE_HEADER, line, col);
	path_push_index(p, json_array_size(arr) - 1);
	*t = elem;
	return 0;
}

static int open_table(struct parser *p, const struct key *k, bool aot)
{
	const struct seg *last = &k->seg[k->n - 1];
	json_t *t = p->doc->root;
	int depth = 0, r;

	p->path.len = 0;
	for (int i = 0; i + 1 < k->n; i++) {
		r = header_step(p, &t, &depth, &k->seg[i]);
		if (r < 0)
			return r;
	}
	r = aot ? header_aot(p, &t, &depth, last) : header_table(p, &t, &depth, last);
	if (r < 0)
		return r;
	p->cur = t;
	p->cur_depth = depth;
	return 0;
}

/* [a.b] or [[a.b]]; the brackets of [[ and ]] must touch. */
static int parse_header(struct parser *p)
{
	bool aot = peek_at(p, 1) == '[';
	struct key k = {0};
	int r;

	p->pos += aot ? 2 : 1;
	r = parse_key(p, &k);
	if (r == 0 && (peek(p) != ']' || (aot && peek_at(p, 1) != ']')))
		r = fail_at(p, p->pos, "expected '%s' to close the header", aot ? "]]" : "]");
	if (r == 0) {
		p->pos += aot ? 2 : 1;
		r = open_table(p, &k, aot);
	}
	key_free(&k);
	return r;
}

static int expect_line_end(struct parser *p)
{
	skip_ws(p);
	if (peek(p) == '#')
		skip_comment(p);
	if (p->pos >= p->len)
		return 0;
	if (!at_newline(p))
		return fail_at(p, p->pos, "expected end of line");
	skip_newline(p);
	return 0;
}

static int parse_document(struct parser *p)
{
	for (;;) {
		int r;

		skip_ws(p);
		if (p->pos >= p->len)
			return 0;
		if (at_newline(p)) {
			skip_newline(p);
			continue;
		}
		if (peek(p) == '#')
			r = 0;
		else if (peek(p) == '[')
			r = parse_header(p);
		else
			r = parse_keyval(p, p->cur, p->cur_depth);
		if (r == 0)
			r = expect_line_end(p);
		if (r < 0)
			return r;
	}
}

/* ---- public API ---- */

int toml_parse(const char *text, size_t len, struct toml_doc **out, struct toml_error *err)
{
	struct toml_error dummy;
	struct parser p = {.s = text ? text : "", .len = len, .err = err ? err : &dummy};
	struct toml_doc *doc;
	int r;

	if (len > TOML_MAX_INPUT) {
		*p.err = (struct toml_error){0};
		snprintf(p.err->reason, sizeof(p.err->reason), "input is larger than %u bytes",
			 TOML_MAX_INPUT);
		return -E2BIG;
	}
	if (len >= 3 && !memcmp(p.s, "\xEF\xBB\xBF", 3))
		p.pos = 3; /* a BOM is not a character of line 1 */
	p.start = p.loc_off = p.pos;
	p.loc_line = p.loc_col = 1;
	doc = xcalloc(1, sizeof(*doc));
	doc->root = must(json_object());
	p.doc = doc;
	p.cur = doc->root;
	r = check_text(&p);
	if (r == 0)
		r = parse_document(&p);
	free(p.path.p);
	if (r < 0) {
		toml_doc_free(doc);
		return r;
	}
	*out = doc;
	return 0;
}

static int file_error(struct toml_error *err, int r, const char *what)
{
	if (err) {
		*err = (struct toml_error){0};
		snprintf(err->reason, sizeof(err->reason), "%s: %s", what, strerror(-r));
	}
	return r;
}

/* Reads at most TOML_MAX_INPUT + 1 bytes so an oversized file is noticed. */
static int read_bounded(int fd, char **out, size_t *len)
{
	struct buf b = {0};
	char chunk[16384];

	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int r = -errno;

			free(b.p);
			return r;
		}
		if (n == 0)
			break;
		buf_put(&b, chunk, (size_t)n);
		if (b.len > TOML_MAX_INPUT) {
			free(b.p);
			return -E2BIG;
		}
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int toml_parse_file(const char *path, struct toml_doc **out, struct toml_error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ char *text = NULL;
	struct stat st;
	size_t len = 0;
	int r;

	if (fd < 0)
		return file_error(err, -errno, errno == ENOENT ? "file not found" : "cannot open");
	if (fstat(fd, &st) < 0)
		return file_error(err, -errno, "cannot stat");
	if (S_ISDIR(st.st_mode))
		return file_error(err, -EISDIR, "cannot read");
	r = read_bounded(fd, &text, &len);
	if (r == -E2BIG) {
		if (err) {
			*err = (struct toml_error){0};
			snprintf(err->reason, sizeof(err->reason), "file is larger than %u bytes",
				 TOML_MAX_INPUT);
		}
		return r;
	}
	if (r < 0)
		return file_error(err, r, "cannot read");
	return toml_parse(text, len, out, err);
}

json_t *toml_doc_root(const struct toml_doc *d) { return d->root; }

struct toml_doc *toml_doc_free(struct toml_doc *d)
{
	if (!d)
		return NULL;
	json_decref(d->root);
	index_clear(&d->idx);
	free(d);
	return NULL;
}

char *toml_path_join(const char *base, const char *key)
{
	struct buf b = {0};

	if (base && *base) {
		buf_put(&b, base, strlen(base));
		buf_putc(&b, '.');
	}
	path_quote(&b, key, strlen(key));
	buf_str(&b);
	return b.p;
}

/* One path segment at *s: bare, "basic" (escapes) or 'literal'. */
static bool where_segment(const char **s, struct buf *b)
{
	const char *p = *s;
	char q = *p;

	if (is_bare(q)) {
		while (is_bare(*p))
			p++;
		buf_put(b, *s, (size_t)(p - *s));
		*s = p;
		return true;
	}
	if (q != '"' && q != '\'')
		return false;
	for (p++; *p != q; p++) {
		if (!*p)
			return false;
		if (*p == '\\' && q == '"') {
			size_t i = 1, len = strlen(p);

			if (decode_escape(p, len, &i, b) != ESC_OK)
				return false;
			p += i - 1;
			continue;
		}
		buf_putc(b, *p);
	}
	*s = p + 1;
	return true;
}

/* "[N]" at *s: a decimal index. */
static bool where_index(const char **s, size_t *idx)
{
	const char *p = *s + 1;
	size_t v = 0;

	if (!is_digit(*p))
		return false;
	for (; is_digit(*p); p++) {
		if (v > (SIZE_MAX - 9) / 10)
			return false;
		v = v * 10 + (size_t)(*p - '0');
	}
	if (*p != ']')
		return false;
	*s = p + 1;
	*idx = v;
	return true;
}

/* Follows path through the live tree; returns the last step's entry. b is
 * scratch space for the caller to free. */
static const struct entry *where_walk(const struct toml_doc *d, const char *s, struct buf *b)
{
	const json_t *node = d->root;

	for (;;) {
		const struct entry *e;
		size_t idx;

		b->len = 0;
		if (!where_segment(&s, b) || !json_is_object(node))
			return NULL;
		buf_str(b);
		e = index_find(&d->idx, node, b->p, b->len);
		node = json_object_getn(node, b->p, b->len);
		while (e && node && *s == '[') {
			if (!where_index(&s, &idx) || !json_is_array(node))
				return NULL;
			e = index_find(&d->idx, node, NULL, idx);
			node = json_array_get(node, idx);
		}
		if (!e || !node)
			return NULL;
		if (*s == '\0')
			return e;
		if (*s++ != '.')
			return NULL;
	}
}

bool toml_doc_where(const struct toml_doc *d, const char *path, int *line, int *col)
{
	struct buf b = {0};
	const struct entry *e;

	if (!d || !path)
		return false;
	e = where_walk(d, path, &b);
	free(b.p);
	if (!e)
		return false;
	if (line)
		*line = e->line;
	if (col)
		*col = e->col;
	return true;
}

int toml_parse_file_err(const char *path, struct toml_doc **out, char *err, size_t errlen)
{
	struct toml_error te;
	int r = toml_parse_file(path, out, &te);

	if (r == 0 || r == -ENOENT || !err || !errlen)
		return r;
	if (te.line > 0)
		snprintf(err, errlen, "%s:%d:%d: %s", path, te.line, te.col, te.reason);
	else
		snprintf(err, errlen, "%s: %s", path, te.reason);
	return r;
}
