/* The store against a temporary SQLite file, or against PostgreSQL when
 * CHATD_TEST_DATABASE_URL names one (its public schema is dropped and
 * recreated before every test: give it a throwaway database, e.g. from
 * scripts/pg_throwaway.sh). Replies come back through an inbox on a uv loop,
 * as in the server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/inbox.h"
#include "store/backend.h"
#include "store/migrations.h"
#include "store/store.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WAIT_MS 30000

static const char *pg_url; /* NULL: SQLite */
static char tmpdir[256];
static config_t cfg;
static uv_loop_t loop;
static inbox_t inbox;
static uv_thread_t loop_thread;
static int dones;

/* ------------------------------------------------------------ harness */

static void on_done(store_job_t *job) {
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &loop_thread));
    (void)job;
    dones++;
}

static int timed_out;
static void on_deadline(uv_timer_t *t) {
    (void)t;
    timed_out = 1;
}

/* Runs the loop until `target` dones were called (or fails the test). */
static void wait_dones(int target) {
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timed_out = 0;
    uv_timer_start(&timer, on_deadline, WAIT_MS, 0);
    while (dones < target && !timed_out)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&timer, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(dones, target);
}

static void job_init(store_job_t *job, store_op_t op, int64_t auth) {
    memset(job, 0, sizeof *job);
    job->op = op;
    job->auth_user_id = auth;
    job->reply_to = &inbox;
    job->done = on_done;
}

/* Submits and waits for one job; returns its status (out stays filled). */
static store_status_t run(store_t *s, store_job_t *job) {
    int target = dones + 1;
    assert_int_equal(store_submit(s, job), 0);
    wait_dones(target);
    return job->out.status;
}

static store_t *open_store(void) {
    store_t *s = NULL;
    char err[512] = "";
    if (store_open(&s, &cfg, err, sizeof err) != 0)
        fail_msg("store_open: %s", err);
    return s;
}

static void quiet(void *arg, const char *message) {
    (void)arg;
    (void)message;
}

static void pg_exec_or_fail(const char *sql) {
    PGconn *c = PQconnectdb(pg_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PQsetNoticeProcessor(c, quiet, NULL);
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* One integer from SQL run outside the store. */
static int64_t sql_int(const char *sql) {
    int64_t v = -1;
    if (pg_url != NULL) {
        PGconn *c = PQconnectdb(pg_url);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        PQfinish(c);
        return v;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cfg.database_url + strlen("sqlite:"), &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int setup(void **state) {
    (void)state;
    config_defaults(&cfg);
    cfg.store_readers = 2;
    if (pg_url != NULL) {
        snprintf(cfg.database_url, sizeof cfg.database_url, "%s", pg_url);
        pg_exec_or_fail("DROP SCHEMA public CASCADE; CREATE SCHEMA public");
    } else {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/chatd-store-XXXXXX");
        if (mkdtemp(tmpdir) == NULL)
            return -1;
        snprintf(cfg.database_url, sizeof cfg.database_url, "sqlite:%s/chat.db", tmpdir);
    }
    loop_thread = uv_thread_self();
    dones = 0;
    if (uv_loop_init(&loop) != 0 || inbox_init(&inbox, &loop) != 0)
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    inbox_close(&inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&loop);
    if (pg_url == NULL) {
        const char *suffixes[] = {"", "-wal", "-shm"};
        char path[512];
        for (int i = 0; i < 3; i++) {
            snprintf(path, sizeof path, "%s/chat.db%s", tmpdir, suffixes[i]);
            unlink(path);
        }
        rmdir(tmpdir);
    }
    return rc == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ helpers */

static int64_t make_user(store_t *s, const char *email, const char *username) {
    store_job_t job;
    job_init(&job, STORE_USER_CREATE, 0);
    job.in.email = email;
    job.in.username = username;
    job.in.password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA";
    assert_int_equal(run(s, &job), STORE_OK);
    int64_t id = job.out.user.id;
    assert_true(id > 0);
    store_job_cleanup(&job);
    return id;
}

static int64_t make_room(store_t *s, int64_t auth, const char *name, bool is_private) {
    store_job_t job;
    job_init(&job, STORE_ROOM_CREATE, auth);
    job.in.name = name;
    job.in.is_private = is_private;
    assert_int_equal(run(s, &job), STORE_OK);
    int64_t id = job.out.room.id;
    store_job_cleanup(&job);
    return id;
}

static void insert_init(store_job_t *job, int64_t auth, int64_t room, const char *content,
                        const char *client_id) {
    job_init(job, STORE_MESSAGE_INSERT, auth);
    job->in.room_id = room;
    job->in.content = content;
    job->in.content_len = strlen(content);
    job->in.client_id = client_id;
}

/* The status of a room op (ROOM_GET, JOIN, ...) for auth on room. */
static store_status_t room_op(store_t *s, store_op_t op, int64_t auth, int64_t room, int64_t target,
                              store_room_t *room_out) {
    store_job_t job;
    job_init(&job, op, auth);
    job.in.room_id = room;
    job.in.user_id = target;
    store_status_t st = run(s, &job);
    if (room_out != NULL) {
        *room_out = job.out.room;
        room_out->name = NULL;
    }
    store_job_cleanup(&job);
    return st;
}

static bool list_has(store_t *s, int64_t auth, int64_t room) {
    store_job_t job;
    job_init(&job, STORE_ROOMS_LIST, auth);
    assert_int_equal(run(s, &job), STORE_OK);
    bool found = false;
    for (size_t i = 0; i < job.out.room_count; i++) {
        if (i > 0)
            assert_true(job.out.rooms[i - 1].id < job.out.rooms[i].id);
        found = found || job.out.rooms[i].id == room;
    }
    store_job_cleanup(&job);
    return found;
}

static size_t count_members(store_t *s, int64_t auth, int64_t room) {
    store_job_t job;
    job_init(&job, STORE_ROOM_MEMBERS, auth);
    job.in.room_id = room;
    assert_int_equal(run(s, &job), STORE_OK);
    size_t n = job.out.member_count;
    store_job_cleanup(&job);
    return n;
}

static size_t page(store_t *s, int64_t auth, int64_t room, int64_t before, int64_t after, int limit,
                   int64_t *ids, bool *has_more) {
    store_job_t job;
    job_init(&job, STORE_MESSAGES_PAGE, auth);
    job.in.room_id = room;
    job.in.before_id = before;
    job.in.after_id = after;
    job.in.limit = limit;
    assert_int_equal(run(s, &job), STORE_OK);
    size_t n = job.out.message_count;
    for (size_t i = 0; i < n; i++)
        ids[i] = job.out.messages[i].id;
    *has_more = job.out.has_more;
    store_job_cleanup(&job);
    return n;
}

static size_t backend_migrations(void) {
    size_t n = 0;
    for (size_t i = 0; i < chatd_migration_count; i++) {
        if (chatd_migrations[i].backend != NULL &&
            strcmp(chatd_migrations[i].backend, pg_url != NULL ? "postgres" : "sqlite") == 0)
            n++;
    }
    return n;
}

/* -------------------------------------------------------------- tests */

static void test_migrations(void **state) {
    (void)state;
    store_t *s = open_store();
    assert_string_equal(store_backend_name(s), pg_url != NULL ? "postgres" : "sqlite");
    store_job_t job;
    job_init(&job, STORE_ROOMS_LIST, 0);
    assert_int_equal(run(s, &job), STORE_OK);
    assert_int_equal(job.out.room_count, 3);
    const char *names[] = {"General", "Random", "Tech Talk"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(job.out.rooms[i].id, i + 1);
        assert_string_equal(job.out.rooms[i].name, names[i]);
        assert_false(job.out.rooms[i].is_private);
        assert_int_equal(job.out.rooms[i].created_by, 0);
        assert_true(job.out.rooms[i].created_at_ms > 1600000000000);
    }
    store_job_cleanup(&job);
    store_close(s);

    size_t expected = backend_migrations();
    assert_true(expected >= 1);
    assert_int_equal(sql_int("SELECT count(*) FROM schema_migrations"), expected);
    int64_t applied_at = sql_int("SELECT max(applied_at) FROM schema_migrations");

    /* Reopening and `chatd migrate` apply nothing again. */
    s = open_store();
    char err[256];
    assert_int_equal(store_migrate(&cfg, err, sizeof err), 0);
    assert_int_equal(sql_int("SELECT count(*) FROM schema_migrations"), expected);
    assert_int_equal(sql_int("SELECT max(applied_at) FROM schema_migrations"), applied_at);
    assert_int_equal(sql_int("SELECT count(*) FROM rooms"), 3);
    /* New rooms come after the seeded ones on both backends. */
    assert_int_equal(make_room(s, 0, "Fourth", false), 4);
    store_close(s);

    config_t bad = cfg;
    snprintf(bad.database_url, sizeof bad.database_url, "mysql://x");
    assert_int_equal(store_open(&s, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "DATABASE_URL"));
    snprintf(bad.database_url, sizeof bad.database_url, "sqlite:/nonexistent-dir/x/chat.db");
    assert_int_equal(store_open(&s, &bad, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x/chat.db"));
}

static void test_users(void **state) {
    (void)state;
    store_t *s = open_store();
    store_job_t job;
    job_init(&job, STORE_USER_CREATE, 0);
    job.in.email = "alice@example.com";
    job.in.username = "alice";
    job.in.password_hash = "$argon2id$hash-a";
    assert_int_equal(run(s, &job), STORE_OK);
    int64_t alice = job.out.user.id;
    assert_true(alice > 0);
    assert_string_equal(job.out.user.email, "alice@example.com");
    assert_string_equal(job.out.user.username, "alice");
    assert_null(job.out.user.password_hash);
    int64_t created = job.out.user.created_at_ms;
    assert_true(created > 1600000000000);
    store_job_cleanup(&job);

    job_init(&job, STORE_USER_CREATE, 0);
    job.in.email = "alice@example.com";
    job.in.username = "alice2";
    job.in.password_hash = "$argon2id$hash-b";
    assert_int_equal(run(s, &job), STORE_CONFLICT);
    store_job_cleanup(&job);

    job_init(&job, STORE_USER_BY_EMAIL, 0);
    job.in.email = "alice@example.com";
    assert_int_equal(run(s, &job), STORE_OK);
    assert_int_equal(job.out.user.id, alice);
    assert_string_equal(job.out.user.password_hash, "$argon2id$hash-a");
    assert_string_equal(job.out.user.username, "alice");
    assert_int_equal(job.out.user.created_at_ms, created);
    store_job_cleanup(&job);

    job_init(&job, STORE_USER_BY_EMAIL, 0);
    job.in.email = "nobody@example.com";
    assert_int_equal(run(s, &job), STORE_NOT_FOUND);

    job_init(&job, STORE_USER_BY_ID, 0);
    job.in.user_id = alice;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_string_equal(job.out.user.email, "alice@example.com");
    assert_null(job.out.user.password_hash);
    store_job_cleanup(&job);

    job_init(&job, STORE_USER_BY_ID, 0);
    job.in.user_id = alice + 1000;
    assert_int_equal(run(s, &job), STORE_NOT_FOUND);

    /* An acting user who no longer exists, on reads and writes alike. */
    job_init(&job, STORE_ROOMS_LIST, alice + 1000);
    assert_int_equal(run(s, &job), STORE_NO_USER);
    job_init(&job, STORE_ROOM_CREATE, alice + 1000);
    job.in.name = "ghost room";
    assert_int_equal(run(s, &job), STORE_NO_USER);
    store_job_t msg;
    insert_init(&msg, alice + 1000, 1, "boo", NULL);
    assert_int_equal(run(s, &msg), STORE_NO_USER);
    store_job_cleanup(&msg);

    job_init(&job, STORE_PING, 0);
    assert_int_equal(run(s, &job), STORE_OK);
    store_close(s);
}

static void test_rooms(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");

    store_job_t job;
    job_init(&job, STORE_ROOM_CREATE, alice);
    job.in.name = "secret";
    job.in.is_private = true;
    assert_int_equal(run(s, &job), STORE_OK);
    int64_t priv = job.out.room.id;
    assert_string_equal(job.out.room.name, "secret");
    assert_true(job.out.room.is_private);
    assert_int_equal(job.out.room.created_by, alice);
    assert_int_equal(job.out.room.member_count, 1);
    store_job_cleanup(&job);
    int64_t pub = make_room(s, alice, "open", false);
    assert_true(pub > priv && priv > 3);

    /* Private rooms are listed for their members only. */
    assert_true(list_has(s, alice, priv));
    assert_true(list_has(s, alice, pub));
    assert_false(list_has(s, bob, priv));
    assert_true(list_has(s, bob, pub));
    assert_true(list_has(s, bob, 1));

    store_room_t room;
    assert_int_equal(room_op(s, STORE_ROOM_GET, bob, priv, 0, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_GET, alice, priv, 0, &room), STORE_OK);
    assert_int_equal(room.member_count, 1);
    assert_int_equal(room_op(s, STORE_ROOM_GET, bob, 999999, 0, NULL), STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_ROOM_MEMBERS, bob, priv, 0, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_MEMBERS, bob, 999999, 0, NULL), STORE_NOT_FOUND);

    /* Join: public rooms, idempotent; private ones are closed. */
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, bob, pub, 0, &room), STORE_OK);
    assert_int_equal(room.id, pub);
    assert_int_equal(room.member_count, 2);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, bob, pub, 0, &room), STORE_OK);
    assert_int_equal(room.member_count, 2);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, bob, priv, 0, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, bob, 999999, 0, NULL), STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, alice, priv, 0, NULL), STORE_OK);

    job_init(&job, STORE_ROOM_MEMBERS, bob);
    job.in.room_id = pub;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_int_equal(job.out.member_count, 2);
    assert_int_equal(job.out.members[0].id, alice);
    assert_string_equal(job.out.members[0].username, "alice");
    assert_int_equal(job.out.members[1].id, bob);
    assert_string_equal(job.out.members[1].username, "bob");
    assert_true(job.out.members[0].joined_at_ms <= job.out.members[1].joined_at_ms);
    store_job_cleanup(&job);

    /* Leave: fine when not a member; unknown rooms are not found. */
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, bob, pub, 0, NULL), STORE_OK);
    assert_int_equal(count_members(s, alice, pub), 1);
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, bob, pub, 0, NULL), STORE_OK);
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, bob, 999999, 0, NULL), STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, alice, priv, 0, NULL), STORE_OK);
    assert_int_equal(room_op(s, STORE_ROOM_GET, alice, priv, 0, NULL), STORE_FORBIDDEN);
    store_close(s);
}

