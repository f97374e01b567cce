/* Input validation: the rules of API.md at their edges. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "chat/message_json.h"
#include "core/timeutil.h"
#include "chat/post.h"
#include "core/validate.h"

#include <stdio.h>
#include <string.h>

static char *repeat(const char *unit, size_t times) {
    size_t unit_len = strlen(unit);
    char *s = test_malloc(unit_len * times + 1);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * unit_len, unit, unit_len);
    s[unit_len * times] = '\0';
    return s;
}

static void test_email(void **state) {
    (void)state;
    char out[EMAIL_MAX_BYTES + 1];
    assert_null(validate_email("Alice@Example.COM", 17, out));
    assert_string_equal(out, "alice@example.com");
    const char *bad[] = {"",
                         "alice",
                         "@example.com",
                         "alice@",
                         "alice@example",
                         "a@@b.com",
                         "a b@example.com",
                         "alice@exa mple.com",
                         ".a@example.com",
                         "a..b@example.com",
                         "alice@-example.com",
                         "alice@example..com"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_non_null(validate_email(bad[i], strlen(bad[i]), out));
    /* 254 bytes is the limit: 64-byte local part + '@' + 189-byte domain. */
    char *local = repeat("a", 64);
    char *label = repeat("b", 60);
    char address[300];
    snprintf(address, sizeof(address), "%s@%s.%s.%s.cc", local, label, label, label);
    assert_int_equal(strlen(address), 64 + 1 + 60 * 3 + 3 + 2);
    assert_null(validate_email(address, strlen(address), out));
    char too_long[300];
    snprintf(too_long, sizeof(too_long), "%s@%s.%s.%s.ccc%s", local, label, label, label, "dddddd");
    assert_true(strlen(too_long) > 254);
    const char *problem = validate_email(too_long, strlen(too_long), out);
    assert_non_null(problem);
    assert_non_null(strstr(problem, "email"));
    test_free(local);
    test_free(label);
}

static void test_password_length_counts_characters(void **state) {
    (void)state;
    assert_non_null(validate_password("1234567", 7));
    assert_null(validate_password("12345678", 8));
    char *max = repeat("é", 128); /* 256 bytes, 128 characters */
    assert_null(validate_password(max, strlen(max)));
    test_free(max);
    char *over = repeat("x", 129);
    const char *problem = validate_password(over, strlen(over));
    assert_non_null(problem);
    assert_non_null(strstr(problem, "password"));
    test_free(over);
}

static void test_username(void **state) {
    (void)state;
    assert_null(validate_username("a", 1));
    assert_null(validate_username("Alice_B.c-9", 11));
    assert_non_null(validate_username("", 0));
    assert_non_null(validate_username("al ice", 6));
    assert_non_null(validate_username("al/ice", 6));
    assert_non_null(validate_username("é", 2));
    char *max = repeat("u", 32);
    assert_null(validate_username(max, 32));
    test_free(max);
    char *over = repeat("u", 33);
    assert_non_null(strstr(validate_username(over, 33), "username"));
    test_free(over);
}

static void test_content(void **state) {
    (void)state;
    assert_null(validate_content(" hi ", 4));
    assert_non_null(validate_content("", 0));
    assert_non_null(validate_content(" \t\n ", 4));
    assert_non_null(validate_content("\xc2\xa0\xe3\x80\x80", 5)); /* NBSP, ideographic space */
    char *max = repeat("😀", 4000);
    assert_null(validate_content(max, strlen(max)));
    test_free(max);
    char *over = repeat("é", 4001);
    assert_non_null(strstr(validate_content(over, strlen(over)), "content"));
    test_free(over);
    assert_non_null(validate_content("a\0b", 3));
}

static void test_client_id_and_post(void **state) {
    (void)state;
    char *max = repeat("c", 64);
    assert_null(chat_post_validate("hi", 2, max, 64));
    test_free(max);
    char *over = repeat("c", 65);
    assert_non_null(strstr(chat_post_validate("hi", 2, over, 65), "client_id"));
    test_free(over);
    assert_null(chat_post_validate("hi", 2, NULL, 0));
    assert_non_null(chat_post_validate("hi", 2, "", 0));
}

