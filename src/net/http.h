/* What an HTTP handler sees: the parsed request and the ways to answer it.
 *
 * Contract: a handler must answer every request exactly once, with one of
 * the http_respond* calls, either before it returns or later on the same
 * loop thread (after a store or crypto job comes back). Until it answers, the
 * request stays valid even if the client disconnects; answering a request
 * whose client is gone just frees it. After the answer, req is invalid.
 *
 * The connection layer handles everything that is not the handler's job:
 * keep-alive and pipelining (requests are answered in order, one at a time),
 * header/body limits (431/413), timeouts, CORS (preflight and headers),
 * X-Request-Id, 404/405, the JSON content-type check (415), the access log
 * line and the HTTP metrics. */
#ifndef CHATD_NET_HTTP_H
#define CHATD_NET_HTTP_H

#include "core/inbox.h"

#include <stddef.h>
#include <stdint.h>

typedef struct http_request_s http_request_t;

typedef struct {
    char *name; /* as received */
    char *value;
} http_header_t;

#define HTTP_MAX_PATH_PARAMS 4

typedef struct {
    int64_t user_id;
    char email[256];
    char username[64];
    int64_t expires_at; /* the token's exp, seconds */
} http_auth_t;

struct http_request_s {
    int method;              /* enum http_method of http_parser.h */
    const char *method_name; /* "GET", ... */
    char *path;              /* raw path without the query, NUL-terminated */
    char *query;             /* raw query without '?', NULL when absent */
    http_header_t *headers;
    size_t header_count;
    char *body; /* NUL-terminated (body_len excludes the NUL); "" when none */
    size_t body_len;
    char request_id[65];  /* the client's X-Request-Id (1-64 of [A-Za-z0-9._-]) or generated */
    char remote_addr[46]; /* the peer's IP address as text; "" when unknown */

    const char *route; /* the matched pattern, e.g. "/rooms/:id"; for logs and metrics */
    int64_t params[HTTP_MAX_PATH_PARAMS]; /* numeric path parameters, in order */
    size_t param_count;
    unsigned route_flags; /* the matched route's ROUTE_* flags */
    http_auth_t auth;     /* filled for routes with ROUTE_AUTH */

    void *app;          /* the application context given to server_start */
    inbox_t *inbox;     /* the owning loop's inbox: reply_to for store jobs */
    void *loop;         /* the owning uv_loop_t, for crypto jobs */
    int loop_index;     /* 0 .. THREADS-1 */
    void *handler_data; /* free for the handler's own use */
};

/* Case-insensitive header lookup; NULL when absent. */
const char *http_request_header(const http_request_t *req, const char *name);

/* Copies the URL-decoded value of query parameter name into out (NUL-
 * terminated). Returns its length, -1 when absent, -2 when longer than
 * outlen - 1 or malformed. */
int http_request_query(const http_request_t *req, const char *name, char *out, size_t outlen);

/* Adds a response header for the coming answer (e.g. Retry-After). Both
 * strings are copied. Returns 0 or -1. */
int http_add_header(http_request_t *req, const char *name, const char *value);

/* Answers with body (copied) and the given content type. */
void http_respond(http_request_t *req, int status, const char *content_type, const char *body,
                  size_t len);
/* application/json; charset=utf-8 */
void http_respond_json(http_request_t *req, int status, const char *json, size_t len);
/* API.md's error shape: {"error": message, "code": code}. */
void http_respond_error(http_request_t *req, int status, const char *code, const char *message);
/* No body (204, or 200 with Content-Length: 0). */
void http_respond_empty(http_request_t *req, int status);

#endif
