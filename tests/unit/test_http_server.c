/* The HTTP server end to end, in process: a small route table served on a
 * free loopback port, spoken to over raw sockets. Every wait has a deadline
 * (poll with a timeout); nothing sleeps and hopes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "core/log.h"
#include "net/server.h"
#include "support/net_client.h"
#include "support/test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

/* ---- handlers ---------------------------------------------------------- */

static atomic_int async_started;
static atomic_int async_answered;

static void h_hello(http_request_t *req) {
    static const char body[] = "{\"hello\":\"world\"}";
    http_respond_json(req, 200, body, sizeof(body) - 1);
}

static void h_echo(http_request_t *req) {
    http_respond_json(req, 200, req->body, req->body_len);
}

static void h_item(http_request_t *req) {
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"id\":%lld}", (long long)req->params[0]);
    http_respond_json(req, 200, body, (size_t)n);
}

static void h_me(http_request_t *req) {
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"user_id\":%lld}", (long long)req->auth.user_id);
    http_respond_json(req, 200, body, (size_t)n);
}

static void h_query(http_request_t *req) {
    char value[32];
    char body[128];
    int len = http_request_query(req, "name", value, sizeof(value));
    int n =
        snprintf(body, sizeof(body), "{\"len\":%d,\"name\":\"%s\"}", len, len >= 0 ? value : "");
    http_respond_json(req, 200, body, (size_t)n);
}

static void h_retry(http_request_t *req) {
    assert_int_equal(http_add_header(req, "Retry-After", "3"), 0);
    assert_int_equal(http_add_header(req, "X-Bad", "a\r\nInjected: 1"), -1);
    http_respond_error(req, 429, "rate_limited", "slow \"down\"");
}

typedef struct {
    uv_timer_t timer;
    http_request_t *req;
    long ms;
} delayed_t;

static void on_delayed_closed(uv_handle_t *handle) {
    free(handle->data);
}

static void on_delay(uv_timer_t *timer) {
    delayed_t *d = timer->data;
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"async\":%ld}", d->ms);
    http_respond_json(d->req, 200, body, (size_t)n);
    atomic_fetch_add(&async_answered, 1);
    uv_close((uv_handle_t *)&d->timer, on_delayed_closed);
}

/* Answers after ?ms= milliseconds, from a timer on the request's loop. */
static void h_async(http_request_t *req) {
    char ms[16];
    delayed_t *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->req = req;
    d->ms = http_request_query(req, "ms", ms, sizeof(ms)) > 0 ? atol(ms) : 50;
    uv_timer_init(req->loop, &d->timer);
    d->timer.data = d;
    uv_timer_start(&d->timer, on_delay, (uint64_t)d->ms, 0);
    atomic_fetch_add(&async_started, 1);
}

typedef struct {
    inbox_item_t item;
    http_request_t *req;
} from_thread_t;

static void on_from_thread(inbox_item_t *item) {
    from_thread_t *job = (from_thread_t *)item;
    static const char body[] = "{\"from\":\"thread\"}";
    http_respond_json(job->req, 200, body, sizeof(body) - 1);
    free(job);
}

static void *post_back(void *arg) {
    from_thread_t *job = arg;
    inbox_post(job->req->inbox, &job->item);
    return NULL;
}

/* Answers through the loop's inbox from another thread, like a store job. */
static void h_thread(http_request_t *req) {
    from_thread_t *job = calloc(1, sizeof(*job));
    assert_non_null(job);
    job->req = req;
    job->item.run = on_from_thread;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, post_back, job), 0);
    pthread_detach(th);
}

static int fake_authenticate(http_request_t *req) {
    const char *auth = http_request_header(req, "Authorization");
    if (auth == NULL || strcmp(auth, "Bearer good") != 0) {
        http_respond_error(req, 401, "missing_token", "missing or invalid token");
        return -1;
    }
    req->auth.user_id = 7;
    return 0;
}

