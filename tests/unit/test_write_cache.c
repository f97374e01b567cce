/* The writer's cache of senders and memberships (store/write_cache.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/write_cache.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_users(void **state) {
    (void)state;
    write_cache_t *c = write_cache_new();
    assert_non_null(c);
    assert_null(write_cache_user(c, 1));
    assert_int_equal(write_cache_put_user(c, 7, "a@example.com", 13, "alice", 5), 0);
    const cached_user_t *u = write_cache_user(c, 7);
    assert_non_null(u);
    assert_int_equal(u->id, 7);
    assert_string_equal(u->email, "a@example.com");
    assert_int_equal(u->email_len, 13);
    assert_string_equal(u->username, "alice");
    assert_int_equal(u->username_len, 5);
    assert_null(write_cache_user(c, 8));
    assert_null(write_cache_user(c, 0));
    /* Put again: replaced. */
    assert_int_equal(write_cache_put_user(c, 7, "b@example.com", 13, "bob", 3), 0);
    assert_string_equal(write_cache_user(c, 7)->username, "bob");
    /* Many: the table grows and keeps them all. */
    char email[32], name[32];
    for (int64_t id = 1; id <= 5000; id++) {
        int n = snprintf(email, sizeof email, "u%lld@x", (long long)id);
        int m = snprintf(name, sizeof name, "u%lld", (long long)id);
        assert_int_equal(write_cache_put_user(c, id, email, (size_t)n, name, (size_t)m), 0);
    }
    for (int64_t id = 1; id <= 5000; id++) {
        snprintf(name, sizeof name, "u%lld", (long long)id);
        assert_string_equal(write_cache_user(c, id)->username, name);
    }
    write_cache_clear(c);
    assert_null(write_cache_user(c, 7));
    assert_int_equal(write_cache_put_user(c, 7, "", 0, "x", 1), 0);
    assert_string_equal(write_cache_user(c, 7)->email, "");
    write_cache_free(c);
    write_cache_free(NULL);
}

/* Past WRITE_CACHE_MAX entries the cache starts over: whatever it still
 * answers is right. */
static void test_bounded(void **state) {
    (void)state;
    write_cache_t *c = write_cache_new();
    int64_t n = WRITE_CACHE_MAX + 10;
    for (int64_t i = 1; i <= n; i++) {
        assert_int_equal(write_cache_put_member(c, i, i + 1), 0);
        assert_int_equal(write_cache_put_user(c, i, "e", 1, "u", 1), 0);
    }
    int64_t members = 0, users = 0;
    for (int64_t i = 1; i <= n; i++) {
        members += write_cache_is_member(c, i, i + 1);
        users += write_cache_user(c, i) != NULL;
        assert_false(write_cache_is_member(c, i, i));
    }
    assert_true(members >= 10 && members <= WRITE_CACHE_MAX);
    assert_true(users >= 10 && users <= WRITE_CACHE_MAX);
    assert_true(write_cache_is_member(c, n, n + 1));
    write_cache_free(c);
}

/* Memberships against a plain array, through puts and removals that
 * collide in the table. */
static void test_members_random(void **state) {
    (void)state;
    enum { ROOMS = 40, USERS = 60, STEPS = 200000 };
    static bool want[ROOMS + 1][USERS + 1];
    memset(want, 0, sizeof want);
    write_cache_t *c = write_cache_new();
    uint64_t rng = 88172645463325252ull;
    for (int step = 0; step < STEPS; step++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int64_t room = 1 + (int64_t)(rng % ROOMS);
        int64_t user = 1 + (int64_t)((rng >> 20) % USERS);
        int what = (int)((rng >> 40) % 8);
        if (what < 4) {
            assert_int_equal(write_cache_put_member(c, room, user), 0);
            want[room][user] = true;
        } else if (what < 7) {
            write_cache_forget_member(c, room, user);
            want[room][user] = false;
        } else if (step % 5000 == 7) {
            write_cache_clear(c);
            memset(want, 0, sizeof want);
        }
        if (step % 997 == 0) {
            for (int64_t r = 1; r <= ROOMS; r++) {
                for (int64_t u = 1; u <= USERS; u++)
                    assert_int_equal(write_cache_is_member(c, r, u), want[r][u]);
            }
        }
    }
    write_cache_forget_member(c, 999, 999);
    write_cache_free(c);
}

/* What the writer tells the cache around each job. */
static void test_writer_hooks(void **state) {
    (void)state;
    write_cache_t *c = write_cache_new();
    store_job_t job;
    memset(&job, 0, sizeof job);
    job.op = STORE_MESSAGE_INSERT;
    job.out.status = STORE_OK;
    job.out.message = (store_message_t){
        .sender_id = 5, .room_id = 9, .sender_email = "e@example.com", .sender_username = "eve"};
    write_cache_learn_post(c, &job);
    assert_string_equal(write_cache_user(c, 5)->username, "eve");
    assert_true(write_cache_is_member(c, 9, 5));
    /* A repeat or a refusal teaches nothing. */
    job.out.message.room_id = 10;
    job.out.duplicate = true;
    write_cache_learn_post(c, &job);
    job.out.duplicate = false;
    job.out.status = STORE_FORBIDDEN;
    write_cache_learn_post(c, &job);
    assert_false(write_cache_is_member(c, 10, 5));
    write_cache_learn_post(NULL, &job);

    /* Writes that cannot end a membership leave the cache alone. */
    memset(&job, 0, sizeof job);
    job.auth_user_id = 5;
    job.in.room_id = 9;
    const store_op_t keep[] = {STORE_MESSAGE_INSERT, STORE_READ_MARK, STORE_USER_CREATE,
                               STORE_ROOM_CREATE,    STORE_ROOM_JOIN, STORE_ROOM_ADD_MEMBER,
                               STORE_DM_OPEN};
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        job.op = keep[i];
        write_cache_before(c, &job);
        assert_true(write_cache_is_member(c, 9, 5));
    }
    /* A leave forgets that one membership, not the sender. */
    assert_int_equal(write_cache_put_member(c, 8, 5), 0);
    job.op = STORE_ROOM_LEAVE;
    write_cache_before(c, &job);
    assert_false(write_cache_is_member(c, 9, 5));
    assert_true(write_cache_is_member(c, 8, 5));
    assert_non_null(write_cache_user(c, 5));
    /* Anything else: everything goes. */
    job.op = STORE_PING;
    write_cache_before(c, &job);
    assert_false(write_cache_is_member(c, 8, 5));
    assert_null(write_cache_user(c, 5));
    write_cache_before(NULL, &job);
    write_cache_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_users),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_members_random),
        cmocka_unit_test(test_writer_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
