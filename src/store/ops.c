/* Every store operation, written once over backend.h. Each op either sets
 * job->out.status and returns 0, or returns -1 (database error, out of
 * memory): the caller then rolls back and cleans job->out. */
#include "store/backend.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_LIMIT_DEFAULT 50

typedef struct {
    bool exists;
    bool is_private;
    bool is_dm;
    bool is_member;
} room_access_t;

char *store_strndup(const char *s, size_t len) {
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        log_error("store: out of memory", LOG_I("bytes", len + 1));
        return NULL;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static int dup_str(const char *s, char **out) {
    *out = s == NULL ? NULL : store_strndup(s, strlen(s));
    return s != NULL && *out == NULL ? -1 : 0;
}

/* Copies a text column into *out (NULL for SQL NULL); 0 or -1. */
static int copy_col(db_rows_t *rows, int col, char **out, size_t *len_out) {
    size_t len = 0;
    const char *text = db_text(rows, col, &len);
    *out = text == NULL ? NULL : store_strndup(text, len);
    if (len_out != NULL)
        *len_out = text == NULL ? 0 : len;
    return text != NULL && *out == NULL ? -1 : 0;
}

/* Runs stmt and steps to its first row: 1 (row ready, finish it), 0 (no
 * row), -1 (error). */
static int query_row(store_db_t *db, store_stmt_t stmt, const db_param_t *params, int n,
                     db_rows_t *rows) {
    if (db_query(db, stmt, params, n, rows) < 0)
        return -1;
    int rc = db_next(rows);
    if (rc <= 0)
        db_finish(rows);
    return rc;
}

/* Runs a statement whose rows are not needed; 0 or -1. */
static int exec_stmt(store_db_t *db, store_stmt_t stmt, const db_param_t *params, int n) {
    db_rows_t rows;
    if (db_query(db, stmt, params, n, &rows) < 0)
        return -1;
    int rc;
    while ((rc = db_next(&rows)) > 0) {
    }
    db_finish(&rows);
    return rc < 0 ? -1 : 0;
}

static int room_access(store_db_t *db, int64_t room_id, int64_t user_id, room_access_t *out) {
    db_param_t p[] = {DBP_INT(room_id), DBP_INT(user_id)};
    db_rows_t rows;
    memset(out, 0, sizeof *out);
    int rc = query_row(db, STMT_ROOM_ACCESS, p, 2, &rows);
    if (rc <= 0)
        return rc;
    out->exists = true;
    out->is_private = db_int(&rows, 0) != 0;
    out->is_dm = db_int(&rows, 1) != 0;
    out->is_member = db_int(&rows, 2) != 0;
    db_finish(&rows);
    return 0;
}

/* The read rule: public rooms for everyone, private ones for members only;
 * user 0 is the server itself and may read everything. */
static store_status_t read_status(const room_access_t *a, int64_t user_id) {
    if (!a->exists)
        return STORE_NOT_FOUND;
    if (a->is_private && user_id != 0 && !a->is_member)
        return STORE_FORBIDDEN;
    return STORE_OK;
}

static int read_room(db_rows_t *rows, store_room_t *room) {
    room->id = db_int(rows, ROOM_COL_ID);
    room->is_private = db_int(rows, ROOM_COL_PRIVATE) != 0;
    room->created_by = db_int(rows, ROOM_COL_CREATED_BY);
    room->created_at_ms = db_int(rows, ROOM_COL_CREATED_AT);
    room->member_count = db_int(rows, ROOM_COL_MEMBER_COUNT);
    room->last_read_message_id = db_int(rows, ROOM_COL_LAST_READ);
    room->unread_count = db_int(rows, ROOM_COL_UNREAD);
    return copy_col(rows, ROOM_COL_NAME, &room->name, NULL);
}

/* Loads room_id as seen by user_id into out: 1 found, 0 not found, -1. */
static int load_room(store_db_t *db, int64_t room_id, int64_t user_id, store_room_t *out) {
    db_param_t p[] = {DBP_INT(user_id), DBP_INT(room_id)};
    db_rows_t rows;
    int rc = query_row(db, STMT_ROOM_GET, p, 2, &rows);
    if (rc <= 0)
        return rc;
    rc = read_room(&rows, out);
    db_finish(&rows);
    return rc < 0 ? -1 : 1;
}

/* Finishes a write op by returning the room as the acting user sees it. */
static int reply_room(store_db_t *db, store_job_t *job, int64_t room_id) {
    int rc = load_room(db, room_id, job->auth_user_id, &job->out.room);
    if (rc < 0)
        return -1;
    job->out.status = rc == 1 ? STORE_OK : STORE_NOT_FOUND;
    return 0;
}

int store_message_set_text(store_message_t *m, const store_message_text_t *t) {
    size_t size = t->content_len + 1 + (t->client_id ? t->client_id_len + 1 : 0) +
                  (t->email ? t->email_len + 1 : 0) + (t->username ? t->username_len + 1 : 0);
    char *text = malloc(size);
    if (text == NULL) {
        log_error("store: out of memory", LOG_I("bytes", size));
        return -1;
    }
    free(m->text);
    m->text = text;
    const char *from[] = {t->content ? t->content : "", t->client_id, t->email, t->username};
    size_t lens[] = {t->content ? t->content_len : 0, t->client_id_len, t->email_len,
                     t->username_len};
    char **to[] = {&m->content, &m->client_id, &m->sender_email, &m->sender_username};
    for (int i = 0; i < 4; i++) {
        *to[i] = NULL;
        if (from[i] == NULL)
            continue;
        memcpy(text, from[i], lens[i]);
        text[lens[i]] = '\0';
        *to[i] = text;
        text += lens[i] + 1;
    }
    m->content_len = lens[0];
    return 0;
}

int store_read_message(db_rows_t *rows, store_message_t *m) {
    m->id = db_int(rows, MSG_COL_ID);
    m->sender_id = db_int(rows, MSG_COL_SENDER_ID);
    m->room_id = db_int(rows, MSG_COL_ROOM_ID);
    m->created_at_ms = db_int(rows, MSG_COL_CREATED_AT);
    m->edited_at_ms = db_int(rows, MSG_COL_EDITED_AT);
    m->deleted = db_int(rows, MSG_COL_DELETED) != 0;
    store_message_text_t t;
    t.content = db_text(rows, MSG_COL_CONTENT, &t.content_len);
    t.client_id = db_text(rows, MSG_COL_CLIENT_ID, &t.client_id_len);
    t.email = db_text(rows, MSG_COL_EMAIL, &t.email_len);
    t.username = db_text(rows, MSG_COL_USERNAME, &t.username_len);
    return store_message_set_text(m, &t);
}

/* ---------------------------------------------------------------- users */

static int op_user_get(store_db_t *db, store_job_t *job, store_stmt_t stmt, db_param_t key) {
    db_rows_t rows;
    int rc = query_row(db, stmt, &key, 1, &rows);
    if (rc <= 0) {
        job->out.status = STORE_NOT_FOUND;
        return rc;
    }
    store_user_t *u = &job->out.user;
    u->id = db_int(&rows, 0);
    u->created_at_ms = db_int(&rows, 4);
    rc = copy_col(&rows, 1, &u->email, NULL) | copy_col(&rows, 2, &u->username, NULL) |
         copy_col(&rows, 3, &u->password_hash, NULL);
    db_finish(&rows);
    job->out.status = STORE_OK;
    return rc < 0 ? -1 : 0;
}

static int op_user_create(store_db_t *db, store_job_t *job) {
    int64_t now = time_wall_ms();
    db_param_t p[] = {DBP_STR(job->in.email), DBP_STR(job->in.password_hash),
                      DBP_STR(job->in.username), DBP_INT(now)};
    db_rows_t rows;
    int rc = query_row(db, STMT_USER_INSERT, p, 4, &rows);
    if (rc <= 0) {
        job->out.status = STORE_CONFLICT;
        return rc;
    }
    store_user_t *u = &job->out.user;
    u->id = db_int(&rows, 0);
    u->created_at_ms = now;
    db_finish(&rows);
    job->out.status = STORE_OK;
    return dup_str(job->in.email, &u->email) | dup_str(job->in.username, &u->username);
}

/* 1 when user_id exists, 0 when not, -1; copies email/username if asked. */
static int user_exists(store_db_t *db, int64_t user_id, char **email, char **username) {
    db_param_t p = DBP_INT(user_id);
    db_rows_t rows;
    int rc = query_row(db, STMT_USER_AUTH, &p, 1, &rows);
    if (rc <= 0)
        return rc;
    if (email != NULL)
        rc = copy_col(&rows, 0, email, NULL) | copy_col(&rows, 1, username, NULL);
    db_finish(&rows);
    return rc < 0 ? -1 : 1;
}

/* ---------------------------------------------------------------- rooms */

static int op_rooms_list(store_db_t *db, store_job_t *job) {
    db_param_t p = DBP_INT(job->auth_user_id);
    db_rows_t rows;
    if (db_query(db, STMT_ROOMS_LIST, &p, 1, &rows) < 0)
        return -1;
    size_t cap = 0;
    int rc;
    while ((rc = db_next(&rows)) > 0) {
        if (job->out.room_count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            store_room_t *grown = realloc(job->out.rooms, ncap * sizeof *grown);
            if (grown == NULL) {
                rc = -1;
                break;
            }
            job->out.rooms = grown;
            cap = ncap;
        }
        store_room_t *room = &job->out.rooms[job->out.room_count++];
        memset(room, 0, sizeof *room);
        if (read_room(&rows, room) < 0) {
            rc = -1;
            break;
        }
    }
    db_finish(&rows);
    job->out.status = STORE_OK;
    return rc < 0 ? -1 : 0;
}

/* Looks the room up for the acting user; 1 when the job may go on, 0 when
 * out.status already says why not, -1. */
static int check_read(store_db_t *db, store_job_t *job, room_access_t *a) {
    if (room_access(db, job->in.room_id, job->auth_user_id, a) < 0)
        return -1;
    job->out.status = read_status(a, job->auth_user_id);
    return job->out.status == STORE_OK;
}

static int op_room_get(store_db_t *db, store_job_t *job) {
    room_access_t a;
    int rc = check_read(db, job, &a);
    return rc <= 0 ? rc : reply_room(db, job, job->in.room_id);
}

static int op_room_members(store_db_t *db, store_job_t *job) {
    room_access_t a;
    int rc = check_read(db, job, &a);
    if (rc <= 0)
        return rc;
    db_param_t p = DBP_INT(job->in.room_id);
    db_rows_t rows;
    if (db_query(db, STMT_MEMBERS, &p, 1, &rows) < 0)
        return -1;
    size_t cap = 0;
    while ((rc = db_next(&rows)) > 0) {
        if (job->out.member_count == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            store_member_t *grown = realloc(job->out.members, ncap * sizeof *grown);
            if (grown == NULL) {
                rc = -1;
                break;
            }
            job->out.members = grown;
            cap = ncap;
        }
        store_member_t *m = &job->out.members[job->out.member_count++];
        m->id = db_int(&rows, 0);
        m->joined_at_ms = db_int(&rows, 2);
        if (copy_col(&rows, 1, &m->username, NULL) < 0) {
            rc = -1;
            break;
        }
    }
    db_finish(&rows);
    return rc < 0 ? -1 : 0;
}

static int op_room_create(store_db_t *db, store_job_t *job) {
    int64_t now = time_wall_ms();
    int64_t creator = job->auth_user_id;
    db_param_t p[] = {DBP_STR(job->in.name), DBP_INT(job->in.is_private),
                      creator != 0 ? DBP_INT(creator) : DBP_NULL(), DBP_INT(now)};
    db_rows_t rows;
    if (query_row(db, STMT_ROOM_INSERT, p, 4, &rows) <= 0)
        return -1;
    int64_t room_id = db_int(&rows, 0);
    db_finish(&rows);
    if (creator != 0) {
        db_param_t m[] = {DBP_INT(room_id), DBP_INT(creator), DBP_INT(now)};
        if (exec_stmt(db, STMT_MEMBER_INSERT, m, 3) < 0)
            return -1;
    }
    /* Everything is known: no need to read the room back. */
    store_room_t *room = &job->out.room;
    room->id = room_id;
    room->is_private = job->in.is_private;
    room->created_by = creator;
    room->created_at_ms = now;
    room->member_count = creator != 0;
    job->out.status = STORE_OK;
    return dup_str(job->in.name, &room->name);
}

static int add_member(store_db_t *db, int64_t room_id, int64_t user_id) {
    db_param_t p[] = {DBP_INT(room_id), DBP_INT(user_id), DBP_INT(time_wall_ms())};
    return exec_stmt(db, STMT_MEMBER_INSERT, p, 3);
}

static int op_room_join(store_db_t *db, store_job_t *job) {
    room_access_t a;
    int rc = check_read(db, job, &a);
    if (rc <= 0)
        return rc;
    if (!a.is_member && add_member(db, job->in.room_id, job->auth_user_id) < 0)
        return -1;
    return reply_room(db, job, job->in.room_id);
}

static int op_room_leave(store_db_t *db, store_job_t *job) {
    room_access_t a;
    if (room_access(db, job->in.room_id, job->auth_user_id, &a) < 0)
        return -1;
    if (!a.exists) {
        job->out.status = STORE_NOT_FOUND;
        return 0;
    }
    db_param_t p[] = {DBP_INT(job->in.room_id), DBP_INT(job->auth_user_id)};
    if (a.is_member && exec_stmt(db, STMT_MEMBER_DELETE, p, 2) < 0)
        return -1;
    job->out.status = STORE_OK;
    return 0;
}

static int op_room_add_member(store_db_t *db, store_job_t *job) {
    room_access_t a;
    int rc = check_read(db, job, &a);
    if (rc <= 0)
        return rc;
    /* A DM stays a two-person room. */
    if (a.is_dm) {
        job->out.status = STORE_FORBIDDEN;
        return 0;
    }
    rc = user_exists(db, job->in.user_id, NULL, NULL);
    if (rc <= 0) {
        job->out.status = STORE_NOT_FOUND;
        return rc;
    }
    if (add_member(db, job->in.room_id, job->in.user_id) < 0)
        return -1;
    return reply_room(db, job, job->in.room_id);
}

/* A DM is the private room with dm_key "<lower id>:<higher id>", named
 * "dm:<lower id>:<higher id>"; both users are (re)made members on open. */
static int op_dm_open(store_db_t *db, store_job_t *job) {
    int64_t me = job->auth_user_id, other = job->in.user_id;
    int rc = user_exists(db, other, NULL, NULL);
    if (rc <= 0) {
        job->out.status = STORE_NOT_FOUND;
        return rc;
    }
    int64_t lo = me < other ? me : other, hi = me < other ? other : me;
    char key[48], name[52];
    snprintf(key, sizeof key, "%" PRId64 ":%" PRId64, lo, hi);
    snprintf(name, sizeof name, "dm:%s", key);
    db_param_t p[] = {DBP_STR(name), DBP_INT(me), DBP_STR(key), DBP_INT(time_wall_ms())};
    db_rows_t rows;
    rc = query_row(db, STMT_DM_INSERT, p, 4, &rows);
    if (rc < 0)
        return -1;
    if (rc == 0) {
        db_param_t k = DBP_STR(key);
        if (query_row(db, STMT_ROOM_BY_DM_KEY, &k, 1, &rows) <= 0)
            return -1;
    }
    job->out.created = rc == 1;
    int64_t room_id = db_int(&rows, 0);
    db_finish(&rows);
    if (add_member(db, room_id, me) < 0 || (other != me && add_member(db, room_id, other) < 0))
        return -1;
    return reply_room(db, job, room_id);
}

/* ------------------------------------------------------------- messages */

/* The generic insert: look-ups, then INSERT ... ON CONFLICT DO NOTHING;
 * a client_id repeat returns the stored row. */
int store_ops_message_insert(store_db_t *db, store_job_t *job) {
    store_message_t *m = &job->out.message;
    int64_t sender = job->auth_user_id;
    char *email = NULL, *username = NULL;
    int rc = user_exists(db, sender, &email, &username);
    if (rc <= 0) {
        job->out.status = STORE_NO_USER;
        goto done;
    }
    room_access_t a;
    rc = check_read(db, job, &a);
    if (rc <= 0)
        goto done;
    int64_t now = time_wall_ms();
    const char *cid = job->in.client_id;
    db_param_t p[] = {DBP_INT(sender), DBP_INT(job->in.room_id),
                      DBP_TEXT(job->in.content, job->in.content_len),
                      cid != NULL ? DBP_STR(cid) : DBP_NULL(), DBP_INT(now)};
    db_rows_t rows;
    rc = query_row(db, STMT_MESSAGE_INSERT, p, 5, &rows);
    if (rc < 0)
        goto done;
    job->out.status = STORE_OK;
    if (rc == 0) {
        /* The stored row brings its own names. */
        db_param_t k[] = {DBP_INT(sender), DBP_STR(cid)};
        rc = -1;
        if (query_row(db, STMT_MESSAGE_BY_CLIENT_ID, k, 2, &rows) <= 0)
            goto done;
        rc = store_read_message(&rows, m);
        db_finish(&rows);
        job->out.duplicate = true;
        goto done;
    }
    m->id = db_int(&rows, 0);
    db_finish(&rows);
    m->sender_id = sender;
    m->room_id = job->in.room_id;
    m->created_at_ms = now;
    store_message_text_t t = {.content = job->in.content,
                              .content_len = job->in.content_len,
                              .client_id = cid,
                              .client_id_len = cid != NULL ? strlen(cid) : 0,
                              .email = email,
                              .email_len = email != NULL ? strlen(email) : 0,
                              .username = username,
                              .username_len = username != NULL ? strlen(username) : 0};
    rc = store_message_set_text(m, &t);
    /* The first post in a public room makes the sender a member. */
    if (rc == 0 && !a.is_member)
        rc = add_member(db, job->in.room_id, sender);
done:
    free(email);
    free(username);
    return rc < 0 ? -1 : 0;
}

static int op_messages_page(store_db_t *db, store_job_t *job) {
    room_access_t a;
    int rc = check_read(db, job, &a);
    if (rc <= 0)
        return rc;
    int limit = job->in.limit <= 0 ? PAGE_LIMIT_DEFAULT : job->in.limit;
    if (limit > STORE_PAGE_LIMIT_MAX)
        limit = STORE_PAGE_LIMIT_MAX;
    int64_t before = job->in.before_id > 0 ? job->in.before_id : INT64_MAX;
    bool ascending = job->in.after_id > 0 || job->in.from_start;
    db_rows_t rows;
    if (ascending) {
        db_param_t p[] = {DBP_INT(job->in.room_id), DBP_INT(job->in.after_id), DBP_INT(before),
                          DBP_INT(limit + 1)};
        rc = db_query(db, STMT_PAGE_ASC, p, 4, &rows);
    } else {
        db_param_t p[] = {DBP_INT(job->in.room_id), DBP_INT(before), DBP_INT(limit + 1)};
        rc = db_query(db, STMT_PAGE_DESC, p, 3, &rows);
    }
    if (rc < 0)
        return -1;
    job->out.messages = calloc((size_t)limit, sizeof *job->out.messages);
    if (job->out.messages == NULL) {
        db_finish(&rows);
        return -1;
    }
    size_t n = 0;
    while ((rc = db_next(&rows)) > 0) {
        if (n == (size_t)limit) {
            /* One row beyond the page: there is more in this direction. */
            job->out.has_more = true;
            break;
        }
        job->out.message_count = ++n;
        if (store_read_message(&rows, &job->out.messages[n - 1]) < 0) {
            rc = -1;
            break;
        }
    }
    db_finish(&rows);
    if (rc < 0)
        return -1;
    for (size_t i = 0; !ascending && i < n / 2; i++) {
        store_message_t tmp = job->out.messages[i];
        job->out.messages[i] = job->out.messages[n - 1 - i];
        job->out.messages[n - 1 - i] = tmp;
    }
    return 0;
}

/* Checks run first (room, access, the message), so a marker that would
 * not move writes nothing. */
static int op_read_mark(store_db_t *db, store_job_t *job) {
    int64_t room = job->in.room_id, reader = job->auth_user_id, msg = job->in.message_id;
    db_param_t p[] = {DBP_INT(room), DBP_INT(reader), DBP_INT(msg), DBP_INT(time_wall_ms())};
    db_rows_t rows;
    room_access_t a = {0};
    int rc = query_row(db, STMT_READ_ACCESS, p, 3, &rows);
    if (rc < 0)
        return -1;
    int64_t marker = 0;
    bool message_in_room = false;
    if (rc == 1) {
        a.exists = true;
        a.is_private = db_int(&rows, 0) != 0;
        a.is_member = db_int(&rows, 1) != 0;
        marker = db_int(&rows, 2);
        message_in_room = db_int(&rows, 3) != 0;
        db_finish(&rows);
    }
    job->out.status = read_status(&a, reader);
    if (job->out.status != STORE_OK)
        return 0;
    if (!message_in_room) {
        job->out.status = STORE_NOT_FOUND;
        return 0;
    }
    job->out.read_message_id = marker;
    if (msg <= marker)
        return 0;
    rc = query_row(db, STMT_READ_MARK, p, 4, &rows);
    if (rc < 0)
        return -1;
    if (rc == 1) {
        job->out.advanced = true;
        job->out.read_message_id = db_int(&rows, 0);
        db_finish(&rows);
        return 0;
    }
    /* Another node moved it further meanwhile: report where it is now. */
    if (query_row(db, STMT_READ_ACCESS, p, 3, &rows) <= 0)
        return -1;
    job->out.read_message_id = db_int(&rows, 2);
    db_finish(&rows);
    return 0;
}

/* ------------------------------------------------------------- dispatch */

static bool has_inputs(const store_job_t *job) {
    switch (job->op) {
    case STORE_USER_BY_EMAIL:
        return job->in.email != NULL;
    case STORE_USER_CREATE:
        return job->in.email != NULL && job->in.username != NULL && job->in.password_hash != NULL;
    case STORE_ROOM_CREATE:
        return job->in.name != NULL;
    case STORE_ROOM_JOIN:
    case STORE_ROOM_LEAVE:
    case STORE_DM_OPEN:
    case STORE_READ_MARK:
        return job->auth_user_id != 0;
    case STORE_MESSAGE_INSERT:
        /* PostgreSQL text cannot hold NUL; refuse it on both backends. */
        return job->auth_user_id != 0 && job->in.content != NULL &&
               memchr(job->in.content, '\0', job->in.content_len) == NULL;
    default:
        return true;
    }
}

bool store_ops_check_inputs(store_job_t *job) {
    if (has_inputs(job))
        return true;
    log_error("store: job without its inputs", LOG_I("op", job->op));
    job->out.status = STORE_ERROR;
    return false;
}

int store_ops_run(store_db_t *db, store_job_t *job) {
    if (!store_ops_check_inputs(job))
        return 0;
    if (job->op == STORE_MESSAGE_INSERT) {
        /* Checks the sender itself, in the same statement where it can. */
        return db->backend->message_insert != NULL ? db->backend->message_insert(db, job)
                                                   : store_ops_message_insert(db, job);
    }
    if (job->auth_user_id != 0) {
        int rc = user_exists(db, job->auth_user_id, NULL, NULL);
        if (rc <= 0) {
            job->out.status = STORE_NO_USER;
            return rc;
        }
    }
    switch (job->op) {
    case STORE_PING:
        job->out.status = STORE_OK;
        return exec_stmt(db, STMT_PING, NULL, 0);
    case STORE_USER_BY_EMAIL:
        return op_user_get(db, job, STMT_USER_BY_EMAIL, DBP_STR(job->in.email));
    case STORE_USER_BY_ID:
        return op_user_get(db, job, STMT_USER_BY_ID, DBP_INT(job->in.user_id));
    case STORE_ROOMS_LIST:
        return op_rooms_list(db, job);
    case STORE_ROOM_GET:
        return op_room_get(db, job);
    case STORE_ROOM_MEMBERS:
        return op_room_members(db, job);
    case STORE_MESSAGES_PAGE:
        return op_messages_page(db, job);
    case STORE_USER_CREATE:
        return op_user_create(db, job);
    case STORE_ROOM_CREATE:
        return op_room_create(db, job);
    case STORE_ROOM_JOIN:
        return op_room_join(db, job);
    case STORE_ROOM_LEAVE:
        return op_room_leave(db, job);
    case STORE_ROOM_ADD_MEMBER:
        return op_room_add_member(db, job);
    case STORE_DM_OPEN:
        return op_dm_open(db, job);
    case STORE_READ_MARK:
        return op_read_mark(db, job);
    default:
        job->out.status = STORE_ERROR;
        return 0;
    }
}

int store_ops_write_batch(store_db_t *db, store_job_t **jobs, size_t n) {
    const store_backend_t *b = db->backend;
    if (b->exec(db, b->begin_sql, NULL, 0) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (store_ops_run(db, jobs[i]) < 0)
            goto rollback;
    }
    if (b->exec(db, "COMMIT", NULL, 0) == 0)
        return 0;
rollback:
    b->exec(db, "ROLLBACK", NULL, 0);
    return -1;
}
