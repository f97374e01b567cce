#include "chat/session.h"

#include "auth/token.h"
#include "chat/client_event.h"
#include "chat/events.h"
#include "chat/message_json.h"
#include "chat/post.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "net/ws.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct chat_session_s {
    hub_sub_t sub; /* first: the hub hands it back to deliver */
    chat_t *chat;
    ws_conn_t *ws; /* NULL once the connection is gone */
    inbox_t *inbox;
    int64_t token_expires_at; /* seconds */
    int pending_jobs;         /* store jobs not yet back: the session outlives its socket */
    bool subscribed;          /* in the hub */
    bool present;             /* counted in the room's presence */
    /* Replay (since=): live events are held until the history is sent. */
    bool replaying;
    /* The last message id the replay sent: the reader may have read a
     * message before the hub brought it here, so the live copy that follows
     * is dropped. */
    int64_t replayed_up_to;
    hub_event_t **held;
    size_t held_count;
    size_t held_cap;
    store_job_t *replay_job;
    char username[64];
};

/* A message or read marker from the client on its way through the store. */
typedef struct {
    union { /* one job each: a message or a read marker */
        chat_post_t post;
        store_job_t read_job;
    };
    chat_session_t *session;
    json_t *root; /* owns the strings the job points into */
} session_job_t;

static void session_free(chat_session_t *s) {
    for (size_t i = 0; i < s->held_count; i++)
        hub_event_unref(s->held[i]);
    free(s->held);
    free(s);
}

/* The session is freed when its socket is gone and no job will come back. */
static void session_release_job(chat_session_t *s) {
    if (--s->pending_jobs > 0)
        return;
    if (s->ws == NULL)
        session_free(s);
    else
        ws_conn_set_flush_first(s->ws, 0);
}

static void send_frame(chat_session_t *s, shared_buf_t *frame) {
    if (frame == NULL) {
        ws_conn_close(s->ws, 1011, "out of memory");
        return;
    }
    ws_conn_send_frame(s->ws, frame);
    shared_buf_unref(frame);
}

static void send_error(chat_session_t *s, const char *code, const char *message) {
    if (s->ws != NULL)
        send_frame(s, event_error(code, message));
}

/* ------------------------------------------------------------ fan-out in */

static void hold_event(chat_session_t *s, hub_event_t *event) {
    if (s->held_count == s->held_cap) {
        size_t cap = s->held_cap ? s->held_cap * 2 : 16;
        hub_event_t **held = realloc(s->held, cap * sizeof(*held));
        if (held == NULL) {
            ws_conn_close(s->ws, 1011, "out of memory");
            return;
        }
        s->held = held;
        s->held_cap = cap;
    }
    s->held[s->held_count++] = hub_event_ref(event);
}

static void session_deliver(hub_sub_t *sub, hub_event_t *event) {
    chat_session_t *s = (chat_session_t *)sub;
    if (s->ws == NULL)
        return;
    if (s->replaying)
        hold_event(s, event);
    else if (event->message_id == 0 || event->message_id > s->replayed_up_to)
        ws_conn_send_frame(s->ws, event->frame);
}

/* ------------------------------------------------------------- replay */

static void send_replay(chat_session_t *s, store_job_t *job) {
    size_t count = job->out.message_count;
    int64_t last_id = 0;
    if (count > CHAT_REPLAY_MAX) {
        /* Too much to replay: the client pages the history over REST. */
        send_frame(s, event_recovery(false, job->in.after_id));
    } else {
        for (size_t i = 0; i < count && s->ws != NULL; i++) {
            send_frame(s, event_message(&job->out.messages[i]));
            last_id = job->out.messages[i].id;
        }
        if (s->ws != NULL)
            send_frame(s, event_recovery(true, (int64_t)count));
    }
    /* Live events that arrived meanwhile, minus what the replay already had
     * (and, through session_deliver, minus what it had that arrives later). */
    s->replayed_up_to = last_id;
    s->replaying = false;
    for (size_t i = 0; i < s->held_count; i++) {
        hub_event_t *event = s->held[i];
        session_deliver(&s->sub, event);
        hub_event_unref(event);
    }
    s->held_count = 0;
    free(s->held);
    s->held = NULL;
    s->held_cap = 0;
}

static void replay_read(store_job_t *job) {
    chat_session_t *s = job->data;
    if (s->ws != NULL) {
        if (job->out.status == STORE_OK) {
            send_replay(s, job);
        } else {
            ws_conn_close(s->ws, 1011, "could not read the history");
        }
    }
    store_job_cleanup(job);
    free(job);
    s->replay_job = NULL;
    session_release_job(s);
}

