/* store_db.c - the thread store's SQLite side (see store.h): opening the
 * state directory, the schema and its migrations, and the statements.
 * Runs on the store thread, except store_db_open and store_db_close, which
 * run before the thread starts and after it stopped. The reads (list and
 * load) are in store_read.c. */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* The schema, one migration per version: migrations[i] takes a database at
 * user_version i to i + 1, in one transaction. Append, never edit: a
 * released migration is what older databases went through. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE threads ("
	" pk INTEGER PRIMARY KEY,"
	" id TEXT NOT NULL UNIQUE,"
	" created_ms INTEGER NOT NULL,"
	" updated_ms INTEGER NOT NULL,"
	" archived INTEGER NOT NULL DEFAULT 0,"
	" name TEXT, preview TEXT, cwd TEXT, provider TEXT, forked_from TEXT,"
	" read_rev INTEGER NOT NULL DEFAULT 0, unread TEXT,"
	" meta TEXT NOT NULL);"
	"CREATE INDEX threads_by_created ON threads(archived, created_ms, id);"
	"CREATE INDEX threads_by_updated ON threads(archived, updated_ms, id);"
	"CREATE TABLE turns ("
	" thread INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,"
	" status TEXT NOT NULL, started_at INTEGER, completed_at INTEGER,"
	" duration_ms INTEGER, error TEXT, usage TEXT,"
	" PRIMARY KEY (thread, seq)) WITHOUT ROWID;"
	"CREATE TABLE items ("
	" thread INTEGER NOT NULL, turn INTEGER NOT NULL, seq INTEGER NOT NULL,"
	" started_ms INTEGER, completed_ms INTEGER, body TEXT NOT NULL,"
	" PRIMARY KEY (thread, turn, seq)) WITHOUT ROWID;"
	"CREATE TABLE history ("
	" thread INTEGER NOT NULL, seq INTEGER NOT NULL, turn INTEGER NOT NULL,"
	" body TEXT NOT NULL,"
	" PRIMARY KEY (thread, seq)) WITHOUT ROWID;",
};
_Static_assert(ARRAY_SIZE(migrations) == STORE_SCHEMA_VERSION, "one migration per version");

static const char *const queries[Q_COUNT] = {
	[Q_PK] = "SELECT pk FROM threads WHERE id = ?1",
	[Q_THREAD] = "INSERT INTO threads (id, created_ms, updated_ms, archived, name, preview, "
		     "cwd, provider, forked_from, read_rev, unread, meta) "
		     "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
		     "ON CONFLICT (id) DO UPDATE SET created_ms = excluded.created_ms, "
		     "updated_ms = excluded.updated_ms, archived = excluded.archived, "
		     "name = excluded.name, preview = excluded.preview, cwd = excluded.cwd, "
		     "provider = excluded.provider, forked_from = excluded.forked_from, "
		     "read_rev = excluded.read_rev, unread = excluded.unread, meta = excluded.meta",
	[Q_DELETE_ITEMS] = "DELETE FROM items WHERE thread = ?1",
	[Q_DELETE_TURNS] = "DELETE FROM turns WHERE thread = ?1",
	[Q_DELETE_HISTORY] = "DELETE FROM history WHERE thread = ?1",
	[Q_DELETE_THREAD] = "DELETE FROM threads WHERE pk = ?1",
	[Q_TURN] = "INSERT OR REPLACE INTO turns (thread, seq, id, status, started_at, "
		   "completed_at, duration_ms, error, usage) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[Q_ITEM] = "INSERT OR REPLACE INTO items (thread, turn, seq, started_ms, completed_ms, body) "
		   "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[Q_HISTORY] = "INSERT OR REPLACE INTO history (thread, seq, turn, body) VALUES (?1, ?2, ?3, ?4)",
	[Q_LOAD_THREAD] = "SELECT " THREAD_COLS " FROM threads WHERE id = ?1",
	[Q_LOAD_TURNS] = "SELECT seq, id, status, started_at, completed_at, duration_ms, error "
			 "FROM turns WHERE thread = ?1 ORDER BY seq",
	[Q_LOAD_ITEMS] = "SELECT turn, seq, started_ms, completed_ms, body FROM items "
			 "WHERE thread = ?1 AND (turn >= ?2 OR turn IN (SELECT seq FROM turns "
			 "WHERE thread = ?1 AND status = 'inProgress')) ORDER BY turn, seq",
	[Q_LOAD_HISTORY] = "SELECT seq, turn, body FROM history WHERE thread = ?1 ORDER BY seq",
};

/* ---- errors ------------------------------------------------------------ */

