/* Password jobs on the hashing threads: results on the loop through its inbox,
 * bounded admission, idle priority, shutdown. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/crypto_jobs.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uv_loop_t loop;
static inbox_t inbox;
static int done_calls;
static uv_thread_t loop_thread;

static void on_done(crypto_job_t *job) {
    /* done runs on the submitting loop's thread, never a hashing thread. */
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &loop_thread));
    done_calls++;
    (void)job;
}

static void init_job(crypto_job_t *job, crypto_op_t op, const char *password, const char *hash) {
    memset(job, 0, sizeof(*job));
    job->op = op;
    job->password = password;
    job->password_len = strlen(password);
    job->stored_hash = hash;
    job->done = on_done;
}

/* Runs the loop until done_calls reaches want, for at most 30 s. */
static void run_until_done(int want) {
    uint64_t deadline = uv_hrtime() + 30ull * 1000000000ull;
    while (done_calls < want && uv_hrtime() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(done_calls, want);
}

static int setup(void **state) {
    (void)state;
    /* One hashing thread and one waiting job: at most two jobs in flight. */
    crypto_jobs_configure(1, 1, 1);
    if (password_init(19456, 2) != 0 || uv_loop_init(&loop) != 0 || inbox_init(&inbox, &loop) != 0)
        return -1;
    loop_thread = uv_thread_self();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    crypto_jobs_shutdown();
    inbox_close(&inbox, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* The scheduling policy of every thread of this process but the caller. */
static int threads_with_policy(int policy) {
    DIR *dir = opendir("/proc/self/task");
    assert_non_null(dir);
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", entry->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        char line[1024];
        size_t n = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[n] = '\0';
        /* Field 41 is the policy; count fields after the command's ')'. */
        char *p = strrchr(line, ')');
        int field = 2;
        while (p != NULL && field < 41) {
            p = strchr(p + 1, ' ');
            field++;
        }
        if (p != NULL && atoi(p + 1) == policy)
            count++;
    }
    closedir(dir);
    return count;
}

static void test_hash_then_verify(void **state) {
    (void)state;
    crypto_job_t job;
    init_job(&job, CRYPTO_HASH, "s3cret pass", NULL);
    done_calls = 0;
    assert_int_equal(crypto_submit(&inbox, &job), 0);
    run_until_done(1);
    assert_int_equal(job.ok, 1);
    assert_true(strncmp(job.hash, "$argon2id$", 10) == 0);

    char stored[PASSWORD_HASH_MAX];
    memcpy(stored, job.hash, sizeof(stored));
    crypto_job_t right, wrong, unknown;
    init_job(&right, CRYPTO_VERIFY, "s3cret pass", stored);
    init_job(&wrong, CRYPTO_VERIFY, "s3cret pasS", stored);
    assert_int_equal(crypto_submit(&inbox, &right), 0);
    assert_int_equal(crypto_submit(&inbox, &wrong), 0);
    run_until_done(3);
    assert_int_equal(right.ok, 1);
    assert_int_equal(wrong.ok, 0);

    /* No stored hash: checked against the dummy, never a match. */
    init_job(&unknown, CRYPTO_VERIFY, "", NULL);
    assert_int_equal(crypto_submit(&inbox, &unknown), 0);
    run_until_done(4);
    assert_int_equal(unknown.ok, 0);
}

static void test_queue_limit(void **state) {
    (void)state;
    crypto_job_t jobs[3];
    for (int i = 0; i < 3; i++)
        init_job(&jobs[i], CRYPTO_HASH, "pw", NULL);
    done_calls = 0;
    assert_int_equal(crypto_submit(&inbox, &jobs[0]), 0);
    assert_int_equal(crypto_submit(&inbox, &jobs[1]), 0);
    assert_int_equal(crypto_submit(&inbox, &jobs[2]), UV_EBUSY);
    run_until_done(2); /* never for the refused one */
    assert_int_equal(jobs[0].ok, 1);
    assert_int_equal(jobs[1].ok, 1);

    /* Slots come back once jobs finish. */
    assert_int_equal(crypto_submit(&inbox, &jobs[2]), 0);
    run_until_done(3);
}

static void test_hashing_runs_at_idle_priority(void **state) {
    (void)state;
    crypto_job_t job;
    init_job(&job, CRYPTO_HASH, "pw", NULL);
    done_calls = 0;
    assert_int_equal(crypto_submit(&inbox, &job), 0);
    run_until_done(1);
    /* The hashing thread lowered itself; nothing else did. */
    assert_int_equal(threads_with_policy(SCHED_IDLE), 1);
}

static void test_shutdown_finishes_queued_jobs_and_restarts(void **state) {
    (void)state;
    crypto_job_t jobs[2];
    init_job(&jobs[0], CRYPTO_HASH, "pw", NULL);
    init_job(&jobs[1], CRYPTO_HASH, "pw", NULL);
    done_calls = 0;
    assert_int_equal(crypto_submit(&inbox, &jobs[0]), 0);
    assert_int_equal(crypto_submit(&inbox, &jobs[1]), 0);
    crypto_jobs_shutdown(); /* returns once both are hashed and posted */
    assert_int_equal(threads_with_policy(SCHED_IDLE), 0);
    assert_int_equal(done_calls, 0);
    inbox_drain(&inbox);
    assert_int_equal(done_calls, 2);
    assert_int_equal(jobs[0].ok, 1);
    assert_int_equal(jobs[1].ok, 1);

    /* The next submit starts a thread again, at normal priority if asked. */
    crypto_jobs_configure(1, 1, 0);
    crypto_job_t again;
    init_job(&again, CRYPTO_VERIFY, "pw", jobs[0].hash);
    assert_int_equal(crypto_submit(&inbox, &again), 0);
    run_until_done(3);
    assert_int_equal(again.ok, 1);
    assert_int_equal(threads_with_policy(SCHED_IDLE), 0);
    crypto_jobs_configure(1, 1, 1);
}

static void test_bad_arguments(void **state) {
    (void)state;
    crypto_job_t job;
    init_job(&job, CRYPTO_HASH, "pw", NULL);
    job.done = NULL;
    assert_int_equal(crypto_submit(&inbox, &job), UV_EINVAL);
    assert_int_equal(crypto_submit(NULL, &job), UV_EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_then_verify),
        cmocka_unit_test(test_queue_limit),
        cmocka_unit_test(test_hashing_runs_at_idle_priority),
        cmocka_unit_test(test_shutdown_finishes_queued_jobs_and_restarts),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
