/* thread.h - conversation threads: their MCP runtime (thread.c) and their
 * life (thread_life.c): creation, the thread store, subscribers, loading,
 * forking and unloading.
 *
 * Runtime. A thread keeps its selected capability roots and caches each
 * root's resolved metadata (ROOT_RESOLVE on the owning executor) while it is
 * loaded; a failed resolution is not cached and is retried by the next
 * projection. thread_project() is run by every thread-scoped request (and
 * every model step): it resolves what is missing on ready environments and
 * rebuilds the thread's runtime (its live servers, via view.c and srv.c) only
 * when the set of ready roots changed. Same set, same runtime. A root is
 * bound by environment id at each projection, so a thread loaded from the
 * store uses whichever environment has that id now.
 *
 * The "global" thread holds the servers seen without a threadId (config.toml
 * only).
 *
 * Durability. A thread is durable unless it was started ephemeral or there
 * is no store (store.h): its row, turns, items and model-visible history go
 * to the store as they happen. Writes are asynchronous; what a client is
 * told was completed is sent only once the write that records it has
 * committed (thread_notify_saved), and every notification of a thread keeps
 * its order behind such a wait (one outbox per thread). A write that fails
 * marks the thread broken (thread_store_error): its running turn fails
 * (the observer of threads_set_store_failed_cb), it takes no new turn, and
 * thread/resume reloads it from the store.
 *
 * Clients. A thread reports to its subscribers (client session ids,
 * session.h): the clients that started, resumed or forked it, or ran a turn
 * on it, until they unsubscribe or leave. A thread with no subscriber, no
 * turn and nothing pending is unloaded after the idle time
 * (threads_init): a durable one can be resumed from the store, an
 * ephemeral one is gone.
 *
 * Bounds: every string a thread keeps is bounded (THREAD_*_MAX) by
 * thread_new's caller, and checked again here.
 *
 * Detached. A detached thread (thread_spec.detached: the MCP gateway's
 * profiles) gets the same environment events, reloads and projections, but
 * is ephemeral, in no listing (thread_first/next, thread_find,
 * threads_count), never unloaded, reports to nobody, and is freed by its
 * creator with thread_free_detached().
 *
 * State: the thread list is a file static; loop thread only.
 */
#ifndef TANDEM_THREAD_H
#define TANDEM_THREAD_H

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "notify.h"

struct loop;
struct thread;
struct srv;
struct env;
struct turn;
struct store_batch;
struct store_thread;
struct store_loaded;
struct store_list_query;
struct store_list_result;

#define THREAD_MAX 100000u                /* loaded threads per orchestrator */
#define THREAD_MAX_ROOTS 256u             /* selected roots per thread */
#define THREAD_MAX_ENVS 64u               /* environments per thread */
#define THREAD_RESOLVE_TIMEOUT_MS 30000u  /* one ROOT_RESOLVE round trip */
#define THREAD_PATH_MAX PATH_MAX          /* a cwd, a root's path (bytes) */
#define THREAD_ID_MAX 1024u               /* a root id */
#define THREAD_MODEL_MAX 256u             /* a model name */
#define THREAD_NAME_MAX 1024u             /* thread/name/set */
#define THREAD_PREVIEW_MAX 240u           /* the first user message, cut */
#define THREAD_SUBS_MAX 1024u             /* subscribers of one thread */
#define THREAD_IDLE_DEFAULT_MS (600u * 1000u)

typedef void (*thread_cb)(struct thread *t, void *arg);
/* rc 0, or a negative errno with a reason. */
typedef void (*thread_done_cb)(struct thread *t, int rc, const char *err, void *arg);

/* What thread/start asked for, validated by the caller (rpc_thread.c):
 * every string is non-NULL unless said otherwise; all borrowed. */
struct thread_env_spec {
	const char *env_id;
	const char *cwd; /* NULL: the thread's */
};
struct thread_root_spec {
	const char *id;     /* unique within the thread */
	const char *env_id; /* an environment id */
	const char *path;
};
struct thread_spec {
	const char *model; /* NULL: config.toml's */
	const char *cwd;   /* NULL: unset */
	const struct thread_env_spec *envs; /* NULL: none given ([] is not none) */
	size_t n_envs;
	const struct thread_root_spec *roots;
	size_t n_roots;
	bool ephemeral;    /* memory only, even with a store */
	bool detached;     /* see "Detached" above: ephemeral, owner must be 0 */
};

/* ---- life (thread_life.c) ---------------------------------------------- */

/* The idle time after which a thread nobody uses is unloaded (0: never),
 * swept by a timer on l. Without it nothing is unloaded. */
void threads_init(struct loop *l, uint64_t idle_ms);
/* Unloads what is idle now (the timer's work; tests call it). Returns how
 * many threads were unloaded. */
size_t threads_sweep(void);