int store_db_fail(struct store_db *d, int rc, char *err, size_t errlen, const char *what)
{
	const char *why = d && d->db ? sqlite3_errmsg(d->db) : sqlite3_errstr(rc);

	snprintf(err, errlen, "%s: %s", what, why ? why : sqlite3_errstr(rc));
	return (rc & 0xff) == SQLITE_FULL ? -ENOSPC : -EIO;
}

static int exec(struct store_db *d, const char *sql, char *err, size_t errlen, const char *what)
{
	int rc = sqlite3_exec(d->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : store_db_fail(d, rc, err, errlen, what);
}

/* ---- the state directory ----------------------------------------------- */

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
	_cleanup_free_ char *p = xstrdup(dir);
	struct stat st;

	for (char *s = p + 1; ; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(p, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot create the state directory %s: %s", p,
				 strerror(errno));
			return -errno;
		}
		*s = c;
		if (!c)
			break;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "the state directory %s is not a directory", dir);
		return -ENOTDIR;
	}
	return 0;
}

/* flock on <dir>/lock: one orchestrator per state directory. The file
 * holds the owner's pid, for the message the next one prints. */
static int take_lock(const char *dir, int *out, char *err, size_t errlen)
{
	_cleanup_free_ char *path = xasprintf("%s/%s", dir, STORE_LOCK_FILE);
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	char buf[32] = "";
	ssize_t n;

	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		if (e != EWOULDBLOCK) {
			snprintf(err, errlen, "cannot lock %s: %s", path, strerror(e));
			return -e;
		}
		n = pread(fd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(err, errlen,
			 "the state directory %s is in use by another orchestrator%s%s%s (it holds "
			 "%s); two orchestrators must not share one thread store", dir,
			 *buf ? " (pid " : "", buf, *buf ? ")" : "", path);
		return -EBUSY;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -EIO;
	}
	*out = TAKE_FD(fd);
	return 0;
}

/* Before SQLite touches the file: is it a database, and of a schema we
 * know? Read from the header (user_version is at offset 60), so a newer
 * database is refused without a byte written. (A newer schema committed
 * only to the WAL is caught again after opening, before any write.) */
static int check_header(const char *path, char *err, size_t errlen)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char h[100];
	ssize_t n;
	uint32_t v;

	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -errno;
	}
	n = read(fd, h, sizeof(h));
	if (n == 0)
		return 0; /* an empty file is an empty database to SQLite */
	if (n < (ssize_t)sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0) {
		snprintf(err, errlen,
			 "%s is not a SQLite database (damaged or overwritten?); refusing to start. "
			 "Move it away to start with an empty thread store", path);
		return -EINVAL;
	}
	v = (uint32_t)h[60] << 24 | (uint32_t)h[61] << 16 | (uint32_t)h[62] << 8 | h[63];
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "%s has schema version %" PRIu32 ", newer than this tandem-orchestrator "
			 "knows (%d): refusing to start; the file was not changed", path, v,
			 STORE_SCHEMA_VERSION);
		return -EPROTO;
	}
	return 0;
}

/* ---- schema ------------------------------------------------------------ */

static int user_version(struct store_db *d, int *out, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(d->db, "PRAGMA user_version", -1, &st, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		rc = store_db_fail(d, rc, err, errlen, d->path);
		sqlite3_finalize(st);
		return rc;
	}
	*out = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return 0;
}

/* Before anything is written: a schema committed to the WAL only (the
 * header check cannot see it) is caught here. */
static int check_version(struct store_db *d, char *err, size_t errlen)
{
	int v = 0, r = user_version(d, &v, err, errlen);

	if (r < 0) {
		if (r == -EIO) {
			snprintf(err, errlen, "%s is not a usable SQLite database (%s); refusing to "
				 "start. Move it away to start with an empty thread store", d->path,
				 sqlite3_errmsg(d->db));
			return -EINVAL;
		}
		return r;
	}
	if (v > STORE_SCHEMA_VERSION) {
		snprintf(err, errlen,
			 "%s has schema version %d, newer than this tandem-orchestrator knows (%d): "
			 "refusing to start; the file was not changed", d->path, v,
			 STORE_SCHEMA_VERSION);
		return -EPROTO;
	}
	return 0;
}