static void test_add_member(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t carol = make_user(s, "carol@example.com", "carol");
    int64_t priv = make_room(s, alice, "secret", true);
    int64_t pub = make_room(s, alice, "open", false);
    store_room_t room;

    /* A non-member cannot add anyone to a private room, not even themself. */
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, bob, priv, bob, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, alice, priv, carol + 100, NULL),
                     STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, alice, 999999, bob, NULL), STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, alice, priv, bob, &room), STORE_OK);
    assert_int_equal(room.id, priv);
    assert_int_equal(room.member_count, 2);
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, alice, priv, bob, &room), STORE_OK);
    assert_int_equal(room.member_count, 2);
    assert_true(list_has(s, bob, priv));
    assert_int_equal(room_op(s, STORE_ROOM_GET, bob, priv, 0, NULL), STORE_OK);
    /* An added member passes the connect check (JOIN) of a private room,
     * which changes nothing; carol, not yet added, does not. */
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, bob, priv, 0, &room), STORE_OK);
    assert_int_equal(room.id, priv);
    assert_true(room.is_private);
    assert_int_equal(room.member_count, 2);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, carol, priv, 0, NULL), STORE_FORBIDDEN);
    /* Now bob is a member, he may add carol too. */
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, bob, priv, carol, &room), STORE_OK);
    assert_int_equal(room.member_count, 3);
    /* Public rooms: whoever can read the room may add. */
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, carol, pub, bob, &room), STORE_OK);
    assert_int_equal(room.member_count, 2);
    store_close(s);
}

