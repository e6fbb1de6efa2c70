/* gateway.h - tandem as an MCP gateway: MCP servers of tandem served to any
 * MCP client at one streamable HTTP endpoint (MCP 2025-06-18), on an address
 * of its own (--mcp-listen HOST:PORT, off by default).
 *
 * Endpoints (each its own MCP server; README "MCP gateway"):
 *   /mcp                    the servers of config.toml (the global view)
 *   /mcp/threads/<threadId> one thread's servers as its model steps see them
 *                           (selected roots on ready environments + config)
 *   /mcp/profiles/<name>    a named profile of config.toml's [mcp_gateway]
 *                           (roots + config servers, a fixed URL)
 *   /.well-known/oauth-protected-resource[/...]  RFC 9728 metadata, when set
 * Tools and prompts are named <server>__<name> by the model's rule
 * (toolnames.h); resources keep their URIs.
 *
 * HTTP: POST carries one JSON-RPC message (answered with JSON, or an event
 * stream when progress goes out before the answer), GET opens the session's
 * stream for list_changed notifications, DELETE ends a session. Sessions
 * are Mcp-Session-Id (32 random bytes, hex). Auth, origins and limits:
 * gateway_auth.c and the GATEWAY_* bounds below; a listener beyond loopback
 * needs auth.
 *
 * libmicrohttpd runs on the daemon's loop (common/mhdloop.h), so every
 * handler runs on the loop thread and calls the domain directly.
 * State: one gateway per process (a file static); loop thread only.
 */
#ifndef TANDEM_GATEWAY_H
#define TANDEM_GATEWAY_H

#include <stddef.h>

struct loop;

#define GATEWAY_MAX_CONNS 512u              /* HTTP connections at once */
#define GATEWAY_MAX_SESSIONS 256u           /* MCP sessions at once */
#define GATEWAY_MAX_BODY (4u * 1024 * 1024) /* bytes of one POST body */
#define GATEWAY_MAX_QUEUE (8u * 1024 * 1024) /* bytes waiting on one event stream */
#define GATEWAY_MAX_INFLIGHT 256u           /* requests in flight per session */
#define GATEWAY_MEMORY_LIMIT (64u * 1024)   /* request head buffer per connection */
#define GATEWAY_CONN_TIMEOUT_S 120u         /* an idle connection is closed */
#define GATEWAY_SESSION_IDLE_MS (30u * 60 * 1000) /* unused sessions expire */
#define GATEWAY_PING_MS 15000u              /* a silent stream gets a comment */

/* Listens on hostport and serves; NULL hostport: off (returns 0). Reads
 * config.toml's [mcp_gateway] (config_current()). -errno with err when it
 * cannot listen, or would listen beyond loopback without auth. */
int gateway_start(struct loop *l, const char *hostport, char *err, size_t errlen);
/* "HOST:PORT" bound, NULL when off. */
const char *gateway_address(void);
/* Ends every session and stops listening. Safe when not started. */
void gateway_stop(void);

#endif