static const route_t test_routes[] = {
    {"GET", "/hello", h_hello, 0},    {"POST", "/echo", h_echo, ROUTE_JSON},
    {"GET", "/items/:id", h_item, 0}, {"DELETE", "/items/:id", h_item, 0},
    {"GET", "/me", h_me, ROUTE_AUTH}, {"GET", "/query", h_query, 0},
    {"GET", "/retry", h_retry, 0},    {"GET", "/async", h_async, 0},
    {"GET", "/thread", h_thread, 0},
};

/* ---- the server under test ---------------------------------------------- */

static test_server_t srv;

static void start_server(void) {
    server_options_t opts = {.cfg = &srv.cfg,
                             .routes = test_routes,
                             .route_count = sizeof(test_routes) / sizeof(test_routes[0]),
                             .authenticate = fake_authenticate};
    test_server_start(&srv, &opts);
}

/* SIGTERM, then server_run must return 0 within the deadline. */
static void stop_server(void) {
    test_server_stop(&srv);
}

static int setup(void **state) {
    (void)state;
    test_server_config(&srv.cfg);
    srv.cfg.max_header_bytes = 1024;
    srv.cfg.max_body_bytes = 1024;
    srv.cfg.header_timeout_ms = 2000;
    srv.cfg.idle_timeout_ms = 2000;
    return 0;
}

/* ---- a raw client -------------------------------------------------------- */

static client_t *client_open(void) {
    return client_open_port(srv.cfg.port);
}

static void request(client_t *c, const char *raw, response_t *r) {
    client_send_str(c, raw);
    if (client_read(c, r, 0) != 0)
        fail_msg("no response to %.40s", raw);
}

static int is_generated_id(const char *id) {
    return strlen(id) == 16 && strspn(id, "0123456789abcdef") == 16;
}

/* ---- tests --------------------------------------------------------------- */

static void test_keep_alive(void **state) {
    (void)state;
    log_configure(LOG_INFO, LOG_FORMAT_JSON); /* exercise the access log once */
    start_server();
    client_t *c = client_open();
    char ids[3][80];
    for (int i = 0; i < 3; i++) {
        response_t r;
        request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, "{\"hello\":\"world\"}");
        assert_header(&r, "Content-Type", "application/json; charset=utf-8");
        assert_no_header(&r, "Connection");
        assert_non_null(find_header(&r, "X-Request-Id", ids[i], sizeof(ids[i])));
        assert_true(is_generated_id(ids[i]));
    }
    assert_string_not_equal(ids[0], ids[1]);
    assert_string_not_equal(ids[1], ids[2]);
    client_close(c);
    stop_server();
    log_configure(LOG_WARN, LOG_FORMAT_JSON);
}

static void test_pipelining_in_order(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    client_send_str(c, "GET /async?ms=120 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /thread HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /async?ms=5 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /items/5 HTTP/1.1\r\nHost: x\r\n\r\n");
    const char *expected[] = {"{\"async\":120}", "{\"hello\":\"world\"}", "{\"from\":\"thread\"}",
                              "{\"async\":5}", "{\"id\":5}"};
    for (size_t i = 0; i < 5; i++) {
        response_t r;
        assert_int_equal(client_read(c, &r, 0), 0);
        assert_int_equal(r.status, 200);
        assert_string_equal(r.body, expected[i]);
    }
    /* A request split across writes still works after the pipeline. */
    client_send_str(c, "GET /hel");
    response_t r;
    request(c, "lo HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(r.body, "{\"hello\":\"world\"}");
    client_close(c);
    stop_server();
}

static void test_chunked_body(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Transfer-Encoding: chunked\r\n\r\n"
            "5\r\n{\"a\":\r\n3\r\n12}\r\n0\r\n\r\n",
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"a\":12}");
    /* A client that waits for 100 Continue before its body. */
    client_send_str(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       "Expect: 100-continue\r\nContent-Length: 7\r\n\r\n");
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 100);
    request(c, "{\"b\":1}", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"b\":1}");
    /* The connection stays usable after a chunked request. */
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    client_close(c);
    stop_server();
}

