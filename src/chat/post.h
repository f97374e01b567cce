/* The one message path, shared by REST and WebSocket senders:
 * validate -> rate limit -> store (group commit) -> publish to the room ->
 * acknowledge.
 *
 * Nothing is published before it is committed, and the sender's
 * acknowledgement (201, or its own echo) comes only after both. */
#ifndef CHATD_CHAT_POST_H
#define CHATD_CHAT_POST_H

#include "chat/chat.h"
#include "store/store.h"

/* chat_post_submit's answer when the sender is over RATE_LIMIT_MESSAGES. */
#define CHAT_POST_RATE_LIMITED (-2)

typedef struct chat_post_s chat_post_t;
typedef void (*chat_post_cb)(chat_post_t *post);

struct chat_post_s {
    store_job_t job; /* job.out.message is the stored message when done */
    chat_post_cb done;
    void *data;
    chat_t *chat;
    int64_t retry_after_s; /* set when chat_post_submit returns CHAT_POST_RATE_LIMITED */
};

/* Checks content and client_id (client_id may be NULL). Returns NULL, or a
 * message naming the bad field. */
const char *chat_post_validate(const char *content, size_t content_len, const char *client_id,
                               size_t client_id_len);

/* Stores the message (the strings are caller-owned and must outlive the
 * post); the commit publishes it (chat_t's commit hook); then post->done
 * runs on reply_to's loop with post->job.out filled. Until then the message
 * counts in chat->messages_in_flight, which shutdown waits for. Returns 0;
 * CHAT_POST_RATE_LIMITED when the sender has no token left in its bucket
 * (RATE_LIMIT_MESSAGES, shared by every connection of the sender), with
 * post->retry_after_s the whole seconds to wait (at least 1); or -1 when
 * the store refused the job or the server is shutting down. Unless it
 * returns 0, nothing was stored, nothing will be published, and done is
 * never called. */
int chat_post_submit(chat_t *chat, inbox_t *reply_to, chat_post_t *post, int64_t room_id,
                     int64_t sender_id, const char *content, size_t content_len,
                     const char *client_id);

#endif
