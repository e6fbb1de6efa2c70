/* fuzz_sse.c - libFuzzer target for the SSE parser.
 *
 * Beyond "no crash, no leak" it checks the parser's two promises: the
 * events (and whether the bound was hit) do not depend on how the stream is
 * split into feeds (whole, byte by byte, pseudo-random chunks), and without
 * the bound they match a plain reference reading of the WHATWG rules that
 * works on the whole input at once. Build with -fsanitize=fuzzer, or link
 * tests/fuzz/replay.c to replay a corpus.
 */
#include "sse.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A flat record of the events seen: type, data and id, length-prefixed. */
struct log {
	char *p;
	size_t len, cap;
};

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_sse: %s\n", what);
		abort();
	}
}

static void log_put(struct log *l, const void *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : 256;

		while (cap < l->len + n)
			cap *= 2;
		l->p = realloc(l->p, cap);
		expect(l->p != NULL, "out of memory");
		l->cap = cap;
	}
	if (n)
		memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void log_field(struct log *l, const char *s, size_t n)
{
	log_put(l, &n, sizeof(n));
	log_put(l, s, n);
}

static void log_event(struct log *l, const char *event, const char *data, size_t len,
		      const char *id)
{
	char has_id = id != NULL;

	log_field(l, event, strlen(event));
	log_field(l, data, len);
	log_put(l, &has_id, 1);
	if (id)
		log_field(l, id, strlen(id));
}

static void event_cb(const char *event, const char *data, size_t len, const char *id, void *arg)
{
	expect(data[len] == '\0', "data not terminated");
	log_event(arg, event, data, len, id);
}

/* Feeds the input in chunks: step 0 = whole, else sizes from a small LCG
 * seeded by step (1 = byte by byte). Returns the first error. */
static int run(const char *s, size_t n, size_t max, unsigned step, struct log *out)
{
	struct sse p;
	uint32_t rng = step;
	size_t at = 0;
	int rc = 0;

	sse_init(&p, max, event_cb, out);
	do {
		size_t chunk = n - at;
		int r;

		if (step == 1) {
			chunk = chunk < 1 ? chunk : 1;
		} else if (step > 1) {
			size_t want;

			rng = rng * 1103515245u + 12345u;
			want = 1 + (rng >> 16) % 17;
			chunk = want < chunk ? want : chunk;
		}
		r = sse_feed(&p, s + at, chunk);
		if (rc == 0)
			rc = r;
		else
			expect(r == rc, "error not sticky");
		at += chunk;
	} while (at < n);
	sse_free(&p);
	return rc;
}

/* ---- reference: whole input, line by line ---- */

struct ref {
	struct log *out;
	char *data, *event, *id;
	size_t dlen, elen, ilen;
	bool has_id;
};

static char *set(char *old, const char *s, size_t n, size_t *len)
{
	char *p = realloc(old, n + 1);

	expect(p != NULL, "out of memory");
	if (n)
		memcpy(p, s, n);
	p[n] = '\0';
	*len = n;
	return p;
}

static void ref_line(struct ref *r, const char *s, size_t n)
{
	size_t c = 0;
	const char *v;
	size_t vn;

	if (n == 0) {
		if (r->dlen > 0)
			log_event(r->out, r->elen ? r->event : "message", r->data, r->dlen - 1,
				  r->has_id && r->ilen ? r->id : NULL);
		r->dlen = 0;
		r->elen = 0;
		return;
	}
	if (s[0] == ':')
		return;
	while (c < n && s[c] != ':')
		c++;
	v = c < n ? s + c + 1 : s + n;
	vn = (size_t)(s + n - v);
	if (vn && v[0] == ' ') {
		v++;
		vn--;
	}
	if (c == 4 && memcmp(s, "data", 4) == 0) {
		char *d = realloc(r->data, r->dlen + vn + 1);

		expect(d != NULL, "out of memory");
		memcpy(d + r->dlen, v, vn);
		r->data = d;
		r->dlen += vn;
		r->data[r->dlen++] = '\n';
	} else if (c == 5 && memcmp(s, "event", 5) == 0) {
		r->event = set(r->event, v, vn, &r->elen);
	} else if (c == 2 && memcmp(s, "id", 2) == 0 && !memchr(v, '\0', vn)) {
		r->id = set(r->id, v, vn, &r->ilen);
		r->has_id = true;
	}
}

static void reference(const char *s, size_t n, struct log *out)
{
	struct ref r = { .out = out };
	size_t i = 0;

	if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0)
		i = 3;
	while (i < n) {
		size_t e = i;

		while (e < n && s[e] != '\r' && s[e] != '\n')
			e++;
		if (e == n)
			break; /* unterminated: dropped */
		ref_line(&r, s + i, e - i);
		i = e + (s[e] == '\r' && e + 1 < n && s[e + 1] == '\n' ? 2 : 1);
	}
	free(r.data);
	free(r.event);
	free(r.id);
}

static void same(const struct log *a, int ra, const struct log *b, int rb, const char *what)
{
	expect(ra == rb, what);
	expect(a->len == b->len && (a->len == 0 || memcmp(a->p, b->p, a->len) == 0), what);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 8, 64, 1024, SIZE_MAX };
	const char *s = size ? (const char *)data : ""; /* no offsets on NULL */
	struct log ref = { 0 };

	reference(s, size, &ref);
	for (size_t m = 0; m < sizeof(maxes) / sizeof(maxes[0]); m++) {
		struct log whole = { 0 }, part = { 0 };
		int rw = run(s, size, maxes[m], 0, &whole);

		expect(rw == 0 || rw == -E2BIG, "unexpected error");
		for (unsigned step = 1; step <= 3; step++) {
			int rp = run(s, size, maxes[m], step, &part);

			same(&whole, rw, &part, rp, "split feeds differ from one feed");
			part.len = 0;
		}
		if (maxes[m] == SIZE_MAX)
			same(&whole, rw, &ref, 0, "parser differs from the reference");
		free(whole.p);
		free(part.p);
	}
	free(ref.p);
	return 0;
}
