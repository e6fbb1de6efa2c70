/* metrics.h - a small metrics registry and its Prometheus text renderer.
 *
 * Counters, gauges and histograms with fixed buckets. Cardinality is bounded
 * by construction: a metric declares its label names *and every value each
 * label may take* up front (at most METRICS_MAX_LABELS labels, at most
 * METRICS_MAX_SERIES combinations). Series are addressed by value indexes;
 * metrics_label_index maps a runtime string to its index, falling back to a
 * declared "other" value, so a peer-chosen string (a method name) can never
 * add a series. Never declare labels whose values are thread ids, tokens,
 * paths or anything else unbounded.
 *
 * Threading: a registry belongs to one thread (the daemon's loop thread),
 * which updates and renders it: no locks, no atomics.
 *
 * Ownership: descriptors are not copied: their strings (names, help, label
 * names and values) and bucket arrays must outlive the registry (string
 * literals and static arrays). The registry owns its metrics; handles stay
 * valid until metrics_free. metrics_render returns a malloc'd buffer the
 * caller frees. Library code: no logging.
 */
#ifndef TANDEM_METRICS_H
#define TANDEM_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define METRICS_MAX_LABELS 2
#define METRICS_MAX_SERIES 512    /* label value combinations per metric */
#define METRICS_MAX_BUCKETS 32    /* histogram bounds, +Inf excluded */
#define METRICS_MAX_METRICS 256   /* per registry */
#define METRICS_OTHER "other"     /* the catch-all label value */
/* The Content-Type of metrics_render's output. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

enum metrics_type { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };

struct metrics;
struct metric;

struct metrics_label {
	const char *name;
	const char *const *values; /* NULL-terminated, at least one, no duplicates */
};

/* Reads a series' value at render time instead of storing it (process
 * figures, a count the domain already keeps). idx holds one value index per
 * declared label. A NaN result omits the series from that scrape. */
typedef double (*metrics_read_fn)(const unsigned *idx, void *arg);

struct metrics_desc {
	const char *name;  /* [a-zA-Z_:][a-zA-Z0-9_:]*; counters end in _total */
	const char *help;  /* one line of text; \ and newlines are escaped */
	enum metrics_type type;
	struct metrics_label labels[METRICS_MAX_LABELS]; /* unused: name NULL */
	const double *buckets;  /* histograms: strictly ascending, finite */
	size_t n_buckets;
	metrics_read_fn read;   /* counters and gauges only; optional */
	void *read_arg;
};

/* Returns a new, empty registry. */
struct metrics *metrics_new(void);
/* Frees the registry and its metrics. NULL ok; returns NULL. */
struct metrics *metrics_free(struct metrics *m);

/* Declares a metric. Returns its handle, or NULL with err filled: bad name,
 * duplicate name, bad label set, reserved label ("le" on a histogram, a
 * "__" prefix), too many series, bad buckets, a read function on a
 * histogram, or a full registry. */
struct metric *metrics_add(struct metrics *m, const struct metrics_desc *d, char *err,
			   size_t errlen);

/* The index of value in label `label`'s declared values; a value that is not
 * declared (or NULL) maps to METRICS_OTHER when declared, else -1. */
int metrics_label_index(const struct metric *mt, unsigned label, const char *value);
/* The series number for one value index per label (idx may be NULL for a
 * metric without labels). Out-of-range indexes give -1. */
int metrics_series(const struct metric *mt, const unsigned *idx);

/* Updates series `series` (from metrics_series; 0 without labels). A NULL
 * metric or a negative series is ignored, so a lookup that failed costs
 * nothing. Counters only grow: metrics_add ignores negative or NaN v. */
void metrics_add_value(struct metric *mt, int series, double v);
void metrics_set(struct metric *mt, int series, double v);       /* gauges */
void metrics_observe(struct metric *mt, int series, double v);   /* histograms */

/* Reads back a stored value (tests, and the daemon's own decisions). A
 * histogram reports its count. NaN for a bad series. */
double metrics_value(const struct metric *mt, int series);

/* Renders every metric in declaration order in the Prometheus text
 * exposition format 0.0.4. Returns 0 with *out (NUL-terminated, malloc'd)
 * and *len, or -ENOMEM never: allocation failure aborts. */
int metrics_render(const struct metrics *m, char **out, size_t *len);

#endif
