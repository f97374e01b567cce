/* The store's threads and queues: one writer that group-commits every
 * pending write job, and reader threads sharing one queue of read jobs.
 * Results go back to the submitting loop through its inbox. */
#include "store/store.h"

#include "store/backend.h"

#include "core/log.h"
#include "core/thread_sched.h"
#include "core/timeutil.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_READERS     2
#define DEFAULT_BATCH_MAX   256
#define DEFAULT_QUEUE_LIMIT 10000

const double STORE_COMMIT_BUCKETS[STORE_COMMIT_BUCKET_COUNT] = {.0005, .001, .0025, .005, .01, .025,
                                                                .05,   .1,   .25,   .5,   1,   2.5};

typedef struct {
    store_job_t *head;
    store_job_t *tail;
} job_queue_t;

typedef struct {
    store_t *store;
    store_db_t *db;
    pthread_t thread;
    bool started;
} store_thread_t;

struct store_s {
    const store_backend_t *backend;
    size_t batch_max;
    size_t queue_limit;

    pthread_mutex_t lock;
    pthread_cond_t write_ready;
    pthread_cond_t read_ready;
    job_queue_t writes;
    job_queue_t reads;
    size_t pending; /* jobs in either queue */
    bool closing;

    store_thread_t writer;
    store_job_t **batch;       /* the writer's, batch_max long */
    store_commit_fn commit_fn; /* set under lock, read by the writer under lock */
    void *commit_ctx;
    store_thread_t *readers;
    int reader_count;

    _Atomic uint64_t queue_depth;
    _Atomic uint64_t messages_stored;
    _Atomic uint64_t commits;
    _Atomic uint64_t errors;
    _Atomic uint64_t commit_ns_sum;
    _Atomic uint64_t commit_in_bucket[STORE_COMMIT_BUCKET_COUNT]; /* not cumulative */
};

static bool is_write(store_op_t op) {
    return op >= STORE_USER_CREATE;
}

const store_backend_t *store_backend_for_url(const char *url) {
    if (strncmp(url, "sqlite:", 7) == 0)
        return &store_backend_sqlite;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return &store_backend_postgres;
    return NULL;
}

static const store_backend_t *backend_or_err(const config_t *cfg, char *err, size_t errlen) {
    const store_backend_t *b = store_backend_for_url(cfg->database_url);
    if (b == NULL)
        snprintf(err, errlen,
                 "DATABASE_URL: unsupported (want sqlite:PATH or postgres://user:pass@host/db)");
    return b;
}

/* ------------------------------------------------------------- replies */

/* Runs the done callbacks of a chain of jobs, in order. */
static void reply_run(inbox_item_t *item) {
    store_job_t *job = (store_job_t *)((char *)item - offsetof(store_job_t, reply_item));
    while (job != NULL) {
        store_job_t *next = job->next; /* done may free or reuse job */
        job->done(job);
        job = next;
    }
}

/* Posts the replies of jobs[0..n) in that order. Consecutive jobs bound for
 * the same loop travel as one chain, one inbox item: a batch costs the
 * loop's inbox lock once, not once per job. A job belongs to its loop again
 * once posted: touch nothing after. */
static void post_replies(store_job_t **jobs, size_t n) {
    for (size_t i = 0; i < n;) {
        store_job_t *head = jobs[i++];
        store_job_t *tail = head;
        while (i < n && jobs[i]->reply_to == head->reply_to) {
            tail->next = jobs[i++];
            tail = tail->next;
        }
        tail->next = NULL;
        head->reply_item.run = reply_run;
        inbox_post(head->reply_to, &head->reply_item);
    }
}

static void fail_job(store_t *s, store_job_t *job, store_status_t status) {
    store_job_cleanup(job);
    job->out.status = status;
    atomic_fetch_add(&s->errors, 1);
}

/* --------------------------------------------------------------- writer */

