/* Password hashing off the I/O loop: Argon2id runs on the libuv thread pool,
 * at most ARGON2_CONCURRENCY at once process-wide, with at most
 * ARGON2_QUEUE_LIMIT waiting; the result comes back on the submitting loop.
 *
 * Contract: if crypto_submit returns an error, done is never called;
 * otherwise done is called exactly once on the loop the job was submitted
 * from. The job (caller-owned) must stay valid until then. */
#ifndef CHATD_AUTH_CRYPTO_JOBS_H
#define CHATD_AUTH_CRYPTO_JOBS_H

#include "auth/password.h"

#include <uv.h>

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
    uv_work_t work;
};

/* Sets the process-wide limits; call once before any loop submits, and before
 * anything uses the libuv thread pool: it sizes the pool (UV_THREADPOOL_SIZE,
 * unless the user set it), which libuv reads once, at first use. */
void crypto_jobs_configure(int concurrency, int queue_limit);

/* Returns 0, or UV_EBUSY when the queue is full (answer 503), or another
 * negative libuv error. */
int crypto_submit(uv_loop_t *loop, crypto_job_t *job);

#endif
