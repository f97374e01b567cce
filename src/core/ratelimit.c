/* Token buckets as GCRA: a bucket is the time from which it is full
 * (full_at). Taking a token moves full_at one interval later; the bucket is
 * empty while full_at is more than (burst - 1) intervals ahead of now.
 *
 * Each shard keeps its buckets in a chained hash table and in a list from
 * the most to the least recently used. A bucket last used a full refill ago
 * or more is full, and the list is in order of last use, so dropping those
 * is a walk from the old end that stops at the first one still in use. */
#include "core/ratelimit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define SHARDS 16

typedef struct bucket_s bucket_t;
struct bucket_s {
    bucket_t *chain; /* next in the hash slot */
    bucket_t *newer; /* towards the most recently used */
    bucket_t *older;
    uint64_t full_at_ns;
    uint64_t last_used_ns;
    uint64_t hash;
    uint8_t key_len;
    uint8_t key[RATELIMIT_KEY_MAX];
};

typedef struct {
    pthread_mutex_t lock;
    bucket_t **slots;
    size_t slot_mask;
    bucket_t *newest;
    bucket_t *oldest;
    size_t count;
    size_t cap;
} shard_t;

struct ratelimit_s {
    uint64_t interval_ns;  /* one token */
    uint64_t tolerance_ns; /* (burst - 1) intervals: how far ahead full_at may run */
    uint64_t refill_ns;    /* burst intervals: untouched this long, a bucket is full */
    uint64_t seed;
    _Atomic uint64_t refused;
    shard_t shards[SHARDS];
};

static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Seeded so that nobody can choose keys (addresses) that share a slot. */
static uint64_t key_hash(uint64_t seed, const uint8_t *key, size_t len) {
    uint64_t h = seed ^ len;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t word = 0;
        memcpy(&word, key + i, len - i < 8 ? len - i : 8);
        h = mix64(h ^ word);
    }
    return h;
}

static uint64_t random_seed(void) {
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32));
}

static size_t pow2_at_least(size_t n) {
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

ratelimit_t *ratelimit_new(uint32_t rate, uint64_t period_ms, uint32_t burst, size_t max_keys) {
    if (rate == 0 || period_ms == 0 || burst == 0 || max_keys == 0)
        return NULL;
    ratelimit_t *rl = calloc(1, sizeof(*rl));
    if (rl == NULL)
        return NULL;
    rl->interval_ns = period_ms * 1000000u / rate;
    if (rl->interval_ns == 0)
        rl->interval_ns = 1;
    rl->tolerance_ns = (uint64_t)(burst - 1) * rl->interval_ns;
    rl->refill_ns = (uint64_t)burst * rl->interval_ns;
    rl->seed = random_seed();
    atomic_init(&rl->refused, 0);
    size_t cap = (max_keys + SHARDS - 1) / SHARDS;
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &rl->shards[i];
        size_t nslots = pow2_at_least(cap);
        sh->slots = calloc(nslots, sizeof(*sh->slots));
        if (sh->slots == NULL || pthread_mutex_init(&sh->lock, NULL) != 0) {
            free(sh->slots);
            sh->slots = NULL;
            ratelimit_free(rl);
            return NULL;
        }
        sh->slot_mask = nslots - 1;
        sh->cap = cap;
    }
    return rl;
}

void ratelimit_free(ratelimit_t *rl) {
    if (rl == NULL)
        return;
    for (int i = 0; i < SHARDS; i++) {
        shard_t *sh = &rl->shards[i];
        if (sh->slots == NULL)
            continue; /* never initialised: ratelimit_new stopped here */
        bucket_t *next;
        for (bucket_t *b = sh->newest; b != NULL; b = next) {
            next = b->older;
            free(b);
        }
        free(sh->slots);
        pthread_mutex_destroy(&sh->lock);
    }
    free(rl);
}

static void list_unlink(shard_t *sh, bucket_t *b) {
    if (b->newer != NULL)
        b->newer->older = b->older;
    else
        sh->newest = b->older;
    if (b->older != NULL)
        b->older->newer = b->newer;
    else
        sh->oldest = b->newer;
    b->newer = b->older = NULL;
}