static int migrate(struct store_db *d, char *err, size_t errlen)
{
	char sql[64];
	int v = 0, r = user_version(d, &v, err, errlen);

	if (r < 0)
		return r;
	for (; v < STORE_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if ((r = exec(d, "BEGIN IMMEDIATE", err, errlen, "migration")) < 0)
			return r;
		if ((r = exec(d, migrations[v], err, errlen, "migration")) < 0 ||
		    (r = exec(d, sql, err, errlen, "migration")) < 0 ||
		    (r = exec(d, "COMMIT", err, errlen, "migration")) < 0) {
			sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	return 0;
}

/* The key that seals cursors, made once per database. */
static int cursor_key(struct store_db *d, uint8_t key[STORE_KEY_BYTES], char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(d->db, "SELECT value FROM meta WHERE key = 'cursor_key'", -1,
				    &st, NULL);

	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) == STORE_KEY_BYTES) {
		memcpy(key, sqlite3_column_blob(st, 0), STORE_KEY_BYTES);
		sqlite3_finalize(st);
		return 0;
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return store_db_fail(d, rc, err, errlen, d->path);
	randombytes_buf(key, STORE_KEY_BYTES);
	rc = sqlite3_prepare_v2(d->db, "INSERT OR REPLACE INTO meta (key, value) "
			       "VALUES ('cursor_key', ?1)", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_blob(st, 1, key, STORE_KEY_BYTES, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, d->path);
}

/* quick_check reads every page once: a damaged file is refused at start
 * rather than found by a client's read later. */
static int check_integrity(struct store_db *d, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(d->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	const char *res;

	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen,
			 "%s is damaged (%s); refusing to start. Move it away to start with an "
			 "empty thread store", d->path, sqlite3_errmsg(d->db));
		sqlite3_finalize(st);
		return -EINVAL;
	}
	res = (const char *)sqlite3_column_text(st, 0);
	if (!res || strcmp(res, "ok") != 0) {
		snprintf(err, errlen,
			 "%s is damaged (%.200s); refusing to start. Move it away to start with "
			 "an empty thread store", d->path, res ? res : "?");
		sqlite3_finalize(st);
		return -EINVAL;
	}
	sqlite3_finalize(st);
	return 0;
}

static int configure(struct store_db *d, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;
	bool wal;

	sqlite3_extended_result_codes(d->db, 1);
	/* Another process's lock means a second orchestrator: fail, never wait. */
	sqlite3_busy_timeout(d->db, 0);
	rc = sqlite3_prepare_v2(d->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	wal = rc == SQLITE_ROW &&
	      strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
	sqlite3_finalize(st);
	if (!wal) {
		if (rc == SQLITE_ROW)
			snprintf(err, errlen, "%s: cannot use the WAL journal", d->path);
		else if ((rc & 0xff) == SQLITE_NOTADB || (rc & 0xff) == SQLITE_CORRUPT)
			snprintf(err, errlen, "%s is not a usable SQLite database (%s); refusing to "
				 "start. Move it away to start with an empty thread store", d->path,
				 sqlite3_errmsg(d->db));
		else
			return store_db_fail(d, rc, err, errlen, d->path);
		return -EINVAL;
	}
	/* NORMAL in WAL mode: a commit is a write() to the WAL, which a killed
	 * process cannot take back; only a power loss can cost the commits since
	 * the last checkpoint (README, "Durable threads"). */
	if ((rc = exec(d, "PRAGMA synchronous = NORMAL", err, errlen, d->path)) < 0)
		return rc;
	/* Temporary tables and statement journals in memory: the orchestrator
	 * writes nowhere but its home and its state directory. */
	return exec(d, "PRAGMA temp_store = MEMORY", err, errlen, d->path);
}

int store_db_open(const char *dir, struct store_db **out, uint8_t key[STORE_KEY_BYTES],
		  char *err, size_t errlen)
{
	struct store_db *d = xcalloc(1, sizeof(*d));
	int r, fd;

	d->lock_fd = -1;
	d->path = xasprintf("%s/%s", dir, STORE_DB_FILE);
	if ((r = make_dirs(dir, err, errlen)) < 0 || (r = take_lock(dir, &d->lock_fd, err, errlen)) < 0 ||
	    (r = check_header(d->path, err, errlen)) < 0)
		goto fail;
	/* Created here, so SQLite finds it 0600 (its WAL and shared-memory
	 * files take the database's mode). */
	fd = open(d->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = -errno;
		snprintf(err, errlen, "cannot open %s: %s", d->path, strerror(errno));
		goto fail;
	}
	close(fd);
	r = sqlite3_open_v2(d->path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK) {
		r = store_db_fail(d, r, err, errlen, d->path);
		goto fail;
	}
	if ((r = check_version(d, err, errlen)) < 0 || (r = configure(d, err, errlen)) < 0 ||
	    (r = migrate(d, err, errlen)) < 0 ||
	    (r = check_integrity(d, err, errlen)) < 0 || (r = cursor_key(d, key, err, errlen)) < 0)
		goto fail;
	for (int i = 0; i < Q_COUNT; i++) {
		int rc = sqlite3_prepare_v3(d->db, queries[i], -1, SQLITE_PREPARE_PERSISTENT,
					    &d->q[i], NULL);

		if (rc != SQLITE_OK) {
			r = store_db_fail(d, rc, err, errlen, "preparing a statement");
			goto fail;
		}
	}
	*out = d;
	return 0;
fail:
	store_db_close(d);
	return r;
}

void store_db_close(struct store_db *d)
{
	if (!d)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(d->q[i]);
	if (d->db)
		sqlite3_close(d->db);
	safe_close(d->lock_fd); /* the flock goes with it */
	free(d->path);
	free(d);
}

const char *store_db_path(const struct store_db *d) { return d->path; }

/* ---- transactions ------------------------------------------------------ */

int store_db_begin(struct store_db *d, char *err, size_t errlen)
{
	return exec(d, "BEGIN", err, errlen, "thread store");
}

int store_db_commit(struct store_db *d, char *err, size_t errlen)
{
	return exec(d, "COMMIT", err, errlen, "thread store");
}

void store_db_rollback(struct store_db *d)
{
	if (!sqlite3_get_autocommit(d->db))
		sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- writes ------------------------------------------------------------ */

static int bind_text(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

static int bind_opt_int(sqlite3_stmt *st, int i, int64_t v, int64_t unset)
{
	return v == unset ? sqlite3_bind_null(st, i) : sqlite3_bind_int64(st, i, v);
}

/* Steps a write to its end and resets it. */
static int step_done(struct store_db *d, sqlite3_stmt *st, char *err, size_t errlen,
		     const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, what);
}

static int thread_pk(struct store_db *d, const char *id, int64_t *pk, char *err, size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_PK];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*pk = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc == SQLITE_DONE) {
		snprintf(err, errlen, "no thread '%s' in the store", id);
		return -ENOENT;
	}
	return store_db_fail(d, rc, err, errlen, "thread store");
}

static int put_thread(struct store_db *d, const struct store_thread *t, char *err, size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_THREAD];
	_cleanup_free_ char *unread = t->unread ? json_dumps(t->unread, JSON_COMPACT) : NULL;
	_cleanup_free_ char *meta = json_dumps(t->meta ? t->meta : json_object(), JSON_COMPACT);

	sqlite3_bind_text(st, 1, t->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t->created_ms);
	sqlite3_bind_int64(st, 3, t->updated_ms);
	sqlite3_bind_int(st, 4, t->archived);
	bind_text(st, 5, t->name);
	bind_text(st, 6, t->preview);
	bind_text(st, 7, t->cwd);
	bind_text(st, 8, t->provider);
	bind_text(st, 9, t->forked_from);
	sqlite3_bind_int64(st, 10, t->read_rev);
	bind_text(st, 11, unread);
	bind_text(st, 12, meta ? meta : "{}");
	return step_done(d, st, err, errlen, "thread store");
}

