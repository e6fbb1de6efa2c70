/* ask.h - `tandem ask`: one turn of a thread, streamed.
 *
 * Sends turn/start {threadId, input:[{type:"text", text}]} and follows the
 * thread's notifications until turn/completed: item/agentMessage/delta text
 * goes to stdout as it arrives; MCP tool calls (mcpToolCall items) show on
 * stderr as "-> server.tool(args)" when they start and "<- result (N ms)"
 * or "<- error: why (N ms)" when they end. With --json every notification
 * of the turn is printed as one JSON line instead.
 *
 * Exit: 0 completed, 1 failed (the turn's error on stderr) or turn/start
 * refused, 130 interrupted. The first Ctrl-C sends turn/interrupt {threadId,
 * turnId} once and keeps waiting for turn/completed; a second one (or
 * SIGTERM/SIGHUP) gives up at once.
 */
#ifndef TANDEM_CLI_ASK_H
#define TANDEM_CLI_ASK_H

struct cli;

/* argv: THREAD PROMPT... (no THREAD with --root). A lone "-" as the prompt
 * reads it from stdin. Connects by itself, after reading the prompt. */
int ask_cmd(struct cli *cli, int argc, char **argv);

#endif
