/* The PostgreSQL backend (libpq): one connection per store thread. Its
 * DATABASE_URL goes to PQconnectdb as given. A broken connection is replaced
 * by a new one before the next job (at most every RECONNECT_BACKOFF_NS while the server
 * stays away); jobs that cannot run are answered "unavailable".
 *
 * Round trips are what limit PostgreSQL here, so a batch made only of
 * message inserts is sent as one pipeline: BEGIN, one statement per message,
 * COMMIT, sync. In a batch with other writes, each run of consecutive
 * inserts is such a pipeline and the other ops run one by one.
 *
 * A message goes one of two ways. The full statement (a data-modifying CTE
 * that checks sender, room and access, inserts the row and the first-post
 * membership, and returns a client_id repeat's stored row) costs the server
 * a big plan to start up for every message. So the writer remembers senders
 * and memberships (store/write_cache.h, kept true as on SQLite), and a
 * message from a known member is a plain INSERT. When that inserts nothing
 * (a client_id repeat), the full statement answers after the pipeline; when
 * it breaks a foreign key (a user or room deleted behind chatd's back), the
 * cache is cleared and the batch runs again, all on the full path. The
 * cache assumes this writer is the only one that ends memberships: several
 * chatd nodes on one database would each have to hear of the others'
 * leaves. */
#include "store/backend.h"
#include "store/write_cache.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECONNECT_BACKOFF_NS 500000000ull
#define INT8OID              20
#define TEXTOID              25

typedef struct {
    store_db_t base;
    PGconn *conn;
    char *url;
    uint64_t next_reconnect_ns;
    bool discard; /* the session's state is unknown: replace it */
    bool prepared[STMT_COUNT];
    bool insert_prepared;
    bool known_prepared;
    write_cache_t *cache; /* the writer's, made by its first full-path insert */
    /* Per job of the pipeline being run: its insert_path_t. */
    unsigned char *paths;
    size_t paths_cap;
    bool known_fk_failed; /* a known insert broke a foreign key: rerun the batch */
} pg_db_t;

/* How a job of a pipeline is answered. */
typedef enum {
    PATH_FULL,   /* sent as the full statement */
    PATH_KNOWN,  /* sent as the known member's insert */
    PATH_AGAIN,  /* the known insert stored nothing (a client_id repeat): the
                  * full statement answers after the pipeline */
    PATH_LOOKUP, /* a repeat whose row the full statement could not see (another
                  * writer committed it after the snapshot): looked up after */
} insert_path_t;

static const char INSERT_NAME[] = "message_insert_checked";
/* $1 sender, $2 room, $3 content, $4 client_id (NULL: none), $5 now (ms). */
static const char INSERT_SQL[] =
    "WITH u AS (SELECT email, username FROM users WHERE id = $1), "
    "r AS (SELECT is_private FROM rooms WHERE id = $2), "
    "mem AS (SELECT 1 AS x FROM room_members WHERE room_id = $2 AND user_id = $1), "
    "ok AS (SELECT 1 AS x FROM u, r WHERE NOT r.is_private OR EXISTS (SELECT 1 FROM mem)), "
    "ins AS (INSERT INTO messages (sender_id, room_id, content, client_id, created_at) "
    "SELECT $1, $2, $3, $4, $5 FROM ok ON CONFLICT (sender_id, client_id) DO NOTHING "
    "RETURNING id), "
    "joined AS (INSERT INTO room_members (room_id, user_id, joined_at) "
    "SELECT $2, $1, $5 FROM ins WHERE NOT EXISTS (SELECT 1 FROM mem) "
    "ON CONFLICT (room_id, user_id) DO NOTHING), "
    "prev AS (SELECT id, room_id, content, created_at, COALESCE(edited_at, 0) AS edited_at, "
    "CAST(deleted AS INTEGER) AS deleted FROM messages "
    "WHERE sender_id = $1 AND client_id = $4 AND EXISTS (SELECT 1 FROM ok)) "
    "SELECT (SELECT count(*) FROM u), (SELECT count(*) FROM r), (SELECT count(*) FROM ok), "
    "(SELECT id FROM ins), p.id, p.room_id, p.content, p.created_at, p.edited_at, p.deleted, "
    "(SELECT email FROM u), (SELECT username FROM u) "
    "FROM (SELECT 1) AS one LEFT JOIN prev p ON TRUE";