/* ", col = ?N" with the next parameter number (?1 is the pk). */
static void add(char *sql, size_t len, int *n, const char *col)
{
	size_t at = strlen(sql);

	snprintf(sql + at, len - at, ", %s = ?%d", col, ++*n);
}

/* UPDATE of the fields named; binds ?1 pk, then the values in order. */
static int update_thread(struct store_db *d, int64_t pk, const struct store_stmt *s, char *err,
			 size_t errlen)
{
	const struct store_thread *t = &s->rec;
	_cleanup_free_ char *unread = NULL, *meta = NULL;
	char sql[256] = "UPDATE threads SET pk = pk";
	sqlite3_stmt *st = NULL;
	int n = 1, i = 2, rc;

	if (s->fields & STORE_F_NAME)
		add(sql, sizeof(sql), &n, "name");
	if (s->fields & STORE_F_ARCHIVED)
		add(sql, sizeof(sql), &n, "archived");
	if (s->fields & STORE_F_PREVIEW)
		add(sql, sizeof(sql), &n, "preview");
	if (s->fields & STORE_F_READ) {
		add(sql, sizeof(sql), &n, "read_rev");
		add(sql, sizeof(sql), &n, "unread");
	}
	if (s->fields & STORE_F_META) {
		add(sql, sizeof(sql), &n, "meta");
		add(sql, sizeof(sql), &n, "cwd");
	}
	if (s->updated_ms)
		add(sql, sizeof(sql), &n, "updated_ms");
	strncat(sql, " WHERE pk = ?1", sizeof(sql) - strlen(sql) - 1);
	rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_db_fail(d, rc, err, errlen, "thread store");
	sqlite3_bind_int64(st, 1, pk);
	if (s->fields & STORE_F_NAME)
		bind_text(st, i++, t->name);
	if (s->fields & STORE_F_ARCHIVED)
		sqlite3_bind_int(st, i++, t->archived);
	if (s->fields & STORE_F_PREVIEW)
		bind_text(st, i++, t->preview);
	if (s->fields & STORE_F_READ) {
		unread = t->unread ? json_dumps(t->unread, JSON_COMPACT) : NULL;
		sqlite3_bind_int64(st, i++, t->read_rev);
		bind_text(st, i++, unread);
	}
	if (s->fields & STORE_F_META) {
		meta = json_dumps(t->meta ? t->meta : json_object(), JSON_COMPACT);
		bind_text(st, i++, meta ? meta : "{}");
		bind_text(st, i++, t->cwd);
	}
	if (s->updated_ms)
		sqlite3_bind_int64(st, i++, s->updated_ms);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : store_db_fail(d, rc, err, errlen, "thread store");
}

