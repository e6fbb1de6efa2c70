/* turn.h - a turn: the model loop of one thread.
 *
 * turn/start answers at once (status inProgress); then each step projects
 * the thread's runtime (thread_project: same ready roots, same servers),
 * advertises its tools (toolnames.c), streams one Responses request
 * (model.c), runs the function calls it returns concurrently on their MCP
 * servers, and samples again with the outputs appended, until a response
 * has no tool call. Notifications: turn/started, item/started,
 * item/agentMessage/delta, item/completed, turn/completed, to the thread's
 * subscribers (thread_notify).
 *
 * Persistence (durable threads, thread.h): the turn's row, its items and
 * the history it adds go to the thread store as they happen. An item's
 * item/completed and the turn's turn/completed go out only once the write
 * that records them has committed; a tool call is recorded when it starts,
 * so that a crash leaves it marked failed, not forgotten. A failed write
 * ends the turn (failed, saying so). The token usage of each response is
 * summed into the turn's row.
 *
 * State: the running turns are a file static; a thread's running turn is
 * also reachable as thread_turn(). Loop thread only.
 */
#ifndef TANDEM_TURN_H
#define TANDEM_TURN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct http;
struct loop;
struct thread;
struct turn;

#define TURN_MAX_STEPS 64u
#define TURN_MAX_INPUT_BYTES (1024u * 1024u)

/* The loop and the struct http the model requests go out on (borrowed). */
void turn_init(struct loop *l, struct http *h);
/* The provider's model listing (model.h model_list), on the same HTTP
 * client as the turns' requests. */
struct model_listing *turn_models(json_t *provider, model_list_cb cb, void *arg);
/* A turn on t with the user's texts (n >= 1, borrowed), for owner (who gets
 * its notifications from now on). Nothing is sent yet: the caller answers
 * its request with turn_object(), then calls turn_run(). -EBUSY when t has
 * a turn running, -EINVAL for no text or more than TURN_MAX_INPUT_BYTES,
 * with a reason in err. */
int turn_new(struct thread *t, uint64_t owner, const char *const *texts, size_t n,
	     struct turn **out, char *err, size_t errlen);
/* The client API Turn object, inProgress (new reference). */
json_t *turn_object(const struct turn *u);
const char *turn_id(const struct turn *u);
/* Its completed items and their [[seq, startedMs, completedMs]] rows
 * (borrowed). */
json_t *turn_items(const struct turn *u, json_t **rows);
/* turn/started, the user message items, then the first step. */
void turn_run(struct turn *u);
/* Ends a running turn (interrupted): its calls are cancelled, turn/completed
 * goes out, u is freed. */
void turn_interrupt(struct turn *u);
/* Shutdown: every running turn ends (interrupted), quietly. */
void turn_abort_all(void);

#endif
