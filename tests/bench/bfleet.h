/* bfleet.h - the fleet phase of tandem-bench (`--only fleet`): one
 * orchestrator and 1, 10 and 100 executors (half on url entries, half
 * dialling in to --executor-listen): time until all are ready, the
 * orchestrator's RSS and threads, calls per second spread over all of
 * them, and the time from SIGTERM to exit. Adds its rows to the table. */
#ifndef TANDEM_BFLEET_H
#define TANDEM_BFLEET_H

#include "bench.h"

void bfleet_run(const struct bench_opts *o);

#endif