static int delete_thread(struct store_db *d, int64_t pk, char *err, size_t errlen)
{
	static const int order[] = { Q_DELETE_ITEMS, Q_DELETE_TURNS, Q_DELETE_HISTORY,
				     Q_DELETE_THREAD };
	int r;

	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		sqlite3_bind_int64(d->q[order[i]], 1, pk);
		if ((r = step_done(d, d->q[order[i]], err, errlen, "thread store")) < 0)
			return r;
	}
	return 0;
}

static int put_turn(struct store_db *d, int64_t pk, const struct store_stmt *s, char *err,
		    size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_TURN];

	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_int64(st, 2, s->seq);
	bind_text(st, 3, s->id);
	bind_text(st, 4, s->status);
	bind_opt_int(st, 5, s->started, 0);
	bind_opt_int(st, 6, s->completed, 0);
	bind_opt_int(st, 7, s->duration_ms, -1);
	bind_text(st, 8, s->error);
	bind_text(st, 9, s->body);
	return step_done(d, st, err, errlen, "thread store");
}

static int put_item(struct store_db *d, int64_t pk, const struct store_stmt *s, char *err,
		    size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_ITEM];

	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_int64(st, 2, s->turn_seq);
	sqlite3_bind_int64(st, 3, s->seq);
	bind_opt_int(st, 4, s->started, 0);
	bind_opt_int(st, 5, s->completed, 0);
	bind_text(st, 6, s->body);
	return step_done(d, st, err, errlen, "thread store");
}

static int put_history(struct store_db *d, int64_t pk, const struct store_stmt *s, char *err,
		       size_t errlen)
{
	sqlite3_stmt *st = d->q[Q_HISTORY];

	sqlite3_bind_int64(st, 1, pk);
	sqlite3_bind_int64(st, 2, s->seq);
	sqlite3_bind_int64(st, 3, s->turn_seq);
	bind_text(st, 4, s->body);
	return step_done(d, st, err, errlen, "thread store");
}

static int run_stmts(struct store_db *d, const struct store_batch *b, char *err, size_t errlen)
{
	int64_t pk = 0;
	bool have_pk = false;
	int r = 0;

	for (size_t i = 0; i < b->n && r == 0; i++) {
		const struct store_stmt *s = &b->stmts[i];

		if (s->kind == SS_THREAD) {
			if ((r = put_thread(d, &s->rec, err, errlen)) < 0)
				break;
			have_pk = false; /* resolved again below */
			continue;
		}
		if (!have_pk && (r = thread_pk(d, b->thread_id, &pk, err, errlen)) < 0)
			break;
		have_pk = true;
		switch (s->kind) {
		case SS_UPDATE: r = update_thread(d, pk, s, err, errlen); break;
		case SS_DELETE: r = delete_thread(d, pk, err, errlen); have_pk = false; break;
		case SS_TURN: r = put_turn(d, pk, s, err, errlen); break;
		case SS_ITEM: r = put_item(d, pk, s, err, errlen); break;
		case SS_HISTORY: r = put_history(d, pk, s, err, errlen); break;
		case SS_THREAD: break;
		}
	}
	return r;
}

int store_db_batch(struct store_db *d, const struct store_batch *b, char *err, size_t errlen)
{
	int r = exec(d, "SAVEPOINT batch", err, errlen, "thread store");

	if (r < 0)
		return r;
	r = run_stmts(d, b, err, errlen);
	if (r < 0)
		sqlite3_exec(d->db, "ROLLBACK TO batch", NULL, NULL, NULL);
	sqlite3_exec(d->db, "RELEASE batch", NULL, NULL, NULL);
	return r;
}

