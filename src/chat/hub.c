#include "chat/hub.h"

#include <pthread.h>
#include <stdlib.h>

/* A room's subscribers on one shard. */
typedef struct hub_room_s {
    int64_t room_id;
    hub_sub_t *subs;
    struct hub_room_s *next_in_bucket;
} hub_room_t;

/* Hash tables of rooms (per shard) and of presence entries (process-wide)
 * both grow by doubling; they never shrink below their start size. */
#define HUB_BUCKETS_START 64

typedef struct {
    _Atomic(inbox_t *) inbox;          /* set by the shard's loop on first subscribe */
    _Atomic uint64_t subscriber_count; /* read by publishers to skip empty shards */
    hub_room_t **buckets;
    size_t bucket_count;
    size_t room_count;
} hub_shard_t;

/* One event on its way to one shard. */
typedef struct {
    inbox_item_t item;
    hub_shard_t *shard;
    hub_event_t *event;
} hub_delivery_t;

typedef struct presence_s {
    int64_t room_id;
    int64_t user_id;
    int64_t connections;
    int64_t last_typing_ms;
    struct presence_s *next_in_bucket;
} presence_t;

struct hub_s {
    int shard_count;
    hub_shard_t *shards;
    pthread_mutex_t presence_lock;
    presence_t **presence_buckets;
    size_t presence_bucket_count;
    size_t presence_count;
};

static size_t hash_ids(int64_t a, int64_t b, size_t bucket_count) {
    uint64_t h = (uint64_t)a * 0x9E3779B97F4A7C15ull ^ (uint64_t)b * 0xC2B2AE3D27D4EB4Full;
    h ^= h >> 29;
    return (size_t)(h & (bucket_count - 1));
}

/* ---------------------------------------------------------------- events */

hub_event_t *hub_event_new(int64_t room_id, int64_t message_id, int64_t exclude_user_id,
                           shared_buf_t *frame) {
    hub_event_t *event = malloc(sizeof(*event));
    if (event == NULL) {
        shared_buf_unref(frame);
        return NULL;
    }
    atomic_init(&event->refs, 1);
    event->room_id = room_id;
    event->message_id = message_id;
    event->exclude_user_id = exclude_user_id;
    event->frame = frame;
    return event;
}

hub_event_t *hub_event_ref(hub_event_t *event) {
    atomic_fetch_add_explicit(&event->refs, 1, memory_order_relaxed);
    return event;
}

void hub_event_unref(hub_event_t *event) {
    if (event != NULL && atomic_fetch_sub_explicit(&event->refs, 1, memory_order_acq_rel) == 1) {
        shared_buf_unref(event->frame);
        free(event);
    }
}

/* ------------------------------------------------------------ lifecycle */

hub_t *hub_new(int shard_count) {
    hub_t *hub = calloc(1, sizeof(*hub));
    if (hub == NULL)
        return NULL;
    hub->shard_count = shard_count;
    hub->shards = calloc((size_t)shard_count, sizeof(*hub->shards));
    hub->presence_buckets = calloc(HUB_BUCKETS_START, sizeof(*hub->presence_buckets));
    hub->presence_bucket_count = HUB_BUCKETS_START;
    if (hub->shards == NULL || hub->presence_buckets == NULL ||
        pthread_mutex_init(&hub->presence_lock, NULL) != 0) {
        free(hub->shards);
        free(hub->presence_buckets);
        free(hub);
        return NULL;
    }
    return hub;
}

void hub_free(hub_t *hub) {
    if (hub == NULL)
        return;
    for (int s = 0; s < hub->shard_count; s++) {
        hub_shard_t *shard = &hub->shards[s];
        for (size_t b = 0; b < shard->bucket_count; b++) {
            hub_room_t *room = shard->buckets[b];
            while (room != NULL) {
                hub_room_t *next = room->next_in_bucket;
                free(room);
                room = next;
            }
        }
        free(shard->buckets);
    }
    for (size_t b = 0; b < hub->presence_bucket_count; b++) {
        presence_t *entry = hub->presence_buckets[b];
        while (entry != NULL) {
            presence_t *next = entry->next_in_bucket;
            free(entry);
            entry = next;
        }
    }
    pthread_mutex_destroy(&hub->presence_lock);
    free(hub->presence_buckets);
    free(hub->shards);
    free(hub);
}