/* A request whose head (request line, headers, blank line) is size bytes. */
static char *head_of_size(size_t size) {
    static const char prefix[] = "GET /hello HTTP/1.1\r\nHost: x\r\nX-Pad: ";
    size_t pad = size - (sizeof(prefix) - 1) - 4;
    char *s = test_malloc(size + 1);
    memcpy(s, prefix, sizeof(prefix) - 1);
    memset(s + sizeof(prefix) - 1, 'p', pad);
    memcpy(s + size - 4, "\r\n\r\n", 5);
    assert_int_equal(strlen(s), size);
    return s;
}

static void test_header_limit(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    char *ok = head_of_size(srv.cfg.max_header_bytes);
    response_t r;
    request(c, ok, &r);
    assert_int_equal(r.status, 200);
    char *big = head_of_size(srv.cfg.max_header_bytes + 1);
    request(c, big, &r);
    assert_int_equal(r.status, 431);
    assert_string_equal(r.body, "{\"error\":\"request headers too large\","
                                "\"code\":\"headers_too_large\"}");
    assert_header(&r, "Connection", "close");
    char id[80];
    assert_non_null(find_header(&r, "X-Request-Id", id, sizeof(id)));
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    test_free(ok);
    test_free(big);
    stop_server();
}

static char *post_echo(size_t body_len) {
    char *s = test_malloc(body_len + 200);
    int n = snprintf(s, 200,
                     "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     body_len);
    memset(s + n, 'b', body_len);
    s[n + (int)body_len] = '\0';
    return s;
}

static void test_body_limit(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    char *ok = post_echo(srv.cfg.max_body_bytes);
    response_t r;
    request(c, ok, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, srv.cfg.max_body_bytes);

    char *big = post_echo(srv.cfg.max_body_bytes + 1);
    request(c, big, &r);
    assert_int_equal(r.status, 413);
    assert_string_equal(r.body, "{\"error\":\"request body too large\","
                                "\"code\":\"payload_too_large\"}");
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);

    /* Chunks that add up to one byte too many. */
    c = client_open();
    char chunked[256];
    snprintf(chunked, sizeof(chunked),
             "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Transfer-Encoding: chunked\r\n\r\n%zx\r\n",
             srv.cfg.max_body_bytes);
    client_send_str(c, chunked);
    char *body = test_malloc(srv.cfg.max_body_bytes);
    memset(body, 'c', srv.cfg.max_body_bytes);
    client_send(c, body, srv.cfg.max_body_bytes);
    request(c, "\r\n1\r\nX\r\n0\r\n\r\n", &r);
    assert_int_equal(r.status, 413);
    client_close(c);
    test_free(body);
    test_free(ok);
    test_free(big);
    stop_server();
}

