/* Inside the store: one database connection behind a small backend-neutral
 * interface, so the operations (ops.c) and the migration runner
 * (migrate.c) are written once for SQLite and PostgreSQL.
 *
 * A connection is used by one thread at a time. Statements are named by
 * store_stmt_t; their SQL (sql.c) is shared by both backends and written
 * with $1..$N placeholders (SQLite reads them as ?1..?N) and prepared on
 * first use, once per connection. Every function
 * that talks to the database logs the database's error itself (never the
 * bound values) and returns -1. */
#ifndef CHATD_STORE_BACKEND_H
#define CHATD_STORE_BACKEND_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    STMT_PING,
    STMT_USER_AUTH,
    STMT_USER_BY_EMAIL,
    STMT_USER_BY_ID,
    STMT_USER_INSERT,
    STMT_ROOM_ACCESS,
    STMT_ROOM_GET,
    STMT_ROOMS_LIST,
    STMT_ROOM_INSERT,
    STMT_DM_INSERT,
    STMT_ROOM_BY_DM_KEY,
    STMT_MEMBER_INSERT,
    STMT_MEMBER_DELETE,
    STMT_MEMBERS,
    STMT_MESSAGE_INSERT,
    STMT_MESSAGE_BY_CLIENT_ID,
    STMT_PAGE_DESC,
    STMT_PAGE_ASC,
    STMT_READ_ACCESS,
    STMT_READ_MARK,
    STMT_MIGRATION_APPLIED,
    STMT_MIGRATION_RECORD,
    STMT_COUNT
} store_stmt_t;

typedef struct {
    const char *name; /* for logs */
    const char *sql;
} store_sql_t;

extern const store_sql_t store_sql[STMT_COUNT];

/* Columns of STMT_ROOM_GET / STMT_ROOMS_LIST and of the message statements,
 * in the order ops.c reads them. */
enum {
    ROOM_COL_ID,
    ROOM_COL_NAME,
    ROOM_COL_PRIVATE,
    ROOM_COL_CREATED_BY,
    ROOM_COL_CREATED_AT,
    ROOM_COL_MEMBER_COUNT,
    ROOM_COL_LAST_READ,
    ROOM_COL_UNREAD
};
enum {
    MSG_COL_ID,
    MSG_COL_SENDER_ID,
    MSG_COL_ROOM_ID,
    MSG_COL_CONTENT,
    MSG_COL_CLIENT_ID,
    MSG_COL_CREATED_AT,
    MSG_COL_EDITED_AT,
    MSG_COL_DELETED,
    MSG_COL_EMAIL,
    MSG_COL_USERNAME
};

typedef enum { DB_NULL, DB_INT, DB_TEXT } db_type_t;

typedef struct {
    db_type_t type;
    int64_t i;
    const char *s; /* DB_TEXT: len bytes, need not be NUL-terminated */
    size_t len;
} db_param_t;

#define DBP_INT(v)       ((db_param_t){.type = DB_INT, .i = (int64_t)(v)})
#define DBP_TEXT(str, n) ((db_param_t){.type = DB_TEXT, .s = (str), .len = (n)})
#define DBP_STR(str)     ((db_param_t){.type = DB_TEXT, .s = (str), .len = strlen(str)})
#define DBP_NULL()       ((db_param_t){.type = DB_NULL})

typedef struct store_db_s store_db_t;
typedef struct store_backend_s store_backend_t;

/* The rows of one executed statement; valid until db_finish. */
typedef struct {
    store_db_t *db;
    store_stmt_t stmt;
    void *handle; /* sqlite3_stmt * or PGresult * */
    int row;      /* PostgreSQL: current row, -1 before the first */
    int nrows;
} db_rows_t;

