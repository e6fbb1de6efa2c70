/* thread_int.h - what thread.c (roots, the runtime, projection, events)
 * and thread_life.c (creation, the store, subscribers, loading, unloading)
 * share: the thread itself. Private to the thread module. */
#ifndef TANDEM_THREAD_INT_H
#define TANDEM_THREAD_INT_H

#include "store.h"
#include "thread.h"

struct troot;

struct tenv {
	char *id;
	char *cwd; /* NULL: the thread's */
};

struct waiter {
	thread_cb cb;
	void *arg;
};

struct twrite;  /* a write in flight (thread_life.c) */
struct tnote;   /* an outbox entry (thread_life.c) */
struct tsaved;  /* a thread_when_saved waiter (thread_life.c) */

struct thread {
	struct thread *next;
	struct store_thread rec; /* id, times, name, preview, meta = the settings */
	char *cwd;
	char *model;
	struct tenv *envs;  /* the thread/start environments, when given */
	uint32_t n_envs;
	bool has_envs;
	struct troot *roots;
	uint32_t n_roots;
	bool global;
	bool ephemeral;     /* memory only */
	/* clients */
	uint64_t *subs;     /* subscribed sessions */
	uint32_t n_subs, cap_subs;
	uint64_t used_ms;   /* last use, monotonic */
	/* the store */
	uint64_t wseq_sent, wseq_done; /* writes submitted / completed */
	struct twrite *writes;
	struct tnote *out_head, **out_tail;
	char *store_error;
	/* runtime (thread.c) */
	bool built;
	uint64_t ready[THREAD_MAX_ROOTS / 64];
	struct srv **rt;
	uint32_t n_rt;
	struct waiter *waiters;
	uint32_t n_waiters, cap_waiters;
	struct waiter *watchers; /* thread_watch */
	uint32_t n_watchers, cap_watchers;
	bool detached;           /* in no listing (thread_spec.detached) */
	bool closing;            /* thread_free runs: watchers let go */
	uint64_t rediscoveries, builds;
	/* conversation */
	json_t *history;    /* Responses API input items, every turn so far */
	json_t *usage;      /* token usage summed since it was loaded (thread_usage) */
	json_t *turns;      /* finished turns (thread.h) */
	struct turn *turn;  /* the running one */
};

/* thread.c: roots from a spec (copied), and everything the runtime holds
 * (roots included) freed; the global thread's reset. */
void thread_roots_set(struct thread *t, const struct thread_root_spec *roots, size_t n);
size_t thread_n_roots(const struct thread *t);
const char *thread_root_at(const struct thread *t, size_t i, const char **env_id,
			   const char **path);
void thread_runtime_free(struct thread *t);
void thread_global_reset(void);

/* thread_life.c, for thread_load.c. */
int64_t thread_wall_ms(void);
/* A thread struct with spec's settings, linked, not written, no id. */
int thread_alloc(const struct thread_spec *spec, struct thread **out, char *err,
		 size_t errlen);
/* Unlinks and frees t; waiters of its saves get -ECANCELED and why. */
void thread_free(struct thread *t, const char *why);
/* Delivers the outbox now: a held notification whose write has not
 * completed is dropped (or sent, for thread_notify_after). */
void thread_flush(struct thread *t);
/* The spec of stored settings (strings borrowed from m; thread_spec_free
 * frees its arrays, also after a failure). */
int thread_meta_to_spec(json_t *m, struct thread_spec *spec, char *err, size_t errlen);
void thread_spec_free(struct thread_spec *spec);
/* thread.c: calls the watchers (thread_watch) once. */
void thread_watchers_run(struct thread *t);
/* Every loaded thread, detached ones included (environment events and
 * reloads reach them too), for thread.c. */
struct thread *thread_all_first(void);
struct thread *thread_all_next(const struct thread *t);
/* After thread_free_all (shutdown): nothing is loaded any more. */
bool threads_stopped(void);

#endif