static void list_push_newest(shard_t *sh, bucket_t *b) {
    b->newer = NULL;
    b->older = sh->newest;
    if (sh->newest != NULL)
        sh->newest->newer = b;
    sh->newest = b;
    if (sh->oldest == NULL)
        sh->oldest = b;
}

static void bucket_remove(shard_t *sh, bucket_t *b) {
    bucket_t **link = &sh->slots[b->hash & sh->slot_mask];
    while (*link != b)
        link = &(*link)->chain;
    *link = b->chain;
    list_unlink(sh, b);
    free(b);
    sh->count--;
}

static void drop_full_buckets(const ratelimit_t *rl, shard_t *sh, uint64_t now_ns) {
    while (sh->oldest != NULL && now_ns >= sh->oldest->last_used_ns &&
           now_ns - sh->oldest->last_used_ns >= rl->refill_ns)
        bucket_remove(sh, sh->oldest);
}

static bucket_t *bucket_find(shard_t *sh, uint64_t hash, const uint8_t *key, size_t len) {
    for (bucket_t *b = sh->slots[hash & sh->slot_mask]; b != NULL; b = b->chain)
        if (b->hash == hash && b->key_len == len && memcmp(b->key, key, len) == 0)
            return b;
    return NULL;
}

/* A new bucket, full; NULL when out of memory. */
static bucket_t *bucket_add(shard_t *sh, uint64_t hash, const uint8_t *key, size_t len,
                            uint64_t now_ns) {
    if (sh->count == sh->cap)
        bucket_remove(sh, sh->oldest);
    bucket_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->hash = hash;
    b->key_len = (uint8_t)len;
    memcpy(b->key, key, len);
    b->full_at_ns = now_ns;
    b->last_used_ns = now_ns;
    bucket_t **slot = &sh->slots[hash & sh->slot_mask];
    b->chain = *slot;
    *slot = b;
    list_push_newest(sh, b);
    sh->count++;
    return b;
}

bool ratelimit_take(ratelimit_t *rl, const void *key, size_t key_len, uint64_t now_ns,
                    uint64_t *retry_after_ns) {
    if (key_len > RATELIMIT_KEY_MAX)
        key_len = RATELIMIT_KEY_MAX;
    uint64_t hash = key_hash(rl->seed, key, key_len);
    shard_t *sh = &rl->shards[(hash >> 32) % SHARDS];
    bool allowed = true;
    pthread_mutex_lock(&sh->lock);
    drop_full_buckets(rl, sh, now_ns);
    bucket_t *b = bucket_find(sh, hash, key, key_len);
    if (b == NULL)
        b = bucket_add(sh, hash, key, key_len, now_ns);
    if (b != NULL) {
        uint64_t full_at = b->full_at_ns > now_ns ? b->full_at_ns : now_ns;
        if (full_at - now_ns > rl->tolerance_ns) {
            allowed = false;
            if (retry_after_ns != NULL)
                *retry_after_ns = full_at - now_ns - rl->tolerance_ns;
        } else {
            b->full_at_ns = full_at + rl->interval_ns;
        }
        /* A refused key stays in use too: dropping it as idle would refill
         * it. Its full_at is never more than a refill past its last use. */
        if (now_ns > b->last_used_ns)
            b->last_used_ns = now_ns;
        list_unlink(sh, b);
        list_push_newest(sh, b);
    }
    pthread_mutex_unlock(&sh->lock);
    if (!allowed)
        atomic_fetch_add_explicit(&rl->refused, 1, memory_order_relaxed);
    return allowed;
}

int64_t ratelimit_retry_after_s(uint64_t retry_after_ns) {
    uint64_t s = retry_after_ns / 1000000000u + (retry_after_ns % 1000000000u != 0);
    return s < 1 ? 1 : (int64_t)s;
}

size_t ratelimit_key_count(ratelimit_t *rl) {
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].lock);
        n += rl->shards[i].count;
        pthread_mutex_unlock(&rl->shards[i].lock);
    }
    return n;
}

uint64_t ratelimit_refused(ratelimit_t *rl) {
    return atomic_load_explicit(&rl->refused, memory_order_relaxed);
}
