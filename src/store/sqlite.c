/* The SQLite backend: one sqlite3 connection per store thread, in WAL mode
 * so the readers never block the writer, with synchronous=NORMAL (a commit
 * survives a crash of the process, which is what acknowledging a message
 * promises). Statements are prepared on first use and kept per connection. */
#include "store/backend.h"

#include "core/log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 5000

typedef struct {
    store_db_t base;
    sqlite3 *conn;
    sqlite3_stmt *stmts[STMT_COUNT];
} sqlite_db_t;

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
        "PRAGMA synchronous=NORMAL",
        "PRAGMA foreign_keys=ON",
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
    sqlite3_close(d->conn);
    free(d);
}

static int sq_open(const char *url, store_db_t **out, char *err, size_t errlen) {
    const char *path = url_path(url);
    if (path[0] == '\0') {
        snprintf(err, errlen, "DATABASE_URL: sqlite: needs a file path (sqlite:PATH)");
        return -1;
    }
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
    .write_batch = store_ops_write_batch,
    .message_insert = NULL,
    /* IMMEDIATE takes the write lock up front, so a batch never fails
     * half-way with SQLITE_BUSY on its first write. */
    .begin_sql = "BEGIN IMMEDIATE",
    .migrate_lock = NULL,
    .migrate_unlock = NULL,
};