/* The same parameters, for a known member: one index probe per foreign key
 * instead of a plan of a dozen nodes. */
static const char KNOWN_NAME[] = "message_insert_known";
static const char KNOWN_SQL[] =
    "INSERT INTO messages (sender_id, room_id, content, client_id, created_at) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (sender_id, client_id) DO NOTHING RETURNING id";
static const Oid INSERT_TYPES[5] = {INT8OID, INT8OID, TEXTOID, TEXTOID, INT8OID};
enum {
    INS_HAS_USER,
    INS_HAS_ROOM,
    INS_ALLOWED,
    INS_NEW_ID,
    INS_PREV_ID,
    INS_PREV_ROOM_ID,
    INS_PREV_CONTENT,
    INS_PREV_CREATED_AT,
    INS_PREV_EDITED_AT,
    INS_PREV_DELETED,
    INS_EMAIL,
    INS_USERNAME
};

/* libpq's messages end with a newline; logs want one line. */
static void one_line(char *dst, size_t size, const char *msg) {
    snprintf(dst, size, "%s", msg != NULL ? msg : "");
    dst[strcspn(dst, "\r\n")] = '\0';
}

static void log_db_error(pg_db_t *d, const char *what, const PGresult *res) {
    char msg[512];
    one_line(msg, sizeof msg, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(d->conn));
    if (msg[0] == '\0')
        one_line(msg, sizeof msg, PQerrorMessage(d->conn));
    log_error("database error", LOG_S("backend", "postgres"), LOG_S("statement", what),
              LOG_S("error", msg));
}

static void ignore_notice(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

static void pg_close(store_db_t *db) {
    pg_db_t *d = (pg_db_t *)db;
    if (d == NULL)
        return;
    PQfinish(d->conn);
    write_cache_free(d->cache);
    free(d->paths);
    free(d->url);
    free(d);
}

/* Defaults that DATABASE_URL may override (it comes last, so its own
 * parameters win): connect_timeout, keepalives and tcp_user_timeout, so a
 * database that stops answering (a blackholed address, not a closed port)
 * fails the job after seconds instead of hanging a store thread. */
static PGconn *connect_url(const char *url) {
    const char *const keys[] = {
        "connect_timeout",  "keepalives",       "keepalives_idle", "keepalives_interval",
        "keepalives_count", "tcp_user_timeout", "dbname",          NULL};
    const char *const values[] = {"10", "1", "30", "10", "3", "30000", url, NULL};
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    /* "relation already exists, skipping" and the like are not news. */
    if (conn != NULL)
        PQsetNoticeProcessor(conn, ignore_notice, NULL);
    return conn;
}

static int pg_open(const char *url, store_db_t **out, char *err, size_t errlen) {
    pg_db_t *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    d->base.backend = &store_backend_postgres;
    d->url = store_strndup(url, strlen(url));
    d->conn = d->url != NULL ? connect_url(url) : NULL;
    if (d->conn == NULL || PQstatus(d->conn) != CONNECTION_OK) {
        char msg[512];
        one_line(msg, sizeof msg, d->conn != NULL ? PQerrorMessage(d->conn) : "out of memory");
        snprintf(err, errlen, "cannot connect to PostgreSQL: %s", msg);
        pg_close(&d->base);
        return -1;
    }
    *out = &d->base;
    return 0;
}

/* A connection the server closed while it sat idle (PostgreSQL restarted,
 * or ended the session) looks fine to libpq until it is read, so the job
 * sent on it would fail. The peer's close can be seen without reading; any
 * other input on an idle connection is read, which notices a close too. */
static bool closed_by_server(PGconn *conn) {
    struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN | POLLRDHUP};
    if (p.fd < 0)
        return true;
    if (poll(&p, 1, 0) <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    return PQconsumeInput(conn) == 0 || PQstatus(conn) != CONNECTION_OK;
}

static int pg_ensure(store_db_t *db) {
    pg_db_t *d = (pg_db_t *)db;
    if (PQstatus(d->conn) == CONNECTION_OK && !d->discard) {
        if (!closed_by_server(d->conn))
            return 0;
        d->discard = true;
    }
    uint64_t now = time_monotonic_ns();
    if (now < d->next_reconnect_ns)
        return -1;
    /* A fresh connection rather than PQreset: nothing of the old session's
     * state (a half-read pipeline) can leak into the new one. */
    PGconn *conn = connect_url(d->url);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        char msg[512];
        one_line(msg, sizeof msg, conn != NULL ? PQerrorMessage(conn) : "out of memory");
        log_error("database unavailable", LOG_S("backend", "postgres"), LOG_S("error", msg));
        PQfinish(conn);
        d->next_reconnect_ns = now + RECONNECT_BACKOFF_NS;
        return -1;
    }
    PQfinish(d->conn);
    d->conn = conn;
    d->discard = false;
    /* Prepared statements belong to the old session. */
    memset(d->prepared, 0, sizeof d->prepared);
    d->insert_prepared = d->known_prepared = false;
    /* The server may have come back with other data (restored from a
     * backup): relearn. */
    write_cache_clear(d->cache);
    log_info("database reconnected", LOG_S("backend", "postgres"));
    return 0;
}