static int start_replay(chat_session_t *s, int64_t since) {
    store_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return -1;
    job->op = STORE_MESSAGES_PAGE;
    job->auth_user_id = s->sub.user_id;
    job->in.room_id = s->sub.room_id;
    job->in.after_id = since;
    job->in.from_start = since == 0;
    job->in.limit = CHAT_REPLAY_MAX + 1; /* one more tells "too many" */
    job->reply_to = s->inbox;
    job->done = replay_read;
    job->data = s;
    if (store_submit(s->chat->store, job) != 0) {
        free(job);
        return -1;
    }
    s->replay_job = job;
    s->pending_jobs++;
    return 0;
}

/* ------------------------------------------------------- client events */

static void session_job_done(session_job_t *sj) {
    chat_session_t *s = sj->session;
    json_decref(sj->root);
    free(sj);
    session_release_job(s);
}

static const char *store_error_code(store_status_t status) {
    switch (status) {
    case STORE_NOT_FOUND:
        return "not_found";
    case STORE_FORBIDDEN:
        return "forbidden";
    case STORE_NO_USER:
        return "invalid_token";
    case STORE_UNAVAILABLE:
        return "unavailable";
    default:
        return "internal";
    }
}

static void message_stored(chat_post_t *post) {
    session_job_t *sj = post->data;
    chat_session_t *s = sj->session;
    store_job_t *job = &post->job;
    if (s->ws != NULL) {
        if (job->out.status != STORE_OK)
            send_error(s, store_error_code(job->out.status), "the message was not stored");
        else if (job->out.duplicate)
            /* A retry: the stored message, to this connection only. */
            send_frame(s, event_message(&job->out.message));
        /* Otherwise the hub brings the sender its own copy, in order. */
    }
    store_job_cleanup(job);
    session_job_done(sj);
}

static session_job_t *session_job_new(chat_session_t *s, json_t *root) {
    session_job_t *sj = calloc(1, sizeof(*sj));
    if (sj == NULL) {
        send_error(s, "internal", "out of memory");
        return NULL;
    }
    sj->session = s;
    sj->root = json_incref(root);
    /* The client waits for this answer (for a message: its own copy). */
    if (s->pending_jobs++ == 0 && s->ws != NULL)
        ws_conn_set_flush_first(s->ws, 1);
    return sj;
}

/* ev is validated (client_event.c). */
static void on_client_message(chat_session_t *s, const client_event_t *ev) {
    session_job_t *sj = session_job_new(s, ev->root);
    if (sj == NULL)
        return;
    sj->post.done = message_stored;
    sj->post.data = sj;
    int rc = chat_post_submit(s->chat, s->inbox, &sj->post, s->sub.room_id, s->sub.user_id,
                              ev->content, ev->content_len, ev->client_id);
    if (rc == CHAT_POST_RATE_LIMITED) {
        /* Not stored, not broadcast; the connection stays open. */
        char message[96];
        snprintf(message, sizeof(message), "too many messages: retry in %lld s",
                 (long long)sj->post.retry_after_s);
        send_error(s, "rate_limited", message);
        session_job_done(sj);
    } else if (rc != 0) {
        send_error(s, "unavailable", "the database is busy, try again");
        session_job_done(sj);
    }
}

static void read_marked(store_job_t *job) {
    session_job_t *sj = job->data;
    chat_session_t *s = sj->session;
    /* A marker that moved is published by the commit hook to the whole
     * room, this connection included. */
    if (s->ws != NULL && job->out.status != STORE_OK)
        send_error(s, store_error_code(job->out.status), "the read marker was not stored");
    store_job_cleanup(job);
    session_job_done(sj);
}

static void on_client_read(chat_session_t *s, const client_event_t *ev) {
    session_job_t *sj = session_job_new(s, ev->root);
    if (sj == NULL)
        return;
    store_job_t *job = &sj->read_job;
    job->op = STORE_READ_MARK;
    job->auth_user_id = s->sub.user_id;
    job->in.room_id = s->sub.room_id;
    job->in.message_id = ev->message_id;
    job->reply_to = s->inbox;
    job->done = read_marked;
    job->data = sj;
    if (store_submit(s->chat->store, job) != 0) {
        send_error(s, "unavailable", "the database is busy, try again");
        session_job_done(sj);
    }
}

