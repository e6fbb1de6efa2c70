/* mcpbridge.h - `tandem mcp URL`: the stdio form of the MCP gateway, for
 * desktop clients that launch their MCP servers as commands (Claude
 * Desktop, Cursor, the Inspector with a command).
 *
 * A bridge between the MCP stdio transport (one JSON-RPC message per line
 * on stdin/stdout) and the gateway's streamable HTTP endpoint of a running
 * orchestrator (--mcp-listen): each line read is POSTed to URL (several at
 * once: a cancellation can pass a call in flight), each message the gateway
 * answers (JSON or an event stream) is written as one line. The session id
 * and protocol version come from the initialize exchange, which goes first
 * (lines read meanwhile wait for it); after notifications/initialized a GET
 * stream carries the gateway's list_changed notifications. An exchange that
 * fails (refused, unreachable) answers its request with a JSON-RPC error,
 * so the client is never left waiting. stdin's end DELETEs the session.
 *
 * The token (capability token or JWT) is read from a file, never from the
 * command line: --token-file F or $TANDEM_MCP_TOKEN_FILE. URL may come from
 * $TANDEM_MCP_URL. Logs go to stderr only when something fails.
 */
#ifndef TANDEM_CLI_MCPBRIDGE_H
#define TANDEM_CLI_MCPBRIDGE_H

struct cli;

#define MCPBRIDGE_MAX_LINE (4u * 1024 * 1024)    /* one message from the client */
#define MCPBRIDGE_MAX_EVENT (64u * 1024 * 1024)  /* one message from the gateway */
#define MCPBRIDGE_MAX_WAITING 1024u              /* lines read before the session */
#define MCPBRIDGE_STREAM_RETRY_MS 1000u
#define MCPBRIDGE_STREAM_TRIES 5u

int mcpbridge_cmd(struct cli *cli, int argc, char **argv);

#endif
