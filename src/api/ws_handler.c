/* GET /ws/:room_id: checks the room (404 unknown, 403 private and not a
 * member; a public room's visitor becomes a member, as a first post does),
 * then hands the connection to a chat session. The token was checked by the
 * authentication hook (header or ?token=). */
#include "api/call.h"
#include "api/handlers.h"
#include "chat/session.h"

#include <string.h>

static void room_joined(store_job_t *job) {
    api_call_t *call = job->data;
    if (api_job_failed(call, "room"))
        return;
    http_request_t *req = call->req;
    chat_session_start(&call->app->chat, req, req->params[0], call->since, req->auth.expires_at);
    api_call_free(call);
}

void handle_websocket(http_request_t *req) {
    char text[32];
    int64_t since = -1;
    int len = http_request_query(req, "since", text, sizeof(text));
    if (len >= 0 && strcmp(text, "0") == 0)
        since = 0;
    else if (len != -1 && (len < 0 || parse_positive_id(text, &since) != 0)) {
        api_fail_validation(req, "since must be a message id");
        return;
    }
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    call->since = since;
    api_call_job(call, STORE_ROOM_JOIN, room_joined);
    call->job.in.room_id = req->params[0];
    api_call_submit(call);
}