static void on_client_typing(chat_session_t *s) {
    int64_t now = time_wall_ms();
    if (!hub_typing_allowed(s->chat->hub, s->sub.room_id, s->sub.user_id, now,
                            CHAT_TYPING_INTERVAL_MS))
        return;
    shared_buf_t *frame = event_typing(s->sub.room_id, s->sub.user_id, s->username);
    hub_event_t *event =
        frame != NULL ? hub_event_new(s->sub.room_id, 0, s->sub.user_id, frame) : NULL;
    if (event != NULL)
        hub_publish(s->chat->hub, event);
}

static void on_client_auth(chat_session_t *s, const client_event_t *ev) {
    token_claims_t claims;
    token_status_t status = token_verify(s->chat->jwt_secret, s->chat->jwt_secret_len, ev->token,
                                         time_wall_ms() / 1000, &claims);
    if (status == TOKEN_EXPIRED) {
        send_error(s, "token_expired", "the new token has expired");
    } else if (status != TOKEN_OK || claims.user_id != s->sub.user_id) {
        send_error(s, "invalid_token", "the token is invalid or belongs to another user");
    } else {
        s->token_expires_at = claims.expires_at;
        static const char ok[] = "{\"type\":\"auth\",\"ok\":true}";
        ws_conn_send_text(s->ws, ok, sizeof(ok) - 1);
    }
}

static void session_on_text(ws_conn_t *ws, char *data, size_t len) {
    chat_session_t *s = ws_conn_user(ws);
    if (time_wall_ms() / 1000 >= s->token_expires_at) {
        ws_conn_close(ws, 1008, "token expired");
        return;
    }
    client_event_t ev;
    if (client_event_parse(data, len, &ev) != 0) {
        send_error(s, ev.error_code, ev.error_message);
        return;
    }
    switch (ev.type) {
    case CLIENT_EVENT_MESSAGE:
        on_client_message(s, &ev);
        break;
    case CLIENT_EVENT_TYPING:
        on_client_typing(s);
        break;
    case CLIENT_EVENT_READ:
        on_client_read(s, &ev);
        break;
    case CLIENT_EVENT_PING:
        send_frame(s, event_pong());
        break;
    case CLIENT_EVENT_AUTH:
        on_client_auth(s, &ev);
        break;
    }
    client_event_free(&ev);
}

/* ------------------------------------------------------------ lifecycle */

static void publish_presence(chat_session_t *s, bool online) {
    shared_buf_t *frame = event_presence(s->sub.room_id, s->sub.user_id, s->username, online);
    hub_event_t *event = frame != NULL ? hub_event_new(s->sub.room_id, 0, 0, frame) : NULL;
    if (event != NULL)
        hub_publish(s->chat->hub, event);
}

static void session_on_closed(ws_conn_t *ws) {
    chat_session_t *s = ws_conn_user(ws);
    if (s->subscribed)
        hub_unsubscribe(s->chat->hub, &s->sub);
    if (s->present && hub_presence_leave(s->chat->hub, s->sub.room_id, s->sub.user_id))
        publish_presence(s, false);
    s->ws = NULL;
    if (s->pending_jobs == 0)
        session_free(s);
}

static const ws_handlers_t session_handlers = {session_on_text, session_on_closed};

void chat_session_start(chat_t *chat, http_request_t *req, int64_t room_id, int64_t since,
                        int64_t token_expires_at) {
    chat_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        http_respond_error(req, 500, "internal", "internal error");
        return;
    }
    s->chat = chat;
    s->inbox = req->inbox;
    s->token_expires_at = token_expires_at;
    s->sub.room_id = room_id;
    s->sub.user_id = req->auth.user_id;
    s->sub.shard = req->loop_index;
    s->sub.deliver = session_deliver;
    snprintf(s->username, sizeof(s->username), "%s", req->auth.username);
    s->replaying = since >= 0;

    ws_conn_t *ws = http_upgrade_websocket(req, &session_handlers, s);
    if (ws == NULL) {
        free(s);
        return;
    }
    s->ws = ws;
    /* Subscribe before reading the history: whatever the read misses, the
     * hub delivers (and the replay drops what it already sent). */
    if (hub_subscribe(chat->hub, s->inbox, &s->sub) != 0) {
        ws_conn_close(ws, 1011, "out of memory");
        return;
    }
    s->subscribed = true;
    s->present = true;
    if (hub_presence_join(chat->hub, room_id, s->sub.user_id))
        publish_presence(s, true);
    if (s->replaying && start_replay(s, since) != 0)
        ws_conn_close(ws, 1013, "the database is busy, reconnect later");
}
