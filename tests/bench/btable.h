/* btable.h - the one table the benchmark prints: each row a figure for
 * tandem, the baseline measured in the same run, how they compare, the
 * target from the benchmark issue and the verdict. Rows are collected while
 * the phases run and printed once at the end (progress goes to stderr). */
#ifndef TANDEM_BTABLE_H
#define TANDEM_BTABLE_H

#include <stdint.h>
#include <stdio.h>

enum btable_verdict { BTABLE_PASS, BTABLE_MISS, BTABLE_INFO, BTABLE_SKIP };

/* Strings are copied. Any may be NULL (printed as "-"). */
void btable_add(const char *what, const char *tandem, const char *baseline, const char *compare,
		const char *target, enum btable_verdict v);
/* Verdict from a comparison: PASS when ok. */
static inline enum btable_verdict btable_check(int ok)
{
	return ok ? BTABLE_PASS : BTABLE_MISS;
}
void btable_print(FILE *out);
void btable_free(void);
unsigned btable_misses(void);

/* Formatting into a rotating set of static buffers (enough for one row). */
const char *btable_us(uint64_t ns);   /* "123 us" or "1.23 ms" */
const char *btable_ms(uint64_t ns);   /* "1.23 ms" */
const char *btable_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
