/* Two open-addressing tables (linear probing, at most half full): users by
 * id, memberships by (room, user). Id 0 marks an empty slot: database ids
 * start at 1. */
#include "store/write_cache.h"

#include "store/backend.h"

#include <stdlib.h>
#include <string.h>

#define START_SLOTS 64

typedef struct {
    int64_t room_id;
    int64_t user_id;
} member_t;

struct write_cache_s {
    cached_user_t *users;
    size_t user_slots; /* 0 or a power of two */
    size_t user_count;
    member_t *members;
    size_t member_slots;
    size_t member_count;
};

static size_t hash_ids(int64_t a, int64_t b) {
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull ^ (uint64_t)b * 0xC2B2AE3D27D4EB4Full;
    return (size_t)(h ^ (h >> 29));
}

write_cache_t *write_cache_new(void) {
    return calloc(1, sizeof(write_cache_t));
}

static void clear_users(write_cache_t *c) {
    for (size_t i = 0; i < c->user_slots; i++)
        free((char *)c->users[i].email);
    free(c->users);
    c->users = NULL;
    c->user_slots = c->user_count = 0;
}

static void clear_members(write_cache_t *c) {
    free(c->members);
    c->members = NULL;
    c->member_slots = c->member_count = 0;
}

void write_cache_clear(write_cache_t *c) {
    if (c == NULL)
        return;
    clear_users(c);
    clear_members(c);
}

void write_cache_free(write_cache_t *c) {
    write_cache_clear(c);
    free(c);
}

/* ---------------------------------------------------------------- users */

static cached_user_t *user_slot(cached_user_t *slots, size_t n, int64_t id) {
    size_t i = hash_ids(id, 0) & (n - 1);
    while (slots[i].id != 0 && slots[i].id != id)
        i = (i + 1) & (n - 1);
    return &slots[i];
}

const cached_user_t *write_cache_user(write_cache_t *c, int64_t user_id) {
    if (c->user_slots == 0 || user_id <= 0)
        return NULL;
    cached_user_t *u = user_slot(c->users, c->user_slots, user_id);
    return u->id == user_id ? u : NULL;
}

/* Makes room for one more user; 0 or -1. */
static int users_reserve(write_cache_t *c) {
    if (c->user_count >= WRITE_CACHE_MAX)
        clear_users(c);
    if (2 * (c->user_count + 1) <= c->user_slots)
        return 0;
    size_t n = c->user_slots ? 2 * c->user_slots : START_SLOTS;
    cached_user_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < c->user_slots; i++) {
        if (c->users[i].id != 0)
            *user_slot(slots, n, c->users[i].id) = c->users[i];
    }
    free(c->users);
    c->users = slots;
    c->user_slots = n;
    return 0;
}

int write_cache_put_user(write_cache_t *c, int64_t user_id, const char *email, size_t email_len,
                         const char *username, size_t username_len) {
    if (user_id <= 0 || users_reserve(c) < 0)
        return -1;
    /* email NUL username NUL, in one allocation. */
    char *names = malloc(email_len + username_len + 2);
    if (names == NULL)
        return -1;
    memcpy(names, email, email_len);
    names[email_len] = '\0';
    memcpy(names + email_len + 1, username, username_len);
    names[email_len + 1 + username_len] = '\0';
    cached_user_t *u = user_slot(c->users, c->user_slots, user_id);
    if (u->id == 0)
        c->user_count++;
    else
        free((char *)u->email);
    *u = (cached_user_t){.id = user_id,
                         .email = names,
                         .email_len = email_len,
                         .username = names + email_len + 1,
                         .username_len = username_len};
    return 0;
}

/* ---------------------------------------------------------- memberships */

static size_t member_index(const member_t *slots, size_t n, int64_t room_id, int64_t user_id) {
    size_t i = hash_ids(room_id, user_id) & (n - 1);
    while (slots[i].room_id != 0 && (slots[i].room_id != room_id || slots[i].user_id != user_id))
        i = (i + 1) & (n - 1);
    return i;
}

