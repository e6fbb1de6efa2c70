/* bgateway.h - the MCP gateway phase: a tool call through tandem's
 * streamable HTTP endpoint (--mcp-listen) to @modelcontextprotocol/
 * server-everything's echo on the local executor, next to the same server
 * called directly over its pipes and through supergateway (npm, pinned in
 * deploy/local/lib.sh, --stateful) in front of the same server.
 *
 * One HTTP client serves both gateways (keep-alive, JSON or event-stream
 * answers), so its own cost cancels out; the three are measured in
 * alternating blocks so that a slow spell of the machine hits all of them.
 * Rows: p50 and p99 with each one's overhead over the direct call (target:
 * tandem's <= 0.25x supergateway's), and calls/s at 32 in flight (32
 * connections, one call each). Skipped (a row says why) without node and
 * the npm peers ($TANDEM_NPM_PEERS). */
#ifndef TANDEM_BGATEWAY_H
#define TANDEM_BGATEWAY_H

#include "bench.h"

void bgateway_run(const struct bench_opts *o);

#endif
