/* Client WebSocket events: parsing and validation (chat/client_event.c),
 * with the error codes and messages the session sends back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/client_event.h"
#include "core/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses text through a buffer of exactly its length, so that reading past
 * it (it has no NUL) is caught under ASan. */
static int parse(const char *text, client_event_t *ev) {
    size_t len = strlen(text);
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    int rc = client_event_parse(copy, len, ev);
    free(copy);
    return rc;
}

static void expect_error(const char *text, const char *code, const char *message) {
    client_event_t ev;
    assert_int_equal(parse(text, &ev), -1);
    assert_string_equal(ev.error_code, code);
    assert_string_equal(ev.error_message, message);
    assert_null(ev.root);
}

static void test_message(void **state) {
    (void)state;
    client_event_t ev;
    assert_int_equal(
        parse("{\"type\":\"message\",\"content\":\"h\\u00e9llo\",\"client_id\":\"c-1\"}", &ev), 0);
    assert_int_equal(ev.type, CLIENT_EVENT_MESSAGE);
    assert_int_equal(ev.content_len, 6);
    assert_memory_equal(ev.content, "h\xc3\xa9llo", 6);
    assert_string_equal(ev.client_id, "c-1");
    assert_int_equal(ev.client_id_len, 3);
    assert_null(ev.error_code);
    client_event_free(&ev);
    assert_null(ev.root);

    /* client_id may be absent or null. */
    assert_int_equal(parse("{\"type\":\"message\",\"content\":\"x\"}", &ev), 0);
    assert_null(ev.client_id);
    assert_int_equal(ev.client_id_len, 0);
    client_event_free(&ev);
    assert_int_equal(parse("{\"content\":\"x\",\"client_id\":null,\"type\":\"message\"}", &ev), 0);
    assert_null(ev.client_id);
    client_event_free(&ev);
}

/* The strings stay valid for as long as a reference to root is held, which
 * is how a store job keeps them after the event is released. */
static void test_message_strings_outlive_event(void **state) {
    (void)state;
    client_event_t ev;
    assert_int_equal(parse("{\"type\":\"message\",\"content\":\"kept\"}", &ev), 0);
    json_t *held = json_incref(ev.root);
    const char *content = ev.content;
    client_event_free(&ev);
    assert_string_equal(content, "kept");
    json_decref(held);
}

static void test_message_invalid(void **state) {
    (void)state;
    expect_error("{\"type\":\"message\"}", "validation_failed", "content must be a string");
    expect_error("{\"type\":\"message\",\"content\":5}", "validation_failed",
                 "content must be a string");
    expect_error("{\"type\":\"message\",\"content\":\"x\",\"client_id\":7}", "validation_failed",
                 "client_id must be a string");
    /* The REST rules (chat_post_validate), with their messages. */
    expect_error("{\"type\":\"message\",\"content\":\"   \"}", "validation_failed",
                 validate_content("   ", 3));
    expect_error("{\"type\":\"message\",\"content\":\"x\",\"client_id\":\"\"}", "validation_failed",
                 validate_client_id("", 0));
    size_t n = CONTENT_MAX_CHARS + 1;
    char *text = malloc(n + 64);
    assert_non_null(text);
    int head = snprintf(text, n + 64, "{\"type\":\"message\",\"content\":\"");
    memset(text + head, 'a', n);
    strcpy(text + head + n, "\"}");
    char *content = text + head;
    client_event_t ev;
    assert_int_equal(parse(text, &ev), -1);
    assert_string_equal(ev.error_code, "validation_failed");
    assert_string_equal(ev.error_message, validate_content(content, n));
    free(text);
}

static void test_other_types(void **state) {
    (void)state;
    client_event_t ev;
    assert_int_equal(parse("{\"type\":\"typing\"}", &ev), 0);
    assert_int_equal(ev.type, CLIENT_EVENT_TYPING);
    client_event_free(&ev);
    assert_int_equal(parse("{\"type\":\"ping\",\"extra\":[1,2]}", &ev), 0);
    assert_int_equal(ev.type, CLIENT_EVENT_PING);
    client_event_free(&ev);
    assert_int_equal(parse("{\"type\":\"read\",\"message_id\":9007199254740993}", &ev), 0);
    assert_int_equal(ev.type, CLIENT_EVENT_READ);
    assert_true(ev.message_id == INT64_C(9007199254740993));
    client_event_free(&ev);
    assert_int_equal(parse("{\"type\":\"auth\",\"token\":\"a.b.c\"}", &ev), 0);
    assert_int_equal(ev.type, CLIENT_EVENT_AUTH);
    assert_string_equal(ev.token, "a.b.c");
    client_event_free(&ev);
}

static void test_other_types_invalid(void **state) {
    (void)state;
    const char *positive = "message_id must be a positive integer";
    expect_error("{\"type\":\"read\"}", "validation_failed", positive);
    expect_error("{\"type\":\"read\",\"message_id\":0}", "validation_failed", positive);
    expect_error("{\"type\":\"read\",\"message_id\":-3}", "validation_failed", positive);
    expect_error("{\"type\":\"read\",\"message_id\":1.5}", "validation_failed", positive);
    expect_error("{\"type\":\"read\",\"message_id\":\"4\"}", "validation_failed", positive);
    expect_error("{\"type\":\"auth\"}", "validation_failed", "token must be a string");
    expect_error("{\"type\":\"auth\",\"token\":null}", "validation_failed",
                 "token must be a string");
}

static void test_not_an_event(void **state) {
    (void)state;
    const char *not_object = "events must be JSON objects";
    expect_error("", "invalid_json", not_object);
    expect_error("{", "invalid_json", not_object);
    expect_error("[1,2]", "invalid_json", not_object);
    expect_error("\"message\"", "invalid_json", not_object);
    expect_error("{\"type\":\"ping\"} {}", "invalid_json", not_object);
    expect_error("{\"type\":\"ping\",\"type\":\"ping\"}", "invalid_json", not_object);
    expect_error("{\"type\":\"message\",\"content\":\"a\\u0000b\"}", "invalid_json", not_object);
    expect_error("{}", "validation_failed", "type must be a string");
    expect_error("{\"type\":1}", "validation_failed", "type must be a string");
    expect_error("{\"type\":\"Message\"}", "unknown_type", "unknown event type");
    expect_error("{\"type\":\"\"}", "unknown_type", "unknown event type");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_strings_outlive_event),
        cmocka_unit_test(test_message_invalid),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_other_types_invalid),
        cmocka_unit_test(test_not_an_event),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