static void test_dms(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t carol = make_user(s, "carol@example.com", "carol");

    store_job_t job;
    job_init(&job, STORE_DM_OPEN, bob);
    job.in.user_id = alice;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_true(job.out.created);
    int64_t dm = job.out.room.id;
    assert_true(job.out.room.is_private);
    assert_int_equal(job.out.room.member_count, 2);
    char name[64];
    snprintf(name, sizeof name, "dm:%lld:%lld", (long long)alice, (long long)bob);
    assert_string_equal(job.out.room.name, name);
    store_job_cleanup(&job);

    for (int i = 0; i < 2; i++) {
        job_init(&job, STORE_DM_OPEN, i == 0 ? bob : alice);
        job.in.user_id = i == 0 ? alice : bob;
        assert_int_equal(run(s, &job), STORE_OK);
        assert_false(job.out.created);
        assert_int_equal(job.out.room.id, dm);
        store_job_cleanup(&job);
    }
    assert_true(list_has(s, alice, dm));
    assert_true(list_has(s, bob, dm));
    assert_false(list_has(s, carol, dm));
    assert_int_equal(room_op(s, STORE_ROOM_GET, carol, dm, 0, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_JOIN, carol, dm, 0, NULL), STORE_FORBIDDEN);
    /* A DM stays between its two people. */
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, alice, dm, carol, NULL), STORE_FORBIDDEN);

    job_init(&job, STORE_DM_OPEN, alice);
    job.in.user_id = carol + 100;
    assert_int_equal(run(s, &job), STORE_NOT_FOUND);
    job_init(&job, STORE_DM_OPEN, alice);
    job.in.user_id = carol;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_true(job.out.created);
    assert_true(job.out.room.id != dm);
    store_job_cleanup(&job);
    store_close(s);
}

static void test_messages(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t pub = make_room(s, alice, "open", false);
    int64_t priv = make_room(s, alice, "secret", true);
    store_stats_t before, after;
    store_get_stats(s, &before);

    /* Exactly as sent, including non-ASCII and surrounding spaces. */
    const char *text = "  h\xc3\xa9llo \xe2\x9c\x93 ";
    store_job_t job;
    insert_init(&job, bob, pub, text, NULL);
    assert_int_equal(run(s, &job), STORE_OK);
    assert_false(job.out.duplicate);
    store_message_t *m = &job.out.message;
    int64_t first = m->id;
    assert_true(first > 0);
    assert_int_equal(m->sender_id, bob);
    assert_int_equal(m->room_id, pub);
    assert_int_equal(m->content_len, strlen(text));
    assert_string_equal(m->content, text);
    assert_null(m->client_id);
    assert_string_equal(m->sender_email, "bob@example.com");
    assert_string_equal(m->sender_username, "bob");
    assert_true(m->created_at_ms > 1600000000000);
    assert_int_equal(m->edited_at_ms, 0);
    assert_false(m->deleted);
    store_job_cleanup(&job);
    /* The first post in a public room made bob a member. */
    assert_int_equal(count_members(s, alice, pub), 2);

    insert_init(&job, bob, pub, "once", "c-1");
    assert_int_equal(run(s, &job), STORE_OK);
    assert_false(job.out.duplicate);
    int64_t once = job.out.message.id;
    int64_t once_at = job.out.message.created_at_ms;
    assert_string_equal(job.out.message.client_id, "c-1");
    store_job_cleanup(&job);
    /* The same client_id again: the stored message, nothing new stored. */
    insert_init(&job, bob, pub, "twice", "c-1");
    assert_int_equal(run(s, &job), STORE_OK);
    assert_true(job.out.duplicate);
    assert_int_equal(job.out.message.id, once);
    assert_int_equal(job.out.message.created_at_ms, once_at);
    assert_string_equal(job.out.message.content, "once");
    assert_string_equal(job.out.message.client_id, "c-1");
    assert_string_equal(job.out.message.sender_username, "bob");
    assert_int_equal(job.out.message.room_id, pub);
    store_job_cleanup(&job);
    /* Another sender may use the same client_id. */
    insert_init(&job, alice, pub, "mine", "c-1");
    assert_int_equal(run(s, &job), STORE_OK);
    assert_false(job.out.duplicate);
    store_job_cleanup(&job);

    insert_init(&job, bob, priv, "let me in", NULL);
    assert_int_equal(run(s, &job), STORE_FORBIDDEN);
    store_job_cleanup(&job);
    insert_init(&job, bob, 999999, "anyone?", NULL);
    assert_int_equal(run(s, &job), STORE_NOT_FOUND);
    store_job_cleanup(&job);
    insert_init(&job, alice, priv, "note to self", NULL);
    assert_int_equal(run(s, &job), STORE_OK);
    store_job_cleanup(&job);

    store_get_stats(s, &after);
    assert_int_equal(after.messages_stored - before.messages_stored, 4);

    /* Unread counts: others' messages after the (unset) read marker. */
    job_init(&job, STORE_ROOMS_LIST, alice);
    assert_int_equal(run(s, &job), STORE_OK);
    for (size_t i = 0; i < job.out.room_count; i++) {
        store_room_t *r = &job.out.rooms[i];
        assert_int_equal(r->last_read_message_id, 0);
        if (r->id == pub) {
            assert_int_equal(r->unread_count, 2);
            assert_int_equal(r->member_count, 2);
        } else {
            assert_int_equal(r->unread_count, 0);
        }
    }
    store_job_cleanup(&job);
    assert_int_equal(room_op(s, STORE_ROOM_GET, bob, 1, 0, NULL), STORE_OK);
    store_close(s);
}

static void test_pages(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t room = make_room(s, alice, "history", false);
    int64_t other = make_room(s, alice, "noise", false);
    int64_t ids[10], got[16];
    for (int i = 0; i < 10; i++) {
        char text[24];
        snprintf(text, sizeof text, "m%d", i);
        store_job_t job;
        insert_init(&job, alice, room, text, NULL);
        assert_int_equal(run(s, &job), STORE_OK);
        ids[i] = job.out.message.id;
        store_job_cleanup(&job);
        /* Interleave another room's rows: pages must skip them. */
        insert_init(&job, alice, other, text, NULL);
        assert_int_equal(run(s, &job), STORE_OK);
        store_job_cleanup(&job);
    }
    bool more;
    /* Newest page. */
    assert_int_equal(page(s, bob, room, 0, 0, 3, got, &more), 3);
    assert_memory_equal(got, ids + 7, 3 * sizeof(int64_t));
    assert_true(more);
    assert_int_equal(page(s, bob, room, 0, 0, 10, got, &more), 10);
    assert_memory_equal(got, ids, 10 * sizeof(int64_t));
    assert_false(more);
    assert_int_equal(page(s, bob, room, 0, 0, 0, got, &more), 10); /* default limit */
    assert_false(more);
    /* Older pages. */
    assert_int_equal(page(s, bob, room, ids[3], 0, 2, got, &more), 2);
    assert_memory_equal(got, ids + 1, 2 * sizeof(int64_t));
    assert_true(more);
    assert_int_equal(page(s, bob, room, ids[2], 0, 5, got, &more), 2);
    assert_memory_equal(got, ids, 2 * sizeof(int64_t));
    assert_false(more);
    assert_int_equal(page(s, bob, room, ids[0], 0, 5, got, &more), 0);
    assert_false(more);
    /* Newer pages. */
    assert_int_equal(page(s, bob, room, 0, ids[6], 2, got, &more), 2);
    assert_memory_equal(got, ids + 7, 2 * sizeof(int64_t));
    assert_true(more);
    assert_int_equal(page(s, bob, room, 0, ids[7], 5, got, &more), 2);
    assert_memory_equal(got, ids + 8, 2 * sizeof(int64_t));
    assert_false(more);
    assert_int_equal(page(s, bob, room, 0, ids[9], 5, got, &more), 0);
    assert_false(more);
    /* Between two cursors: the first ones after `after`. */
    assert_int_equal(page(s, bob, room, ids[8], ids[1], 3, got, &more), 3);
    assert_memory_equal(got, ids + 2, 3 * sizeof(int64_t));
    assert_true(more);
    assert_int_equal(page(s, bob, room, ids[8], ids[1], 10, got, &more), 6);
    assert_memory_equal(got, ids + 2, 6 * sizeof(int64_t));
    assert_false(more);

    store_job_t job;
    job_init(&job, STORE_MESSAGES_PAGE, bob);
    job.in.room_id = room;
    job.in.limit = 1;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_string_equal(job.out.messages[0].content, "m9");
    assert_string_equal(job.out.messages[0].sender_email, "alice@example.com");
    assert_string_equal(job.out.messages[0].sender_username, "alice");
    assert_int_equal(job.out.messages[0].room_id, room);
    store_job_cleanup(&job);

    int64_t priv = make_room(s, alice, "secret", true);
    assert_int_equal(room_op(s, STORE_MESSAGES_PAGE, bob, priv, 0, NULL), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_MESSAGES_PAGE, bob, 999999, 0, NULL), STORE_NOT_FOUND);
    assert_int_equal(room_op(s, STORE_MESSAGES_PAGE, alice, priv, 0, NULL), STORE_OK);
    store_close(s);
}

#define BURST 200

