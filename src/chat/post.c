#include "chat/post.h"

#include "core/timeutil.h"
#include "core/validate.h"

#include <string.h>

const char *chat_post_validate(const char *content, size_t content_len, const char *client_id,
                               size_t client_id_len) {
    const char *problem = validate_content(content, content_len);
    if (problem == NULL && client_id != NULL)
        problem = validate_client_id(client_id, client_id_len);
    return problem;
}

static void chat_post_stored(store_job_t *job) {
    chat_post_t *post = job->data;
    /* Committed and (unless a repeated client_id stored nothing new)
     * already published by the writer thread. */
    atomic_fetch_sub(&post->chat->messages_in_flight, 1);
    post->done(post);
}

int chat_post_submit(chat_t *chat, inbox_t *reply_to, chat_post_t *post, int64_t room_id,
                     int64_t sender_id, const char *content, size_t content_len,
                     const char *client_id) {
    post->retry_after_s = 0;
    if (chat->message_limit != NULL) {
        uint64_t wait_ns = 0;
        if (!ratelimit_take(chat->message_limit, &sender_id, sizeof(sender_id), time_monotonic_ns(),
                            &wait_ns)) {
            post->retry_after_s = ratelimit_retry_after_s(wait_ns);
            return CHAT_POST_RATE_LIMITED;
        }
    }
    memset(&post->job, 0, sizeof(post->job));
    post->job.op = STORE_MESSAGE_INSERT;
    post->job.auth_user_id = sender_id;
    post->job.in.room_id = room_id;
    post->job.in.content = content;
    post->job.in.content_len = content_len;
    post->job.in.client_id = client_id;
    post->job.reply_to = reply_to;
    post->job.done = chat_post_stored;
    post->job.data = post;
    post->chat = chat;
    if (atomic_fetch_add(&chat->messages_in_flight, 1) & CHAT_POSTING_CLOSED) {
        atomic_fetch_sub(&chat->messages_in_flight, 1);
        return -1; /* shutting down */
    }
    if (store_submit(chat->store, &post->job) != 0) {
        atomic_fetch_sub(&chat->messages_in_flight, 1);
        return -1;
    }
    return 0;
}
