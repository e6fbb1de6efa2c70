/* store.h - the thread store: durable threads in SQLite, in the
 * orchestrator's own state directory (never in a plugin root).
 *
 * <dir>/threads.db (0600, WAL journal, synchronous=NORMAL) holds thread
 * metadata, turns, items and the model-visible history; <dir>/lock (flock)
 * keeps a second orchestrator off the same directory. The schema is
 * versioned with PRAGMA user_version and brought up to date by ordered
 * migrations, one transaction each; a file of a newer schema than this
 * binary knows is refused before anything is written.
 *
 * Everything SQLite does runs on the store's own thread, never on the loop:
 * a commit (and now and then a checkpoint's fsync) or a 10,000-row list
 * would stall every client. The loop submits operations; the store thread
 * runs them in submission order and hands each completion back to the loop
 * (store_done_cb, on the loop thread), also in submission order. So a read
 * sees every write submitted before it, and a caller that waits for a
 * write's completion before telling a client knows the write is committed
 * (the durability rule: commit, then notify). Writes queued together are
 * committed in one transaction (group commit), each batch in a savepoint of
 * its own: a failed batch fails alone, its siblings commit.
 *
 * After a write of a thread fails (disk full, I/O error), later writes of
 * that thread fail too ("an earlier write failed"), until a load of the
 * thread: the loop's copy has diverged from the store, and only reloading
 * it makes the two agree again. Nothing half-written is ever read back: a
 * batch is committed whole or not at all.
 *
 * Ownership: a batch belongs to the caller until store_submit, then to the
 * store. Results handed to a store_done_cb are borrowed for the callback's
 * duration unless its description says they may be taken. An op returned
 * by store_submit is valid until its callback has run (or, after
 * store_op_cancel, forever invalid).
 *
 * State: a file static (one store per process). Every function but the
 * ones marked otherwise runs on the loop thread.
 */
#ifndef TANDEM_STORE_H
#define TANDEM_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct loop;
struct store_batch;
struct store_op;

#define STORE_DB_FILE "threads.db"
#define STORE_LOCK_FILE "lock"
#define STORE_SCHEMA_VERSION 1
#define STORE_LIST_MAX 1000u      /* threads per list page */
#define STORE_FILTER_MAX 256u     /* values in one list filter */
#define STORE_CURSOR_MAX 1024u    /* bytes of a cursor a client sends back */

/* rc of a completion: 0, or a negative errno with a message:
 * -ENOENT no such thread, -ENOSPC disk full, -EIO anything else the
 * database refused, -ESHUTDOWN the store stopped before running it. */
typedef void (*store_done_cb)(int rc, const char *err, void *result, void *arg);

/* Opens (creating dir 0700 and the database 0600 when missing); work
 * submitted from now on waits for store_run, which starts the store thread
 * (the orchestrator confines itself in between: a sandbox applies to a
 * single-threaded process). Fails with a reason in err: the directory is locked by
 * another orchestrator (-EBUSY), the file is not a database or is damaged
 * (-EINVAL), its schema is newer than this binary's (-EPROTO), or an
 * errno of the file system. */
int store_start(struct loop *l, const char *dir, char *err, size_t errlen);
/* Starts the store thread (once; 0 when the store is not open). */
int store_run(char *err, size_t errlen);
/* Runs what is still queued, stops the thread, runs every completion still
 * pending (callbacks not cancelled), closes the database and the lock. */
void store_stop(void);
bool store_is_open(void);
const char *store_path(void); /* the database file; NULL when closed */
const char *store_dir(void);  /* its directory (a static buffer); NULL when closed */

/* ---- records ------------------------------------------------------------ */

/* A thread's row. Strings are owned by the record (store_thread_clear). */
struct store_thread {
	char id[UUID_STR_SIZE];
	int64_t created_ms, updated_ms;
	bool archived;
	char *name;        /* NULL: unnamed */
	char *preview;     /* NULL: none yet */
	char *cwd;         /* NULL: unset */
	char *provider;    /* the model provider id at creation */
	char *forked_from; /* NULL: not a fork */
	int64_t read_rev;
	json_t *unread;    /* firstUnread object, NULL: read */
	json_t *meta;      /* the thread's settings, opaque to the store */
};
void store_thread_copy(struct store_thread *dst, const struct store_thread *src);
void store_thread_clear(struct store_thread *t);

/* A turn's row (strings and JSON borrowed when given to a batch). */
struct store_turn {
	int64_t seq;           /* 1, 2, ... within the thread */
	const char *id;
	const char *status;    /* completed, interrupted, failed, inProgress */
	int64_t started_at;    /* unix seconds; 0: unset */
	int64_t completed_at;  /* 0: unset */
	int64_t duration_ms;   /* -1: unset */
	const char *error;     /* NULL: none */
	json_t *usage;         /* NULL: none */
};

