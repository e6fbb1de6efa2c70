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
 *
 * A thread reports to one client: its owner (a session id, session.h; 0 for
 * nobody), who gets its notifications (notify.h). thread/start sets it; a
 * turn/start moves it to the client running the turn.
 *
 * A detached thread (thread_spec.detached: the MCP gateway's profiles) gets
 * the same environment events, reloads and projections, but is in no listing
 * (thread_first/next, thread_find, threads_count), reports to nobody, and is
 * freed by its creator with thread_free_detached().
 *
 * State: the thread list is a file static; loop thread only. Threads live
 * until thread_free_all() (detached ones: or until thread_free_detached()).
 */
#ifndef TANDEM_THREAD_H
#define TANDEM_THREAD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct thread;
struct srv;
struct env;
struct turn;

#define THREAD_MAX 100000u                /* threads per orchestrator */
#define THREAD_MAX_ROOTS 256u             /* selected roots per thread */
#define THREAD_RESOLVE_TIMEOUT_MS 30000u  /* one ROOT_RESOLVE round trip */

typedef void (*thread_cb)(struct thread *t, void *arg);

/* What thread/start asked for, validated by the caller (rpc_thread.c):
 * every string is non-NULL unless said otherwise; all borrowed. */
struct thread_env_spec {
	const char *env_id;
	const char *cwd; /* NULL: the thread's */
};
struct thread_root_spec {
	const char *id;     /* unique within the thread */
	const char *env_id; /* an environment that exists (envs.h) */
	const char *path;
};
struct thread_spec {
	const char *model; /* NULL: config.toml's */
	const char *cwd;   /* NULL: unset */
	const struct thread_env_spec *envs; /* NULL: none given ([] is not none) */
	size_t n_envs;
	const struct thread_root_spec *roots;
	size_t n_roots;
	bool detached; /* see above; owner must be 0 */
};

/* Copies spec. -EMFILE past THREAD_MAX threads, -EINVAL past
 * THREAD_MAX_ROOTS roots, with a reason in err. */
int thread_new(const struct thread_spec *spec, uint64_t owner, struct thread **out, char *err,
	       size_t errlen);
struct thread *thread_find(const char *id);
struct thread *thread_global(void);
/* Newest first. */
struct thread *thread_first(void);
struct thread *thread_next(const struct thread *t);
void thread_free_all(void);
/* A detached thread (its watchers must be gone). NULL is fine. */
void thread_free_detached(struct thread *t);

const char *thread_id(const struct thread *t); /* NULL for the global thread */
uint64_t thread_owner(const struct thread *t);
void thread_set_owner(struct thread *t, uint64_t owner);
int64_t thread_created_at(const struct thread *t); /* unix seconds */
const char *thread_cwd(const struct thread *t);    /* NULL if unset */
const char *thread_model(const struct thread *t);  /* NULL if unset */
/* The thread/start environments: whether any were given, how many, and
 * entry i's id (its cwd in *cwd, NULL when unset). */
bool thread_has_envs(const struct thread *t);
size_t thread_n_envs(const struct thread *t);
const char *thread_env_at(const struct thread *t, size_t i, const char **cwd);

void thread_project(struct thread *t);
/* cb once every root on a ready environment is resolved (or failed) and no
 * runtime server is still starting; at once if that is already so. */
void thread_when_settled(struct thread *t, thread_cb cb, void *arg);
void thread_forget_waiter(struct thread *t, thread_cb cb, void *arg);
/* cb after every rebuild of the runtime (servers came or went) and every
 * state change of a runtime server (its tools re-listed included), until
 * thread_unwatch. The MCP gateway's list_changed comes from here. */
void thread_watch(struct thread *t, thread_cb cb, void *arg);
void thread_unwatch(struct thread *t, thread_cb cb, void *arg);

/* Runtime servers (borrowed). */
size_t thread_n_servers(const struct thread *t);
struct srv *thread_server_at(const struct thread *t, size_t i);
struct srv *thread_server(const struct thread *t, const char *name);
/* Why a name is not in the runtime, when a root's environment explains it. */
const char *thread_unavailable_reason(const struct thread *t, char *buf, size_t len);
/* Invalid server configs, config.toml's then the roots' (with pluginId):
 * [{name, reason[, pluginId]}] (new reference). */
json_t *thread_invalid_servers(const struct thread *t);

/* Conversation state (turn.c). */
json_t *thread_history(struct thread *t); /* borrowed; created on first use */
json_t *thread_turns(struct thread *t);
struct turn *thread_turn(const struct thread *t);
void thread_set_turn(struct thread *t, struct turn *turn);

/* Events: an environment changed state (envs.h); config.toml or the
 * account changed (every runtime is rebuilt; unchanged servers keep
 * running). */
void threads_env_changed(struct env *e);
void threads_reload(void);
/* The account changed (chatgpt_auth: ChatGPT tokens are in use): the hosted
 * apps server is gated by it in every effective view (view.h), so every
 * runtime is rebuilt now, not at the next change of roots. */
void threads_account_changed(bool chatgpt_auth);

/* For tests and benchmarks (debug/counters): per thread, and every
 * thread's together. */
uint64_t thread_rediscoveries(const struct thread *t);
uint64_t thread_builds(const struct thread *t);
size_t threads_count(void);
uint64_t threads_rediscoveries(void);
uint64_t threads_builds(void);

#endif