static void test_group_commit(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    store_stats_t before, after;
    store_get_stats(s, &before);
    store_job_t *jobs = calloc(BURST, sizeof *jobs);
    char(*texts)[24] = calloc(BURST, sizeof *texts);
    int target = dones + BURST;
    for (int i = 0; i < BURST; i++) {
        snprintf(texts[i], sizeof texts[i], "burst %d", i);
        insert_init(&jobs[i], alice, 1 + i % 3, texts[i], NULL);
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    }
    wait_dones(target);
    for (int i = 0; i < BURST; i++) {
        assert_int_equal(jobs[i].out.status, STORE_OK);
        assert_string_equal(jobs[i].out.message.content, texts[i]);
        if (i > 0)
            assert_true(jobs[i].out.message.id > jobs[i - 1].out.message.id);
        store_job_cleanup(&jobs[i]);
    }
    store_get_stats(s, &after);
    uint64_t commits = after.commits - before.commits;
    assert_int_equal(after.messages_stored - before.messages_stored, BURST);
    assert_true(commits >= 1);
    assert_true(commits < BURST);
    assert_int_equal(after.queue_depth, 0);
    assert_int_equal(after.errors, 0);
    uint64_t last = after.commit_seconds_bucket[STORE_COMMIT_BUCKET_COUNT - 1];
    assert_true(last <= after.commits);
    for (int i = 1; i < STORE_COMMIT_BUCKET_COUNT; i++)
        assert_true(after.commit_seconds_bucket[i - 1] <= after.commit_seconds_bucket[i]);
    assert_true(after.commit_seconds_sum > 0);
    print_message("%d inserts in %llu commits\n", BURST, (unsigned long long)commits);
    free(jobs);
    free(texts);
    store_close(s);
}

/* One failing job in a batch fails alone: the rest commit. */
static void test_batch_isolation(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    enum { N = 21 };
    store_job_t jobs[N + 1];
    int target = dones + N + (pg_url != NULL);
    for (int i = 0; i < N; i++) {
        if (i == N / 2) {
            /* Breaks a CHECK constraint: a database error. */
            job_init(&jobs[i], STORE_USER_CREATE, 0);
            jobs[i].in.email = "empty@example.com";
            jobs[i].in.username = "";
            jobs[i].in.password_hash = "x";
        } else {
            insert_init(&jobs[i], alice, 1, "fine", NULL);
        }
    }
    /* PostgreSQL also refuses invalid UTF-8, inside a pipeline of inserts. */
    insert_init(&jobs[N], alice, 2, "bad \xff byte", NULL);
    for (int i = 0; i < N + (pg_url != NULL); i++)
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    wait_dones(target);
    for (int i = 0; i < N + (pg_url != NULL); i++) {
        bool bad = i == N / 2 || i == N;
        assert_int_equal(jobs[i].out.status, bad ? STORE_ERROR : STORE_OK);
        store_job_cleanup(&jobs[i]);
    }
    store_stats_t st;
    store_get_stats(s, &st);
    assert_true(st.errors >= 1);
    assert_int_equal(st.messages_stored, N - 1);
    assert_int_equal(sql_int("SELECT count(*) FROM messages"), N - 1);
    if (pg_url != NULL) {
        /* A batch of inserts only (one pipeline) with a bad one inside. */
        target = dones + N;
        for (int i = 0; i < N; i++)
            insert_init(&jobs[i], alice, 3, i == N / 2 ? "bad \xfe" : "fine", "same");
        for (int i = 0; i < N; i++)
            assert_int_equal(store_submit(s, &jobs[i]), 0);
        wait_dones(target);
        int64_t id = 0;
        for (int i = 0; i < N; i++) {
            if (i == N / 2) {
                assert_int_equal(jobs[i].out.status, STORE_ERROR);
            } else {
                /* All but the first are repeats of the first. */
                assert_int_equal(jobs[i].out.status, STORE_OK);
                assert_int_equal(jobs[i].out.duplicate, i > 0);
                id = id == 0 ? jobs[i].out.message.id : id;
                assert_int_equal(jobs[i].out.message.id, id);
            }
            store_job_cleanup(&jobs[i]);
        }
        assert_int_equal(sql_int("SELECT count(*) FROM messages"), N);
    }
    store_close(s);
}

static void test_close_drains(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    enum { N = 50 };
    store_job_t jobs[N];
    int target = dones + N;
    for (int i = 0; i < N; i++) {
        insert_init(&jobs[i], alice, 2, "drained", NULL);
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    }
    /* The loop is not running: replies wait in the inbox. */
    store_close(s);
    wait_dones(target);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].out.status, STORE_OK);
        store_job_cleanup(&jobs[i]);
    }
    s = open_store();
    int64_t got[N + 1];
    bool more;
    assert_int_equal(page(s, alice, 2, 0, 0, N + 1, got, &more), N);
    store_close(s);
}

static void test_submit_rejects(void **state) {
    (void)state;
    store_t *s = open_store();
    store_job_t job;
    job_init(&job, STORE_PING, 0);
    job.done = NULL;
    assert_int_equal(store_submit(s, &job), -1);
    job_init(&job, STORE_OP_COUNT, 0);
    assert_int_equal(store_submit(s, &job), -1);
    job_init(&job, STORE_PING, 0);
    job.reply_to = NULL;
    assert_int_equal(store_submit(s, &job), -1);
    /* A job without its inputs is answered with an error, not a crash. */
    job_init(&job, STORE_USER_CREATE, 0);
    assert_int_equal(run(s, &job), STORE_ERROR);
    insert_init(&job, 0, 1, "nobody", NULL);
    assert_int_equal(run(s, &job), STORE_ERROR);
    store_close(s);
}

/* PostgreSQL only: connections killed under the store come back. */
static void test_reconnect(void **state) {
    (void)state;
    if (pg_url == NULL)
        skip();
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    store_job_t job;
    job_init(&job, STORE_PING, 0);
    assert_int_equal(run(s, &job), STORE_OK);
    pg_exec_or_fail("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()");
    /* Reads retry once on a fresh connection. */
    for (int i = 0; i < 4; i++) {
        job_init(&job, STORE_PING, 0);
        assert_int_equal(run(s, &job), STORE_OK);
    }
    /* A write on the dead connection is unavailable (or already fine);
     * the next one runs on a new connection. */
    insert_init(&job, alice, 1, "after the storm", NULL);
    store_status_t st = run(s, &job);
    assert_true(st == STORE_UNAVAILABLE || st == STORE_OK);
    store_job_cleanup(&job);
    insert_init(&job, alice, 1, "calm again", NULL);
    assert_int_equal(run(s, &job), STORE_OK);
    store_job_cleanup(&job);
    store_close(s);
}

/* ------------------------------------------------------- read markers */

static int64_t post(store_t *s, int64_t auth, int64_t room, const char *content) {
    store_job_t job;
    insert_init(&job, auth, room, content, NULL);
    assert_int_equal(run(s, &job), STORE_OK);
    int64_t id = job.out.message.id;
    store_job_cleanup(&job);
    return id;
}

/* Runs a READ_MARK; returns its status and what it says of the marker. */
static store_status_t read_mark(store_t *s, int64_t auth, int64_t room, int64_t message,
                                bool *advanced, int64_t *marker) {
    store_job_t job;
    job_init(&job, STORE_READ_MARK, auth);
    job.in.room_id = room;
    job.in.message_id = message;
    store_status_t st = run(s, &job);
    *advanced = job.out.advanced;
    *marker = job.out.read_message_id;
    store_job_cleanup(&job);
    return st;
}

/* The room as ROOM_GET and ROOMS_LIST show it to auth; both must agree. */
static store_room_t seen_room(store_t *s, int64_t auth, int64_t room) {
    store_room_t got;
    assert_int_equal(room_op(s, STORE_ROOM_GET, auth, room, 0, &got), STORE_OK);
    store_job_t job;
    job_init(&job, STORE_ROOMS_LIST, auth);
    assert_int_equal(run(s, &job), STORE_OK);
    bool listed = false;
    for (size_t i = 0; i < job.out.room_count; i++) {
        if (job.out.rooms[i].id != room)
            continue;
        listed = true;
        assert_int_equal(job.out.rooms[i].last_read_message_id, got.last_read_message_id);
        assert_int_equal(job.out.rooms[i].unread_count, got.unread_count);
    }
    assert_true(listed);
    store_job_cleanup(&job);
    return got;
}

static int64_t stored_marker(int64_t room, int64_t user) {
    char sql[160];
    snprintf(
        sql, sizeof sql,
        "SELECT last_read_message_id FROM room_members WHERE room_id = %lld AND user_id = %lld",
        (long long)room, (long long)user);
    return sql_int(sql);
}