/* ---- writes ------------------------------------------------------------ */

/* A batch of writes of one thread, committed atomically. */
struct store_batch *store_batch_new(const char *thread_id);
void store_batch_free(struct store_batch *b);
/* The thread's row, inserted (a new thread) or replaced. */
void store_batch_thread(struct store_batch *b, const struct store_thread *rec);
/* Single fields of an existing row; -ENOENT at completion if there is none.
 * updated_ms 0 leaves updated_ms alone. */
enum store_field {
	STORE_F_NAME = 1u << 0,
	STORE_F_ARCHIVED = 1u << 1,
	STORE_F_PREVIEW = 1u << 2,
	STORE_F_READ = 1u << 3,
	STORE_F_META = 1u << 4, /* meta, cwd */
};
void store_batch_update(struct store_batch *b, unsigned fields, const struct store_thread *rec,
			int64_t updated_ms);
/* The thread, its turns, items and history; -ENOENT if there is none. */
void store_batch_delete(struct store_batch *b);
void store_batch_turn(struct store_batch *b, const struct store_turn *turn);
/* item is serialized now (the caller keeps it). */
void store_batch_item(struct store_batch *b, int64_t turn_seq, int64_t seq, int64_t started_ms,
		      int64_t completed_ms, const json_t *item);
void store_batch_history(struct store_batch *b, int64_t seq, int64_t turn_seq,
			 const json_t *entry);
size_t store_batch_size(const struct store_batch *b);
/* Queues b (taken); cb(rc, err, NULL, arg) once it is committed or failed.
 * cb may be NULL (fire and forget). */
struct store_op *store_submit(struct store_batch *b, store_done_cb cb, void *arg);

/* The callback of op will not run (its completion only frees it). */
void store_op_cancel(struct store_op *op);

/* ---- reads ------------------------------------------------------------- */

enum store_sort { STORE_SORT_CREATED, STORE_SORT_UPDATED };

struct store_list_query {
	bool archived;
	enum store_sort sort;
	bool ascending;
	size_t limit;            /* 1..STORE_LIST_MAX */
	bool after;              /* continue after (after_ms, after_id) */
	int64_t after_ms;
	char after_id[UUID_STR_SIZE];
	const char *const *cwds; /* NULL: any; else one of (n_cwds) */
	size_t n_cwds;
	const char *const *providers;
	size_t n_providers;
	const char *const *ids;  /* includedThreadIds */
	size_t n_ids;
	const char *const *not_ids;
	size_t n_not_ids;
	const char *search;      /* in name or preview, case-insensitive */
};
/* Result of store_list: rows in order; more: a next page exists. */
struct store_list_result {
	struct store_thread *rows;
	size_t n;
	bool more;
};
/* The query is copied. */
struct store_op *store_list(const struct store_list_query *q, store_done_cb cb, void *arg);

/* Result of store_load: the whole thread. Its JSON may be taken (set the
 * field to NULL); the rest is freed after the callback. Each entry of
 * turns is {"turn": Turn object with its "items" (by seq), "seq",
 * "histEnd": the history length at the end of that turn, "itemRows":
 * [[seq, startedMs, completedMs], ...] of its items (times 0: unknown),
 * "itemsLoaded": whether its items were read (see store_load)}. */
struct store_loaded {
	struct store_thread rec;
	json_t *turns;
	json_t *history;     /* [Responses API input item] by seq */
};
/* The items of the last items_last turns are read (STORE_ALL_ITEMS: all;
 * 0: none), and always those of a turn still "inProgress": parsing items
 * is most of what a load costs, and continuing a conversation needs only
 * the history. Also lifts the "earlier write failed" state of the thread
 * (see above). */
#define STORE_ALL_ITEMS INT64_MAX
struct store_op *store_load(const char *thread_id, int64_t items_last, store_done_cb cb,
			    void *arg);

/* ---- cursors ----------------------------------------------------------- */

/* An opaque, tamper-evident cursor for a position (JSON object) clients
 * hand back: base64url of the JSON and a keyed MAC. The key lives in the
 * database (cursors survive a restart), or in memory without a store.
 * store_cursor_open fails (-EINVAL, reason in err) for anything this store
 * did not seal. */
char *store_cursor_seal(const json_t *pos);
int store_cursor_open(const char *cursor, json_t **pos, char *err, size_t errlen);

/* ---- tests and benchmarks ---------------------------------------------- */

/* An op that does nothing: its callback runs once every op submitted
 * before it has completed (tests wait for the store with it). */
struct store_op *store_noop(store_done_cb cb, void *arg);
/* Ops submitted and not completed yet. */
size_t store_pending(void);
struct store_stats {
	uint64_t batches, commits, failed;
	uint64_t commit_ns_total, commit_ns_max; /* on the store thread */
};
void store_stats(struct store_stats *out);

#endif