/* ------------------------------------------------------ rooms of a shard */

static hub_room_t **room_slot(hub_shard_t *shard, int64_t room_id) {
    hub_room_t **slot = &shard->buckets[hash_ids(room_id, 0, shard->bucket_count)];
    while (*slot != NULL && (*slot)->room_id != room_id)
        slot = &(*slot)->next_in_bucket;
    return slot;
}

static int shard_grow(hub_shard_t *shard) {
    size_t count = shard->bucket_count ? shard->bucket_count * 2 : HUB_BUCKETS_START;
    hub_room_t **buckets = calloc(count, sizeof(*buckets));
    if (buckets == NULL)
        return -1;
    for (size_t b = 0; b < shard->bucket_count; b++) {
        hub_room_t *room = shard->buckets[b];
        while (room != NULL) {
            hub_room_t *next = room->next_in_bucket;
            size_t i = hash_ids(room->room_id, 0, count);
            room->next_in_bucket = buckets[i];
            buckets[i] = room;
            room = next;
        }
    }
    free(shard->buckets);
    shard->buckets = buckets;
    shard->bucket_count = count;
    return 0;
}

int hub_subscribe(hub_t *hub, inbox_t *inbox, hub_sub_t *sub) {
    hub_shard_t *shard = &hub->shards[sub->shard];
    if (atomic_load_explicit(&shard->inbox, memory_order_acquire) == NULL)
        atomic_store_explicit(&shard->inbox, inbox, memory_order_release);
    if (shard->room_count >= shard->bucket_count * 2 && shard_grow(shard) != 0 &&
        shard->bucket_count == 0)
        return -1;
    hub_room_t **slot = room_slot(shard, sub->room_id);
    if (*slot == NULL) {
        hub_room_t *room = calloc(1, sizeof(*room));
        if (room == NULL)
            return -1;
        room->room_id = sub->room_id;
        *slot = room;
        shard->room_count++;
    }
    hub_room_t *room = *slot;
    sub->prev = NULL;
    sub->next = room->subs;
    if (room->subs != NULL)
        room->subs->prev = sub;
    room->subs = sub;
    /* Counted before the caller reads any history, so that a message the
     * history read misses is one this subscriber is sure to be sent. */
    atomic_fetch_add_explicit(&shard->subscriber_count, 1, memory_order_seq_cst);
    return 0;
}

void hub_unsubscribe(hub_t *hub, hub_sub_t *sub) {
    hub_shard_t *shard = &hub->shards[sub->shard];
    hub_room_t **slot = room_slot(shard, sub->room_id);
    hub_room_t *room = *slot;
    if (room == NULL)
        return;
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        room->subs = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    sub->prev = sub->next = NULL;
    atomic_fetch_sub_explicit(&shard->subscriber_count, 1, memory_order_relaxed);
    if (room->subs == NULL) {
        *slot = room->next_in_bucket;
        free(room);
        shard->room_count--;
    }
}

/* -------------------------------------------------------------- fan-out */

static void deliver_to_shard(inbox_item_t *item) {
    hub_delivery_t *delivery = (hub_delivery_t *)item;
    hub_shard_t *shard = delivery->shard;
    hub_event_t *event = delivery->event;
    hub_room_t *room = shard->bucket_count ? *room_slot(shard, event->room_id) : NULL;
    for (hub_sub_t *sub = room ? room->subs : NULL; sub != NULL; sub = sub->next) {
        if (sub->user_id != event->exclude_user_id)
            sub->deliver(sub, event);
    }
    hub_event_unref(event);
    free(delivery);
}

