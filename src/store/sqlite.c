/* The SQLite backend: one sqlite3 connection per store thread, in WAL mode
 * so the readers never block the writer, with synchronous=NORMAL (a commit
 * survives a crash of the process, which is what acknowledging a message
 * promises). Statements are prepared on first use and kept per connection.
 *
 * A chatd process is the database's only writer, so the writer connection
 * remembers senders and memberships (store/write_cache.h): a message from a
 * known member is one plain INSERT, without RETURNING, which SQLite would
 * run through a temporary table. */
#include "store/backend.h"
#include "store/write_cache.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 5000

/* The plain insert of a message from a known member. */
#define INSERT_KNOWN_SQL                                                                           \
    "INSERT INTO messages (sender_id, room_id, content, client_id, created_at) "                   \
    "VALUES (?1, ?2, ?3, ?4, ?5) "                                                                 \
    "ON CONFLICT (sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING"

typedef struct {
    store_db_t base;
    sqlite3 *conn;
    sqlite3_stmt *stmts[STMT_COUNT];
    /* The writer's, made on first use. */
    sqlite3_stmt *insert_known;
    sqlite3_stmt *tx[3]; /* by tx_t */
    write_cache_t *cache;
} sqlite_db_t;

typedef enum { TX_BEGIN, TX_COMMIT, TX_ROLLBACK } tx_t;
static const char *const TX_SQL[] = {"BEGIN IMMEDIATE", "COMMIT", "ROLLBACK"};

static pthread_once_t global_config_once = PTHREAD_ONCE_INIT;

/* Memory statistics cost a global mutex around every SQLite allocation,
 * and chatd never reads them. Only possible before SQLite initialises:
 * when something else got there first, the default stays. */
static void global_config(void) {
    (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static void log_db_error(sqlite_db_t *d, const char *what) {
    log_error("database error", LOG_S("backend", "sqlite"), LOG_S("statement", what),
              LOG_S("error", sqlite3_errmsg(d->conn)));
}

/* "sqlite:PATH" or "sqlite://PATH". */
static const char *url_path(const char *url) {
    if (strncmp(url, "sqlite://", 9) == 0)
        return url + 9;
    return url + strlen("sqlite:");
}

static int first_column(void *out, int ncols, char **values, char **names) {
    (void)names;
    if (ncols > 0 && values[0] != NULL)
        snprintf(out, 16, "%s", values[0]);
    return 0;
}

static int run_pragmas(sqlite_db_t *d, char *err, size_t errlen) {
    static const char *const pragmas[] = {
        "PRAGMA synchronous=NORMAL", "PRAGMA foreign_keys=ON",
        /* wal_autocheckpoint stays at its default (~4 MiB): with
         * synchronous=NORMAL the WAL is synced at checkpoints, so a larger
         * value (5-13% less CPU per message, measured) would widen what a
         * power loss can take. */
    };
    sqlite3_busy_timeout(d->conn, SQLITE_BUSY_TIMEOUT_MS);
    char mode[16] = "";
    char *msg = NULL;
    if (sqlite3_exec(d->conn, "PRAGMA journal_mode=WAL", first_column, mode, &msg) != SQLITE_OK ||
        strcmp(mode, "wal") != 0) {
        snprintf(err, errlen, "cannot switch to WAL mode: %s", msg != NULL ? msg : mode);
        sqlite3_free(msg);
        return -1;
    }
    for (size_t i = 0; i < sizeof pragmas / sizeof pragmas[0]; i++) {
        if (sqlite3_exec(d->conn, pragmas[i], NULL, NULL, &msg) != SQLITE_OK) {
            snprintf(err, errlen, "%s: %s", pragmas[i], msg != NULL ? msg : "failed");
            sqlite3_free(msg);
            return -1;
        }
    }
    return 0;
}

static void sq_close(store_db_t *db) {
    sqlite_db_t *d = (sqlite_db_t *)db;
    if (d == NULL)
        return;
    for (int i = 0; i < STMT_COUNT; i++)
        sqlite3_finalize(d->stmts[i]);
    sqlite3_finalize(d->insert_known);
    for (int i = 0; i < 3; i++)
        sqlite3_finalize(d->tx[i]);
    write_cache_free(d->cache);
    sqlite3_close(d->conn);
    free(d);
}

static int sq_open(const char *url, store_db_t **out, char *err, size_t errlen) {
    const char *path = url_path(url);
    if (path[0] == '\0') {
        snprintf(err, errlen, "DATABASE_URL: sqlite: needs a file path (sqlite:PATH)");
        return -1;
    }
    pthread_once(&global_config_once, global_config);
    sqlite_db_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->base.backend = &store_backend_sqlite;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path, &d->conn, flags, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open SQLite database %s: %s", path,
                 d->conn != NULL ? sqlite3_errmsg(d->conn) : sqlite3_errstr(rc));
        goto fail;
    }
    sqlite3_extended_result_codes(d->conn, 1);
    char detail[256];
    if (run_pragmas(d, detail, sizeof detail) < 0) {
        snprintf(err, errlen, "cannot use SQLite database %s: %s", path, detail);
        goto fail;
    }
    *out = &d->base;
    return 0;
fail:
    sq_close(&d->base);
    return -1;
}

