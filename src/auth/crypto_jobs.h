/* Password hashing off the I/O loop: Argon2id runs on crypto_jobs' own
 * threads, at most ARGON2_CONCURRENCY at once process-wide, with at most
 * ARGON2_QUEUE_LIMIT waiting; the result comes back through the submitting
 * loop's inbox.
 *
 * Contract: if crypto_submit returns an error, done is never called;
 * otherwise done is called exactly once, on the loop that owns reply_to.
 * The job (caller-owned) must stay valid until then, and reply_to open. */
#ifndef CHATD_AUTH_CRYPTO_JOBS_H
#define CHATD_AUTH_CRYPTO_JOBS_H

#include "auth/password.h"
#include "core/inbox.h"

typedef struct crypto_job_s crypto_job_t;
typedef void (*crypto_done_cb)(crypto_job_t *job);

typedef enum { CRYPTO_HASH, CRYPTO_VERIFY } crypto_op_t;

struct crypto_job_s {
    crypto_op_t op;
    /* in: the password (caller-owned, wiped by the caller after done) */
    const char *password;
    size_t password_len;
    /* in (VERIFY): the stored hash, or NULL to verify against the dummy hash
     * (the result is then always "no match") */
    const char *stored_hash;
    /* out */
    int ok;                       /* HASH: 1 when hashed; VERIFY: 1 when matched */
    char hash[PASSWORD_HASH_MAX]; /* HASH: the PHC string */
    crypto_done_cb done;
    void *data;

    /* private */
    inbox_t *reply_to;
    inbox_item_t done_item;
    crypto_job_t *next_queued;
};

/* Sets the process-wide limits; call before the first crypto_submit.
 * run_at_idle_priority: 1 moves each hashing thread to SCHED_IDLE
 * (ARGON2_IDLE_PRIORITY). */
void crypto_jobs_configure(int concurrency, int queue_limit, int run_at_idle_priority);

/* Queues the job (starting the hashing threads on first use). Returns 0,
 * UV_EBUSY when the queue is full (answer 503), UV_EINVAL for a bad job, or
 * another negative libuv error when a thread could not start. */
int crypto_submit(inbox_t *reply_to, crypto_job_t *job);

/* Lets the queued jobs finish, then stops and joins the hashing threads.
 * Call once no loop submits any more; crypto_submit may start them again. */
void crypto_jobs_shutdown(void);

#endif