static bool pg_broken(store_db_t *db) {
    pg_db_t *d = (pg_db_t *)db;
    return d->discard || PQstatus(d->conn) != CONNECTION_OK;
}

static int pg_exec(store_db_t *db, const char *sql, char *err, size_t errlen) {
    pg_db_t *d = (pg_db_t *)db;
    PGresult *res = PQexec(d->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    /* COMMIT of a failed transaction "succeeds" as ROLLBACK. */
    if (ok && strcmp(sql, "COMMIT") == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
        ok = 0;
        if (err != NULL)
            snprintf(err, errlen, "transaction was rolled back");
        else
            log_error("database error", LOG_S("backend", "postgres"), LOG_S("statement", sql),
                      LOG_S("error", "transaction was rolled back"));
    } else if (!ok) {
        if (err != NULL)
            one_line(err, errlen, PQresultErrorMessage(res));
        else
            log_db_error(d, sql, res);
    }
    PQclear(res);
    return ok ? 0 : -1;
}

static int prepare(pg_db_t *d, const char *name, const char *sql, int n, const Oid *types) {
    PGresult *res = PQprepare(d->conn, name, sql, n, types);
    int ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        log_db_error(d, name, res);
    PQclear(res);
    return ok ? 0 : -1;
}

/* Parameters in libpq's shape: integers as decimal text, strings as binary
 * text (their exact bytes with a length, so no NUL terminator is needed). */
typedef struct {
    const char *values[8];
    int lengths[8];
    int formats[8];
    char ints[8][24];
} pg_params_t;

static void set_params(pg_params_t *pp, const db_param_t *params, int n) {
    for (int i = 0; i < n; i++) {
        const db_param_t *p = &params[i];
        pp->lengths[i] = 0;
        pp->formats[i] = 0;
        if (p->type == DB_INT) {
            snprintf(pp->ints[i], sizeof pp->ints[i], "%" PRId64, p->i);
            pp->values[i] = pp->ints[i];
        } else if (p->type == DB_TEXT) {
            pp->values[i] = p->s;
            pp->lengths[i] = (int)p->len;
            pp->formats[i] = 1;
        } else {
            pp->values[i] = NULL;
        }
    }
}

static int pg_query(store_db_t *db, store_stmt_t id, const db_param_t *params, int nparams,
                    db_rows_t *rows) {
    pg_db_t *d = (pg_db_t *)db;
    const char *name = store_sql[id].name;
    if (!d->prepared[id]) {
        if (prepare(d, name, store_sql[id].sql, 0, NULL) < 0)
            return -1;
        d->prepared[id] = true;
    }
    pg_params_t pp;
    set_params(&pp, params, nparams);
    PGresult *res = PQexecPrepared(d->conn, name, nparams, pp.values, pp.lengths, pp.formats, 0);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        log_db_error(d, name, res);
        PQclear(res);
        return -1;
    }
    *rows = (db_rows_t){.db = db, .stmt = id, .handle = res, .row = -1, .nrows = PQntuples(res)};
    return 0;
}

