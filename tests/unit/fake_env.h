/* fake_env.h - a test double of orchestrator/env.c for the domain's unit
 * suites (thread, srv, turn, toolnames).
 *
 * It implements all of env.h (the suites link it in place of
 * libtandem-orchestrator-env, see tests/unit/meson.build) with no executor
 * behind it: each environment starts CONNECTING and changes state only
 * when the test says so (fake_env_set_state, which reports through the
 * env_ops like the real link); requests are answered from the loop, never
 * from inside env_request, as the real link does:
 *
 *   ROOT_RESOLVE  the servers registered for the root's path with
 *                 fake_env_root() (an error reply for an unknown path);
 *   MCP_START     command "fake-mcp": a process whose MCP server offers
 *                 the tools named in args; command "fake-fail-start": an
 *                 error reply;
 *   MCP_STOP      ends the process.
 *
 * The process's MCP server (fed by env_mcp_send, answering through the
 * output callback) speaks enough MCP for the orchestrator: initialize,
 * tools/list, ping, tools/call (tool "echo" returns its argument "text";
 * tool "hang" never answers; any other returns its own name), and it
 * records notifications/cancelled. A disconnect (fake_env_set_state to
 * DISCONNECTED) fails the pending requests and ends the processes, as an
 * executor that went away.
 */
#ifndef TANDEM_FAKE_ENV_H
#define TANDEM_FAKE_ENV_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "env.h"

/* What ROOT_RESOLVE answers for path: servers_json (a JSON array of
 * normalized server configs, as an executor sends) and invalid_json (an
 * array of {name, reason}, may be NULL); servers_json NULL: an error. */
void fake_env_root(const char *path, const char *servers_json, const char *invalid_json);
/* Moves e to st (error: the reason for DISCONNECTED) and reports it. */
void fake_env_set_state(struct env *e, enum env_state st, const char *error);
/* Ends the live process of the server named `server` on e as if it exited
 * (MCP_EXITED with reason). False when there is none. */
bool fake_env_exit(struct env *e, const char *server, const char *reason);

/* Counters since the last fake_env_reset. */
unsigned fake_env_requests(const struct env *e, uint16_t type); /* sent on e */
unsigned fake_env_live(void);             /* processes started, not ended */
unsigned fake_env_started(const char *server);
unsigned fake_env_tool_calls(const char *tool);
unsigned fake_env_cancels(void);          /* notifications/cancelled received */
/* The last MCP_START for `server`: {root?, sandbox? (the parsed JSON),
 * env (the literal and local values sent)}, NULL if none (borrowed). The
 * reply's sandbox says "off: ..." unless the start carried a root or a
 * sandbox table (executor/box.c's rule). */
json_t *fake_env_last_start(const char *server);
/* Forgets the scripts and counters, and drops undelivered output (call it
 * before loop_free; the environments themselves belong to envs.c). */
void fake_env_reset(void);

#endif
