/* call.h - `tandem call`: one MCP tool call through the orchestrator
 * (mcpServer/tool/call), with its arguments built from the command line.
 *
 * Arguments: --args JSON (an object), then each word in order: a word that
 * starts with '{' is a JSON object whose members are added; KEY=VALUE sets
 * KEY to VALUE parsed as JSON when it parses (42, true, null, [1,2],
 * {"a":1}, "\"quoted\"") and to the VALUE string otherwise. A key given
 * twice is an error, so a typo never silently replaces a value.
 */
#ifndef TANDEM_CLI_CALL_H
#define TANDEM_CLI_CALL_H

#include <jansson.h>
#include <stddef.h>

struct cli;

/* argv: THREAD SERVER TOOL [WORD...] (no THREAD with --root). */
int call_cmd(struct cli *cli, int argc, char **argv);

#endif
