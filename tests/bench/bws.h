/* bws.h - the client transport rows (`--only ws`): a tool call
 * (mcpServer/tool/call) over ws:// (WebSocket on TCP) next to the same call
 * over lines (the stdio code) and over stdio itself. */
#ifndef TANDEM_BWS_H
#define TANDEM_BWS_H

#include "bench.h"

void bws_run(const struct bench_opts *o);

#endif
