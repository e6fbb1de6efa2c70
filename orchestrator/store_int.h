/* store_int.h - what store.c (the queue, the thread, cursors) and
 * store_db.c (SQLite: opening, migrations, the statements) share. Private
 * to the store module. */
#ifndef TANDEM_STORE_INT_H
#define TANDEM_STORE_INT_H

#include <sqlite3.h>

#include "store.h"

#define STORE_KEY_BYTES 32u

enum store_stmt_kind { SS_THREAD, SS_UPDATE, SS_DELETE, SS_TURN, SS_ITEM, SS_HISTORY };

/* One write of a batch; every string owned. */
struct store_stmt {
	enum store_stmt_kind kind;
	struct store_thread rec;  /* SS_THREAD, SS_UPDATE */
	unsigned fields;          /* SS_UPDATE */
	int64_t updated_ms;       /* SS_UPDATE */
	int64_t seq, turn_seq;    /* SS_TURN (seq), SS_ITEM, SS_HISTORY */
	int64_t started, completed, duration_ms;
	char *id, *status, *error;
	char *body;               /* SS_ITEM, SS_HISTORY; usage of SS_TURN */
};

struct store_batch {
	char thread_id[UUID_STR_SIZE];
	struct store_stmt *stmts;
	size_t n, cap;
};

/* ---- store_db.c: runs on the store thread (and at open/close) ----------- */

#define THREAD_COLS \
	"pk, id, created_ms, updated_ms, archived, name, preview, cwd, provider, forked_from, " \
	"read_rev, unread, meta"

/* The prepared statements (store_db.c has their SQL). */
enum { Q_PK, Q_THREAD, Q_DELETE_ITEMS, Q_DELETE_TURNS, Q_DELETE_HISTORY, Q_DELETE_THREAD,
       Q_TURN, Q_ITEM, Q_HISTORY, Q_LOAD_THREAD, Q_LOAD_TURNS, Q_LOAD_ITEMS, Q_LOAD_HISTORY,
       Q_COUNT };

struct store_db {
	sqlite3 *db;
	char *path;
	int lock_fd;
	sqlite3_stmt *q[Q_COUNT];
};

/* "what: SQLite's reason"; disk full is -ENOSPC, the rest -EIO. */
int store_db_fail(struct store_db *d, int rc, char *err, size_t errlen, const char *what);

/* Takes the lock, opens or creates the database, migrates, reads the
 * cursor key into key. */
int store_db_open(const char *dir, struct store_db **out, uint8_t key[STORE_KEY_BYTES],
		  char *err, size_t errlen);
void store_db_close(struct store_db *db);
const char *store_db_path(const struct store_db *db);

/* Transactions of a group commit. */
int store_db_begin(struct store_db *db, char *err, size_t errlen);
int store_db_commit(struct store_db *db, char *err, size_t errlen);
void store_db_rollback(struct store_db *db);
/* One batch inside the open transaction, in a savepoint of its own. */
int store_db_batch(struct store_db *db, const struct store_batch *b, char *err, size_t errlen);

int store_db_list(struct store_db *db, const struct store_list_query *q,
		  struct store_list_result *out, char *err, size_t errlen);
int store_db_load(struct store_db *db, const char *id, int64_t items_last,
		  struct store_loaded *out, char *err, size_t errlen);
void store_loaded_clear(struct store_loaded *l);

#endif