static void test_read_mark(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t carol = make_user(s, "carol@example.com", "carol");
    int64_t pub = make_room(s, alice, "open", false);
    int64_t priv = make_room(s, alice, "secret", true);
    int64_t a1 = post(s, alice, pub, "a1");
    int64_t a2 = post(s, alice, pub, "a2");
    int64_t b1 = post(s, bob, pub, "b1");
    int64_t a3 = post(s, alice, pub, "a3");
    int64_t elsewhere = post(s, alice, 1, "elsewhere");
    int64_t secret = post(s, alice, priv, "secret");
    assert_true(a1 < a2 && a2 < b1 && b1 < a3);
    bool adv;
    int64_t marker;

    /* Refusals, which change nothing. */
    assert_int_equal(read_mark(s, carol, 999999, a1, &adv, &marker), STORE_NOT_FOUND);
    assert_int_equal(read_mark(s, carol, priv, secret, &adv, &marker), STORE_FORBIDDEN);
    assert_int_equal(read_mark(s, carol, pub, elsewhere, &adv, &marker), STORE_NOT_FOUND);
    assert_int_equal(read_mark(s, carol, pub, secret + 1000, &adv, &marker), STORE_NOT_FOUND);
    assert_int_equal(read_mark(s, carol, pub, 0, &adv, &marker), STORE_NOT_FOUND);
    assert_int_equal(read_mark(s, carol + 1000, pub, a1, &adv, &marker), STORE_NO_USER);
    assert_int_equal(read_mark(s, 0, pub, a1, &adv, &marker), STORE_ERROR);
    assert_int_equal(count_members(s, alice, pub), 2);

    /* A public room's reader becomes a member, marker set. */
    assert_int_equal(read_mark(s, carol, pub, a2, &adv, &marker), STORE_OK);
    assert_true(adv);
    assert_int_equal(marker, a2);
    assert_int_equal(count_members(s, alice, pub), 3);
    assert_int_equal(stored_marker(pub, carol), a2);
    /* Never backwards, and the same id again does not move it. */
    assert_int_equal(read_mark(s, carol, pub, a1, &adv, &marker), STORE_OK);
    assert_false(adv);
    assert_int_equal(marker, a2);
    assert_int_equal(read_mark(s, carol, pub, a2, &adv, &marker), STORE_OK);
    assert_false(adv);
    assert_int_equal(marker, a2);
    assert_int_equal(stored_marker(pub, carol), a2);
    assert_int_equal(count_members(s, alice, pub), 3);

    /* Unread: others' messages after the marker (b1, a3). */
    store_room_t room = seen_room(s, carol, pub);
    assert_int_equal(room.last_read_message_id, a2);
    assert_int_equal(room.unread_count, 2);
    /* bob's own b1 is never unread for him. */
    assert_int_equal(read_mark(s, bob, pub, a2, &adv, &marker), STORE_OK);
    assert_true(adv);
    room = seen_room(s, bob, pub);
    assert_int_equal(room.last_read_message_id, a2);
    assert_int_equal(room.unread_count, 1);
    assert_int_equal(read_mark(s, bob, pub, a3, &adv, &marker), STORE_OK);
    assert_true(adv);
    assert_int_equal(marker, a3);
    room = seen_room(s, bob, pub);
    assert_int_equal(room.last_read_message_id, a3);
    assert_int_equal(room.unread_count, 0);
    /* Marking one's own message is fine. */
    assert_int_equal(read_mark(s, bob, pub, b1, &adv, &marker), STORE_OK);
    assert_false(adv);
    assert_int_equal(marker, a3);

    /* A new message from someone else is unread again. */
    post(s, alice, pub, "a4");
    assert_int_equal(seen_room(s, bob, pub).unread_count, 1);
    assert_int_equal(seen_room(s, carol, pub).unread_count, 3);
    /* Markers are per user: alice's never moved. */
    room = seen_room(s, alice, pub);
    assert_int_equal(room.last_read_message_id, 0);
    assert_int_equal(room.unread_count, 1);

    /* A private room's member may mark it. */
    assert_int_equal(read_mark(s, alice, priv, secret, &adv, &marker), STORE_OK);
    assert_true(adv);
    room = seen_room(s, alice, priv);
    assert_int_equal(room.last_read_message_id, secret);
    assert_int_equal(room.unread_count, 0);
    store_close(s);
}

/* -------------------------------------------------------- commit hook */

typedef struct {
    int hooked;   /* times the hook was told about the job */
    int hook_seq; /* event_seq then */
    int done_seq; /* event_seq when done ran */
} seen_t;

#define HOOK_LOG_MAX 512

typedef struct {
    const store_job_t *order[HOOK_LOG_MAX];
    size_t count;
    size_t strays; /* jobs the test did not mark */
} hook_log_t;

static atomic_int event_seq;

/* On the writer thread: records only (assertions belong to the test's). */
static void on_commit(void *ctx, const store_job_t *job) {
    hook_log_t *log = ctx;
    seen_t *seen = job->data;
    if (seen == NULL || log->count == HOOK_LOG_MAX) {
        log->strays++;
        return;
    }
    seen->hooked++;
    seen->hook_seq = atomic_fetch_add(&event_seq, 1);
    log->order[log->count++] = job;
}

static void on_done_seen(store_job_t *job) {
    seen_t *seen = job->data;
    seen->done_seq = atomic_fetch_add(&event_seq, 1);
    on_done(job);
}

static void watch(store_job_t *job, seen_t *seen) {
    memset(seen, 0, sizeof *seen);
    job->data = seen;
    job->done = on_done_seen;
}

static bool must_hear(const store_job_t *job) {
    if (job->out.status != STORE_OK)
        return false;
    return (job->op == STORE_MESSAGE_INSERT && !job->out.duplicate) ||
           (job->op == STORE_READ_MARK && job->out.advanced);
}

/* Every job that must be heard of was, once, before its done; no other
 * was; in the order they ran (submission order), new ids increasing. */
static void check_heard(const hook_log_t *log, size_t from, store_job_t *jobs, seen_t *seen,
                        size_t n) {
    size_t expected = 0;
    for (size_t i = 0; i < n; i++) {
        bool heard = must_hear(&jobs[i]);
        assert_int_equal(seen[i].hooked, heard ? 1 : 0);
        if (heard)
            assert_true(seen[i].hook_seq < seen[i].done_seq);
        expected += heard;
    }
    assert_int_equal(log->count - from, expected);
    assert_int_equal(log->strays, 0);
    int64_t last_id = 0;
    for (size_t k = from; k < log->count; k++) {
        const store_job_t *job = log->order[k];
        assert_true(job >= jobs && job < jobs + n);
        if (k > from)
            assert_true(job > log->order[k - 1]);
        if (job->op == STORE_MESSAGE_INSERT) {
            assert_true(job->out.message.id > last_id);
            last_id = job->out.message.id;
        }
    }
}

enum { HOOK_INSERTS = 150, HOOK_MIXED = 64, HOOK_DRAINED = 20 };

/* Inserts only (PostgreSQL: one pipeline): new, repeated client_ids,
 * refused ones, and on PostgreSQL one that fails the whole batch. */
static void submit_inserts(store_t *s, store_job_t *jobs, seen_t *seen, int64_t alice, int64_t bob,
                           int64_t priv) {
    for (int i = 0; i < HOOK_INSERTS; i++) {
        if (i % 25 == 7)
            insert_init(&jobs[i], alice, 999999, "nowhere", NULL);
        else if (i % 25 == 13)
            insert_init(&jobs[i], bob, priv, "not mine", NULL);
        else if (i == 77 && pg_url != NULL)
            insert_init(&jobs[i], alice, 1, "bad \xff byte", NULL);
        else if (i % 10 == 3)
            insert_init(&jobs[i], alice, 1, "again", "same");
        else
            insert_init(&jobs[i], i % 2 ? bob : alice, 1 + i % 3, "hooked", NULL);
        watch(&jobs[i], &seen[i]);
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    }
}

static void check_inserts(store_job_t *jobs) {
    bool first_same = true;
    for (int i = 0; i < HOOK_INSERTS; i++) {
        store_status_t st = jobs[i].out.status;
        if (i % 25 == 7)
            assert_int_equal(st, STORE_NOT_FOUND);
        else if (i % 25 == 13)
            assert_int_equal(st, STORE_FORBIDDEN);
        else if (i == 77 && pg_url != NULL)
            assert_int_equal(st, STORE_ERROR);
        else
            assert_int_equal(st, STORE_OK);
        if (i % 25 != 7 && i % 25 != 13 && i % 10 == 3) {
            assert_int_equal(jobs[i].out.duplicate, !first_same);
            first_same = false;
        }
    }
}

