/* What the writer connection has learnt about senders and rooms, so that a
 * message insert need not ask the database again: each sender's email and
 * username, and which (room, user) pairs are memberships. A message from a
 * cached member then costs one INSERT.
 *
 * It holds only facts that nothing but this writer can undo: users are
 * never updated, rooms never change privacy, and a membership ends only
 * through a ROOM_LEAVE that the same writer runs (write_cache_forget_member
 * first). A rolled-back transaction may have taught it things that never
 * happened, so the owner clears it then. Something deleted behind chatd's
 * back (a user, a room) shows up as a foreign-key failure of the INSERT,
 * which the owner answers by clearing the cache and asking again.
 *
 * One thread only. Sizes are bounded: past WRITE_CACHE_MAX entries of a
 * kind, that kind is forgotten and learnt again. */
#ifndef CHATD_STORE_WRITE_CACHE_H
#define CHATD_STORE_WRITE_CACHE_H

#include "store/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WRITE_CACHE_MAX 65536

typedef struct write_cache_s write_cache_t;

typedef struct {
    int64_t id;
    const char *email; /* NUL-terminated, owned by the cache */
    size_t email_len;
    const char *username;
    size_t username_len;
} cached_user_t;

/* NULL when out of memory. */
write_cache_t *write_cache_new(void);
void write_cache_free(write_cache_t *cache);
/* Forgets everything. */
void write_cache_clear(write_cache_t *cache);

/* The user, or NULL when not cached; valid until the next call that adds
 * or clears. */
const cached_user_t *write_cache_user(write_cache_t *cache, int64_t user_id);
/* Copies the names in. 0, or -1 when out of memory (nothing cached). */
int write_cache_put_user(write_cache_t *cache, int64_t user_id, const char *email, size_t email_len,
                         const char *username, size_t username_len);

/* True when user_id is known to be a member of the existing room room_id. */
bool write_cache_is_member(const write_cache_t *cache, int64_t room_id, int64_t user_id);
/* 0, or -1 when out of memory (nothing cached). */
int write_cache_put_member(write_cache_t *cache, int64_t room_id, int64_t user_id);
void write_cache_forget_member(write_cache_t *cache, int64_t room_id, int64_t user_id);

/* Before the writer runs job: forgets what the job may make untrue (a
 * leave ends a membership; an operation not known here, everything).
 * cache may be NULL. */
void write_cache_before(write_cache_t *cache, const store_job_t *job);
/* After a message insert ran on the full path (look-ups, access check):
 * when it stored a new message, its sender exists under those names and
 * is now a member of the room. A cache that cannot grow is only slower. */
void write_cache_learn_post(write_cache_t *cache, const store_job_t *job);
/* After a known member's plain insert stored message id: fills
 * job->out.message from the job's inputs and the cached sender u, and sets
 * STORE_OK. 0, or -1 when out of memory. */
int write_cache_fill_post(const cached_user_t *u, store_job_t *job, int64_t id, int64_t now_ms);

#endif