static int sq_ensure(store_db_t *db) {
    (void)db;
    return 0;
}

static bool sq_broken(store_db_t *db) {
    (void)db;
    return false;
}

static int sq_exec(store_db_t *db, const char *sql, char *err, size_t errlen) {
    sqlite_db_t *d = (sqlite_db_t *)db;
    char *msg = NULL;
    if (sqlite3_exec(d->conn, sql, NULL, NULL, &msg) == SQLITE_OK)
        return 0;
    if (err != NULL)
        snprintf(err, errlen, "%s", msg != NULL ? msg : "failed");
    else
        log_db_error(d, "exec");
    sqlite3_free(msg);
    return -1;
}

/* The shared SQL numbers its parameters $1..$N; SQLite spells that ?1..?N. */
static sqlite3_stmt *statement(sqlite_db_t *d, store_stmt_t id) {
    if (d->stmts[id] != NULL)
        return d->stmts[id];
    size_t len = strlen(store_sql[id].sql);
    char *sql = store_strndup(store_sql[id].sql, len);
    if (sql == NULL)
        return NULL;
    for (char *p = sql; (p = strchr(p, '$')) != NULL; p++)
        *p = '?';
    int rc =
        sqlite3_prepare_v3(d->conn, sql, (int)len, SQLITE_PREPARE_PERSISTENT, &d->stmts[id], NULL);
    free(sql);
    if (rc != SQLITE_OK) {
        log_db_error(d, store_sql[id].name);
        d->stmts[id] = NULL;
    }
    return d->stmts[id];
}

static int sq_query(store_db_t *db, store_stmt_t id, const db_param_t *params, int nparams,
                    db_rows_t *rows) {
    sqlite_db_t *d = (sqlite_db_t *)db;
    sqlite3_stmt *st = statement(d, id);
    if (st == NULL)
        return -1;
    for (int i = 0; i < nparams; i++) {
        const db_param_t *p = &params[i];
        int rc = SQLITE_OK;
        if (p->type == DB_INT)
            rc = sqlite3_bind_int64(st, i + 1, p->i);
        else if (p->type == DB_TEXT)
            rc = sqlite3_bind_text64(st, i + 1, p->s, p->len, SQLITE_STATIC, SQLITE_UTF8);
        else
            rc = sqlite3_bind_null(st, i + 1);
        if (rc != SQLITE_OK) {
            log_db_error(d, store_sql[id].name);
            sqlite3_clear_bindings(st);
            return -1;
        }
    }
    *rows = (db_rows_t){.db = db, .stmt = id, .handle = st};
    return 0;
}

static int sq_next(db_rows_t *rows) {
    int rc = sqlite3_step(rows->handle);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    log_db_error((sqlite_db_t *)rows->db, store_sql[rows->stmt].name);
    return -1;
}

static int64_t sq_col_int(db_rows_t *rows, int col) {
    return sqlite3_column_int64(rows->handle, col);
}

static const char *sq_col_text(db_rows_t *rows, int col, size_t *len) {
    if (sqlite3_column_type(rows->handle, col) == SQLITE_NULL) {
        *len = 0;
        return NULL;
    }
    const char *text = (const char *)sqlite3_column_text(rows->handle, col);
    *len = text == NULL ? 0 : (size_t)sqlite3_column_bytes(rows->handle, col);
    return text == NULL ? "" : text;
}

static void sq_finish(db_rows_t *rows) {
    /* Resetting ends the statement's implicit read transaction at once. */
    sqlite3_reset(rows->handle);
    sqlite3_clear_bindings(rows->handle);
}

/* ------------------------------------------------------------ writes */

/* Stores a message whose sender and membership the cache knows. Returns 1
 * when stored (job->out filled), 0 when the generic insert must run (not
 * known, a client_id repeat, or the sender or room deleted behind chatd's
 * back: nothing was written), -1 on a database error. */
