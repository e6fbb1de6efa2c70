/* table.c - see table.h. */
#include "table.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

struct table {
	size_t ncols;
	size_t nrows; /* including the header row */
	char **cells; /* nrows * ncols, cleaned copies */
};

/* Characters of UTF-8 text: every byte that does not continue a sequence. */
static size_t width(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* A C1 control in UTF-8 (U+0080..U+009F: CSI and friends) starts at s[i]. */
static bool c1_at(const char *s, size_t i, size_t len)
{
	return (unsigned char)s[i] == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
	       (unsigned char)s[i + 1] <= 0x9F;
}

char *table_clean(const char *s, size_t max_chars)
{
	size_t len = strlen(s), chars = 0, o = 0;
	char *out = xmalloc(len + 4);

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if ((ch & 0xC0) != 0x80 && max_chars && chars++ == max_chars) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c1_at(s, i, len)) {
			i++;
			ch = '?';
		} else if (ch == '\n' || ch == '\t' || ch == '\r') {
			ch = ' ';
		} else if (ch < 0x20 || ch == 0x7f) {
			ch = '?';
		}
		out[o++] = (char)ch;
	}
	out[o] = '\0';
	return out;
}

static void add_row(struct table *t, va_list ap)
{
	t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*t->cells));
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);

		t->cells[t->nrows * t->ncols + i] = table_clean(s ? s : "-", 0);
	}
	t->nrows++;
}

struct table *table_new(size_t ncols, ...)
{
	struct table *t = xcalloc(1, sizeof(*t));
	va_list ap;

	t->ncols = ncols;
	va_start(ap, ncols);
	add_row(t, ap);
	va_end(ap);
	return t;
}

void table_row(struct table *t, ...)
{
	va_list ap;

	va_start(ap, t);
	add_row(t, ap);
	va_end(ap);
}

size_t table_rows(const struct table *t)
{
	return t->nrows - 1;
}

void table_print(const struct table *t, FILE *out)
{
	size_t *w = xcalloc(t->ncols, sizeof(*w));

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++)
			w[c] = MAX(w[c], width(t->cells[r * t->ncols + c]));
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			if (c + 1 == t->ncols) {
				fprintf(out, "%s\n", cell);
				break;
			}
			fprintf(out, "%s%*s", cell, (int)(w[c] - width(cell) + 2), "");
		}
	}
	free(w);
}

struct table *table_free(struct table *t)
{
	if (!t)
		return NULL;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
	return NULL;
}

void table_write_text(FILE *out, const char *s, size_t len)
{
	if (!isatty(fileno(out))) {
		fwrite(s, 1, len, out);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (c1_at(s, i, len)) {
			i++;
			ch = '?';
		} else if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f) {
			ch = '?';
		}
		fputc(ch, out);
	}
}
