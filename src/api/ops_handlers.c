/* GET /health, GET /ready, GET /metrics. */
#include "api/call.h"
#include "api/handlers.h"
#include "net/server.h"

#include <inttypes.h>

void handle_health(http_request_t *req) {
    static const char body[] = "{\"status\":\"ok\"}";
    http_respond_json(req, 200, body, sizeof(body) - 1);
}

static void ready_pinged(store_job_t *job) {
    api_call_t *call = job->data;
    if (job->out.status == STORE_OK) {
        static const char body[] = "{\"status\":\"ready\"}";
        http_respond_json(call->req, 200, body, sizeof(body) - 1);
    } else {
        http_respond_error(call->req, 503, "unavailable", "the database does not answer");
    }
    api_call_free(call);
}

void handle_ready(http_request_t *req) {
    api_call_t *call = api_call_new(req);
    if (call == NULL)
        return;
    api_call_job(call, STORE_PING, ready_pinged);
    api_call_submit(call);
}

static int render_store_metrics(buf_t *out, store_t *store) {
    store_stats_t stats;
    store_get_stats(store, &stats);
    int rc =
        buf_printf(out,
                   "# HELP chatd_messages_stored_total Chat messages committed to the database.\n"
                   "# TYPE chatd_messages_stored_total counter\n"
                   "chatd_messages_stored_total %" PRIu64 "\n"
                   "# HELP chatd_store_queue_depth Store jobs waiting or running.\n"
                   "# TYPE chatd_store_queue_depth gauge\n"
                   "chatd_store_queue_depth %" PRIu64 "\n"
                   "# HELP chatd_store_errors_total Store jobs that failed with a database error.\n"
                   "# TYPE chatd_store_errors_total counter\n"
                   "chatd_store_errors_total %" PRIu64 "\n"
                   "# HELP chatd_store_commit_duration_seconds Write transaction latency.\n"
                   "# TYPE chatd_store_commit_duration_seconds histogram\n",
                   stats.messages_stored, stats.queue_depth, stats.errors);
    for (int i = 0; i < STORE_COMMIT_BUCKET_COUNT; i++)
        rc |= buf_printf(out, "chatd_store_commit_duration_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                         STORE_COMMIT_BUCKETS[i], stats.commit_seconds_bucket[i]);
    rc |= buf_printf(out,
                     "chatd_store_commit_duration_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n"
                     "chatd_store_commit_duration_seconds_sum %.6f\n"
                     "chatd_store_commit_duration_seconds_count %" PRIu64 "\n",
                     stats.commits, stats.commit_seconds_sum, stats.commits);
    return rc == 0 ? 0 : -1;
}

static uint64_t refused(ratelimit_t *limit) {
    return limit != NULL ? ratelimit_refused(limit) : 0;
}

static int render_rate_limit_metrics(buf_t *out, chat_t *chat) {
    int rc = buf_printf(out,
                        "# HELP chatd_rate_limited_total Requests and messages refused by a rate "
                        "limit (429 or an error event), by kind.\n"
                        "# TYPE chatd_rate_limited_total counter\n"
                        "chatd_rate_limited_total{kind=\"auth\"} %" PRIu64 "\n"
                        "chatd_rate_limited_total{kind=\"message\"} %" PRIu64 "\n",
                        refused(chat->auth_limit), refused(chat->message_limit));
    return rc == 0 ? 0 : -1;
}

void handle_metrics(http_request_t *req) {
    app_t *app = req->app;
    buf_t out = BUF_INIT;
    if (server_metrics_render(&out) != 0 || render_store_metrics(&out, app->store) != 0 ||
        render_rate_limit_metrics(&out, &app->chat) != 0)
        http_respond_error(req, 500, "internal", "internal error");
    else
        http_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", out.data, out.len);
    buf_free(&out);
}
