/* bscale.h - the memory and scale phase of tandem-bench: orchestrator RSS
 * idle and with many idle threads, executor RSS with many live MCP servers,
 * tool-call latency over 1..N threads, and mcpServerStatus/list on a thread
 * with many roots. Adds its rows to the table. */
#ifndef TANDEM_BSCALE_H
#define TANDEM_BSCALE_H

#include "bench.h"

void bscale_run(const struct bench_opts *o);

#endif
