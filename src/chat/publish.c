/* Publishing committed changes: the store's writer thread calls
 * chat_on_commit after each COMMIT, in commit order and before any sender is
 * acknowledged, so a broadcast never precedes its commit and a room's
 * messages reach every subscriber in increasing id order. */
#include "chat/chat.h"

#include "chat/events.h"
#include "core/log.h"

static void publish(chat_t *chat, int64_t room_id, int64_t message_id, shared_buf_t *frame) {
    hub_event_t *event = frame != NULL ? hub_event_new(room_id, message_id, 0, frame) : NULL;
    if (event == NULL) {
        /* Stored all the same; subscribers can recover it with since=. */
        log_error("chat: out of memory publishing an event", LOG_I("room_id", room_id));
        return;
    }
    hub_publish(chat->hub, event);
}

static void chat_on_commit(void *ctx, const store_job_t *job) {
    chat_t *chat = ctx;
    if (atomic_load(&chat->publishing_stopped))
        return;
    if (job->op == STORE_MESSAGE_INSERT) {
        const store_message_t *msg = &job->out.message;
        publish(chat, msg->room_id, msg->id, event_message_in(&chat->commit_json, msg));
    } else if (job->op == STORE_READ_MARK) {
        publish(chat, job->in.room_id, 0,
                event_read(job->in.room_id, job->auth_user_id, job->out.read_message_id));
    }
}

/* Messages: the rate per second, a burst of twice that. Auth: the rate per
 * minute, a burst of as many. Returns 0, or -1 when out of memory. */
static int make_limits(chat_t *chat, const config_t *cfg) {
    uint32_t messages = (uint32_t)cfg->rate_limit_messages;
    uint32_t auth = (uint32_t)cfg->rate_limit_auth;
    if (messages > 0)
        chat->message_limit = ratelimit_new(messages, 1000, 2 * messages, CHAT_RATE_LIMIT_KEYS);
    if (auth > 0)
        chat->auth_limit = ratelimit_new(auth, 60000, auth, CHAT_RATE_LIMIT_KEYS);
    if ((messages > 0 && chat->message_limit == NULL) || (auth > 0 && chat->auth_limit == NULL))
        return -1;
    return 0;
}

int chat_init(chat_t *chat, const config_t *cfg, store_t *store, const unsigned char *jwt_secret,
              size_t jwt_secret_len) {
    chat->cfg = cfg;
    chat->store = store;
    chat->jwt_secret = jwt_secret;
    chat->jwt_secret_len = jwt_secret_len;
    atomic_init(&chat->messages_in_flight, 0);
    atomic_init(&chat->publishing_stopped, false);
    chat->message_limit = chat->auth_limit = NULL;
    chat->commit_json = (buf_t)BUF_INIT;
    chat->hub = hub_new(cfg->threads);
    if (chat->hub == NULL)
        return -1;
    if (make_limits(chat, cfg) != 0) {
        chat_destroy(chat);
        return -1;
    }
    store_set_commit_hook(store, chat_on_commit, chat);
    return 0;
}

void chat_stop_publishing(chat_t *chat) {
    atomic_store(&chat->publishing_stopped, true);
}

void chat_destroy(chat_t *chat) {
    hub_free(chat->hub);
    chat->hub = NULL;
    ratelimit_free(chat->message_limit);
    ratelimit_free(chat->auth_limit);
    chat->message_limit = chat->auth_limit = NULL;
    buf_free(&chat->commit_json);
}

int chat_shutdown_ready(chat_t *chat) {
    int64_t idle = 0;
    return atomic_compare_exchange_strong(&chat->messages_in_flight, &idle, CHAT_POSTING_CLOSED) ||
           idle == CHAT_POSTING_CLOSED;
}
