/* fuzz_linebuf.c - libFuzzer target for the client line framing
 * (common/linebuf.c: client connections of the orchestrator, child output
 * of the executor).
 *
 * The first input byte picks max_line, the rest is the stream. It is fed
 * through a real pipe, as the daemons read it, whole and in pseudo-random
 * chunks, and the result must match a plain reference on the whole input:
 * the same lines in order, then -E2BIG at the first line (complete or not)
 * longer than max_line, else the same unterminated tail. The buffer never
 * grows past its documented bound (max_line + 1 + LINEBUF_CHUNK).
 */
#include "linebuf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct log {
	char *p;
	size_t len, cap;
};

static void expect(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_linebuf: %s\n", what);
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

static void log_line(struct log *l, const char *s, size_t n)
{
	log_put(l, &n, sizeof(n));
	log_put(l, s, n);
}

/* Returns 1 when the stream was cut by -E2BIG, else 0 (tail logged). */
static int reference(const char *s, size_t n, size_t max, struct log *out)
{
	size_t i = 0;

	for (;;) {
		const char *nl = memchr(s + i, '\n', n - i);
		size_t len = nl ? (size_t)(nl - (s + i)) : n - i;

		if (len > max)
			return 1;
		if (!nl) {
			log_line(out, s + i, len); /* the tail, maybe empty */
			return 0;
		}
		log_line(out, s + i, len);
		i += len + 1;
	}
}

static int fds[2] = { -1, -1 };

/* Drains everything the pipe holds into lb, handing out lines. */
static int drain(struct linebuf *lb, struct log *out)
{
	for (;;) {
		ssize_t r = linebuf_read(lb, fds[0]);
		const char *line;
		size_t len;
		int k;

		if (r == -EAGAIN)
			return 0;
		expect(r > 0, "linebuf_read failed");
		expect(lb->cap <= lb->limit, "buffer over its bound");
		while ((k = linebuf_next(lb, &line, &len)) == 1)
			log_line(out, line, len);
		if (k == -E2BIG)
			return 1;
		expect(k == 0, "linebuf_next failed");
	}
}

static int run(const char *s, size_t n, size_t max, unsigned step, struct log *out)
{
	struct linebuf lb;
	uint32_t rng = step;
	size_t at = 0;
	int cut = 0;

	linebuf_init(&lb, max);
	while (at < n && !cut) {
		size_t chunk = n - at;

		if (step == 1) {
			chunk = 1;
		} else if (step > 1) {
			rng = rng * 1103515245u + 12345u;
			chunk = 1 + (rng >> 16) % 29;
			chunk = chunk < n - at ? chunk : n - at;
		}
		/* Pipe writes this small never block on an empty pipe. */
		chunk = chunk < 4096 ? chunk : 4096;
		expect(write(fds[1], s + at, chunk) == (ssize_t)chunk, "pipe write");
		at += chunk;
		cut = drain(&lb, out);
	}
	if (cut) {
		char junk[4096];

		while (read(fds[0], junk, sizeof(junk)) > 0)
			; /* leave the pipe empty for the next run */
	} else {
		log_line(out, lb.buf ? lb.buf + lb.start : "", linebuf_pending(&lb));
	}
	linebuf_free(&lb);
	return cut;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { 0, 1, 2, 7, 64, 1000, 16384, 100000 };
	const char *s;
	size_t n, max;
	struct log ref = { 0 };
	int rcut;

	if (fds[0] < 0)
		expect(pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0, "pipe2");
	if (size == 0)
		return 0;
	max = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
	s = (const char *)data + 1;
	n = size - 1;
	rcut = reference(s, n, max, &ref);
	for (unsigned step = 0; step <= 3; step++) {
		struct log got = { 0 };
		int cut;

		if (step == 1 && n > 4096)
			continue; /* byte by byte: a syscall per byte, only for short inputs */
		cut = run(s, n, max, step, &got);

		expect(cut == rcut, "-E2BIG differs from the reference");
		expect(got.len == ref.len && (!got.len || memcmp(got.p, ref.p, got.len) == 0),
		       "lines differ from the reference");
		free(got.p);
	}
	free(ref.p);
	return 0;
}