void hub_publish(hub_t *hub, hub_event_t *event) {
    for (int s = 0; s < hub->shard_count; s++) {
        hub_shard_t *shard = &hub->shards[s];
        inbox_t *inbox = atomic_load_explicit(&shard->inbox, memory_order_acquire);
        if (inbox == NULL ||
            atomic_load_explicit(&shard->subscriber_count, memory_order_seq_cst) == 0)
            continue;
        hub_delivery_t *delivery = malloc(sizeof(*delivery));
        if (delivery == NULL)
            continue; /* the message is stored: subscribers recover it with since= */
        delivery->item.run = deliver_to_shard;
        delivery->shard = shard;
        delivery->event = hub_event_ref(event);
        inbox_post(inbox, &delivery->item);
    }
    hub_event_unref(event);
}

/* ------------------------------------------------------------- presence */

static presence_t **presence_slot(hub_t *hub, int64_t room_id, int64_t user_id) {
    presence_t **slot =
        &hub->presence_buckets[hash_ids(room_id, user_id, hub->presence_bucket_count)];
    while (*slot != NULL && ((*slot)->room_id != room_id || (*slot)->user_id != user_id))
        slot = &(*slot)->next_in_bucket;
    return slot;
}

static void presence_grow(hub_t *hub) {
    size_t count = hub->presence_bucket_count * 2;
    presence_t **buckets = calloc(count, sizeof(*buckets));
    if (buckets == NULL)
        return; /* longer chains, still correct */
    for (size_t b = 0; b < hub->presence_bucket_count; b++) {
        presence_t *entry = hub->presence_buckets[b];
        while (entry != NULL) {
            presence_t *next = entry->next_in_bucket;
            size_t i = hash_ids(entry->room_id, entry->user_id, count);
            entry->next_in_bucket = buckets[i];
            buckets[i] = entry;
            entry = next;
        }
    }
    free(hub->presence_buckets);
    hub->presence_buckets = buckets;
    hub->presence_bucket_count = count;
}

bool hub_presence_join(hub_t *hub, int64_t room_id, int64_t user_id) {
    bool first = false;
    pthread_mutex_lock(&hub->presence_lock);
    if (hub->presence_count >= hub->presence_bucket_count * 2)
        presence_grow(hub);
    presence_t **slot = presence_slot(hub, room_id, user_id);
    if (*slot == NULL) {
        presence_t *entry = calloc(1, sizeof(*entry));
        if (entry != NULL) {
            entry->room_id = room_id;
            entry->user_id = user_id;
            *slot = entry;
            hub->presence_count++;
        }
    }
    if (*slot != NULL)
        first = (*slot)->connections++ == 0;
    pthread_mutex_unlock(&hub->presence_lock);
    return first;
}

bool hub_presence_leave(hub_t *hub, int64_t room_id, int64_t user_id) {
    bool last = false;
    pthread_mutex_lock(&hub->presence_lock);
    presence_t **slot = presence_slot(hub, room_id, user_id);
    presence_t *entry = *slot;
    if (entry != NULL && --entry->connections <= 0) {
        *slot = entry->next_in_bucket;
        free(entry);
        hub->presence_count--;
        last = true;
    }
    pthread_mutex_unlock(&hub->presence_lock);
    return last;
}

bool hub_is_online(hub_t *hub, int64_t room_id, int64_t user_id) {
    pthread_mutex_lock(&hub->presence_lock);
    bool online = *presence_slot(hub, room_id, user_id) != NULL;
    pthread_mutex_unlock(&hub->presence_lock);
    return online;
}

bool hub_typing_allowed(hub_t *hub, int64_t room_id, int64_t user_id, int64_t now_ms,
                        int64_t min_interval_ms) {
    bool allowed = false;
    pthread_mutex_lock(&hub->presence_lock);
    presence_t *entry = *presence_slot(hub, room_id, user_id);
    if (entry != NULL &&
        (entry->last_typing_ms == 0 || now_ms - entry->last_typing_ms >= min_interval_ms)) {
        entry->last_typing_ms = now_ms;
        allowed = true;
    }
    pthread_mutex_unlock(&hub->presence_lock);
    return allowed;
}
