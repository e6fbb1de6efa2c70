/* turn.h - a turn: the model loop of one thread.
 *
 * turn/start answers at once (status inProgress); then each step projects
 * the thread's runtime (thread_project: same ready roots, same servers),
 * advertises its tools (toolnames.c), streams one Responses request
 * (model.c), runs the function calls it returns concurrently on their MCP
 * servers, and samples again with the outputs appended, until a response
 * has no tool call. Notifications: turn/started, item/started,
 * item/agentMessage/delta, item/completed, turn/completed.
 */
#ifndef TANDEM_TURN_H
#define TANDEM_TURN_H

#include <jansson.h>

struct session;
struct thread;
struct turn;

#define TURN_MAX_STEPS 64u
#define TURN_MAX_INPUT_BYTES (1024u * 1024u)

/* Validates and starts; on error answers the request itself. */
void turn_start(struct session *s, json_t *id, json_t *params);
void turn_interrupt(struct session *s, json_t *id, json_t *params);
/* Shutdown: every running turn ends (interrupted), quietly. */
void turn_abort_all(void);

#endif
