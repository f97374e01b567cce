/* Argon2id jobs on a small pool of hashing threads.
 *
 * Why not libuv's thread pool: its completion is a uv_async_send, and a loop
 * that finds an async handle mid-send spins (then sched_yield()s) until the
 * sender finishes it. A hashing thread at idle priority preempted inside
 * that window stalls its loop for as long as the loop keeps the core busy:
 * tens of milliseconds under load, measured. Results here go through the
 * loop's inbox, whose wake-up never makes the loop wait for a producer.
 *
 * Priority: a hash takes tens of milliseconds of a core. Where the hashing
 * threads share a core with an I/O thread (one core, or a login storm on a
 * busy box), the kernel would give them equal slices and a delivery could
 * wait a whole slice. So each hashing thread moves itself to SCHED_IDLE: the
 * I/O threads preempt it as soon as they wake, and hashing gets the CPU time
 * they leave. Logins slow down under load rather than messages; the queue
 * limit still bounds how many wait.
 *
 * Admission is one process-wide counter of jobs queued or running, capped at
 * concurrency + queue_limit (the running ones plus at most queue_limit
 * waiting); past it crypto_submit says UV_EBUSY at once. */
#include "auth/crypto_jobs.h"

#include "core/log.h"
#include "core/thread_sched.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>

#define CRYPTO_MAX_THREADS 256

static struct {
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    crypto_job_t *head, *tail; /* queued, not yet taken by a thread */
    int in_flight;             /* queued or running */
    int cap;                   /* concurrency + queue_limit */
    int concurrency;
    int idle_priority;
    int stopping;
    int nthreads; /* started and not yet joined */
    pthread_t threads[CRYPTO_MAX_THREADS];
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .work_ready = PTHREAD_COND_INITIALIZER,
    .cap = 4 + 256,
    .concurrency = 4,
    .idle_priority = 1,
};

void crypto_jobs_configure(int concurrency, int queue_limit, int run_at_idle_priority) {
    if (concurrency < 1)
        concurrency = 1;
    if (concurrency > CRYPTO_MAX_THREADS)
        concurrency = CRYPTO_MAX_THREADS;
    if (queue_limit < 0)
        queue_limit = 0;
    pthread_mutex_lock(&pool.lock);
    pool.concurrency = concurrency;
    pool.cap = concurrency + queue_limit;
    pool.idle_priority = run_at_idle_priority != 0;
    pthread_mutex_unlock(&pool.lock);
}

/* A failure (a seccomp profile forbidding it, say) is logged and hashing
 * goes on at normal priority. */
static void lower_this_thread(void) {
    int rc = thread_sched_idle();
    if (rc != 0)
        log_warn("password hashing stays at normal CPU priority: SCHED_IDLE refused",
                 LOG_I("errno", rc));
}

static void crypto_run(crypto_job_t *job) {
    if (job->op == CRYPTO_HASH) {
        job->ok = password_hash(job->password, job->password_len, job->hash) == 0;
    } else if (job->stored_hash == NULL) {
        /* Same cost as a real check, so unknown users are not told apart. */
        (void)password_verify(password_dummy_hash(), job->password, job->password_len);
        job->ok = 0;
    } else {
        job->ok = password_verify(job->stored_hash, job->password, job->password_len);
    }
}

/* Runs on the submitting loop. */
static void crypto_deliver(inbox_item_t *item) {
    crypto_job_t *job = (crypto_job_t *)(void *)((char *)item - offsetof(crypto_job_t, done_item));
    job->done(job);
}

static void *hashing_thread(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool.lock);
    int lower = pool.idle_priority;
    pthread_mutex_unlock(&pool.lock);
    if (lower)
        lower_this_thread();
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.head == NULL && !pool.stopping)
            pthread_cond_wait(&pool.work_ready, &pool.lock);
        crypto_job_t *job = pool.head;
        if (job == NULL)
            break; /* stopping, and nothing left queued */
        pool.head = job->next_queued;
        if (pool.head == NULL)
            pool.tail = NULL;
        pthread_mutex_unlock(&pool.lock);

        crypto_run(job);

        pthread_mutex_lock(&pool.lock);
        pool.in_flight--;
        pthread_mutex_unlock(&pool.lock);
        /* After this the job belongs to its loop again. */
        inbox_post(job->reply_to, &job->done_item);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Called with the lock held. */
static int start_threads(void) {
    while (pool.nthreads < pool.concurrency) {
        int rc = pthread_create(&pool.threads[pool.nthreads], NULL, hashing_thread, NULL);
        if (rc != 0)
            return pool.nthreads > 0 ? 0 : -rc;
        pool.nthreads++;
    }
    return 0;
}

int crypto_submit(inbox_t *reply_to, crypto_job_t *job) {
    if (reply_to == NULL || job == NULL || job->done == NULL ||
        (job->op != CRYPTO_HASH && job->op != CRYPTO_VERIFY))
        return UV_EINVAL;
    job->ok = 0;
    job->hash[0] = '\0';
    job->reply_to = reply_to;
    job->done_item.run = crypto_deliver;
    job->next_queued = NULL;

    pthread_mutex_lock(&pool.lock);
    int rc = pool.in_flight >= pool.cap ? UV_EBUSY : start_threads();
    if (rc == 0) {
        pool.in_flight++;
        if (pool.tail != NULL)
            pool.tail->next_queued = job;
        else
            pool.head = job;
        pool.tail = job;
        pthread_cond_signal(&pool.work_ready);
    }
    pthread_mutex_unlock(&pool.lock);
    return rc;
}

void crypto_jobs_shutdown(void) {
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.work_ready);
    int n = pool.nthreads;
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < n; i++)
        pthread_join(pool.threads[i], NULL);
    pthread_mutex_lock(&pool.lock);
    pool.nthreads = 0;
    pool.stopping = 0;
    pthread_mutex_unlock(&pool.lock);
}
