/* Argon2id hashing: PHC format, verification, the dummy hash, foreign hashes.
 * Each hash costs ~25 ms, so the tests make few. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/password.h"

#include <string.h>

static int init_once(void **state) {
    (void)state;
    return password_init(19456, 2);
}

static void test_hash_and_verify(void **state) {
    (void)state;
    char hash[PASSWORD_HASH_MAX];
    assert_int_equal(password_hash("hunter2!", 8, hash), 0);
    const char *prefix = "$argon2id$v=19$m=19456,t=2,p=1$";
    assert_true(strncmp(hash, prefix, strlen(prefix)) == 0);
    assert_int_equal(password_verify(hash, "hunter2!", 8), 1);
    assert_int_equal(password_verify(hash, "hunter2?", 8), 0);
    assert_int_equal(password_verify(hash, "hunter2", 7), 0);
}

static void test_binary_password(void **state) {
    (void)state;
    /* Length is explicit: bytes after a NUL still count. */
    char hash[PASSWORD_HASH_MAX];
    assert_int_equal(password_hash("a\0b\xff", 4, hash), 0);
    assert_int_equal(password_verify(hash, "a\0b\xff", 4), 1);
    assert_int_equal(password_verify(hash, "a\0c\xff", 4), 0);
    assert_int_equal(password_verify(hash, "a", 1), 0);
}

static void test_malformed_hashes(void **state) {
    (void)state;
    const char *bad[] = {
        "",
        "$argon2id$",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$",
        "not a hash at all",
        "$2b$12$abcdefghijklmnopqrstuv",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(password_verify(bad[i], "x", 1), 0);
    assert_int_equal(password_verify(NULL, "x", 1), 0);

    char unterminated[PASSWORD_HASH_MAX + 8];
    memset(unterminated, 'a', sizeof(unterminated) - 1);
    unterminated[sizeof(unterminated) - 1] = '\0';
    assert_int_equal(password_verify(unterminated, "x", 1), 0);
}

static void test_dummy_hash(void **state) {
    (void)state;
    const char *dummy = password_dummy_hash();
    const char *prefix = "$argon2id$v=19$m=19456,t=2,p=1$";
    assert_true(strncmp(dummy, prefix, strlen(prefix)) == 0);
    assert_int_equal(password_verify(dummy, "", 0), 0);
    assert_int_equal(password_verify(dummy, "password", 8), 0);
}

static void test_foreign_phc_string(void **state) {
    (void)state;
    /* Made by the reference implementation's CLI (Debian package argon2):
     *   echo -n "correct horse" | argon2 somesaltsalt1234 -id -t 2 -m 15 -p 4 -e
     * Different memory cost and 4 lanes: the parameters come from the string. */
    const char *hash = "$argon2id$v=19$m=32768,t=2,p=4$c29tZXNhbHRzYWx0MTIzNA$"
                       "uYNeCDADgq2YTBV0icnZFopFsA+VqBUtxl/sK29QbjM";
    assert_int_equal(password_verify(hash, "correct horse", 13), 1);
    assert_int_equal(password_verify(hash, "correct horsE", 13), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_and_verify),    cmocka_unit_test(test_binary_password),
        cmocka_unit_test(test_malformed_hashes),   cmocka_unit_test(test_dummy_hash),
        cmocka_unit_test(test_foreign_phc_string),
    };
    return cmocka_run_group_tests(tests, init_once, NULL);
}
