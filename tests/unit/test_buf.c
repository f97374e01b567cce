/* Growable buffers and the JSON string encoder, at the edges that matter:
 * whatever bytes a string holds, the literal is valid JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/buf.h"
#include "core/utf8.h"

#include <jansson.h>
#include <string.h>

/* Encodes len bytes of s and returns the literal (a static copy). */
static const char *encode(const char *s, size_t len) {
    static char out[512];
    buf_t b = BUF_INIT;
    assert_int_equal(buf_append_json_string(&b, s, len), 0);
    assert_true(b.len < sizeof(out));
    memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return out;
}

/* The literal parses as JSON, is UTF-8, and decodes to want. */
static void expect_decodes(const char *s, size_t len, const char *want) {
    const char *literal = encode(s, len);
    assert_true(utf8_valid((const uint8_t *)literal, strlen(literal)));
    json_t *v = json_loads(literal, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    assert_string_equal(json_string_value(v), want);
    json_decref(v);
}

static void test_escapes(void **state) {
    (void)state;
    assert_string_equal(encode("a\"b\\c\n\r\t", 8), "\"a\\\"b\\\\c\\n\\r\\t\"");
    assert_string_equal(encode("\x01\x1f\x7f", 3), "\"\\u0001\\u001f\\u007f\"");
    assert_string_equal(encode("", 0), "\"\"");
    assert_string_equal(encode("a\0b", 3), "\"a\\u0000b\"");
}

static void test_valid_utf8_kept(void **state) {
    (void)state;
    const char *text = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf \xed\x9f\xbf";
    assert_string_equal(encode(text, strlen(text)) + 1,
                        "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 "
                        "\xf4\x8f\xbf\xbf \xed\x9f\xbf\"");
    expect_decodes(text, strlen(text), text);
}

/* Found by fuzz/http_request_fuzz.c: jansson's error text for the body
 * {"h":"h\u0<C6> quotes the bytes near the error, and the 400 carried them
 * as they were: not UTF-8, so not JSON. */
static void test_invalid_utf8_replaced(void **state) {
    (void)state;
    const char found[] = "invalid escape near '\"h\\u0\xc6'";
    expect_decodes(found, sizeof(found) - 1, "invalid escape near '\"h\\u0\xef\xbf\xbd'");
    static const struct {
        const char *in;
        const char *want;
    } cases[] = {
        {"\xc6", "\xef\xbf\xbd"},                                 /* a lead byte alone */
        {"a\xe2\x82", "a\xef\xbf\xbd\xef\xbf\xbd"},               /* cut short at the end */
        {"\xe2\x82z", "\xef\xbf\xbd\xef\xbf\xbdz"},               /* cut short inside */
        {"\x80\xbf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* continuation bytes alone */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong, three bytes */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xf5\xff", "\xef\xbf\xbd\xef\xbf\xbd"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect_decodes(cases[i].in, strlen(cases[i].in), cases[i].want);
}

/* Every byte value, alone and after a lead byte: always valid JSON. */
static void test_every_byte(void **state) {
    (void)state;
    for (int lead = 0; lead < 256; lead++) {
        for (int c = 1; c < 256; c++) {
            char s[3] = {(char)lead, (char)c, 'x'};
            const char *start = lead == 0 ? s + 1 : s;
            size_t len = lead == 0 ? 2 : 3;
            const char *literal = encode(start, len);
            assert_true(utf8_valid((const uint8_t *)literal, strlen(literal)));
            json_t *v = json_loads(literal, JSON_DECODE_ANY, NULL);
            assert_non_null(v);
            json_decref(v);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escapes),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_invalid_utf8_replaced),
        cmocka_unit_test(test_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
