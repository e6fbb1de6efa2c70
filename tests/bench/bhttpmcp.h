/* bhttpmcp.h - the HTTP MCP phase of tandem-bench: one echo tool call on one
 * streamable HTTP MCP server (tests/fixtures/http_mcp_server.py), reached
 * two ways by the same daemon in the same run: from the orchestrator (a
 * config.toml server) and through the local executor's HTTP relay (the same
 * URL declared in a plugin). The orchestrator-direct figure is the
 * baseline; the difference is what the relay (two more link hops and the
 * executor's libcurl) costs per call. Adds SKIP rows when the fixture or
 * python3 is missing. */
#ifndef TANDEM_BHTTPMCP_H
#define TANDEM_BHTTPMCP_H

#include "bench.h"

void bhttpmcp_run(const struct bench_opts *o);

#endif
