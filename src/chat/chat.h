/* The chat service: what every part of the chat layer shares (the store,
 * the hub, the token secret, the settings), and the publishing of committed
 * changes to the hub. One per process, created by main before the server
 * starts; read-only afterwards except for the atomic counter. */
#ifndef CHATD_CHAT_CHAT_H
#define CHATD_CHAT_CHAT_H

#include "chat/hub.h"
#include "core/buf.h"
#include "core/config.h"
#include "core/ratelimit.h"
#include "store/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* At most one typing event per user per room per this many ms is forwarded. */
#define CHAT_TYPING_INTERVAL_MS 2000
/* A `since=` reconnect replays at most this many messages. */
#define CHAT_REPLAY_MAX     1000
#define CHAT_POSTING_CLOSED (INT64_C(1) << 40)
/* Most senders, and most client addresses, whose token buckets are kept at
 * once (core/ratelimit.h says what happens beyond). */
#define CHAT_RATE_LIMIT_KEYS 65536

typedef struct {
    const config_t *cfg;
    store_t *store;
    hub_t *hub;
    const unsigned char *jwt_secret; /* owned by the application */
    size_t jwt_secret_len;
    /* Messages accepted (REST or WebSocket) and not yet stored and
     * published: shutdown waits for them before it says goodbye (1001).
     * CHAT_POSTING_CLOSED is or-ed in once shutdown has seen none left:
     * from then on new messages are refused, so none can slip past the
     * goodbye. */
    _Atomic int64_t messages_in_flight;
    /* Set once the loops are gone: commits no longer publish. */
    _Atomic bool publishing_stopped;
    /* Token buckets, NULL when the setting is 0: RATE_LIMIT_MESSAGES per
     * sender (chat_post_submit), RATE_LIMIT_AUTH per client address (taken
     * by the API for /auth/ routes). Counted on this node only. */
    ratelimit_t *message_limit;
    ratelimit_t *auth_limit;
    /* The store's writer thread renders every committed message here; kept
     * from one commit to the next so that rendering allocates nothing. */
    buf_t commit_json;
} chat_t;

/* Makes the hub (one shard per I/O thread) and installs the store's commit
 * hook, so that every committed message and read marker is published.
 * Returns 0 or -1. */
int chat_init(chat_t *chat, const config_t *cfg, store_t *store, const unsigned char *jwt_secret,
              size_t jwt_secret_len);
/* After the loops have stopped: later commits are no longer published. */
void chat_stop_publishing(chat_t *chat);
void chat_destroy(chat_t *chat);

/* For server_options_t.shutdown_ready: true when no accepted message is
 * still on its way to being stored and published. The first true answer
 * also closes posting: later messages are refused (503 / an error event). */
int chat_shutdown_ready(chat_t *chat);

#endif
