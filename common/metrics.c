/* metrics.c - see metrics.h. Values live in flat arrays indexed by series;
 * a histogram series holds n_buckets + 1 non-cumulative counts (the last is
 * the +Inf overflow), a sum and a count, made cumulative when rendered. */
#include "metrics.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct metric {
	const struct metrics_desc *d; /* points into the copy below */
	struct metrics_desc desc;
	unsigned n_labels;
	unsigned n_values[METRICS_MAX_LABELS];
	unsigned n_series;
	double *values;     /* counters, gauges: one per series */
	uint64_t *buckets;  /* histograms: (n_buckets + 1) per series */
	double *sums;       /* histograms */
	uint64_t *counts;   /* histograms */
};

struct metrics {
	struct metric *m[METRICS_MAX_METRICS];
	size_t n;
};

struct metrics *metrics_new(void)
{
	return xcalloc(1, sizeof(struct metrics));
}

static void metric_free(struct metric *mt)
{
	free(mt->values);
	free(mt->buckets);
	free(mt->sums);
	free(mt->counts);
	free(mt);
}

struct metrics *metrics_free(struct metrics *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		metric_free(m->m[i]);
	free(m);
	return NULL;
}

static bool name_char(char c, bool first, bool colon)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (colon && c == ':') || (!first && c >= '0' && c <= '9');
}