static int insert_known(sqlite_db_t *d, store_job_t *job) {
    int64_t sender = job->auth_user_id, room = job->in.room_id;
    const cached_user_t *u = d->cache != NULL ? write_cache_user(d->cache, sender) : NULL;
    if (u == NULL || !write_cache_is_member(d->cache, room, sender))
        return 0;
    if (d->insert_known == NULL &&
        sqlite3_prepare_v3(d->conn, INSERT_KNOWN_SQL, -1, SQLITE_PREPARE_PERSISTENT,
                           &d->insert_known, NULL) != SQLITE_OK) {
        log_db_error(d, "message_insert_known");
        return -1;
    }
    sqlite3_stmt *st = d->insert_known;
    int64_t now = time_wall_ms();
    const char *cid = job->in.client_id;
    bool bound = sqlite3_bind_int64(st, 1, sender) == SQLITE_OK &&
                 sqlite3_bind_int64(st, 2, room) == SQLITE_OK &&
                 sqlite3_bind_text64(st, 3, job->in.content, job->in.content_len, SQLITE_STATIC,
                                     SQLITE_UTF8) == SQLITE_OK &&
                 (cid != NULL ? sqlite3_bind_text(st, 4, cid, -1, SQLITE_STATIC)
                              : sqlite3_bind_null(st, 4)) == SQLITE_OK &&
                 sqlite3_bind_int64(st, 5, now) == SQLITE_OK;
    int rc = bound ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc != SQLITE_DONE && rc != SQLITE_CONSTRAINT_FOREIGNKEY)
        log_db_error(d, "message_insert_known");
    int inserted = rc == SQLITE_DONE ? sqlite3_changes(d->conn) : 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
        write_cache_clear(d->cache);
    else if (rc != SQLITE_DONE)
        return -1;
    if (inserted == 0)
        return 0;
    return write_cache_fill_post(u, job, sqlite3_last_insert_rowid(d->conn), now) < 0 ? -1 : 1;
}

/* After the generic insert stored a message: its sender exists under these
 * names and is now a member of the room. A cache that cannot grow is only
 * slower. */
static void learn_sender(sqlite_db_t *d, const store_job_t *job) {
    if (d->cache == NULL && (d->cache = write_cache_new()) == NULL)
        return;
    write_cache_learn_post(d->cache, job);
}

static int sq_message_insert(store_db_t *db, store_job_t *job) {
    sqlite_db_t *d = (sqlite_db_t *)db;
    int rc = insert_known(d, job);
    if (rc != 0)
        return rc < 0 ? -1 : 0;
    if (store_ops_message_insert(db, job) < 0)
        return -1;
    learn_sender(d, job);
    return 0;
}

/* Runs BEGIN, COMMIT or ROLLBACK through a statement prepared once:
 * sqlite3_exec would parse it again for every batch, and SQLite's parser
 * allocates a large stack each time. 0, or -1 (logged). */
static int run_tx(sqlite_db_t *d, tx_t which) {
    sqlite3_stmt **st = &d->tx[which];
    int rc = SQLITE_OK;
    if (*st == NULL)
        rc = sqlite3_prepare_v3(d->conn, TX_SQL[which], -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(*st);
        sqlite3_reset(*st);
    }
    if (rc == SQLITE_DONE)
        return 0;
    log_db_error(d, TX_SQL[which]);
    return -1;
}

/* store_ops_write_batch, keeping the cache true: what a rolled-back
 * transaction taught it is forgotten. */
static int sq_write_batch(store_db_t *db, store_job_t **jobs, size_t n) {
    sqlite_db_t *d = (sqlite_db_t *)db;
    if (run_tx(d, TX_BEGIN) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        write_cache_before(d->cache, jobs[i]); /* keeps the cache true */
        if (store_ops_run(db, jobs[i]) < 0)
            goto rollback;
    }
    if (run_tx(d, TX_COMMIT) == 0)
        return 0;
rollback:
    write_cache_clear(d->cache);
    run_tx(d, TX_ROLLBACK);
    return -1;
}

const store_backend_t store_backend_sqlite = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .ensure = sq_ensure,
    .broken = sq_broken,
    .exec = sq_exec,
    .query = sq_query,
    .next = sq_next,
    .col_int = sq_col_int,
    .col_text = sq_col_text,
    .finish = sq_finish,
    .write_batch = sq_write_batch,
    .message_insert = sq_message_insert,
    /* IMMEDIATE takes the write lock up front, so a batch never fails
     * half-way with SQLITE_BUSY on its first write. */
    .begin_sql = "BEGIN IMMEDIATE",
    .migrate_lock = NULL,
    .migrate_unlock = NULL,
};