static int pg_next(db_rows_t *rows) {
    return ++rows->row < rows->nrows ? 1 : 0;
}

static int64_t pg_col_int(db_rows_t *rows, int col) {
    const char *v = PQgetvalue(rows->handle, rows->row, col);
    return v != NULL ? strtoll(v, NULL, 10) : 0;
}

static const char *pg_col_text(db_rows_t *rows, int col, size_t *len) {
    *len = 0;
    if (PQgetisnull(rows->handle, rows->row, col))
        return NULL;
    *len = (size_t)PQgetlength(rows->handle, rows->row, col);
    return PQgetvalue(rows->handle, rows->row, col);
}

static void pg_finish(db_rows_t *rows) {
    PQclear(rows->handle);
    rows->handle = NULL;
}

/* -------------------------------------------------- pipelined inserts */

static int64_t result_int(const PGresult *res, int col) {
    return PQgetisnull(res, 0, col) ? 0 : strtoll(PQgetvalue(res, 0, col), NULL, 10);
}

/* A text column, borrowed from res; NULL for SQL NULL. */
static const char *result_text(const PGresult *res, int col, size_t *len) {
    *len = PQgetisnull(res, 0, col) ? 0 : (size_t)PQgetlength(res, 0, col);
    return PQgetisnull(res, 0, col) ? NULL : PQgetvalue(res, 0, col);
}

/* Fills job->out from the insert statement's row. Returns 0, 1 when the
 * stored row of a client_id repeat must be looked up separately (it was
 * committed by another writer after this statement's snapshot), or -1. */
static int insert_outcome(const PGresult *res, store_job_t *job, int64_t now) {
    store_message_t *m = &job->out.message;
    if (PQntuples(res) != 1)
        return -1;
    if (result_int(res, INS_HAS_USER) == 0) {
        job->out.status = STORE_NO_USER;
        return 0;
    }
    job->out.status = result_int(res, INS_HAS_ROOM) == 0  ? STORE_NOT_FOUND
                      : result_int(res, INS_ALLOWED) == 0 ? STORE_FORBIDDEN
                                                          : STORE_OK;
    if (job->out.status != STORE_OK)
        return 0;
    m->sender_id = job->auth_user_id;
    store_message_text_t t = {.client_id = job->in.client_id};
    t.client_id_len = t.client_id != NULL ? strlen(t.client_id) : 0;
    t.email = result_text(res, INS_EMAIL, &t.email_len);
    t.username = result_text(res, INS_USERNAME, &t.username_len);
    if (!PQgetisnull(res, 0, INS_NEW_ID)) {
        m->id = result_int(res, INS_NEW_ID);
        m->room_id = job->in.room_id;
        m->created_at_ms = now;
        t.content = job->in.content;
        t.content_len = job->in.content_len;
        return store_message_set_text(m, &t);
    }
    if (PQgetisnull(res, 0, INS_PREV_ID))
        return 1;
    job->out.duplicate = true;
    m->id = result_int(res, INS_PREV_ID);
    m->room_id = result_int(res, INS_PREV_ROOM_ID);
    m->created_at_ms = result_int(res, INS_PREV_CREATED_AT);
    m->edited_at_ms = result_int(res, INS_PREV_EDITED_AT);
    m->deleted = result_int(res, INS_PREV_DELETED) != 0;
    t.content = result_text(res, INS_PREV_CONTENT, &t.content_len);
    return store_message_set_text(m, &t);
}

/* Fills job->out from the known insert's result. Returns 0, 1 when it
 * inserted nothing (a client_id repeat), or -1 (out of memory). */
static int known_outcome(pg_db_t *d, const PGresult *res, store_job_t *job, int64_t now) {
    if (PQntuples(res) == 0)
        return 1;
    /* Nothing changes the cache while a pipeline is read, so the sender
     * is still there. */
    const cached_user_t *u = write_cache_user(d->cache, job->auth_user_id);
    if (u == NULL || PQntuples(res) != 1)
        return -1;
    return write_cache_fill_post(u, job, result_int(res, 0), now);
}