static void test_room_name(void **state) {
    (void)state;
    assert_null(validate_room_name("Tech Talk", 9));
    assert_non_null(validate_room_name("", 0));
    assert_non_null(validate_room_name("   ", 3));
    char *max = repeat("r", 100);
    assert_null(validate_room_name(max, 100));
    test_free(max);
    char *over = repeat("r", 101);
    assert_non_null(validate_room_name(over, 101));
    test_free(over);
}

static void test_parse_positive_id(void **state) {
    (void)state;
    int64_t id;
    assert_int_equal(parse_positive_id("42", &id), 0);
    assert_int_equal(id, 42);
    assert_int_equal(parse_positive_id("9223372036854775807", &id), 0);
    const char *bad[] = {"0", "-1", "", "1a", " 1", "+1", "9223372036854775808", "abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse_positive_id(bad[i], &id), -1);
}

static void test_message_json(void **state) {
    (void)state;
    store_message_t msg = {.id = 42,
                           .sender_id = 7,
                           .room_id = 1,
                           .content = "He said \"hi\"\n",
                           .content_len = 13,
                           .client_id = "c-1",
                           .created_at_ms = 1795000000123,
                           .sender_email = "a@example.com",
                           .sender_username = "alice"};
    buf_t out = BUF_INIT;
    assert_int_equal(message_json_render(&out, &msg, "message"), 0);
    assert_string_equal(out.data,
                        "{\"type\":\"message\",\"id\":42,\"sender_id\":7,\"room_id\":1,"
                        "\"content\":\"He said \\\"hi\\\"\\n\",\"created_at\":"
                        "\"2026-11-18T11:06:40.123Z\",\"sender\":\"a@example.com\","
                        "\"username\":\"alice\",\"client_id\":\"c-1\",\"edited_at\":null}");
    buf_free(&out);
}

/* Timestamps as time_format_rfc3339_ms writes them, whatever the order in
 * which seconds come; the other fields in every shape. */
static void test_message_json_fields(void **state) {
    (void)state;
    const int64_t times[] = {
        1795000000123, 1795000000999, 1795000001000,   1795000000001, 1, -1, -1000,
        -1001,         999,           253402300799999, 1795000000123};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        store_message_t msg = {.id = INT64_MAX,
                               .sender_id = -5,
                               .room_id = 0,
                               .content = "",
                               .created_at_ms = times[i],
                               .edited_at_ms = times[i] + 7,
                               .deleted = true};
        char created[RFC3339_MS_LEN], edited[RFC3339_MS_LEN];
        time_format_rfc3339_ms(times[i], created);
        time_format_rfc3339_ms(times[i] + 7, edited);
        char want[512];
        snprintf(want, sizeof(want),
                 "{\"id\":9223372036854775807,\"sender_id\":-5,\"room_id\":0,\"content\":\"\","
                 "\"created_at\":\"%s\",\"sender\":\"\",\"username\":\"\",\"edited_at\":\"%s\","
                 "\"deleted\":true}",
                 created, edited);
        buf_t out = BUF_INIT;
        assert_int_equal(message_json_render(&out, &msg, NULL), 0);
        assert_string_equal(out.data, want);
        buf_free(&out);
    }
    store_message_t min = {.id = INT64_MIN, .content = "x", .content_len = 1};
    buf_t out = BUF_INIT;
    assert_int_equal(message_json_render(&out, &min, "message"), 0);
    assert_string_equal(out.data,
                        "{\"type\":\"message\",\"id\":-9223372036854775808,\"sender_id\":0,"
                        "\"room_id\":0,\"content\":\"x\",\"created_at\":null,"
                        "\"sender\":\"\",\"username\":\"\",\"edited_at\":null}");
    buf_free(&out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_email),
        cmocka_unit_test(test_password_length_counts_characters),
        cmocka_unit_test(test_username),
        cmocka_unit_test(test_content),
        cmocka_unit_test(test_client_id_and_post),
        cmocka_unit_test(test_room_name),
        cmocka_unit_test(test_parse_positive_id),
        cmocka_unit_test(test_message_json),
        cmocka_unit_test(test_message_json_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