/* Inserts, bob's read markers forward and back, refused markers and, if
 * asked, a write that breaks a constraint (the batch is rerun job by job). */
static void submit_mixed(store_t *s, store_job_t *jobs, seen_t *seen, int64_t alice, int64_t bob,
                         const int64_t *room1, size_t room1_count, int64_t room2_msg,
                         bool break_one) {
    for (int i = 0; i < HOOK_MIXED; i++) {
        store_job_t *job = &jobs[i];
        if (i == 30 && break_one) {
            job_init(job, STORE_USER_CREATE, 0);
            job->in.email = "broken@example.com";
            job->in.username = "";
            job->in.password_hash = "x";
        } else if (i % 4 == 0) {
            insert_init(job, alice, 1, "mixed", NULL);
        } else if (i % 4 == 3) {
            insert_init(job, bob, 1, "mixed again", "mixed-same");
        } else {
            job_init(job, STORE_READ_MARK, bob);
            job->in.room_id = 1;
            if (i % 8 == 1)
                job->in.message_id = room1[((size_t)i / 4 * 3) % room1_count];
            else if (i % 8 == 5)
                job->in.message_id = room1[0];
            else if (i % 8 == 2)
                job->in.room_id = 999999;
            else
                job->in.message_id = room2_msg; /* not in room 1 */
        }
        watch(job, &seen[i]);
        assert_int_equal(store_submit(s, job), 0);
    }
}

/* *marker: bob's before and after; *first_same: no "mixed-same" yet. */
static void check_mixed(store_job_t *jobs, bool break_one, int64_t *marker, bool *first_same) {
    for (int i = 0; i < HOOK_MIXED; i++) {
        store_job_t *job = &jobs[i];
        if (i == 30 && break_one) {
            assert_int_equal(job->out.status, STORE_ERROR);
        } else if (job->op == STORE_MESSAGE_INSERT) {
            assert_int_equal(job->out.status, STORE_OK);
            if (i % 4 == 3) {
                assert_int_equal(job->out.duplicate, !*first_same);
                *first_same = false;
            }
        } else if (i % 8 == 1 || i % 8 == 5) {
            assert_int_equal(job->out.status, STORE_OK);
            bool moves = job->in.message_id > *marker;
            *marker = moves ? job->in.message_id : *marker;
            assert_int_equal(job->out.advanced, moves);
            assert_int_equal(job->out.read_message_id, *marker);
        } else {
            assert_int_equal(job->out.status, STORE_NOT_FOUND);
        }
    }
    assert_int_equal(stored_marker(1, jobs[1].auth_user_id), *marker);
}

static void test_commit_hook(void **state) {
    (void)state;
    store_t *s = open_store();
    hook_log_t *log = calloc(1, sizeof *log);
    store_set_commit_hook(s, on_commit, log);
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t priv = make_room(s, alice, "secret", true);
    store_job_t *jobs = calloc(HOOK_INSERTS, sizeof *jobs);
    seen_t *seen = calloc(HOOK_INSERTS, sizeof *seen);
    store_stats_t before, after;
    store_get_stats(s, &before);

    int target = dones + HOOK_INSERTS;
    submit_inserts(s, jobs, seen, alice, bob, priv);
    wait_dones(target);
    check_inserts(jobs);
    check_heard(log, 0, jobs, seen, HOOK_INSERTS);
    store_get_stats(s, &after);
    assert_int_equal(after.messages_stored - before.messages_stored, log->count);
    assert_int_equal(sql_int("SELECT count(*) FROM messages"), log->count);
    /* The ids of room 1 (bob marks them below) and one of room 2. */
    int64_t room1[HOOK_INSERTS], room2_msg = 0;
    size_t room1_count = 0;
    for (int i = 0; i < HOOK_INSERTS; i++) {
        if (!must_hear(&jobs[i]))
            continue;
        if (jobs[i].out.message.room_id == 1)
            room1[room1_count++] = jobs[i].out.message.id;
        else if (jobs[i].out.message.room_id == 2)
            room2_msg = jobs[i].out.message.id;
    }
    assert_true(room1_count > 20 && room2_msg > 0);
    for (int i = 0; i < HOOK_INSERTS; i++)
        store_job_cleanup(&jobs[i]);

    /* Mixed batches, rolled back and rerun, then committed whole (on
     * PostgreSQL, runs of inserts as pipelines inside one transaction). */
    int64_t marker = 0;
    bool first_same = true;
    size_t from;
    for (int round = 0; round < 2; round++) {
        bool break_one = round == 0;
        store_get_stats(s, &before);
        from = log->count;
        target = dones + HOOK_MIXED;
        submit_mixed(s, jobs, seen, alice, bob, room1, room1_count, room2_msg, break_one);
        wait_dones(target);
        check_mixed(jobs, break_one, &marker, &first_same);
        check_heard(log, from, jobs, seen, HOOK_MIXED);
        store_get_stats(s, &after);
        if (break_one)
            assert_true(after.errors > before.errors);
        else
            assert_int_equal(after.errors, before.errors);
        for (int i = 0; i < HOOK_MIXED; i++)
            store_job_cleanup(&jobs[i]);
    }

    /* Closing drains the queue: the hook hears those too, before any of
     * their replies is run. */
    from = log->count;
    target = dones + HOOK_DRAINED;
    for (int i = 0; i < HOOK_DRAINED; i++) {
        insert_init(&jobs[i], alice, 3, "last words", NULL);
        watch(&jobs[i], &seen[i]);
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    }
    store_close(s);
    assert_int_equal(log->count - from, HOOK_DRAINED);
    assert_int_equal(dones, target - HOOK_DRAINED);
    wait_dones(target);
    check_heard(log, from, jobs, seen, HOOK_DRAINED);
    for (int i = 0; i < HOOK_DRAINED; i++)
        store_job_cleanup(&jobs[i]);
    free(seen);
    free(jobs);
    free(log);
}

/* ------------------------------------------------------ replay reads */

static void test_replay_page(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    enum { N = STORE_PAGE_LIMIT_MAX + 2 };
    store_job_t *jobs = calloc(N, sizeof *jobs);
    int64_t *ids = calloc(N, sizeof *ids), *got = calloc(N, sizeof *got);
    int target = dones + N;
    for (int i = 0; i < N; i++) {
        insert_init(&jobs[i], alice, 2, "replayed", NULL);
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    }
    wait_dones(target);
    for (int i = 0; i < N; i++) {
        assert_int_equal(jobs[i].out.status, STORE_OK);
        ids[i] = jobs[i].out.message.id;
        if (i > 0)
            assert_true(ids[i] > ids[i - 1]);
        store_job_cleanup(&jobs[i]);
    }
    const size_t cap = STORE_PAGE_LIMIT_MAX;
    bool more;
    /* One more than the cap after ids[0]. */
    assert_int_equal(page(s, alice, 2, 0, ids[0], STORE_PAGE_LIMIT_MAX, got, &more), cap);
    assert_memory_equal(got, ids + 1, cap * sizeof *ids);
    assert_true(more);
    /* Larger limits are cut to the cap. */
    assert_int_equal(page(s, alice, 2, 0, ids[0], 100000, got, &more), cap);
    assert_true(more);
    /* Exactly the cap: all of them and nothing more. */
    assert_int_equal(page(s, alice, 2, 0, ids[1], STORE_PAGE_LIMIT_MAX, got, &more), cap);
    assert_memory_equal(got, ids + 2, cap * sizeof *ids);
    assert_false(more);
    /* 1000 missing: a replay may send them all. */
    assert_int_equal(page(s, alice, 2, 0, ids[2], STORE_PAGE_LIMIT_MAX, got, &more), cap - 1);
    assert_memory_equal(got, ids + 3, (cap - 1) * sizeof *ids);
    assert_false(more);
    /* The newest page at the cap. */
    assert_int_equal(page(s, alice, 2, 0, 0, STORE_PAGE_LIMIT_MAX, got, &more), cap);
    assert_memory_equal(got, ids + 2, cap * sizeof *ids);
    assert_true(more);
    /* since=0: from the room's first message. */
    store_job_t job;
    job_init(&job, STORE_MESSAGES_PAGE, alice);
    job.in.room_id = 2;
    job.in.from_start = true;
    job.in.limit = STORE_PAGE_LIMIT_MAX;
    assert_int_equal(run(s, &job), STORE_OK);
    assert_int_equal(job.out.message_count, cap);
    assert_int_equal(job.out.messages[0].id, ids[0]);
    assert_int_equal(job.out.messages[cap - 1].id, ids[cap - 1]);
    assert_true(job.out.has_more);
    store_job_cleanup(&job);
    free(jobs);
    free(ids);
    free(got);
    store_close(s);
}

