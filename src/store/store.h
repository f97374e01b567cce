/* The store: every database operation chatd does, behind one asynchronous
 * interface with two backends (SQLite, PostgreSQL).
 *
 * Threads: store_open starts one writer thread and STORE_READERS reader
 * threads, each with its own database connection. An I/O loop fills a
 * store_job_t and calls store_submit; a store thread runs it; the result comes
 * back to the loop through job->reply_to (its inbox), where job->done runs.
 *
 * Writes are group-committed: the writer takes every pending write job (up to
 * STORE_BATCH_MAX) and runs them in one transaction; only after COMMIT are
 * their done callbacks posted. If the batch fails with a database error, it
 * is rolled back and each job is retried in a transaction of its own, so one
 * bad job cannot fail the others. A job's result therefore always describes
 * committed state.
 *
 * Committed changes that others must hear about (a new message, a read
 * marker that moved) are handed to the commit hook on the writer thread
 * before any reply of their batch is posted; see store_set_commit_hook.
 *
 * Contract: if store_submit returns an error, done is never called;
 * otherwise done is called exactly once, on reply_to's loop. The job is owned
 * by the caller; the store only fills its result fields. Result strings and
 * arrays are heap-allocated by the store and released by store_job_cleanup. */
#ifndef CHATD_STORE_STORE_H
#define CHATD_STORE_STORE_H

#include "core/config.h"
#include "core/inbox.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct store_s store_t;
typedef struct store_job_s store_job_t;
typedef void (*store_done_cb)(store_job_t *job);

typedef enum {
    STORE_OK = 0,
    STORE_NOT_FOUND,   /* the room / user / message does not exist */
    STORE_FORBIDDEN,   /* exists, but the acting user may not do this */
    STORE_CONFLICT,    /* unique constraint (email already registered) */
    STORE_NO_USER,     /* the acting user (auth_user_id) no longer exists */
    STORE_UNAVAILABLE, /* database unreachable, queue full, shutting down */
    STORE_ERROR,       /* anything else; logged by the store */
} store_status_t;

typedef enum {
    /* reads */
    STORE_PING,          /* readiness: SELECT 1 */
    STORE_USER_BY_EMAIL, /* in.email (lower-cased by caller) -> user (with password_hash) */
    STORE_USER_BY_ID,    /* in.user_id -> user */
    STORE_ROOMS_LIST,    /* rooms visible to auth_user_id, ordered by id -> rooms */
    STORE_ROOM_GET,      /* in.room_id -> room (404/403 by access rule) */
    STORE_ROOM_MEMBERS,  /* in.room_id -> members (404/403 by access rule) */
    STORE_MESSAGES_PAGE, /* in.room_id, before/after/limit -> messages, has_more */
    /* writes */
    STORE_USER_CREATE,     /* in.email, username, password_hash -> user | CONFLICT */
    STORE_ROOM_CREATE,     /* in.name, is_private; creator = auth_user_id -> room */
    STORE_ROOM_JOIN,       /* in.room_id -> room (private & not member: FORBIDDEN) */
    STORE_ROOM_LEAVE,      /* in.room_id -> OK | NOT_FOUND */
    STORE_ROOM_ADD_MEMBER, /* in.room_id, in.user_id (target) -> room; caller must be member;
                              unknown target: NOT_FOUND */
    STORE_DM_OPEN,         /* in.user_id (other) -> room, created */
    STORE_MESSAGE_INSERT,  /* in.room_id, content, client_id -> message, duplicate */
    STORE_READ_MARK,       /* in.room_id, in.message_id (a message of that room, else
                              NOT_FOUND) -> advanced, read_message_id; the marker never
                              moves backwards; a public room's reader becomes a member */
    STORE_OP_COUNT
} store_op_t;

typedef struct {
    int64_t id;
    char *email;
    char *username;
    char *password_hash; /* only from STORE_USER_BY_EMAIL */
    int64_t created_at_ms;
} store_user_t;

typedef struct {
    int64_t id;
    char *name;
    bool is_private;
    int64_t created_by; /* 0 for the seeded rooms */
    int64_t created_at_ms;
    int64_t member_count;
    /* for auth_user_id: */
    int64_t unread_count;         /* messages after the read marker, from others */
    int64_t last_read_message_id; /* 0 when none */
} store_room_t;

typedef struct {
    int64_t id;
    char *username;
    int64_t joined_at_ms;
} store_member_t;

typedef struct {
    int64_t id;
    int64_t sender_id;
    int64_t room_id;
    char *content; /* exactly as sent; content_len bytes, NUL-terminated */
    size_t content_len;
    char *client_id; /* NULL when none */
    int64_t created_at_ms;
    int64_t edited_at_ms; /* 0 when never edited */
    bool deleted;
    char *sender_email;
    char *sender_username;
    char *text; /* private to the store: the one allocation the strings above live in */
} store_message_t;

