/* Argon2id jobs on the libuv thread pool.
 *
 * The pool is the concurrency bound: crypto_jobs_configure sizes it through
 * UV_THREADPOOL_SIZE, which libuv reads once, when any loop first uses the
 * pool, so it must run before that (main calls it before starting loops). A
 * UV_THREADPOOL_SIZE set by the user is left alone. The pool is shared with
 * libuv's other work (uv_fs_*, getaddrinfo), which queues with the hashes.
 *
 * Admission is one process-wide counter of jobs queued or running, capped at
 * concurrency + queue_limit (the running ones plus at most queue_limit
 * waiting); past it crypto_submit says UV_EBUSY at once. */
#include "auth/crypto_jobs.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int jobs_in_flight;
static atomic_int jobs_cap = 4 + 256;

void crypto_jobs_configure(int concurrency, int queue_limit) {
    if (concurrency < 1)
        concurrency = 1;
    if (queue_limit < 0)
        queue_limit = 0;
    if (getenv("UV_THREADPOOL_SIZE") == NULL) {
        char text[16];
        snprintf(text, sizeof(text), "%d", concurrency);
        setenv("UV_THREADPOOL_SIZE", text, 0);
    }
    atomic_store(&jobs_cap, concurrency + queue_limit);
}

static void crypto_work(uv_work_t *req) {
    crypto_job_t *job = req->data;
    if (job->op == CRYPTO_HASH) {
        job->ok = password_hash(job->password, job->password_len, job->hash) == 0;
    } else if (job->stored_hash == NULL) {
        /* Same cost as a real check, so unknown users are not told apart. */
        (void)password_verify(password_dummy_hash(), job->password, job->password_len);
        job->ok = 0;
    } else {
        job->ok = password_verify(job->stored_hash, job->password, job->password_len);
    }
    atomic_fetch_sub(&jobs_in_flight, 1);
}

/* Runs on the loop the job was submitted from. */
static void crypto_after_work(uv_work_t *req, int status) {
    crypto_job_t *job = req->data;
    if (status == UV_ECANCELED) {
        atomic_fetch_sub(&jobs_in_flight, 1);
        job->ok = 0;
        job->hash[0] = '\0';
    }
    job->done(job);
}

int crypto_submit(uv_loop_t *loop, crypto_job_t *job) {
    if (loop == NULL || job == NULL || job->done == NULL ||
        (job->op != CRYPTO_HASH && job->op != CRYPTO_VERIFY))
        return UV_EINVAL;
    if (atomic_fetch_add(&jobs_in_flight, 1) >= atomic_load(&jobs_cap)) {
        atomic_fetch_sub(&jobs_in_flight, 1);
        return UV_EBUSY;
    }
    job->ok = 0;
    job->hash[0] = '\0';
    job->work.data = job;
    int rc = uv_queue_work(loop, &job->work, crypto_work, crypto_after_work);
    if (rc != 0)
        atomic_fetch_sub(&jobs_in_flight, 1);
    return rc;
}