/* ------------------------------------------------------- query plans */

/* The statements that read messages, and their alias for the table. */
static const struct {
    store_stmt_t stmt;
    const char *alias;
    bool counts_unread;
} message_reads[] = {
    {STMT_ROOM_GET, "g", true},   {STMT_ROOMS_LIST, "g", true},   {STMT_PAGE_ASC, "m", false},
    {STMT_PAGE_DESC, "m", false}, {STMT_READ_ACCESS, "g", false},
};

static int param_count(const char *sql) {
    int n = 0;
    for (const char *p = sql; (p = strchr(p, '$')) != NULL; p++)
        n = atoi(p + 1) > n ? atoi(p + 1) : n;
    return n;
}

/* SQLite's plan: never a SCAN of messages; unread counts from the index
 * alone. */
static void check_sqlite_plan(sqlite3 *db, size_t i) {
    char sql[2048] = "EXPLAIN QUERY PLAN ";
    size_t at = strlen(sql);
    snprintf(sql + at, sizeof sql - at, "%s", store_sql[message_reads[i].stmt].sql);
    for (char *p = sql; (p = strchr(p, '$')) != NULL;)
        *p = '?';
    char scan[16], covered[48];
    snprintf(scan, sizeof scan, "SCAN %s", message_reads[i].alias);
    snprintf(covered, sizeof covered, "SEARCH %s USING COVERING INDEX", message_reads[i].alias);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    bool is_covered = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        size_t n = strlen(scan);
        if (strncmp(detail, scan, n) == 0 && (detail[n] == '\0' || detail[n] == ' '))
            fail_msg("%s: %s", store_sql[message_reads[i].stmt].name, detail);
        is_covered = is_covered || strncmp(detail, covered, strlen(covered)) == 0;
    }
    sqlite3_finalize(st);
    if (message_reads[i].counts_unread && !is_covered)
        fail_msg("%s: unread count reads the table", store_sql[message_reads[i].stmt].name);
}

/* PostgreSQL's generic plan (the one a prepared statement keeps), with
 * sequential scans priced out as they would be on a big table. */
static void check_pg_plan(PGconn *c, size_t i) {
    const char *sql = store_sql[message_reads[i].stmt].sql;
    char *text = malloc(strlen(sql) + 64);
    sprintf(text, "PREPARE plan_%zu AS %s", i, sql);
    PGresult *r = PQexec(c, text);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    char explain[128];
    int at = snprintf(explain, sizeof explain, "EXPLAIN EXECUTE plan_%zu(", i);
    for (int p = 0; p < param_count(sql); p++)
        at += snprintf(explain + at, sizeof explain - (size_t)at, "%s1", p > 0 ? ", " : "");
    snprintf(explain + at, sizeof explain - (size_t)at, ")");
    r = PQexec(c, explain);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (int row = 0; row < PQntuples(r); row++) {
        const char *line = PQgetvalue(r, row, 0);
        if (strstr(line, "Seq Scan on messages") != NULL)
            fail_msg("%s: %s", store_sql[message_reads[i].stmt].name, line);
    }
    PQclear(r);
    free(text);
}

/* Every message read goes through the (room_id, id) index: none scans all
 * rooms' messages, however big the table. */
static void test_query_plans(void **state) {
    (void)state;
    store_close(open_store()); /* migrates */
    size_t n = sizeof message_reads / sizeof message_reads[0];
    if (pg_url != NULL) {
        PGconn *c = PQconnectdb(pg_url);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, "SET enable_seqscan = off; "
                                "SET plan_cache_mode = force_generic_plan");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        for (size_t i = 0; i < n; i++)
            check_pg_plan(c, i);
        PQfinish(c);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cfg.database_url + strlen("sqlite:"), &db), SQLITE_OK);
    for (size_t i = 0; i < n; i++)
        check_sqlite_plan(db, i);
    sqlite3_close(db);
}

/* ------------------------------------------- what the writer remembers */

/* Runs SQL outside the store (a user or room deleted behind its back). */
static void sql_exec(const char *sql) {
    if (pg_url != NULL) {
        pg_exec_or_fail(sql);
        return;
    }
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cfg.database_url + strlen("sqlite:"), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static store_status_t post_status(store_t *s, int64_t auth, int64_t room, const char *content) {
    store_job_t job;
    insert_init(&job, auth, room, content, NULL);
    store_status_t st = run(s, &job);
    if (st == STORE_OK) {
        assert_int_equal(job.out.message.sender_id, auth);
        assert_int_equal(job.out.message.room_id, room);
        assert_string_equal(job.out.message.content, content);
    }
    store_job_cleanup(&job);
    return st;
}

/* Submits jobs[0..n) together (one batch, as far as timing allows) and
 * waits for them. */
static void run_together(store_t *s, store_job_t *jobs, int n) {
    int target = dones + n;
    for (int i = 0; i < n; i++)
        assert_int_equal(store_submit(s, &jobs[i]), 0);
    wait_dones(target);
}

/* A known sender's next message skips the look-ups: it must still carry
 * the right names, and leaving must still end the right to post. */
static void test_known_senders(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t priv = make_room(s, alice, "secret", true);
    int64_t pub = make_room(s, alice, "open", false);

    for (int i = 0; i < 3; i++) {
        store_job_t job;
        insert_init(&job, alice, priv, "again", i == 2 ? "c-9" : NULL);
        assert_int_equal(run(s, &job), STORE_OK);
        assert_string_equal(job.out.message.sender_email, "alice@example.com");
        assert_string_equal(job.out.message.sender_username, "alice");
        assert_int_equal(job.out.message.edited_at_ms, 0);
        assert_true(job.out.message.created_at_ms > 1600000000000);
        if (i == 2)
            assert_string_equal(job.out.message.client_id, "c-9");
        else
            assert_null(job.out.message.client_id);
        store_job_cleanup(&job);
    }
    /* A repeated client_id from a known sender is still a repeat. */
    store_job_t rep;
    insert_init(&rep, alice, priv, "other text", "c-9");
    assert_int_equal(run(s, &rep), STORE_OK);
    assert_true(rep.out.duplicate);
    assert_string_equal(rep.out.message.content, "again");
    store_job_cleanup(&rep);

    /* Leaving a private room ends posting, also within one batch. */
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, alice, priv, 0, NULL), STORE_OK);
    assert_int_equal(post_status(s, alice, priv, "still here?"), STORE_FORBIDDEN);
    assert_int_equal(room_op(s, STORE_ROOM_ADD_MEMBER, bob, priv, alice, NULL), STORE_FORBIDDEN);
    int64_t priv2 = make_room(s, bob, "secret 2", true);
    assert_int_equal(post_status(s, bob, priv2, "mine"), STORE_OK);
    store_job_t jobs[3];
    insert_init(&jobs[0], bob, priv2, "one", NULL);
    job_init(&jobs[1], STORE_ROOM_LEAVE, bob);
    jobs[1].in.room_id = priv2;
    insert_init(&jobs[2], bob, priv2, "two", NULL);
    run_together(s, jobs, 3);
    assert_int_equal(jobs[0].out.status, STORE_OK);
    assert_int_equal(jobs[1].out.status, STORE_OK);
    assert_int_equal(jobs[2].out.status, STORE_FORBIDDEN);
    for (int i = 0; i < 3; i++)
        store_job_cleanup(&jobs[i]);

    /* In a public room, posting after leaving makes a member again. */
    assert_int_equal(post_status(s, bob, pub, "hi"), STORE_OK);
    assert_int_equal(count_members(s, alice, pub), 2);
    assert_int_equal(room_op(s, STORE_ROOM_LEAVE, bob, pub, 0, NULL), STORE_OK);
    assert_int_equal(count_members(s, alice, pub), 1);
    assert_int_equal(post_status(s, bob, pub, "back"), STORE_OK);
    assert_int_equal(count_members(s, alice, pub), 2);
    store_close(s);
}

/* What a rolled-back batch did must not be remembered: here a first post
 * (which makes bob a member) is rolled back with its batch and run again. */
