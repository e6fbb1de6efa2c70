/* bstore.h - the thread store phase of tandem-bench: what persisting an
 * item costs, how big the store grows per item, thread/list of 50 among
 * 10,000 stored threads, thread/resume of a thread with 1,000 items, and
 * the check that a tool call outside a turn writes nothing. */
#ifndef TANDEM_BSTORE_H
#define TANDEM_BSTORE_H

#include "bench.h"

void bstore_run(const struct bench_opts *o);

#endif