/* A new thread (spec copied), owner (0: none) subscribed. A durable one is
 * written to the store; thread_when_saved says when it is there. -EMFILE
 * past THREAD_MAX threads, -EINVAL for a spec over the bounds, with a
 * reason in err. */
int thread_new(const struct thread_spec *spec, uint64_t owner, struct thread **out, char *err,
	       size_t errlen);
/* A thread id's form: a UUID (36 characters, hex and dashes). */
bool thread_id_valid(const char *id);
/* A loaded thread. */
struct thread *thread_find(const char *id);
struct thread *thread_global(void);
/* Loaded threads, newest first. */
struct thread *thread_first(void);
struct thread *thread_next(const struct thread *t);
/* Shutdown: every thread freed (writes in flight still commit). */
void thread_free_all(void);
/* A detached thread (its watchers must be gone). NULL is fine. */
void thread_free_detached(struct thread *t);

/* cb(t, rc) once every write of t submitted so far has committed (rc 0) or
 * failed; right away (rc 0) for an ephemeral thread with nothing pending. */
void thread_when_saved(struct thread *t, thread_done_cb cb, void *arg);
void thread_forget_saved(struct thread *t, thread_done_cb cb, void *arg);

/* Loads a stored thread (or finds it loaded): cb(t) or cb(NULL, -ENOENT /
 * -EIO, reason), with the items of its last items_last turns in memory
 * (store_load: STORE_ALL_ITEMS, 0...; the history is always there). A turn
 * that was running when the orchestrator stopped is made interrupted, a
 * tool call whose result never came back failed (not retried), and the fix
 * is written back. The returned handle cancels the callback (the load
 * itself completes). A broken loaded thread without a turn is dropped and
 * reloaded. */
struct thread_loading;
struct thread_loading *thread_load(const char *id, int64_t items_last, thread_done_cb cb,
				   void *arg);
/* Whether every finished turn of t has its items in memory (else the
 * store has them: thread_peek). */
bool thread_items_complete(struct thread *t);
void thread_load_cancel(struct thread_loading *h);

/* A thread as it is in the store, every item read (thread/read of an
 * unloaded thread, or of one loaded without its old items): cb(rc, err,
 * loaded, arg) with a struct store_loaded (borrowed; see store.h). The
 * handle is the store op (store_op_cancel); NULL without a store. */
struct store_op *thread_peek(const char *id,
			     void (*cb)(int rc, const char *err, void *loaded, void *arg),
			     void *arg);

/* Forks: a new thread with the settings of src (model and cwd overridden
 * when given) and its turns and history up to and including turn index
 * upto (-1: none; n_turns - 1: all). src is a loaded thread, or NULL with
 * a peeked one in `from`. owner subscribed. Written like thread_new. */
int thread_fork(struct thread *src, const struct store_loaded *from, ssize_t upto,
		const char *model, const char *cwd, bool ephemeral, uint64_t owner,
		struct thread **out, char *err, size_t errlen);

/* Stored-thread operations, loaded or not: cb(rc, err) after the store
 * answered (-ENOENT: no such thread; -EINVAL: ephemeral, with a reason).
 * archive/unarchive refuse a thread whose turn is running; delete unloads
 * it (its subscribers get thread/closed). */
int thread_set_archived(const char *id, bool archived,
			void (*cb)(int rc, const char *err, void *arg), void *arg, char *err,
			size_t errlen);
int thread_delete(const char *id, void (*cb)(int rc, const char *err, void *arg), void *arg,
		  char *err, size_t errlen);
/* Renames (name NULL: clears); thread/name/updated to the subscribers once
 * saved. */
int thread_set_name(const char *id, const char *name,
		    void (*cb)(int rc, const char *err, void *arg), void *arg, char *err,
		    size_t errlen);
/* The client API ThreadReadState of a record (new reference). */
json_t *thread_read_state(const struct store_thread *rec);
/* thread/readState/update: read (unread = false) or explicitly unread.
 * -ESTALE when expected is not the current revision. */
int thread_set_read(struct thread *t, const char *expected, bool unread, char *err,
		    size_t errlen);
/* model/cwd overrides of thread/resume on a loaded thread (NULL: keep). */
int thread_override(struct thread *t, const char *model, const char *cwd, char *err,
		    size_t errlen);
/* The stored threads (threads of the store only: not ephemeral ones). */
struct store_op *thread_list(const struct store_list_query *q,
			     void (*cb)(int rc, const char *err, void *result, void *arg),
			     void *arg);

/* ---- subscribers and notifications (thread_life.c) --------------------- */

void thread_subscribe(struct thread *t, uint64_t owner);
/* false when owner was not subscribed. */
bool thread_unsubscribe(struct thread *t, uint64_t owner);
bool thread_subscribed(const struct thread *t, uint64_t owner);
size_t thread_n_subscribers(const struct thread *t);
/* owner left: it is removed from every thread. */
void threads_owner_gone(uint64_t owner);
/* A request used t (resets its idle clock). */
void thread_touch(struct thread *t);

