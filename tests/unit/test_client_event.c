/* Client WebSocket events: parsing and validation (chat/client_event.c),
 * with the error codes and messages the session sends back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/client_event.h"
#include "chat/post.h"
#include "core/validate.h"

#include <stdbool.h>
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

/* ------------------------------------------------ the message fast path */

/* What the events used to be parsed with (jansson alone): the fast path for
 * message events must agree with it on every input. Returns 0 with the
 * strings copied out, or -1 with the error. */
typedef struct {
    bool skip;
    int rc;
    client_event_type_t type;
    char content[8192];
    size_t content_len;
    bool has_client_id;
    char client_id[256];
    size_t client_id_len;
    const char *error_code;
    const char *error_message;
} outcome_t;

static void reference(const char *data, size_t len, outcome_t *out) {
    memset(out, 0, sizeof(*out));
    out->rc = -1;
    json_error_t error;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &error);
    const char *type =
        json_is_object(root) ? json_string_value(json_object_get(root, "type")) : NULL;
    if (root == NULL || !json_is_object(root)) {
        out->error_code = "invalid_json";
    } else if (type == NULL) {
        out->error_code = "validation_failed";
    } else if (strcmp(type, "message") != 0) {
        /* Other types never take the fast path. */
        out->skip = true;
    } else {
        json_t *content = json_object_get(root, "content");
        json_t *client_id = json_object_get(root, "client_id");
        out->error_code = "validation_failed";
        const char *cid = json_string_value(client_id);
        size_t cid_len = cid != NULL ? json_string_length(client_id) : 0;
        if (json_is_string(content) &&
            (client_id == NULL || json_is_null(client_id) || json_is_string(client_id)) &&
            chat_post_validate(json_string_value(content), json_string_length(content), cid,
                               cid_len) == NULL) {
            out->rc = 0;
            out->type = CLIENT_EVENT_MESSAGE;
            out->error_code = NULL;
            out->content_len = json_string_length(content);
            memcpy(out->content, json_string_value(content), out->content_len);
            out->has_client_id = cid != NULL;
            out->client_id_len = cid_len;
            memcpy(out->client_id, cid != NULL ? cid : "", cid_len);
        }
    }
    json_decref(root);
}

static void parsed(const char *data, size_t len, outcome_t *out) {
    memset(out, 0, sizeof(*out));
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    client_event_t ev;
    out->rc = client_event_parse(copy, len, &ev);
    free(copy);
    if (out->rc != 0) {
        out->error_code = ev.error_code;
        assert_null(ev.root);
        return;
    }
    out->type = ev.type;
    if (ev.type == CLIENT_EVENT_MESSAGE) {
        assert_true(ev.content_len < sizeof(out->content));
        out->content_len = ev.content_len;
        memcpy(out->content, ev.content, ev.content_len);
        assert_int_equal(ev.content[ev.content_len], '\0');
        out->has_client_id = ev.client_id != NULL;
        if (ev.client_id != NULL) {
            out->client_id_len = ev.client_id_len;
            memcpy(out->client_id, ev.client_id, ev.client_id_len);
            assert_int_equal(ev.client_id[ev.client_id_len], '\0');
        }
    }
    client_event_free(&ev);
}

static void check_same(const char *data, size_t len) {
    outcome_t want, got;
    reference(data, len, &want);
    if (want.skip)
        return;
    parsed(data, len, &got);
    if (want.rc != got.rc || want.type != got.type ||
        (want.error_code != NULL && strcmp(want.error_code, got.error_code) != 0) ||
        want.content_len != got.content_len ||
        memcmp(want.content, got.content, want.content_len) != 0 ||
        want.has_client_id != got.has_client_id || want.client_id_len != got.client_id_len ||
        memcmp(want.client_id, got.client_id, want.client_id_len) != 0)
        fail_msg("parsed differently from jansson: %.*s", (int)len, data);
}