static void test_known_senders_after_rollback(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t pub = make_room(s, alice, "open", false);
    store_job_t jobs[3];
    insert_init(&jobs[0], bob, pub, "first", NULL);
    job_init(&jobs[1], STORE_USER_CREATE, 0);
    jobs[1].in.email = "empty@example.com";
    jobs[1].in.username = ""; /* breaks a CHECK constraint */
    jobs[1].in.password_hash = "x";
    insert_init(&jobs[2], bob, pub, "second", NULL);
    run_together(s, jobs, 3);
    assert_int_equal(jobs[0].out.status, STORE_OK);
    assert_int_equal(jobs[1].out.status, STORE_ERROR);
    assert_int_equal(jobs[2].out.status, STORE_OK);
    for (int i = 0; i < 3; i++)
        store_job_cleanup(&jobs[i]);
    assert_int_equal(count_members(s, alice, pub), 2);
    assert_int_equal(sql_int("SELECT count(*) FROM messages"), 2);
    store_close(s);
}

/* A sender or room deleted outside chatd is noticed, even when known. */
static void test_known_senders_deleted_outside(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t room = make_room(s, alice, "doomed", false);
    assert_int_equal(post_status(s, bob, room, "one"), STORE_OK);
    assert_int_equal(post_status(s, bob, 1, "one"), STORE_OK);
    assert_int_equal(post_status(s, bob, 1, "two"), STORE_OK);
    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM rooms WHERE id = %lld", (long long)room);
    sql_exec(sql);
    assert_int_equal(post_status(s, bob, room, "two"), STORE_NOT_FOUND);
    assert_int_equal(post_status(s, bob, 1, "three"), STORE_OK);
    snprintf(sql, sizeof sql, "DELETE FROM users WHERE id = %lld", (long long)bob);
    sql_exec(sql);
    assert_int_equal(post_status(s, bob, 1, "four"), STORE_NO_USER);
    assert_int_equal(post_status(s, alice, 1, "still fine"), STORE_OK);
    store_close(s);
}

/* Known senders in one batch: a client_id repeated within the batch is
 * still one message, and a room deleted behind chatd's back fails only the
 * message posted into it (without rolling the batch back job by job). */
static void test_known_senders_batched(void **state) {
    (void)state;
    store_t *s = open_store();
    int64_t alice = make_user(s, "alice@example.com", "alice");
    int64_t bob = make_user(s, "bob@example.com", "bob");
    int64_t room = make_room(s, alice, "doomed", false);
    assert_int_equal(post_status(s, bob, room, "one"), STORE_OK);
    assert_int_equal(post_status(s, bob, 1, "one"), STORE_OK);
    assert_int_equal(post_status(s, alice, 1, "one"), STORE_OK);

    store_job_t jobs[4];
    insert_init(&jobs[0], alice, 1, "first", "c-7");
    insert_init(&jobs[1], alice, 1, "second", "c-7");
    insert_init(&jobs[2], bob, 1, "mine", "c-7");
    insert_init(&jobs[3], alice, 1, "third", NULL);
    run_together(s, jobs, 4);
    for (int i = 0; i < 4; i++)
        assert_int_equal(jobs[i].out.status, STORE_OK);
    assert_false(jobs[0].out.duplicate);
    assert_true(jobs[1].out.duplicate);
    assert_int_equal(jobs[1].out.message.id, jobs[0].out.message.id);
    assert_string_equal(jobs[1].out.message.content, "first");
    assert_string_equal(jobs[1].out.message.sender_username, "alice");
    assert_false(jobs[2].out.duplicate);
    assert_string_equal(jobs[2].out.message.sender_email, "bob@example.com");
    assert_true(jobs[3].out.message.id > jobs[2].out.message.id);
    for (int i = 0; i < 4; i++)
        store_job_cleanup(&jobs[i]);

    char sql[128];
    snprintf(sql, sizeof sql, "DELETE FROM rooms WHERE id = %lld", (long long)room);
    sql_exec(sql);
    store_stats_t before, after;
    store_get_stats(s, &before);
    insert_init(&jobs[0], alice, 1, "before", NULL);
    insert_init(&jobs[1], bob, room, "gone", NULL);
    insert_init(&jobs[2], bob, 1, "after", NULL);
    insert_init(&jobs[3], alice, 1, "again", "c-7");
    run_together(s, jobs, 4);
    assert_int_equal(jobs[0].out.status, STORE_OK);
    assert_int_equal(jobs[1].out.status, STORE_NOT_FOUND);
    assert_int_equal(jobs[2].out.status, STORE_OK);
    assert_string_equal(jobs[2].out.message.sender_username, "bob");
    assert_int_equal(jobs[3].out.status, STORE_OK);
    assert_true(jobs[3].out.duplicate);
    for (int i = 0; i < 4; i++)
        store_job_cleanup(&jobs[i]);
    store_get_stats(s, &after);
    assert_int_equal(after.errors, before.errors);
    assert_int_equal(after.messages_stored - before.messages_stored, 2);
    assert_int_equal(sql_int("SELECT count(*) FROM messages WHERE room_id = 1"), 7);
    store_close(s);
}

/* The SQLite migration that narrows the client_id index rebuilds the
 * messages table: every row, id and the id sequence survive it. */
static void test_client_id_index_migration(void **state) {
    (void)state;
    if (pg_url != NULL)
        skip();
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cfg.database_url + strlen("sqlite:"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                                  "name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (size_t i = 0; i < chatd_migration_count; i++) {
        const migration_t *m = &chatd_migrations[i];
        if (m->backend == NULL || strcmp(m->backend, "sqlite") != 0 || m->version >= 3)
            continue;
        assert_int_equal(sqlite3_exec(db, m->sql, NULL, NULL, NULL), SQLITE_OK);
        char sql[256];
        snprintf(sql, sizeof sql, "INSERT INTO schema_migrations VALUES (%d, '%s', 1)", m->version,
                 m->name);
        assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    const char *fill =
        "INSERT INTO users (email, password_hash, username, created_at) VALUES "
        "('a@example.com', 'h', 'alice', 1);"
        "INSERT INTO messages (sender_id, room_id, content, client_id, created_at, edited_at, "
        "deleted) VALUES (1, 1, 'one', NULL, 10, NULL, 0), (1, 2, 'two', 'c-2', 20, 25, 0), "
        "(1, 1, 'three', NULL, 30, NULL, 1), (1, 3, 'four', 'c-4', 40, NULL, 0);"
        "DELETE FROM messages WHERE id = 4;";
    assert_int_equal(sqlite3_exec(db, fill, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    store_t *s = open_store();
    assert_int_equal(sql_int("SELECT count(*) FROM schema_migrations"), backend_migrations());
    assert_int_equal(sql_int("SELECT count(*) FROM messages"), 3);
    assert_int_equal(sql_int("SELECT sum(id * created_at) FROM messages"), 10 + 40 + 90);
    assert_int_equal(sql_int("SELECT count(*) FROM messages WHERE edited_at = 25 AND deleted = 0 "
                             "AND client_id = 'c-2' AND content = 'two' AND room_id = 2"),
                     1);
    assert_int_equal(sql_int("SELECT count(*) FROM messages WHERE id = 3 AND deleted = 1"), 1);
    /* Id 4 was used once: never again. */
    store_job_t job;
    insert_init(&job, 1, 1, "five", NULL);
    assert_int_equal(run(s, &job), STORE_OK);
    assert_int_equal(job.out.message.id, 5);
    store_job_cleanup(&job);
    /* Posts stay idempotent. */
    insert_init(&job, 1, 1, "again", "c-2");
    assert_int_equal(run(s, &job), STORE_OK);
    assert_true(job.out.duplicate);
    assert_int_equal(job.out.message.id, 2);
    assert_string_equal(job.out.message.content, "two");
    store_job_cleanup(&job);
    assert_int_equal(sql_int("SELECT count(*) FROM pragma_index_list('messages')"), 2);
    store_close(s);
}

int main(void) {
    pg_url = getenv("CHATD_TEST_DATABASE_URL");
    if (pg_url != NULL && pg_url[0] == '\0')
        pg_url = NULL;
    log_configure(LOG_WARN, LOG_FORMAT_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_users, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rooms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_add_member, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pages, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_isolation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_submit_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_mark, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_page, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_plans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_senders, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_senders_after_rollback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_senders_deleted_outside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_known_senders_batched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_id_index_migration, setup, teardown),
    };
    return cmocka_run_group_tests_name(pg_url != NULL ? "store (postgres)" : "store (sqlite)",
                                       tests, NULL, NULL);
}