/* To every subscriber, in order behind anything t still holds back.
 * Steals params; threadId is set here. */
void thread_notify(struct thread *t, enum notify_kind kind, json_t *params);
/* Held until the writes submitted so far have committed; dropped (with a
 * log line) when the last of them failed: what a client is told was
 * completed is in the store. */
void thread_notify_saved(struct thread *t, enum notify_kind kind, json_t *params);
/* Held the same way, but sent whether the writes failed or not (a turn's
 * end: the client must hear that it failed). */
void thread_notify_after(struct thread *t, enum notify_kind kind, json_t *params);

/* ---- the record and the conversation (thread_life.c) ------------------- */

const char *thread_id(const struct thread *t); /* NULL for the global thread */
/* The thread's row: name, times, preview, settings (meta)... (borrowed). */
const struct store_thread *thread_rec(const struct thread *t);
bool thread_ephemeral(const struct thread *t);
int64_t thread_created_at(const struct thread *t); /* unix seconds */
const char *thread_cwd(const struct thread *t);    /* NULL if unset */
const char *thread_model(const struct thread *t);  /* NULL if unset */
/* The thread/start environments: whether any were given, how many, and
 * entry i's id (its cwd in *cwd, NULL when unset). */
bool thread_has_envs(const struct thread *t);
size_t thread_n_envs(const struct thread *t);
const char *thread_env_at(const struct thread *t, size_t i, const char **cwd);
/* Why the thread takes no turn (a store write failed), or NULL. */
const char *thread_store_error(const struct thread *t);
/* A store write of t failed: the observer (turn.c) fails its turn. */
void threads_set_store_failed_cb(void (*cb)(struct thread *t, const char *err));

/* A batch for t's writes (NULL for an ephemeral thread), and submitting it
 * (taken) in t's order. */
struct store_batch *thread_batch(struct thread *t);
void thread_submit(struct thread *t, struct store_batch *b);

/* Token counts (Responses API usage keys, summed) of the model responses of
 * its turns since it was loaded: turn.c adds to it (borrowed, mutable). */
json_t *thread_usage(struct thread *t);
/* Model-visible history (Responses API input items), borrowed. */
json_t *thread_history(struct thread *t);
/* Appends entry (stolen) for the running turn, and to b when given. */
void thread_history_push(struct thread *t, json_t *entry, struct store_batch *b);
/* Finished turns: [{"turn": Turn, "seq", "histEnd", "itemRows"}] (see
 * store_loaded), borrowed. */
json_t *thread_turns(struct thread *t);
/* The seq the running (or next) turn has: finished turns + 1. */
int64_t thread_turn_seq(const struct thread *t);
/* A turn ended: turn (a Turn object, stolen) and its item rows (stolen;
 * [[seq, startedMs, completedMs], ...] in the order of its items) join the
 * finished turns. */
void thread_turn_finished(struct thread *t, json_t *turn, json_t *item_rows);
struct turn *thread_turn(const struct thread *t);
/* Also sends thread/status/changed and touches the record's updatedAt. */
void thread_set_turn(struct thread *t, struct turn *turn);
/* The first user message of a thread becomes its preview (saved in b). */
void thread_set_preview(struct thread *t, const char *text, struct store_batch *b);

/* ---- runtime (thread.c) ------------------------------------------------- */

void thread_project(struct thread *t);
/* cb once every root on a ready environment is resolved (or failed) and no
 * runtime server is still starting; at once if that is already so. */
void thread_when_settled(struct thread *t, thread_cb cb, void *arg);
void thread_forget_waiter(struct thread *t, thread_cb cb, void *arg);
/* cb after every rebuild of the runtime (servers came or went) and every
 * state change of a runtime server (its tools re-listed included), until
 * thread_unwatch. The MCP gateway's list_changed comes from here. A thread
 * that is freed (deleted, dropped after a store error) calls its watchers
 * once more with thread_closing(t) true: they must let go of it then. A
 * watched thread is never unloaded for idleness. */
void thread_watch(struct thread *t, thread_cb cb, void *arg);
void thread_unwatch(struct thread *t, thread_cb cb, void *arg);
bool thread_closing(const struct thread *t);

/* Runtime servers (borrowed). */
size_t thread_n_servers(const struct thread *t);
struct srv *thread_server_at(const struct thread *t, size_t i);
struct srv *thread_server(const struct thread *t, const char *name);
/* Why a name is not in the runtime, when a root's environment explains it. */
const char *thread_unavailable_reason(const struct thread *t, char *buf, size_t len);
/* Invalid server configs, config.toml's then the roots' (with pluginId):
 * [{name, reason[, pluginId]}] (new reference). */
json_t *thread_invalid_servers(const struct thread *t);

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
uint64_t threads_unloaded(void);

#endif
