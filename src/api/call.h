/* Helpers shared by the REST handlers: a per-request context for work that
 * goes to the store or the crypto pool, JSON body parsing with field errors,
 * and the mapping of store results to HTTP errors. */
#ifndef CHATD_API_CALL_H
#define CHATD_API_CALL_H

#include "api/app.h"
#include "auth/crypto_jobs.h"
#include "chat/post.h"
#include "core/buf.h"
#include "core/validate.h"
#include "net/http.h"
#include "store/store.h"

#include <jansson.h>
#include <stdbool.h>

/* One request's asynchronous work. Owns body (the parsed JSON, which the
 * job's input strings point into) and password (wiped when freed). */
typedef struct {
    http_request_t *req;
    app_t *app;
    json_t *body;
    store_job_t job;
    chat_post_t post;
    crypto_job_t crypto;
    char email[EMAIL_MAX_BYTES + 1];
    char *password;
    size_t password_len;
    int64_t since; /* GET /ws: the replay cursor, -1 for none */
} api_call_t;

/* Returns a new call bound to req, or NULL after answering 500. */
api_call_t *api_call_new(http_request_t *req);
/* The same for a request with a JSON object body, parsed into call->body;
 * NULL after answering 400 or 500. */
api_call_t *api_call_with_body(http_request_t *req);
void api_call_free(api_call_t *call);

/* Prepares call->job for op on behalf of the authenticated user. */
void api_call_job(api_call_t *call, store_op_t op, store_done_cb done);
/* Submits call->job. On refusal answers 503 and frees the call; returns -1. */
int api_call_submit(api_call_t *call);

/* Parses the body as a JSON object into *out (caller decrefs). Answers 400
 * invalid_json and returns -1 on failure. */
int api_parse_object(http_request_t *req, json_t **out);

/* Reads string field name of obj. Returns 0 (with *value and *len set, or
 * *value NULL when absent and optional), or answers 400 validation_failed
 * naming the field and returns -1. */
int api_string_field(http_request_t *req, json_t *obj, const char *name, bool required,
                     const char **value, size_t *len);
/* Reads a positive integer id field; same conventions. */
int api_id_field(http_request_t *req, json_t *obj, const char *name, int64_t *value);

void api_fail_validation(http_request_t *req, const char *message);

/* When call->job failed, answers its error (what names the thing for a 404),
 * frees the call and returns true. */
bool api_job_failed(api_call_t *call, const char *what);

/* Answers status with the JSON in out when render_rc is 0, 500 otherwise;
 * frees out either way. */
void api_respond_rendered(http_request_t *req, int status, buf_t *out, int render_rc);

/* Answers 429 rate_limited with Retry-After: retry_after_s. */
void api_respond_rate_limited(http_request_t *req, int64_t retry_after_s, const char *message);

/* RATE_LIMIT_AUTH for the routes under /auth/: takes a token from the bucket of
 * the client's address (req->remote_addr: behind a reverse proxy, the
 * proxy's). Returns 0, or answers 429 and returns -1. */
int api_limit_auth(http_request_t *req);

/* Answers the HTTP error for a failed store status (404, 403, 409, 401,
 * 503, 500); what names the thing for a 404 ("room"). */
void api_respond_store_error(http_request_t *req, store_status_t status, const char *what);

#endif