static void record_commit(store_t *s, store_job_t **jobs, size_t n, uint64_t ns) {
    double seconds = (double)ns / 1e9;
    for (int i = 0; i < STORE_COMMIT_BUCKET_COUNT; i++) {
        if (seconds <= STORE_COMMIT_BUCKETS[i]) {
            atomic_fetch_add(&s->commit_in_bucket[i], 1);
            break;
        }
    }
    atomic_fetch_add(&s->commit_ns_sum, ns);
    atomic_fetch_add(&s->commits, 1);
    uint64_t stored = 0;
    for (size_t i = 0; i < n; i++) {
        const store_job_t *job = jobs[i];
        stored +=
            job->op == STORE_MESSAGE_INSERT && job->out.status == STORE_OK && !job->out.duplicate;
    }
    if (stored > 0)
        atomic_fetch_add(&s->messages_stored, stored);
}

/* 0 when committed; otherwise the jobs are cleaned and -1 returned. */
static int commit_jobs(store_t *s, store_job_t **jobs, size_t n) {
    store_db_t *db = s->writer.db;
    uint64_t start = time_monotonic_ns();
    if (s->backend->write_batch(db, jobs, n) == 0) {
        record_commit(s, jobs, n, time_monotonic_ns() - start);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        store_job_cleanup(jobs[i]);
    return -1;
}

/* Every job ends with a status that describes committed state: after a
 * failed batch each job gets a transaction of its own, so one bad job
 * cannot fail the others. */
static void run_batch(store_t *s, store_job_t **jobs, size_t n) {
    store_db_t *db = s->writer.db;
    if (s->backend->ensure(db) == 0 && commit_jobs(s, jobs, n) == 0)
        return;
    if (n > 1 && !s->backend->broken(db)) {
        log_warn("store: batch rolled back, retrying its jobs one by one", LOG_I("jobs", n));
        atomic_fetch_add(&s->errors, 1);
        for (size_t i = 0; i < n; i++) {
            if (s->backend->ensure(db) < 0)
                fail_job(s, jobs[i], STORE_UNAVAILABLE);
            else if (commit_jobs(s, &jobs[i], 1) < 0)
                fail_job(s, jobs[i], s->backend->broken(db) ? STORE_UNAVAILABLE : STORE_ERROR);
        }
        return;
    }
    /* Lost during COMMIT, the outcome is unknown; clients retry with
     * their client_id. */
    store_status_t status = s->backend->broken(db) ? STORE_UNAVAILABLE : STORE_ERROR;
    for (size_t i = 0; i < n; i++)
        fail_job(s, jobs[i], status);
}

static bool must_announce(const store_job_t *job) {
    if (job->out.status != STORE_OK)
        return false;
    return (job->op == STORE_MESSAGE_INSERT && !job->out.duplicate) ||
           (job->op == STORE_READ_MARK && job->out.advanced);
}

/* After run_batch every OK status is committed (a rolled-back batch was
 * rerun job by job, in order), so the jobs go out in the order they ran. */
static void announce_commits(store_commit_fn fn, void *ctx, store_job_t **jobs, size_t n) {
    if (fn == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        if (must_announce(jobs[i]))
            fn(ctx, jobs[i]);
    }
}

static size_t take_jobs(store_t *s, job_queue_t *q, store_job_t **out, size_t max) {
    size_t n = 0;
    while (q->head != NULL && n < max) {
        out[n++] = q->head;
        q->head = q->head->next;
    }
    if (q->head == NULL)
        q->tail = NULL;
    s->pending -= n;
    atomic_store(&s->queue_depth, s->pending);
    return n;
}

/* Store threads run SCHED_BATCH (core/thread_sched.h says why); without it
 * the writer preempts the loop at every submit on a shared core and commits
 * one message per transaction. */
static void store_thread_sched(void) {
    int rc = thread_sched_batch();
    if (rc != 0)
        log_warn("store thread stays at the normal CPU policy: SCHED_BATCH refused",
                 LOG_I("errno", rc));
}

static void *writer_main(void *arg) {
    store_t *s = arg;
    store_thread_sched();
    for (;;) {
        pthread_mutex_lock(&s->lock);
        while (s->writes.head == NULL && !s->closing)
            pthread_cond_wait(&s->write_ready, &s->lock);
        size_t n = take_jobs(s, &s->writes, s->batch, s->batch_max);
        store_commit_fn fn = s->commit_fn;
        void *ctx = s->commit_ctx;
        pthread_mutex_unlock(&s->lock);
        if (n == 0)
            return NULL; /* closing and drained */
        run_batch(s, s->batch, n);
        announce_commits(fn, ctx, s->batch, n);
        post_replies(s->batch, n);
    }
}

/* -------------------------------------------------------------- readers */

static void run_read(store_t *s, store_db_t *db, store_job_t *job) {
    /* A read is safe to repeat: one retry hides a connection that broke
     * while idle (the server restarted). */
    for (int attempt = 0; attempt < 2; attempt++) {
        if (s->backend->ensure(db) < 0)
            break;
        if (store_ops_run(db, job) == 0)
            return;
        store_job_cleanup(job);
        if (!s->backend->broken(db)) {
            fail_job(s, job, STORE_ERROR);
            return;
        }
    }
    fail_job(s, job, STORE_UNAVAILABLE);
}

static void *reader_main(void *arg) {
    store_thread_t *t = arg;
    store_t *s = t->store;
    store_thread_sched();
    for (;;) {
        store_job_t *job;
        pthread_mutex_lock(&s->lock);
        while (s->reads.head == NULL && !s->closing)
            pthread_cond_wait(&s->read_ready, &s->lock);
        size_t n = take_jobs(s, &s->reads, &job, 1);
        pthread_mutex_unlock(&s->lock);
        if (n == 0)
            return NULL;
        run_read(s, t->db, job);
        post_replies(&job, 1);
    }
}

/* --------------------------------------------------------------- public */

int store_submit(store_t *s, store_job_t *job) {
    if (s == NULL || job == NULL || (unsigned)job->op >= STORE_OP_COUNT || job->done == NULL ||
        job->reply_to == NULL)
        return -1;
    memset(&job->out, 0, sizeof job->out);
    job->next = NULL;
    job->enqueued_ns = time_monotonic_ns();
    bool write = is_write(job->op);
    job_queue_t *q = write ? &s->writes : &s->reads;
    pthread_mutex_lock(&s->lock);
    if (s->closing || s->pending >= s->queue_limit) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    if (q->tail != NULL)
        q->tail->next = job;
    else
        q->head = job;
    q->tail = job;
    s->pending++;
    atomic_store(&s->queue_depth, s->pending);
    pthread_cond_signal(write ? &s->write_ready : &s->read_ready);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

void store_set_commit_hook(store_t *s, store_commit_fn fn, void *ctx) {
    pthread_mutex_lock(&s->lock);
    s->commit_fn = fn;
    s->commit_ctx = ctx;
    pthread_mutex_unlock(&s->lock);
}

static void free_message(store_message_t *m) {
    free(m->text);
}

void store_job_cleanup(store_job_t *job) {
    free(job->out.user.email);
    free(job->out.user.username);
    free(job->out.user.password_hash);
    free(job->out.room.name);
    free_message(&job->out.message);
    for (size_t i = 0; i < job->out.room_count; i++)
        free(job->out.rooms[i].name);
    free(job->out.rooms);
    for (size_t i = 0; i < job->out.member_count; i++)
        free(job->out.members[i].username);
    free(job->out.members);
    for (size_t i = 0; i < job->out.message_count; i++)
        free_message(&job->out.messages[i]);
    free(job->out.messages);
    memset(&job->out, 0, sizeof job->out);
}

/* Stops and joins whatever threads run, closes connections, frees s. */
static void store_destroy(store_t *s) {
    pthread_mutex_lock(&s->lock);
    s->closing = true;
    pthread_cond_broadcast(&s->write_ready);
    pthread_cond_broadcast(&s->read_ready);
    pthread_mutex_unlock(&s->lock);
    if (s->writer.started)
        pthread_join(s->writer.thread, NULL);
    for (int i = 0; i < s->reader_count; i++) {
        if (s->readers[i].started)
            pthread_join(s->readers[i].thread, NULL);
    }
    for (int i = 0; i < s->reader_count; i++) {
        if (s->readers[i].db != NULL)
            s->backend->close(s->readers[i].db);
    }
    if (s->writer.db != NULL)
        s->backend->close(s->writer.db);
    pthread_cond_destroy(&s->write_ready);
    pthread_cond_destroy(&s->read_ready);
    pthread_mutex_destroy(&s->lock);
    free(s->readers);
    free(s->batch);
    free(s);
}

static int open_threads(store_t *s, const config_t *cfg, char *err, size_t errlen) {
    if (s->backend->open(cfg->database_url, &s->writer.db, err, errlen) < 0 ||
        store_migrations_apply(s->writer.db, err, errlen) < 0)
        return -1;
    for (int i = 0; i < s->reader_count; i++) {
        s->readers[i].store = s;
        if (s->backend->open(cfg->database_url, &s->readers[i].db, err, errlen) < 0)
            return -1;
    }
    s->writer.store = s;
    if (pthread_create(&s->writer.thread, NULL, writer_main, s) != 0)
        goto no_thread;
    s->writer.started = true;
    for (int i = 0; i < s->reader_count; i++) {
        if (pthread_create(&s->readers[i].thread, NULL, reader_main, &s->readers[i]) != 0)
            goto no_thread;
        s->readers[i].started = true;
    }
    return 0;
no_thread:
    snprintf(err, errlen, "cannot start the store's threads");
    return -1;
}

int store_open(store_t **out, const config_t *cfg, char *err, size_t errlen) {
    const store_backend_t *backend = backend_or_err(cfg, err, errlen);
    if (backend == NULL)
        return -1;
    store_t *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->backend = backend;
    s->batch_max = cfg->store_batch_max > 0 ? (size_t)cfg->store_batch_max : DEFAULT_BATCH_MAX;
    s->queue_limit =
        cfg->store_queue_limit > 0 ? (size_t)cfg->store_queue_limit : DEFAULT_QUEUE_LIMIT;
    s->reader_count = cfg->store_readers > 0 ? cfg->store_readers : DEFAULT_READERS;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->write_ready, NULL);
    pthread_cond_init(&s->read_ready, NULL);
    s->batch = calloc(s->batch_max, sizeof *s->batch);
    s->readers = calloc((size_t)s->reader_count, sizeof *s->readers);
    if (s->batch == NULL || s->readers == NULL) {
        snprintf(err, errlen, "out of memory");
        store_destroy(s);
        return -1;
    }
    if (open_threads(s, cfg, err, errlen) < 0) {
        store_destroy(s);
        return -1;
    }
    log_info("store open", LOG_S("backend", backend->name), LOG_I("readers", s->reader_count),
             LOG_I("batch_max", s->batch_max));
    *out = s;
    return 0;
}

int store_migrate(const config_t *cfg, char *err, size_t errlen) {
    const store_backend_t *backend = backend_or_err(cfg, err, errlen);
    store_db_t *db = NULL;
    if (backend == NULL || backend->open(cfg->database_url, &db, err, errlen) < 0)
        return -1;
    int rc = store_migrations_apply(db, err, errlen);
    backend->close(db);
    return rc;
}

void store_close(store_t *s) {
    if (s != NULL)
        store_destroy(s);
}

void store_get_stats(store_t *s, store_stats_t *out) {
    memset(out, 0, sizeof *out);
    out->queue_depth = atomic_load(&s->queue_depth);
    out->messages_stored = atomic_load(&s->messages_stored);
    out->commits = atomic_load(&s->commits);
    out->errors = atomic_load(&s->errors);
    out->commit_seconds_sum = (double)atomic_load(&s->commit_ns_sum) / 1e9;
    uint64_t cumulative = 0;
    for (int i = 0; i < STORE_COMMIT_BUCKET_COUNT; i++) {
        cumulative += atomic_load(&s->commit_in_bucket[i]);
        out->commit_seconds_bucket[i] = cumulative;
    }
}

const char *store_backend_name(const store_t *s) {
    return s->backend->name;
}