/* A client_id repeat whose stored row the full statement could not see. */
static int lookup_repeat(pg_db_t *d, store_job_t *job) {
    store_job_cleanup(job);
    db_param_t k[] = {DBP_INT(job->auth_user_id), DBP_STR(job->in.client_id)};
    db_rows_t rows;
    if (pg_query(&d->base, STMT_MESSAGE_BY_CLIENT_ID, k, 2, &rows) < 0)
        return -1;
    int rc = -1;
    if (pg_next(&rows) == 1) {
        job->out.status = STORE_OK;
        job->out.duplicate = true;
        rc = store_read_message(&rows, &job->out.message);
    }
    pg_finish(&rows);
    return rc;
}

/* Takes the next command's result and the NULL that ends it. NULL when the
 * connection is gone. */
static PGresult *take_result(pg_db_t *d) {
    PGresult *res = PQgetResult(d->conn);
    if (res == NULL)
        return NULL;
    PGresult *extra;
    while ((extra = PQgetResult(d->conn)) != NULL && PQstatus(d->conn) == CONNECTION_OK)
        PQclear(extra);
    PQclear(extra);
    return res;
}

static bool command_ok(pg_db_t *d, PGresult *res, const char *what, const char *tag) {
    ExecStatusType st = PQresultStatus(res);
    bool ok = (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) &&
              (tag == NULL || strcmp(PQcmdStatus(res), tag) == 0);
    if (!ok && st != PGRES_PIPELINE_ABORTED)
        log_db_error(d, what, res);
    PQclear(res);
    return ok;
}

static bool foreign_key_violation(const PGresult *res) {
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state != NULL && strcmp(state, "23503") == 0;
}

/* Both insert statements take the same parameters. */
static void insert_params(const store_job_t *job, int64_t now, pg_params_t *pp) {
    const char *cid = job->in.client_id;
    db_param_t p[] = {DBP_INT(job->auth_user_id), DBP_INT(job->in.room_id),
                      DBP_TEXT(job->in.content, job->in.content_len),
                      cid != NULL ? DBP_STR(cid) : DBP_NULL(), DBP_INT(now)};
    set_params(pp, p, 5);
}

static bool is_known(pg_db_t *d, const store_job_t *job) {
    return d->cache != NULL && write_cache_user(d->cache, job->auth_user_id) != NULL &&
           write_cache_is_member(d->cache, job->in.room_id, job->auth_user_id);
}

static int send_insert(pg_db_t *d, store_job_t *job, insert_path_t path, int64_t now) {
    pg_params_t pp;
    insert_params(job, now, &pp);
    const char *name = path == PATH_KNOWN ? KNOWN_NAME : INSERT_NAME;
    return PQsendQueryPrepared(d->conn, name, 5, pp.values, pp.lengths, pp.formats, 0) ? 0 : -1;
}

/* The full statement for one job, outside any pipeline; 0 or -1. */
static int run_full(pg_db_t *d, store_job_t *job, int64_t now) {
    pg_params_t pp;
    insert_params(job, now, &pp);
    PGresult *res = PQexecPrepared(d->conn, INSERT_NAME, 5, pp.values, pp.lengths, pp.formats, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        log_db_error(d, INSERT_NAME, res);
        PQclear(res);
        return -1;
    }
    int rc = insert_outcome(res, job, now);
    PQclear(res);
    return rc == 1 ? lookup_repeat(d, job) : rc;
}

/* Reads each command's result into its job, and into d->paths what is
 * left to do for it. Returns 0 when the server ran every command, -1 when
 * it reported an error (the transaction is then aborted) or the connection
 * broke. A reply that cannot be built (out of memory) marks its job
 * STORE_ERROR and sets *oom. */