struct store_job_s {
    store_op_t op;
    /* When non-zero, the job first checks that this user still exists
     * (STORE_NO_USER otherwise) and applies the room access rules for them. */
    int64_t auth_user_id;

    struct {
        int64_t user_id; /* USER_BY_ID, ROOM_ADD_MEMBER target, DM_OPEN other */
        int64_t room_id;
        const char *email; /* caller-owned, must outlive the job */
        const char *username;
        const char *password_hash;
        const char *name;
        bool is_private;
        const char *content;
        size_t content_len;
        const char *client_id; /* NULL: none */
        int64_t before_id;     /* 0: no cursor */
        int64_t after_id;      /* 0: no cursor, unless from_start */
        bool from_start;       /* MESSAGES_PAGE: page upward from the first message */
        int limit;             /* MESSAGES_PAGE: 1..STORE_PAGE_LIMIT_MAX; 0: default */
        int64_t message_id;    /* READ_MARK */
    } in;

    struct {
        store_status_t status;
        store_user_t user;
        store_room_t room;
        bool created;   /* DM_OPEN: a new room was made */
        bool duplicate; /* MESSAGE_INSERT: client_id repeat, message is the stored one */
        store_message_t message;
        store_room_t *rooms;
        size_t room_count;
        store_member_t *members;
        size_t member_count;
        store_message_t *messages; /* ascending id */
        size_t message_count;
        bool has_more;
        bool advanced;           /* READ_MARK: the marker moved forward */
        int64_t read_message_id; /* READ_MARK: the marker after the job */
    } out;

    inbox_t *reply_to;
    store_done_cb done;
    void *data;

    /* private to the store */
    inbox_item_t reply_item;
    store_job_t *next;
    uint64_t enqueued_ns;
};

typedef struct {
    uint64_t queue_depth;               /* jobs submitted and not yet run */
    uint64_t messages_stored;           /* new rows committed (duplicates excluded) */
    uint64_t commits;                   /* write transactions committed */
    uint64_t commit_seconds_bucket[12]; /* per bucket of STORE_COMMIT_BUCKETS, cumulative */
    double commit_seconds_sum;
    uint64_t errors;
} store_stats_t;

/* The largest MESSAGES_PAGE limit the store honours (larger ones are cut to
 * it). The REST API allows less; a WebSocket replay asks for one row more
 * than it may send, to learn whether it may send them all. */
#define STORE_PAGE_LIMIT_MAX 1001

/* Told about one committed job: a STORE_MESSAGE_INSERT with status OK that
 * stored a new row (not a duplicate), or a STORE_READ_MARK with status OK
 * whose marker advanced. Runs on the writer thread, after COMMIT and before
 * any done callback of the job's batch is posted, once per such job in the
 * order the jobs ran: new messages come in increasing id order. It must be
 * quick and must not block (it holds up every later write); it may read
 * job->in and job->out but not keep pointers into them, and must not submit
 * to the store and wait. */
typedef void (*store_commit_fn)(void *ctx, const store_job_t *job);

/* Upper bounds, in seconds, of the commit latency histogram buckets. */
#define STORE_COMMIT_BUCKET_COUNT 12
extern const double STORE_COMMIT_BUCKETS[STORE_COMMIT_BUCKET_COUNT];

/* Connects, applies pending migrations, starts the threads. Returns 0, or -1
 * with a one-line reason in err. */
int store_open(store_t **out, const config_t *cfg, char *err, size_t errlen);

/* Applies pending migrations and returns without starting threads (for
 * `chatd migrate`). Returns 0 or -1 with err. */
int store_migrate(const config_t *cfg, char *err, size_t errlen);

/* Thread-safe. Returns 0, or -1 when the queue is full or the store is
 * closing (answer 503); done is then never called. */
int store_submit(store_t *store, store_job_t *job);

/* Installs the commit hook (NULL: none). Call it before the first
 * store_submit; ctx must stay valid until store_close returns, since the
 * jobs store_close drains are reported too. */
void store_set_commit_hook(store_t *store, store_commit_fn fn, void *ctx);

/* Frees what the store allocated in job->out and zeroes it. */
void store_job_cleanup(store_job_t *job);

/* Stops accepting jobs, runs and commits everything already queued (posting
 * their replies), joins the threads and frees the store. The loops must keep
 * running their inboxes until this returns, or ignore late replies. */
void store_close(store_t *store);

void store_get_stats(store_t *store, store_stats_t *out);

/* "sqlite" or "postgres" */
const char *store_backend_name(const store_t *store);

#endif
