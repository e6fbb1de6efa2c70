/* thread.h - conversation threads and their MCP runtime.
 *
 * A thread keeps its selected capability roots and caches each root's
 * resolved metadata (ROOT_RESOLVE on the owning executor) for its whole
 * life; a failed resolution is not cached and is retried by the next
 * projection. thread_project() is run by every thread-scoped request (and
 * every model step): it resolves what is missing on ready environments and
 * rebuilds the thread's runtime (its live servers, via view.c and srv.c) only
 * when the set of ready roots changed. Same set, same runtime.
 *
 * The "global" thread holds the servers seen without a threadId (config.toml
 * only).
 */
#ifndef TANDEM_THREAD_H
#define TANDEM_THREAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

struct thread;
struct session;
struct srv;
struct env;

typedef void (*thread_cb)(struct thread *t, void *arg);

/* Validates thread/start params; -EINVAL with a message naming the field. */
int thread_new(struct session *owner, json_t *params, struct thread **out, char *err,
	       size_t errlen);
struct thread *thread_find(const char *id);
struct thread *thread_global(void);
/* Newest first. */
struct thread *thread_first(void);
struct thread *thread_next(const struct thread *t);
void thread_free_all(void);

const char *thread_id(const struct thread *t);
struct session *thread_owner(const struct thread *t);
void thread_set_owner(struct thread *t, struct session *s);
json_t *thread_json(const struct thread *t); /* the client API Thread object */

void thread_project(struct thread *t);
/* cb once every root on a ready environment is resolved (or failed) and no
 * runtime server is still starting; at once if that is already so. */
void thread_when_settled(struct thread *t, thread_cb cb, void *arg);
void thread_forget_waiter(struct thread *t, thread_cb cb, void *arg);

/* Runtime servers (borrowed). */
size_t thread_n_servers(const struct thread *t);
struct srv *thread_server_at(const struct thread *t, size_t i);
struct srv *thread_server(const struct thread *t, const char *name);
/* Why a name is not in the runtime, when a root's environment explains it. */
const char *thread_unavailable_reason(const struct thread *t, char *buf, size_t len);
/* Roots that failed to resolve: [{id, environmentId, path, error}]. */
json_t *thread_root_errors(const struct thread *t);
json_t *thread_invalid_servers(const struct thread *t);

/* Conversation state (turn.c). */
struct turn;
json_t *thread_history(struct thread *t); /* borrowed; created on first use */
json_t *thread_turns(struct thread *t);
struct turn *thread_turn(const struct thread *t);
void thread_set_turn(struct thread *t, struct turn *turn);
const char *thread_model(const struct thread *t);

void threads_env_changed(struct env *e);
void threads_reload(void); /* config.toml changed: rebuild every runtime */

/* For tests and benchmarks (debug/counters). */
uint64_t thread_rediscoveries(const struct thread *t);
uint64_t thread_builds(const struct thread *t);

#endif