static bool name_valid(const char *s, bool colon)
{
	if (!s || !*s)
		return false;
	for (size_t i = 0; s[i]; i++)
		if (!name_char(s[i], i == 0, colon))
			return false;
	return true;
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* Counts the values of one label and checks them; returns the count or -1. */
static int label_check(const struct metrics_desc *d, const struct metrics_label *lb, char *err,
		       size_t errlen)
{
	int n = 0;

	if (!name_valid(lb->name, false) || !strncmp(lb->name, "__", 2))
		return fail(err, errlen, "%s: bad label name", d->name), -1;
	if (d->type == METRICS_HISTOGRAM && !strcmp(lb->name, "le"))
		return fail(err, errlen, "%s: 'le' is reserved on histograms", d->name), -1;
	for (; lb->values && lb->values[n]; n++)
		for (int j = 0; j < n; j++)
			if (!strcmp(lb->values[j], lb->values[n]))
				return fail(err, errlen, "%s: label %s: duplicate value '%s'",
					    d->name, lb->name, lb->values[n]), -1;
	if (n == 0)
		return fail(err, errlen, "%s: label %s declares no values", d->name, lb->name), -1;
	return n;
}

static int buckets_check(const struct metrics_desc *d, char *err, size_t errlen)
{
	if (d->type != METRICS_HISTOGRAM)
		return d->buckets || d->n_buckets
			? fail(err, errlen, "%s: buckets on a non-histogram", d->name) : 0;
	if (d->read)
		return fail(err, errlen, "%s: a histogram cannot be read at render time", d->name);
	if (!d->buckets || d->n_buckets == 0 || d->n_buckets > METRICS_MAX_BUCKETS)
		return fail(err, errlen, "%s: 1-%d buckets required", d->name, METRICS_MAX_BUCKETS);
	for (size_t i = 0; i < d->n_buckets; i++)
		if (!isfinite(d->buckets[i]) || (i && d->buckets[i] <= d->buckets[i - 1]))
			return fail(err, errlen, "%s: buckets must be finite and ascending",
				    d->name);
	return 0;
}

static int desc_check(const struct metrics *m, const struct metrics_desc *d, struct metric *mt,
		      char *err, size_t errlen)
{
	if (!name_valid(d->name, true))
		return fail(err, errlen, "bad metric name '%s'", d->name ? d->name : "(null)");
	if (d->type > METRICS_HISTOGRAM || !d->help)
		return fail(err, errlen, "%s: bad type or no help", d->name);
	for (size_t i = 0; i < m->n; i++)
		if (!strcmp(m->m[i]->d->name, d->name))
			return fail(err, errlen, "%s: declared twice", d->name);
	if (m->n >= METRICS_MAX_METRICS)
		return fail(err, errlen, "%s: registry full", d->name);
	mt->n_series = 1;
	for (unsigned i = 0; i < METRICS_MAX_LABELS && d->labels[i].name; i++) {
		int n = label_check(d, &d->labels[i], err, errlen);

		if (n < 0)
			return -EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (!strcmp(d->labels[j].name, d->labels[i].name))
				return fail(err, errlen, "%s: label %s twice", d->name,
					    d->labels[i].name);
		mt->n_values[i] = (unsigned)n;
		mt->n_labels = i + 1;
		if (mt->n_series * (unsigned)n > METRICS_MAX_SERIES)
			return fail(err, errlen, "%s: more than %d series", d->name,
				    METRICS_MAX_SERIES);
		mt->n_series *= (unsigned)n;
	}
	return buckets_check(d, err, errlen);
}

struct metric *metrics_add(struct metrics *m, const struct metrics_desc *d, char *err,
			   size_t errlen)
{
	struct metric *mt = xcalloc(1, sizeof(*mt));

	if (desc_check(m, d, mt, err, errlen) < 0) {
		metric_free(mt);
		return NULL;
	}
	mt->desc = *d;
	mt->d = &mt->desc;
	if (d->type == METRICS_HISTOGRAM) {
		mt->buckets = xcalloc((size_t)mt->n_series * (d->n_buckets + 1), sizeof(uint64_t));
		mt->sums = xcalloc(mt->n_series, sizeof(double));
		mt->counts = xcalloc(mt->n_series, sizeof(uint64_t));
	} else {
		mt->values = xcalloc(mt->n_series, sizeof(double));
	}
	m->m[m->n++] = mt;
	return mt;
}

int metrics_label_index(const struct metric *mt, unsigned label, const char *value)
{
	const char *const *v;
	int other = -1;

	if (!mt || label >= mt->n_labels)
		return -1;
	v = mt->d->labels[label].values;
	for (int i = 0; v[i]; i++) {
		if (value && !strcmp(v[i], value))
			return i;
		if (!strcmp(v[i], METRICS_OTHER))
			other = i;
	}
	return other;
}

int metrics_series(const struct metric *mt, const unsigned *idx)
{
	unsigned s = 0;

	if (!mt)
		return -1;
	for (unsigned i = 0; i < mt->n_labels; i++) {
		if (!idx || idx[i] >= mt->n_values[i])
			return -1;
		s = s * mt->n_values[i] + idx[i];
	}
	return (int)s;
}

static bool series_ok(const struct metric *mt, int series)
{
	return mt && series >= 0 && (unsigned)series < mt->n_series;
}

void metrics_add_value(struct metric *mt, int series, double v)
{
	if (!series_ok(mt, series) || !mt->values || isnan(v))
		return;
	if (mt->d->type == METRICS_COUNTER && v < 0)
		return;
	mt->values[series] += v;
}

void metrics_set(struct metric *mt, int series, double v)
{
	if (series_ok(mt, series) && mt->values && mt->d->type == METRICS_GAUGE)
		mt->values[series] = v;
}

void metrics_observe(struct metric *mt, int series, double v)
{
	size_t b, nb;

	if (!series_ok(mt, series) || !mt->buckets || isnan(v))
		return;
	nb = mt->d->n_buckets;
	for (b = 0; b < nb && v > mt->d->buckets[b]; b++)
		;
	mt->buckets[(size_t)series * (nb + 1) + b]++;
	mt->sums[series] += v;
	mt->counts[series]++;
}

double metrics_value(const struct metric *mt, int series)
{
	if (!series_ok(mt, series))
		return NAN;
	if (mt->counts)
		return (double)mt->counts[series];
	return mt->values[series];
}

/* ---- rendering ------------------------------------------------------------ */

struct out {
	char *buf;
	size_t len, cap;
};

static void out_grow(struct out *o, size_t more)
{
	if (o->len + more + 1 <= o->cap)
		return;
	while (o->len + more + 1 > o->cap)
		o->cap = o->cap ? o->cap * 2 : 4096;
	o->buf = xrealloc(o->buf, o->cap);
}

static void out_mem(struct out *o, const char *s, size_t n)
{
	out_grow(o, n);
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void out_str(struct out *o, const char *s)
{
	out_mem(o, s, strlen(s));
}

/* HELP text escapes \ and newline; label values also escape ". */
static void out_escaped(struct out *o, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			out_str(o, "\\\\");
		else if (*s == '\n')
			out_str(o, "\\n");
		else if (quote && *s == '"')
			out_str(o, "\\\"");
		else
			out_mem(o, s, 1);
	}
}

/* Prometheus floats: integers exactly, else a round-trip form. */
static void fmt_double(char *tmp, size_t n, double v)
{
	if (isnan(v))
		snprintf(tmp, n, "NaN");
	else if (isinf(v))
		snprintf(tmp, n, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < 9007199254740992.0)
		snprintf(tmp, n, "%.0f", v);
	else
		for (int prec = 15; prec <= 17; prec++) {
			snprintf(tmp, n, "%.*g", prec, v);
			if (strtod(tmp, NULL) == v)
				break;
		}
}

static void out_double(struct out *o, double v)
{
	char tmp[40];

	fmt_double(tmp, sizeof(tmp), v);
	out_str(o, tmp);
}

/* Decomposes a series number into one value index per label. */
static void series_idx(const struct metric *mt, unsigned s, unsigned *idx)
{
	for (unsigned i = mt->n_labels; i-- > 0;) {
		idx[i] = s % mt->n_values[i];
		s /= mt->n_values[i];
	}
}

/* {a="x",b="y"[,le="..."]} or nothing. */
static void out_labels(struct out *o, const struct metric *mt, const unsigned *idx,
		       const char *le)
{
	if (mt->n_labels == 0 && !le)
		return;
	out_str(o, "{");
	for (unsigned i = 0; i < mt->n_labels; i++) {
		out_str(o, i ? "," : "");
		out_str(o, mt->d->labels[i].name);
		out_str(o, "=\"");
		out_escaped(o, mt->d->labels[i].values[idx[i]], true);
		out_str(o, "\"");
	}
	if (le) {
		out_str(o, mt->n_labels ? ",le=\"" : "le=\"");
		out_str(o, le);
		out_str(o, "\"");
	}
	out_str(o, "}");
}

static void out_sample(struct out *o, const struct metric *mt, const char *suffix,
		       const unsigned *idx, const char *le, double v)
{
	out_str(o, mt->d->name);
	out_str(o, suffix);
	out_labels(o, mt, idx, le);
	out_str(o, " ");
	out_double(o, v);
	out_str(o, "\n");
}

static void render_histogram(struct out *o, const struct metric *mt, unsigned s,
			     const unsigned *idx)
{
	size_t nb = mt->d->n_buckets;
	const uint64_t *b = mt->buckets + (size_t)s * (nb + 1);
	uint64_t cum = 0;
	char le[40];

	for (size_t i = 0; i < nb; i++) {
		cum += b[i];
		fmt_double(le, sizeof(le), mt->d->buckets[i]);
		out_sample(o, mt, "_bucket", idx, le, (double)cum);
	}
	out_sample(o, mt, "_bucket", idx, "+Inf", (double)mt->counts[s]);
	out_sample(o, mt, "_sum", idx, NULL, mt->sums[s]);
	out_sample(o, mt, "_count", idx, NULL, (double)mt->counts[s]);
}

static const char *type_name(enum metrics_type t)
{
	return t == METRICS_COUNTER ? "counter" : t == METRICS_GAUGE ? "gauge" : "histogram";
}

static void render_metric(struct out *o, const struct metric *mt)
{
	unsigned idx[METRICS_MAX_LABELS] = { 0 };

	out_str(o, "# HELP ");
	out_str(o, mt->d->name);
	out_str(o, " ");
	out_escaped(o, mt->d->help, false);
	out_str(o, "\n# TYPE ");
	out_str(o, mt->d->name);
	out_str(o, " ");
	out_str(o, type_name(mt->d->type));
	out_str(o, "\n");
	for (unsigned s = 0; s < mt->n_series; s++) {
		series_idx(mt, s, idx);
		if (mt->d->type == METRICS_HISTOGRAM) {
			render_histogram(o, mt, s, idx);
			continue;
		}
		double v = mt->d->read ? mt->d->read(idx, mt->d->read_arg) : mt->values[s];

		if (!isnan(v))
			out_sample(o, mt, "", idx, NULL, v);
	}
}

int metrics_render(const struct metrics *m, char **out, size_t *len)
{
	struct out o = { 0 };

	out_grow(&o, 0);
	for (size_t i = 0; i < m->n; i++)
		render_metric(&o, m->m[i]);
	*out = o.buf;
	*len = o.len;
	return 0;
}