struct store_backend_s {
    const char *name;
    /* Connects; 0, or -1 with a one-line reason in err. */
    int (*open)(const char *url, store_db_t **out, char *err, size_t errlen);
    void (*close)(store_db_t *db);
    /* Before each job or batch: 0 when the connection is usable (reconnecting
     * if it broke), -1 when it is not. */
    int (*ensure)(store_db_t *db);
    /* True when the last failure lost the connection (the job's outcome is
     * then "unavailable", not "error"). */
    bool (*broken)(store_db_t *db);
    /* Runs SQL without parameters (several statements allowed); 0, or -1
     * with the database's message in err (err may be NULL). */
    int (*exec)(store_db_t *db, const char *sql, char *err, size_t errlen);
    int (*query)(store_db_t *db, store_stmt_t stmt, const db_param_t *params, int nparams,
                 db_rows_t *rows);
    int (*next)(db_rows_t *rows);
    int64_t (*col_int)(db_rows_t *rows, int col);
    const char *(*col_text)(db_rows_t *rows, int col, size_t *len);
    void (*finish)(db_rows_t *rows);
    /* Runs jobs in one transaction: 0 when committed (every job's out.status
     * set), -1 when rolled back (outs are partial; the caller cleans them). */
    int (*write_batch)(store_db_t *db, store_job_t **jobs, size_t n);
    /* STORE_MESSAGE_INSERT in fewer round trips, or NULL for the generic
     * one; same return convention as store_ops_run. */
    int (*message_insert)(store_db_t *db, store_job_t *job);
    const char *begin_sql;    /* starts a write transaction */
    const char *migrate_lock; /* serialises concurrent migrators, or NULL */
    const char *migrate_unlock;
};

struct store_db_s {
    const store_backend_t *backend;
};

extern const store_backend_t store_backend_sqlite;
extern const store_backend_t store_backend_postgres;

/* Picks the backend for a DATABASE_URL; NULL when the scheme is unknown. */
const store_backend_t *store_backend_for_url(const char *url);

/* Executes stmt; 0 (rows ready for db_next, finish with db_finish) or -1. */
static inline int db_query(store_db_t *db, store_stmt_t stmt, const db_param_t *params, int nparams,
                           db_rows_t *rows) {
    return db->backend->query(db, stmt, params, nparams, rows);
}
/* 1: a row is ready; 0: no more rows; -1: error. */
static inline int db_next(db_rows_t *rows) {
    return rows->db->backend->next(rows);
}
static inline int64_t db_int(db_rows_t *rows, int col) {
    return rows->db->backend->col_int(rows, col);
}
/* NULL for SQL NULL; the text is valid until the next db_next/db_finish. */
static inline const char *db_text(db_rows_t *rows, int col, size_t *len) {
    return rows->db->backend->col_text(rows, col, len);
}
static inline void db_finish(db_rows_t *rows) {
    rows->db->backend->finish(rows);
}

/* Runs one job (no transaction control). Returns 0 when job->out.status is
 * set (including NOT_FOUND, FORBIDDEN, ...), -1 on a database error or when
 * memory ran out: a write transaction must then be rolled back. */
int store_ops_run(store_db_t *db, store_job_t *job);

/* False (with out.status STORE_ERROR, logged) when a job lacks what its op
 * needs: a caller's bug, not the database's. */
bool store_ops_check_inputs(store_job_t *job);

/* Fills a message from a row in MSG_COL_* order; 0 or -1 (out of memory). */
int store_read_message(db_rows_t *rows, store_message_t *out);

/* A message's strings, borrowed; NULL for absent ones (content: empty). */
typedef struct {
    const char *content;
    size_t content_len;
    const char *client_id;
    size_t client_id_len;
    const char *email;
    size_t email_len;
    const char *username;
    size_t username_len;
} store_message_text_t;

/* Copies the strings into one allocation that m owns (freed with the job's
 * results) and points m's string fields at it; 0 or -1 (out of memory). */
int store_message_set_text(store_message_t *m, const store_message_text_t *text);

/* The generic STORE_MESSAGE_INSERT (look-ups, then INSERT ... RETURNING);
 * same return convention as store_ops_run, inputs already checked. */
int store_ops_message_insert(store_db_t *db, store_job_t *job);
/* Copies len bytes into a new NUL-terminated string; NULL when out of memory. */
char *store_strndup(const char *s, size_t len);

/* store_backend_t.write_batch for backends without anything better: begin,
 * every job through store_ops_run, commit. */
int store_ops_write_batch(store_db_t *db, store_job_t **jobs, size_t n);

/* Applies the backend's pending migrations; 0 or -1 with err. */
int store_migrations_apply(store_db_t *db, char *err, size_t errlen);

#endif