bool write_cache_is_member(const write_cache_t *c, int64_t room_id, int64_t user_id) {
    if (c->member_slots == 0 || room_id <= 0)
        return false;
    return c->members[member_index(c->members, c->member_slots, room_id, user_id)].room_id != 0;
}

static int members_reserve(write_cache_t *c) {
    if (c->member_count >= WRITE_CACHE_MAX)
        clear_members(c);
    if (2 * (c->member_count + 1) <= c->member_slots)
        return 0;
    size_t n = c->member_slots ? 2 * c->member_slots : START_SLOTS;
    member_t *slots = calloc(n, sizeof(*slots));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < c->member_slots; i++) {
        const member_t *m = &c->members[i];
        if (m->room_id != 0)
            slots[member_index(slots, n, m->room_id, m->user_id)] = *m;
    }
    free(c->members);
    c->members = slots;
    c->member_slots = n;
    return 0;
}

int write_cache_put_member(write_cache_t *c, int64_t room_id, int64_t user_id) {
    if (room_id <= 0 || members_reserve(c) < 0)
        return -1;
    member_t *m = &c->members[member_index(c->members, c->member_slots, room_id, user_id)];
    if (m->room_id == 0) {
        *m = (member_t){room_id, user_id};
        c->member_count++;
    }
    return 0;
}

/* Removes by shifting later entries of the probe run back, so that no
 * lookup stops early at the hole. */
void write_cache_forget_member(write_cache_t *c, int64_t room_id, int64_t user_id) {
    if (c->member_slots == 0)
        return;
    size_t mask = c->member_slots - 1;
    size_t hole = member_index(c->members, c->member_slots, room_id, user_id);
    if (c->members[hole].room_id == 0)
        return;
    c->member_count--;
    for (size_t i = (hole + 1) & mask; c->members[i].room_id != 0; i = (i + 1) & mask) {
        size_t home = hash_ids(c->members[i].room_id, c->members[i].user_id) & mask;
        /* The entry may move into the hole unless its home lies cyclically
         * in (hole, i]. */
        bool home_after_hole = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!home_after_hole) {
            c->members[hole] = c->members[i];
            hole = i;
        }
    }
    c->members[hole] = (member_t){0, 0};
}

/* ------------------------------------------------------------ the writer */

void write_cache_before(write_cache_t *c, const store_job_t *job) {
    if (c == NULL)
        return;
    switch (job->op) {
    case STORE_MESSAGE_INSERT:
    case STORE_READ_MARK:
    case STORE_USER_CREATE:
    case STORE_ROOM_CREATE:
    case STORE_ROOM_JOIN:
    case STORE_ROOM_ADD_MEMBER:
    case STORE_DM_OPEN:
        return;
    case STORE_ROOM_LEAVE:
        write_cache_forget_member(c, job->in.room_id, job->auth_user_id);
        return;
    default:
        write_cache_clear(c);
    }
}

void write_cache_learn_post(write_cache_t *c, const store_job_t *job) {
    const store_message_t *m = &job->out.message;
    if (c == NULL || job->op != STORE_MESSAGE_INSERT || job->out.status != STORE_OK ||
        job->out.duplicate || m->sender_email == NULL || m->sender_username == NULL)
        return;
    if (write_cache_put_user(c, m->sender_id, m->sender_email, strlen(m->sender_email),
                             m->sender_username, strlen(m->sender_username)) == 0)
        (void)write_cache_put_member(c, m->room_id, m->sender_id);
}

int write_cache_fill_post(const cached_user_t *u, store_job_t *job, int64_t id, int64_t now_ms) {
    store_message_t *m = &job->out.message;
    m->id = id;
    m->sender_id = job->auth_user_id;
    m->room_id = job->in.room_id;
    m->created_at_ms = now_ms;
    const char *cid = job->in.client_id;
    store_message_text_t t = {.content = job->in.content,
                              .content_len = job->in.content_len,
                              .client_id = cid,
                              .client_id_len = cid != NULL ? strlen(cid) : 0,
                              .email = u->email,
                              .email_len = u->email_len,
                              .username = u->username,
                              .username_len = u->username_len};
    if (store_message_set_text(m, &t) < 0)
        return -1;
    job->out.status = STORE_OK;
    return 0;
}
