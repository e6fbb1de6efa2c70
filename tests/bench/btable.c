/* btable.c - see btable.h. */
#include "btable.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include "util.h"

#define MAX_ROWS 128u
#define FMT_BUFS 16u
#define FMT_LEN 64u

struct row {
	char *cols[5];
	enum btable_verdict v;
};

static struct row rows[MAX_ROWS];
static unsigned n_rows;

static const char *const headers[5] = { "measurement", "tandem", "baseline", "compare",
					"target" };
static const char *const verdicts[] = { "PASS", "MISS", "info", "SKIP" };

void btable_add(const char *what, const char *tandem, const char *baseline, const char *compare,
		const char *target, enum btable_verdict v)
{
	const char *in[5] = { what, tandem, baseline, compare, target };

	if (n_rows == MAX_ROWS) { /* said, never a row silently missing */
		fprintf(stderr, "tandem-bench: more than %u rows: '%s' not shown\n", MAX_ROWS, what);
		return;
	}
	for (int i = 0; i < 5; i++)
		rows[n_rows].cols[i] = xstrdup(in[i] ? in[i] : "-");
	rows[n_rows++].v = v;
}

unsigned btable_misses(void)
{
	unsigned n = 0;

	for (unsigned i = 0; i < n_rows; i++)
		n += rows[i].v == BTABLE_MISS;
	return n;
}

static void rule(FILE *out, const size_t *w)
{
	for (int i = 0; i < 6; i++) {
		for (size_t k = 0; k < w[i] + 2; k++)
			fputc('-', out);
		fputc(i == 5 ? '\n' : '+', out);
	}
}

void btable_print(FILE *out)
{
	size_t w[6] = { 0, 0, 0, 0, 0, 7 };

	for (int i = 0; i < 5; i++)
		w[i] = strlen(headers[i]);
	for (unsigned r = 0; r < n_rows; r++)
		for (int i = 0; i < 5; i++)
			w[i] = MAX(w[i], strlen(rows[r].cols[i]));
	for (int i = 0; i < 5; i++)
		fprintf(out, " %-*s |", (int)w[i], headers[i]);
	fprintf(out, " %s\n", "verdict");
	rule(out, w);
	for (unsigned r = 0; r < n_rows; r++) {
		/* Figures right-aligned so columns of numbers line up. */
		fprintf(out, " %-*s |", (int)w[0], rows[r].cols[0]);
		for (int i = 1; i < 5; i++)
			fprintf(out, " %*s |", (int)w[i], rows[r].cols[i]);
		fprintf(out, " %s\n", verdicts[rows[r].v]);
	}
}

void btable_free(void)
{
	for (unsigned r = 0; r < n_rows; r++)
		for (int i = 0; i < 5; i++)
			free(rows[r].cols[i]);
	n_rows = 0;
}

static char *next_buf(void)
{
	static char bufs[FMT_BUFS][FMT_LEN];
	static unsigned next;

	return bufs[next++ % FMT_BUFS];
}

const char *btable_fmt(const char *fmt, ...)
{
	char *b = next_buf();
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, FMT_LEN, fmt, ap);
	va_end(ap);
	return b;
}

const char *btable_us(uint64_t ns)
{
	if (ns >= 1000000u)
		return btable_ms(ns);
	return btable_fmt("%.0f us", (double)ns / 1e3);
}

const char *btable_ms(uint64_t ns)
{
	return btable_fmt("%.2f ms", (double)ns / 1e6);
}
