/* bstat.h - the few statistics the benchmark prints: percentiles of a set
 * of durations (nearest rank, on a sorted copy) and medians. */
#ifndef TANDEM_BSTAT_H
#define TANDEM_BSTAT_H

#include <stddef.h>
#include <stdint.h>

/* The p-th percentile (0 < p <= 100) of v[0..n), n > 0; v is sorted in
 * place. */
uint64_t bstat_pct(uint64_t *v, size_t n, double p);
static inline uint64_t bstat_median(uint64_t *v, size_t n)
{
	return bstat_pct(v, n, 50.0);
}

#endif
