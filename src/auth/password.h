/* Argon2id password hashing (libsodium), blocking: call from worker threads
 * only (see crypto_jobs.h), never from an I/O loop. */
#ifndef CHATD_AUTH_PASSWORD_H
#define CHATD_AUTH_PASSWORD_H

#include <stddef.h>

#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */

/* Must be called once before any other function here (sodium_init and the
 * dummy hash used for unknown users). Returns 0 or -1. */
int password_init(int memory_kib, int iterations);

/* Writes a PHC string ("$argon2id$v=19$m=...") into out. Returns 0, or -1 when
 * out of memory. */
int password_hash(const char *password, size_t len, char out[PASSWORD_HASH_MAX]);

/* Returns 1 when password matches hash, 0 when it does not (or hash is
 * malformed). Takes about as long either way. */
int password_verify(const char *hash, const char *password, size_t len);

/* A hash of a random password with the configured cost: verifying against it
 * takes the same time as a real verification, so unknown emails and wrong
 * passwords cannot be told apart by timing. */
const char *password_dummy_hash(void);

#endif
