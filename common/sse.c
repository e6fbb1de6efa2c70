/* sse.c - see sse.h.
 *
 * Why the bound is split-invariant: a line carried across feeds is checked
 * with the bytes seen so far, which is never more than the whole line an
 * unsplit feed would check, and the whole line is checked again when it
 * ends. So a split stream fails iff the unsplit one does, on the same line,
 * after the same events. Comment lines are neither stored nor counted, so a
 * server's keep-alive comments never add up to an error.
 */
#include "sse.h"

#include "util.h"

#include <errno.h>

#define BOM_DONE 0xffu

static const char bom_bytes[3] = { '\xEF', '\xBB', '\xBF' };

void sse_init(struct sse *p, size_t max_event_bytes, sse_event_cb cb, void *arg)
{
	*p = (struct sse){ .cb = cb, .arg = arg, .max = max_event_bytes };
}

static void buf_free(struct sse_buf *b)
{
	free(b->p);
	*b = (struct sse_buf){ 0 };
}

void sse_free(struct sse *p)
{
	if (!p)
		return;
	buf_free(&p->line);
	buf_free(&p->data);
	buf_free(&p->event);
	buf_free(&p->id);
}

/* Room for `more` bytes plus a NUL, growing geometrically. Callers have
 * bounded len + more by max_event_bytes, so this cannot overflow. */
static void buf_reserve(struct sse_buf *b, size_t more)
{
	size_t need = b->len + more + 1, cap;

	if (need <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

static void buf_append(struct sse_buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

/* Replaces the contents, keeping them NUL-terminated. */
static void buf_set(struct sse_buf *b, const char *s, size_t n)
{
	b->len = 0;
	buf_append(b, s, n);
	b->p[b->len] = '\0';
}

static int fail(struct sse *p)
{
	p->failed = true;
	return -E2BIG;
}

static bool over(const struct sse *p, size_t n) { return n > p->max - p->used; }

static void dispatch(struct sse *p)
{
	struct sse_buf *d = &p->data;

	p->used = 0;
	if (d->len > 0) {
		/* The last data line's '\n' becomes the terminator. */
		d->p[d->len - 1] = '\0';
		p->cb(p->event.len ? p->event.p : "message", d->p, d->len - 1,
		      p->id.len ? p->id.p : NULL, p->arg);
	}
	d->len = 0;
	p->event.len = 0;
}

static bool field_is(const char *name, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(name, want, n) == 0;
}

static void process_field(struct sse *p, const char *name, size_t nlen, const char *val,
			  size_t vlen)
{
	if (field_is(name, nlen, "data")) {
		buf_reserve(&p->data, vlen + 1);
		memcpy(p->data.p + p->data.len, val, vlen);
		p->data.len += vlen;
		p->data.p[p->data.len++] = '\n';
	} else if (field_is(name, nlen, "event")) {
		buf_set(&p->event, val, vlen);
	} else if (field_is(name, nlen, "id")) {
		if (!memchr(val, '\0', vlen))
			buf_set(&p->id, val, vlen);
	}
	/* "retry" and unknown fields: ignored. */
}

/* One complete line, without its terminator. */
static int process_line(struct sse *p, const char *s, size_t n)
{
	const char *colon, *val;
	size_t nlen, vlen;

	if (n == 0) {
		dispatch(p);
		return 0;
	}
	if (s[0] == ':')
		return 0;
	if (over(p, n))
		return fail(p);
	p->used += n;
	colon = memchr(s, ':', n);
	nlen = colon ? (size_t)(colon - s) : n;
	val = colon ? colon + 1 : s + n;
	vlen = n - (size_t)(val - s);
	if (vlen > 0 && val[0] == ' ') {
		val++;
		vlen--;
	}
	process_field(p, s, nlen, val, vlen);
	return 0;
}

/* The start of a line whose end has not arrived yet. */
static int carry(struct sse *p, const char *s, size_t n)
{
	if (n == 0)
		return 0;
	if (p->line.len == 0 && !p->comment && s[0] == ':')
		p->comment = true;
	if (p->comment)
		return 0;
	if (over(p, p->line.len + n))
		return fail(p);
	buf_append(&p->line, s, n);
	return 0;
}

/* The rest of a line (maybe all of it) has arrived: s, n is its tail. */
static int end_line(struct sse *p, const char *s, size_t n)
{
	int r;

	if (p->comment) {
		p->comment = false;
		return 0;
	}
	if (p->line.len == 0)
		return process_line(p, s, n);
	if (over(p, p->line.len + n))
		return fail(p);
	buf_append(&p->line, s, n);
	r = process_line(p, p->line.p, p->line.len);
	p->line.len = 0;
	return r;
}

static int feed_lines(struct sse *p, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len) {
		size_t start;
		int r;

		if (p->skip_lf) {
			p->skip_lf = false;
			if (buf[i] == '\n') {
				i++;
				continue;
			}
		}
		start = i;
		while (i < len && buf[i] != '\n' && buf[i] != '\r')
			i++;
		if (i == len)
			return carry(p, buf + start, len - start);
		r = end_line(p, buf + start, i - start);
		if (r < 0)
			return r;
		p->skip_lf = buf[i] == '\r';
		i++;
	}
	return 0;
}

/* Consumes BOM bytes at stream start. Returns the bytes of buf used; when a
 * partial BOM turns out not to be one, its bytes are fed as content. */
static int skip_bom(struct sse *p, const char *buf, size_t len, size_t *used)
{
	size_t i = 0;
	uint8_t matched;

	while (i < len && p->bom < sizeof(bom_bytes) && buf[i] == bom_bytes[p->bom]) {
		p->bom++;
		i++;
	}
	*used = i;
	if (p->bom == sizeof(bom_bytes)) {
		p->bom = BOM_DONE;
		return 0;
	}
	if (i == len)
		return 0; /* undecided: wait for more */
	matched = p->bom;
	p->bom = BOM_DONE;
	return feed_lines(p, bom_bytes, matched);
}

int sse_feed(struct sse *p, const char *buf, size_t len)
{
	if (p->failed)
		return -E2BIG;
	if (p->bom != BOM_DONE) {
		size_t used;
		int r = skip_bom(p, buf, len, &used);

		if (r < 0)
			return r;
		buf += used;
		len -= used;
	}
	return feed_lines(p, buf, len);
}
