/* The hub: which WebSocket subscribers each room has, fan-out to them, and
 * who is online.
 *
 * Fan-out is sharded per I/O loop. A loop's shard holds that loop's
 * subscribers and is touched only by that loop's thread. hub_publish, from
 * any thread, posts one reference to the event into the inbox of every
 * shard that has subscribers; the shard then queues the event's frame (one
 * buffer, framed once) to each subscriber of the room. Events published from
 * one thread reach every shard in the order they were published: committed
 * messages are published by the store's writer thread in commit order, so
 * every subscriber sees a room's messages in increasing id order.
 *
 * Presence is process-wide, because one user may be connected through
 * several loops: a count of connections per (room, user) under a mutex. */
#ifndef CHATD_CHAT_HUB_H
#define CHATD_CHAT_HUB_H

#include "core/inbox.h"
#include "core/shared_buf.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct hub_s hub_t;

/* One published event, shared by every shard and subscriber that gets it. */
typedef struct {
    _Atomic uint32_t refs;
    int64_t room_id;
    int64_t message_id;      /* chat messages: their id (for replay); other events: 0 */
    int64_t exclude_user_id; /* not delivered to this user's connections (typing); 0: none */
    shared_buf_t *frame;     /* the complete WebSocket frame */
} hub_event_t;

/* Takes ownership of frame. NULL when memory runs out (frame is released). */
hub_event_t *hub_event_new(int64_t room_id, int64_t message_id, int64_t exclude_user_id,
                           shared_buf_t *frame);
hub_event_t *hub_event_ref(hub_event_t *event);
void hub_event_unref(hub_event_t *event);

/* A subscriber, embedded in its owner (a chat session). */
typedef struct hub_sub_s hub_sub_t;
struct hub_sub_s {
    hub_sub_t *prev;
    hub_sub_t *next;
    int64_t room_id;
    int64_t user_id;
    int shard;
    /* Called on the shard's loop for each event of the room; the callee
     * takes its own reference if it keeps the event. It must not
     * unsubscribe anyone synchronously. */
    void (*deliver)(hub_sub_t *sub, hub_event_t *event);
};

/* One shard per I/O loop. NULL when memory runs out. */
hub_t *hub_new(int shard_count);
/* After every loop has stopped. */
void hub_free(hub_t *hub);

/* On the loop of shard sub->shard (whose inbox is given): adds sub to its
 * room. Returns 0 or -1 (out of memory). */
int hub_subscribe(hub_t *hub, inbox_t *inbox, hub_sub_t *sub);
/* On the same loop: removes sub. */
void hub_unsubscribe(hub_t *hub, hub_sub_t *sub);

/* Any thread. Delivers event to every subscriber of event->room_id; takes
 * ownership of the caller's reference. */
void hub_publish(hub_t *hub, hub_event_t *event);

/* Presence, any thread. join returns true when this is the user's first
 * connection to the room, leave true when it was the last. */
bool hub_presence_join(hub_t *hub, int64_t room_id, int64_t user_id);
bool hub_presence_leave(hub_t *hub, int64_t room_id, int64_t user_id);
bool hub_is_online(hub_t *hub, int64_t room_id, int64_t user_id);
/* True (and remembers now_ms) when the user's last forwarded typing event
 * in the room is at least min_interval_ms old. */
bool hub_typing_allowed(hub_t *hub, int64_t room_id, int64_t user_id, int64_t now_ms,
                        int64_t min_interval_ms);

#endif