static void test_error_shapes(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"error\":\"not found\",\"code\":\"not_found\"}");
    assert_header(&r, "Content-Type", "application/json; charset=utf-8");

    request(c, "GET /items/0 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 404);

    request(c, "PUT /items/3 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_header(&r, "Allow", "GET, DELETE");
    assert_string_equal(r.body,
                        "{\"error\":\"method not allowed\",\"code\":\"method_not_allowed\"}");

    request(c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
            "Content-Length: 2\r\n\r\n{}",
            &r);
    assert_int_equal(r.status, 415);
    assert_string_equal(r.body, "{\"error\":\"Content-Type must be application/json\","
                                "\"code\":\"unsupported_media_type\"}");
    request(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", &r);
    assert_int_equal(r.status, 415);
    request(c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/jsonx\r\n"
            "Content-Length: 2\r\n\r\n{}",
            &r);
    assert_int_equal(r.status, 415);
    request(c,
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: Application/JSON; charset=UTF-8\r\n"
            "Content-Length: 2\r\n\r\n{}",
            &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{}");
    /* No body and no type: through to the handler, which judges it. */
    request(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);

    /* Headers added by a handler; CR/LF refused; message escaped. */
    request(c, "GET /retry HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 429);
    assert_header(&r, "Retry-After", "3");
    assert_no_header(&r, "Injected");
    assert_string_equal(r.body, "{\"error\":\"slow \\\"down\\\"\",\"code\":\"rate_limited\"}");

    /* HEAD is GET without the body. */
    client_send_str(c, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(client_read(c, &r, 1), 0);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Content-Length", "17");
    request(c, "GET /query?x=1&name=a%20b+c&y HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(r.body, "{\"len\":5,\"name\":\"a b c\"}");
    request(c, "GET /query?x=1 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(r.body, "{\"len\":-1,\"name\":\"\"}");
    request(c, "GET /query?name=%zz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(r.body, "{\"len\":-2,\"name\":\"\"}");

    /* Absolute-form target. */
    request(c, "GET http://x/query?name=abs HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_string_equal(r.body, "{\"len\":3,\"name\":\"abs\"}");
    /* A header name and value in pieces. */
    client_send_str(c, "GET /hello HTTP/1.1\r\nX-Req");
    client_send_str(c, "uest-Id: ab");
    request(c, "c\r\n\r\n", &r);
    assert_header(&r, "X-Request-Id", "abc");

    /* Garbage: 400, then the connection closes. */
    request(c, "BLAH / HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 400);
    assert_string_equal(r.body, "{\"error\":\"malformed request\",\"code\":\"bad_request\"}");
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    stop_server();
}

static void test_auth_route(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /me HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(r.body,
                        "{\"error\":\"missing or invalid token\",\"code\":\"missing_token\"}");
    request(c, "GET /me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer good\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"user_id\":7}");
    client_close(c);
    stop_server();
}

static void test_request_id(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: abc-123._Z\r\n\r\n", &r);
    assert_header(&r, "X-Request-Id", "abc-123._Z");

    char id64[65];
    memset(id64, 'a', 64);
    id64[64] = '\0';
    char raw[256];
    snprintf(raw, sizeof(raw), "GET /hello HTTP/1.1\r\nHost: x\r\nx-request-id: %s\r\n\r\n", id64);
    request(c, raw, &r);
    assert_header(&r, "X-Request-Id", id64);

    const char *bad[] = {"bad id", "semi;colon", "",
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(raw, sizeof(raw), "GET /nope HTTP/1.1\r\nHost: x\r\nX-Request-Id: %s\r\n\r\n",
                 bad[i]);
        request(c, raw, &r);
        assert_int_equal(r.status, 404);
        char id[80];
        assert_non_null(find_header(&r, "X-Request-Id", id, sizeof(id)));
        if (!is_generated_id(id))
            fail_msg("\"%s\" echoed as %s", bad[i], id);
    }
    client_close(c);
    stop_server();
}

static void test_cors_any(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c,
            "OPTIONS /items/4 HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n"
            "Access-Control-Request-Method: DELETE\r\n\r\n",
            &r);
    assert_int_equal(r.status, 204);
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    assert_header(&r, "Access-Control-Allow-Methods", "GET, DELETE");
    assert_header(&r, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    assert_header(&r, "Access-Control-Max-Age", "600");
    assert_no_header(&r, "Content-Length");
    char id[80];
    assert_non_null(find_header(&r, "X-Request-Id", id, sizeof(id)));

    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    request(c, "GET /nope HTTP/1.1\r\nHost: x\r\nOrigin: https://a.example\r\n\r\n", &r);
    assert_header(&r, "Access-Control-Allow-Origin", "*");
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_no_header(&r, "Access-Control-Allow-Origin");
    /* OPTIONS that is not a preflight: an ordinary 405. */
    request(c, "OPTIONS /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    client_close(c);
    stop_server();
}

static void test_cors_list(void **state) {
    (void)state;
    srv.cfg.cors_any = 0;
    srv.cfg.cors_origin_count = 2;
    snprintf(srv.cfg.cors_origins[0], sizeof(srv.cfg.cors_origins[0]), "https://good.example");
    snprintf(srv.cfg.cors_origins[1], sizeof(srv.cfg.cors_origins[1]), "http://localhost:5173");
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c,
            "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://good.example\r\n"
            "Access-Control-Request-Method: POST\r\n\r\n",
            &r);
    assert_int_equal(r.status, 204);
    assert_header(&r, "Access-Control-Allow-Origin", "https://good.example");
    assert_header(&r, "Vary", "Origin");
    assert_header(&r, "Access-Control-Allow-Methods", "POST");

    request(c,
            "OPTIONS /echo HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n"
            "Access-Control-Request-Method: POST\r\n\r\n",
            &r);
    assert_int_equal(r.status, 204);
    assert_no_header(&r, "Access-Control-Allow-Origin");

    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: http://localhost:5173\r\n\r\n", &r);
    assert_header(&r, "Access-Control-Allow-Origin", "http://localhost:5173");
    assert_header(&r, "Access-Control-Expose-Headers", "X-Request-Id, Retry-After");
    assert_header(&r, "Vary", "Origin");
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_header(&r, "Vary", "Origin");
    assert_no_header(&r, "Access-Control-Allow-Origin");
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\nOrigin: https://evil.example\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_no_header(&r, "Access-Control-Allow-Origin");
    client_close(c);
    stop_server();
}

static void test_header_timeout(void **state) {
    (void)state;
    srv.cfg.header_timeout_ms = 200;
    start_server();
    client_t *c = client_open();
    client_send_str(c, "GET /hello HTTP/1.1\r\nHost: x\r\nX-Request-Id: slow-1\r\n");
    response_t r;
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 408);
    assert_header(&r, "X-Request-Id", "slow-1");
    assert_string_equal(r.body, "{\"error\":\"request took too long to arrive\","
                                "\"code\":\"request_timeout\"}");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);

    /* A connection that never sends a byte is closed too. */
    c = client_open();
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    stop_server();
}

static void test_idle_timeout(void **state) {
    (void)state;
    srv.cfg.idle_timeout_ms = 250;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    stop_server();
}

static void test_http10(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_header(&r, "Connection", "keep-alive");
    request(c, "GET /hello HTTP/1.0\r\n\r\n", &r);
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);

    c = client_open();
    request(c, "GET /hello HTTP/1.1\r\nConnection: close\r\n\r\n", &r);
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    stop_server();
}

static int wait_for(atomic_int *counter, int value) {
    int64_t deadline = now_ms() + WAIT_MS;
    while (atomic_load(counter) < value) {
        if (now_ms() > deadline)
            return 0;
        poll(NULL, 0, 5);
    }
    return 1;
}

static void test_client_gone_while_pending(void **state) {
    (void)state;
    start_server();
    int answered = atomic_load(&async_answered);
    int started = atomic_load(&async_started);
    client_t *c = client_open();
    client_send_str(c, "GET /async?ms=150 HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_for(&async_started, started + 1));
    client_close(c);
    assert_true(wait_for(&async_answered, answered + 1));
    /* Still serving. */
    c = client_open();
    response_t r;
    request(c, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    client_close(c);
    stop_server();
}

static void test_graceful_shutdown(void **state) {
    (void)state;
    start_server();
    int started = atomic_load(&async_started);
    client_t *idle = client_open();
    response_t r;
    request(idle, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    client_t *c = client_open();
    client_send_str(c, "GET /async?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_for(&async_started, started + 1));
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    /* The idle connection goes at once; the request under way is answered. */
    assert_true(client_sees_close(idle, WAIT_MS));
    assert_int_equal(client_read(c, &r, 0), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"async\":300}");
    assert_header(&r, "Connection", "close");
    assert_true(client_sees_close(c, WAIT_MS));
    test_server_join(&srv);
    client_close(c);
    client_close(idle);
}

static void test_shutdown_timeout(void **state) {
    (void)state;
    srv.cfg.shutdown_timeout_ms = 100;
    start_server();
    int started = atomic_load(&async_started);
    int answered = atomic_load(&async_answered);
    client_t *c = client_open();
    client_send_str(c, "GET /async?ms=400 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_true(wait_for(&async_started, started + 1));
    /* The request outlives the shutdown bound: its connection is closed, and
     * the late answer only frees it. */
    stop_server();
    assert_true(client_sees_close(c, WAIT_MS));
    assert_int_equal(atomic_load(&async_answered), answered + 1);
    client_close(c);
}

static void test_max_connections(void **state) {
    (void)state;
    srv.cfg.max_connections = 2;
    start_server();
    client_t *a = client_open();
    client_t *b = client_open();
    response_t r;
    request(a, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    request(b, "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    client_t *c = client_open();
    assert_true(client_sees_close(c, WAIT_MS));
    client_close(c);
    client_close(a);
    client_close(b);
    stop_server();
}

static void test_port_taken(void **state) {
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)srv.cfg.port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 4), 0);
    server_options_t opts = {.cfg = &srv.cfg, .routes = test_routes, .route_count = 1};
    server_t *s = NULL;
    char err[256] = "";
    assert_int_equal(server_start(&s, &opts, err, sizeof(err)), -1);
    assert_null(s);
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_non_null(strstr(err, "address already in use"));
    assert_null(strchr(err, '\n'));
    close(fd);

    /* An address this host does not have (a local bind error, no traffic):
     * the loops made so far are taken down again. */
    config_t other = srv.cfg;
    snprintf(other.host, sizeof(other.host), "192.0.2.1");
    opts.cfg = &other;
    assert_int_equal(server_start(&s, &opts, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot listen on 192.0.2.1:"));
    opts.cfg = &srv.cfg;

    /* Nor can a second server join a running one through SO_REUSEPORT. */
    start_server();
    assert_int_equal(server_start(&s, &opts, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "address already in use"));
    stop_server();
}

static void test_metrics(void **state) {
    (void)state;
    start_server();
    client_t *c = client_open();
    response_t r;
    request(c, "GET /items/9 HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    request(c, "GET /items/abc HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    buf_t out = BUF_INIT;
    assert_int_equal(server_metrics_render(&out), 0);
    assert_non_null(strstr(out.data, "# TYPE chatd_open_connections gauge\n"
                                     "chatd_open_connections 1\n"));
    assert_non_null(strstr(out.data, "# TYPE chatd_http_requests_total counter\n"));
    assert_non_null(strstr(
        out.data, "chatd_http_requests_total{route=\"/items/:id\",method=\"GET\",status=\"200\"}"));
    assert_non_null(strstr(
        out.data, "chatd_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}"));
    assert_non_null(strstr(out.data, "# TYPE chatd_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(out.data, "chatd_http_request_duration_seconds_bucket{le=\"0.0005\"}"));
    assert_non_null(strstr(out.data, "chatd_http_request_duration_seconds_bucket{le=\"+Inf\"}"));
    assert_non_null(strstr(out.data, "chatd_http_request_duration_seconds_sum "));
    assert_non_null(strstr(out.data, "chatd_http_request_duration_seconds_count "));
    buf_free(&out);
    client_close(c);
    stop_server();
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    log_configure(LOG_WARN, LOG_FORMAT_JSON);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_keep_alive, setup),
        cmocka_unit_test_setup(test_pipelining_in_order, setup),
        cmocka_unit_test_setup(test_chunked_body, setup),
        cmocka_unit_test_setup(test_header_limit, setup),
        cmocka_unit_test_setup(test_body_limit, setup),
        cmocka_unit_test_setup(test_error_shapes, setup),
        cmocka_unit_test_setup(test_auth_route, setup),
        cmocka_unit_test_setup(test_request_id, setup),
        cmocka_unit_test_setup(test_cors_any, setup),
        cmocka_unit_test_setup(test_cors_list, setup),
        cmocka_unit_test_setup(test_header_timeout, setup),
        cmocka_unit_test_setup(test_idle_timeout, setup),
        cmocka_unit_test_setup(test_http10, setup),
        cmocka_unit_test_setup(test_client_gone_while_pending, setup),
        cmocka_unit_test_setup(test_graceful_shutdown, setup),
        cmocka_unit_test_setup(test_shutdown_timeout, setup),
        cmocka_unit_test_setup(test_max_connections, setup),
        cmocka_unit_test_setup(test_port_taken, setup),
        cmocka_unit_test_setup(test_metrics, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