static int read_results(pg_db_t *d, store_job_t **jobs, size_t n, bool own_tx, int64_t now,
                        bool *oom) {
    PGresult *res;
    if (own_tx && ((res = take_result(d)) == NULL || !command_ok(d, res, "BEGIN", NULL)))
        return -1;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        store_job_t *job = jobs[i];
        bool known = d->paths[i] == PATH_KNOWN;
        if (job->out.status == STORE_ERROR)
            continue; /* never sent */
        if ((res = take_result(d)) == NULL)
            return -1;
        if (PQresultStatus(res) != PGRES_TUPLES_OK || !ok) {
            if (ok && known && foreign_key_violation(res)) {
                /* Not news: pg_write_batch runs the batch again. */
                d->known_fk_failed = true;
                PQclear(res);
                ok = false;
            } else {
                ok = command_ok(d, res, known ? KNOWN_NAME : INSERT_NAME, NULL) && ok;
            }
            continue;
        }
        int rc = known ? known_outcome(d, res, job, now) : insert_outcome(res, job, now);
        PQclear(res);
        if (rc < 0) {
            store_job_cleanup(job);
            job->out.status = STORE_ERROR;
            *oom = true;
        } else if (rc == 1) {
            d->paths[i] = known ? PATH_AGAIN : PATH_LOOKUP;
        }
    }
    if (own_tx && ok)
        ok = (res = take_result(d)) != NULL && command_ok(d, res, "COMMIT", "COMMIT");
    return ok ? 0 : -1;
}

/* Consumes what is left up to and including the sync (after an error,
 * each skipped command still gives a result and a NULL) and leaves
 * pipeline mode. False when that fails: the session is then discarded. */
static bool end_pipeline(pg_db_t *d, size_t n) {
    bool synced = false;
    for (size_t calls = 0; !synced && calls < 2 * n + 8; calls++) {
        PGresult *res = PQgetResult(d->conn);
        if (res == NULL) {
            if (PQstatus(d->conn) != CONNECTION_OK)
                break;
            continue;
        }
        synced = PQresultStatus(res) == PGRES_PIPELINE_SYNC;
        PQclear(res);
    }
    if (synced && PQexitPipelineMode(d->conn))
        return true;
    log_db_error(d, "pipeline", NULL);
    d->discard = true;
    return false;
}

/* Prepares the insert statements once per session; 0 or -1. */
static int prepare_inserts(pg_db_t *d) {
    if (!d->insert_prepared && prepare(d, INSERT_NAME, INSERT_SQL, 5, INSERT_TYPES) == 0)
        d->insert_prepared = true;
    if (d->insert_prepared && !d->known_prepared &&
        prepare(d, KNOWN_NAME, KNOWN_SQL, 5, INSERT_TYPES) == 0)
        d->known_prepared = true;
    return d->insert_prepared && d->known_prepared ? 0 : -1;
}

static int reserve_paths(pg_db_t *d, size_t n) {
    if (n <= d->paths_cap)
        return 0;
    unsigned char *grown = realloc(d->paths, n);
    if (grown == NULL) {
        log_error("store: out of memory", LOG_I("bytes", n));
        return -1;
    }
    d->paths = grown;
    d->paths_cap = n;
    return 0;
}

/* After the pipeline: answers the jobs it left open, and learns from those
 * that went the full way. Same return convention as insert_pipeline. */
static int finish_inserts(pg_db_t *d, store_job_t **jobs, size_t n, bool own_tx, int64_t now) {
    for (size_t i = 0; i < n; i++) {
        store_job_t *job = jobs[i];
        insert_path_t path = d->paths[i];
        int rc = path == PATH_AGAIN    ? run_full(d, job, now)
                 : path == PATH_LOOKUP ? lookup_repeat(d, job)
                                       : 0;
        if (rc < 0) {
            if (!own_tx)
                return -1;
            store_job_cleanup(job);
            job->out.status = STORE_ERROR;
        }
        if (path == PATH_KNOWN || job->out.status != STORE_OK || job->out.duplicate)
            continue;
        if (d->cache == NULL)
            d->cache = write_cache_new();
        write_cache_learn_post(d->cache, job);
    }
    return 0;
}

/* Runs the inserts jobs[0..n) as one pipeline, inside a transaction of its
 * own when own_tx (else inside the caller's). Returns 0, or -1 when the
 * transaction must be rolled back. With own_tx the COMMIT travels in the
 * pipeline, so once the server has run it nothing may turn into -1 (the
 * caller would run the jobs again): failures after it are per job, and the
 * statements run after it are transactions of their own. */
