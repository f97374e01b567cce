/* The route table: literal paths, numeric parameters, 405's Allow list. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net/router.h"

#include <string.h>

static void handler_a(http_request_t *req) {
    (void)req;
}
static void handler_b(http_request_t *req) {
    (void)req;
}

static const route_t routes[] = {
    {"GET", "/", handler_a, 0},
    {"GET", "/health", handler_a, 0},
    {"GET", "/rooms", handler_a, ROUTE_AUTH},
    {"POST", "/rooms", handler_b, ROUTE_AUTH | ROUTE_JSON},
    {"GET", "/rooms/:id/messages", handler_a, ROUTE_AUTH},
    {"POST", "/rooms/:id/messages", handler_b, ROUTE_AUTH | ROUTE_JSON},
    {"PATCH", "/rooms/:id/messages/:mid", handler_a, ROUTE_AUTH | ROUTE_JSON},
    {"DELETE", "/rooms/:id/messages/:mid", handler_b, ROUTE_AUTH},
    {"GET", "/rooms/:id", handler_a, ROUTE_AUTH},
    {"GET", "/rooms/search", handler_b, 0}, /* shadowed by nothing: not an id */
};
#define NROUTES (sizeof(routes) / sizeof(routes[0]))

typedef struct {
    route_match_t m;
    const route_t *route;
    int64_t params[HTTP_MAX_PATH_PARAMS];
    size_t nparams;
    char allow[64];
} result_t;

static result_t match(const char *method, const char *path) {
    result_t r;
    memset(&r, 0, sizeof(r));
    r.m = router_match(routes, NROUTES, method, path, &r.route, r.params, &r.nparams, r.allow,
                       sizeof(r.allow));
    return r;
}

static void test_literal_routes(void **state) {
    (void)state;
    result_t r = match("GET", "/health");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[1]);
    assert_int_equal(r.nparams, 0);

    r = match("GET", "/");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[0]);

    r = match("POST", "/rooms");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[3]);

    assert_int_equal(match("GET", "/healthz").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/HEALTH").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "health").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "//health").m, ROUTE_NO_PATH);

    r = match("GET", "/rooms/search");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[9]);
}

static void test_params(void **state) {
    (void)state;
    result_t r = match("GET", "/rooms/42/messages");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[4]);
    assert_int_equal(r.nparams, 1);
    assert_int_equal(r.params[0], 42);

    r = match("PATCH", "/rooms/7/messages/9223372036854775807");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_int_equal(r.nparams, 2);
    assert_int_equal(r.params[0], 7);
    assert_true(r.params[1] == INT64_MAX);

    r = match("GET", "/rooms/1");
    assert_int_equal(r.m, ROUTE_MATCHED);
    assert_ptr_equal(r.route, &routes[8]);
    assert_int_equal(r.params[0], 1);

    const char *bad[] = {"/rooms/0",
                         "/rooms/-1",
                         "/rooms/+1",
                         "/rooms/abc",
                         "/rooms/12a",
                         "/rooms/007",
                         "/rooms/9223372036854775808", /* 2^63 */
                         "/rooms/18446744073709551616",
                         "/rooms/99999999999999999999",
                         "/rooms/1.5",
                         "/rooms/%31",
                         "/rooms//messages",
                         "/rooms/0/messages",
                         "/rooms/1/messages/0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = match(strstr(bad[i], "/messages/") ? "PATCH" : "GET", bad[i]);
        if (r.m != ROUTE_NO_PATH)
            fail_msg("%s matched", bad[i]);
    }
}

static void test_trailing_slash(void **state) {
    (void)state;
    /* "/rooms/" is not "/rooms": a trailing slash is a path of its own. */
    assert_int_equal(match("GET", "/rooms/").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/health/").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/rooms/1/").m, ROUTE_NO_PATH);
    assert_int_equal(match("GET", "/rooms/1/messages/").m, ROUTE_NO_PATH);
}

static void test_wrong_method_lists_allow(void **state) {
    (void)state;
    result_t r = match("DELETE", "/rooms");
    assert_int_equal(r.m, ROUTE_WRONG_METHOD);
    assert_string_equal(r.allow, "GET, POST");

    r = match("PUT", "/rooms/3/messages/4");
    assert_int_equal(r.m, ROUTE_WRONG_METHOD);
    assert_string_equal(r.allow, "PATCH, DELETE");

    r = match("POST", "/health");
    assert_int_equal(r.m, ROUTE_WRONG_METHOD);
    assert_string_equal(r.allow, "GET");

    /* A bad id is no path at all, whatever the method. */
    assert_int_equal(match("PUT", "/rooms/0/messages/4").m, ROUTE_NO_PATH);

    /* A small Allow buffer gets whole entries only. */
    const route_t *route;
    int64_t params[HTTP_MAX_PATH_PARAMS];
    size_t n;
    char small[6];
    assert_int_equal(
        router_match(routes, NROUTES, "PUT", "/rooms", &route, params, &n, small, sizeof(small)),
        ROUTE_WRONG_METHOD);
    assert_string_equal(small, "GET");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_literal_routes),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_trailing_slash),
        cmocka_unit_test(test_wrong_method_lists_allow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
