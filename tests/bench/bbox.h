/* bbox.h - what the MCP server sandbox costs (executor/box.h): a plugin
 * server's cold start and its tool-call p50 with the box (the default)
 * next to the same server with sandbox = "off", in the same orchestrator.
 * Target: the box adds at most 2 ms to a server's start. */
#ifndef TANDEM_BBOX_H
#define TANDEM_BBOX_H

#include "bench.h"

void bbox_run(const struct bench_opts *o);

#endif