static int insert_pipeline(pg_db_t *d, store_job_t **jobs, size_t n, bool own_tx) {
    if (prepare_inserts(d) < 0 || reserve_paths(d, n) < 0)
        return -1;
    if (!PQenterPipelineMode(d->conn)) {
        log_db_error(d, "pipeline", NULL);
        return -1;
    }
    int64_t now = time_wall_ms();
    bool sent = !own_tx || PQsendQueryParams(d->conn, "BEGIN", 0, NULL, NULL, NULL, NULL, 0);
    for (size_t i = 0; sent && i < n; i++) {
        d->paths[i] = is_known(d, jobs[i]) ? PATH_KNOWN : PATH_FULL;
        /* A job without its inputs is answered without being sent. */
        if (store_ops_check_inputs(jobs[i]))
            sent = send_insert(d, jobs[i], d->paths[i], now) == 0;
    }
    if (sent && own_tx)
        sent = PQsendQueryParams(d->conn, "COMMIT", 0, NULL, NULL, NULL, NULL, 0);
    if (!sent || !PQpipelineSync(d->conn)) {
        log_db_error(d, "pipeline", NULL);
        d->discard = true;
        return -1;
    }
    bool oom = false;
    int rc = read_results(d, jobs, n, own_tx, now, &oom);
    if (!end_pipeline(d, n) || rc < 0 || (oom && !own_tx))
        return -1;
    return finish_inserts(d, jobs, n, own_tx, now);
}

static int pg_message_insert(store_db_t *db, store_job_t *job) {
    return insert_pipeline((pg_db_t *)db, &job, 1, false);
}

/* Other writes among the inserts (read markers, joins): one transaction in
 * which each run of consecutive inserts is still one pipeline. */
static int mixed_batch(pg_db_t *d, store_job_t **jobs, size_t n) {
    if (pg_exec(&d->base, "BEGIN", NULL, 0) < 0)
        return -1;
    for (size_t i = 0; i < n;) {
        size_t inserts = 0;
        while (i + inserts < n && jobs[i + inserts]->op == STORE_MESSAGE_INSERT)
            inserts++;
        if (inserts == 0)
            write_cache_before(d->cache, jobs[i]);
        int rc = inserts > 0 ? insert_pipeline(d, jobs + i, inserts, false)
                             : store_ops_run(&d->base, jobs[i]);
        if (rc < 0)
            return -1;
        i += inserts > 0 ? inserts : 1;
    }
    return pg_exec(&d->base, "COMMIT", NULL, 0);
}

/* One attempt at a batch: 0, or -1 when its transaction must be rolled
 * back. */
static int write_once(pg_db_t *d, store_job_t **jobs, size_t n) {
    size_t inserts = 0;
    for (size_t i = 0; i < n; i++)
        inserts += jobs[i]->op == STORE_MESSAGE_INSERT;
    return inserts == n ? insert_pipeline(d, jobs, n, true) : mixed_batch(d, jobs, n);
}

static int pg_write_batch(store_db_t *db, store_job_t **jobs, size_t n) {
    pg_db_t *d = (pg_db_t *)db;
    for (int attempt = 0; attempt < 2; attempt++) {
        d->known_fk_failed = false;
        if (write_once(d, jobs, n) == 0)
            return 0;
        /* What the rolled-back transaction taught the cache may be untrue. */
        write_cache_clear(d->cache);
        if (pg_broken(db))
            break;
        pg_exec(db, "ROLLBACK", NULL, 0);
        if (!d->known_fk_failed)
            break;
        /* A known sender or room was deleted behind chatd's back: with the
         * cache empty, the full statements say which. */
        for (size_t i = 0; i < n; i++)
            store_job_cleanup(jobs[i]);
    }
    return -1;
}

const store_backend_t store_backend_postgres = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .ensure = pg_ensure,
    .broken = pg_broken,
    .exec = pg_exec,
    .query = pg_query,
    .next = pg_next,
    .col_int = pg_col_int,
    .col_text = pg_col_text,
    .finish = pg_finish,
    .write_batch = pg_write_batch,
    .message_insert = pg_message_insert,
    .begin_sql = "BEGIN",
    /* Two chatd nodes starting at once must not both migrate. */
    .migrate_lock = "SELECT pg_advisory_lock(7263816)",
    .migrate_unlock = "SELECT pg_advisory_unlock(7263816)",
};