static const char *const SAMPLES[] = {
    "{\"type\":\"message\",\"content\":\"hello\"}",
    " {\n\t\"content\" : \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\" ,\r\"type\":\"message\"} \n",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":\"c-1\"}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":null}",
    "{\"type\":\"message\",\"content\":\"h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9f\x98\x80\"}",
    "{\"type\":\"message\",\"content\":\"\\u00e9\\ud83d\\ude00\"}",
    "{\"type\":\"message\",\"content\":\"bad \xc3\"}",
    "{\"type\":\"message\",\"content\":\"overlong \xc0\xaf\"}",
    "{\"type\":\"message\",\"content\":\"surrogate \xed\xa0\x80\"}",
    "{\"type\":\"message\",\"content\":\"\\ud800\"}",
    "{\"type\":\"message\",\"content\":\"a\\u0000b\"}",
    "{\"type\":\"message\",\"content\":\"tab\there\"}",
    "{\"type\":\"message\",\"content\":\"\\x\"}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":\"tab\\there\"}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":\"\"}",
    "{\"type\":\"message\",\"content\":\"  \\n \"}",
    "{\"type\":\"message\",\"content\":\"x\",\"type\":\"message\"}",
    "{\"type\":\"message\",\"content\":\"x\",\"content\":\"y\"}",
    "{\"type\":\"message\",\"content\":\"x\",\"extra\":1}",
    "{\"type\":\"message\",\"content\":\"x\",}",
    "{\"type\":\"message\",\"content\":\"x\"} x",
    "{\"type\":\"message\",\"content\":\"x\"}}",
    "{\"type\":\"message\",\"content\":\"x\"",
    "{\"type\":\"message\",\"content\":\"x",
    "{\"type\":\"message\",\"content\":null}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":nul}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":nullx}",
    "{\"type\":\"message\",\"content\":\"x\",\"client_id\":5}",
    "{\"type\":\"me\\u0073sage\",\"content\":\"x\"}",
    "{\"t\\u0079pe\":\"message\",\"content\":\"x\"}",
    "{\"type\":\"messages\",\"content\":\"x\"}",
    "{\"type\":\"typing\",\"content\":\"x\"}",
    "{\"type\":null,\"content\":\"x\"}",
    "{\"content\":\"x\"}",
    "{}",
    "{\"type\":\"message\" \"content\":\"x\"}",
    "\xef\xbb\xbf{\"type\":\"message\",\"content\":\"x\"}",
    "[{\"type\":\"message\",\"content\":\"x\"}]",
};

static void test_fast_path_agrees(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof(SAMPLES) / sizeof(SAMPLES[0]); i++)
        check_same(SAMPLES[i], strlen(SAMPLES[i]));
    /* Lengths around the fast path's limit, escaped and not. */
    char text[6000];
    for (size_t n = 2030; n < 2060; n += 3) {
        for (int esc = 0; esc < 2; esc++) {
            int head = snprintf(text, sizeof(text), "{\"type\":\"message\",\"content\":\"");
            size_t at = (size_t)head;
            for (size_t k = 0; k < n; k++) {
                if (esc && k % 7 == 0) {
                    text[at++] = '\\';
                    text[at++] = 'n';
                } else {
                    text[at++] = 'a';
                }
            }
            at += (size_t)snprintf(text + at, sizeof(text) - at, "\",\"client_id\":\"id\"}");
            check_same(text, at);
        }
    }
}

/* The common shapes are read without a tree: one string owns both. */
static void test_fast_path_taken(void **state) {
    (void)state;
    static const char *const fast[] = {
        "{\"type\":\"message\",\"content\":\"hello\"}",
        " {\n\t\"content\" : \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\" ,\r\"type\":\"message\"} \n",
        "{\"type\":\"message\",\"content\":\"x\",\"client_id\":\"c-1\"}",
        "{\"client_id\":null,\"type\":\"message\",\"content\":\"h\xc3\xa9llo\"}",
    };
    for (size_t i = 0; i < sizeof(fast) / sizeof(fast[0]); i++) {
        client_event_t ev;
        assert_int_equal(parse(fast[i], &ev), 0);
        assert_int_equal(ev.type, CLIENT_EVENT_MESSAGE);
        assert_true(json_is_string(ev.root));
        client_event_free(&ev);
    }
    client_event_t ev;
    assert_int_equal(parse("{\"type\":\"message\",\"content\":\"\\u00e9\"}", &ev), 0);
    assert_true(json_is_object(ev.root));
    client_event_free(&ev);
}

/* Every single-byte change of a few valid events, and every cut. */
static void test_fast_path_mutations(void **state) {
    (void)state;
    static const char *const bases[] = {
        "{\"type\":\"message\",\"content\":\"h\\\"i \xc3\xa9\",\"client_id\":\"c-1\"}",
        " { \"client_id\" : null , \"content\" : \"x\\\\y\" , \"type\" : \"message\" } ",
    };
    static const unsigned char bytes[] = {'"', '\\', ',',  ':',  '{',  '}',  ' ',  'n', 'u',
                                          'x', 0,    0x1f, 0x7f, 0x80, 0xc3, 0xff, '/'};
    char text[256];
    for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
        size_t len = strlen(bases[b]);
        for (size_t cut = 0; cut <= len; cut++)
            check_same(bases[b], cut);
        for (size_t i = 0; i < len; i++) {
            for (size_t k = 0; k < sizeof(bytes); k++) {
                memcpy(text, bases[b], len);
                text[i] = (char)bytes[k];
                check_same(text, len);
                /* ...and the same byte inserted. */
                memcpy(text, bases[b], i);
                text[i] = (char)bytes[k];
                memcpy(text + i + 1, bases[b] + i, len - i);
                check_same(text, len + 1);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_message),
        cmocka_unit_test(test_message_strings_outlive_event),
        cmocka_unit_test(test_message_invalid),
        cmocka_unit_test(test_other_types),
        cmocka_unit_test(test_other_types_invalid),
        cmocka_unit_test(test_not_an_event),
        cmocka_unit_test(test_fast_path_agrees),
        cmocka_unit_test(test_fast_path_taken),
        cmocka_unit_test(test_fast_path_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
