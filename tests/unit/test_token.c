/* JWT: HS256 only, exp checked, claims validated, hostile input survives. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/token.h"

#include <jwt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const unsigned char secret[] = "0123456789abcdef0123456789abcdef-test";
#define SECRET_LEN (sizeof(secret) - 1)
static const unsigned char other_secret[] = "fedcba9876543210fedcba9876543210-test";
#define NOW 1700000000LL

static char *b64url(const char *text) {
    size_t len = strlen(text);
    size_t cap = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *out = malloc(cap);
    assert_non_null(out);
    sodium_bin2base64(out, cap, (const unsigned char *)text, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return out;
}

/* header_json.payload_json.signature, all given; caller frees. */
static char *make_raw(const char *header_json, const char *payload_json, const char *signature) {
    char *h = b64url(header_json), *p = b64url(payload_json);
    size_t cap = strlen(h) + strlen(p) + strlen(signature) + 3;
    char *token = malloc(cap);
    assert_non_null(token);
    snprintf(token, cap, "%s.%s.%s", h, p, signature);
    free(h);
    free(p);
    return token;
}

/* An HS256 token with the given header, signed by hand: libjwt would rewrite
 * "typ". Caller frees. */
static char *make_hs256_raw(const char *header_json, const char *payload_json) {
    char *unsigned_token = make_raw(header_json, payload_json, "");
    size_t signed_len = strlen(unsigned_token) - 1; /* without the final '.' */
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, secret, SECRET_LEN);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)unsigned_token, signed_len);
    crypto_auth_hmacsha256_final(&st, mac);
    char sig[sodium_base64_ENCODED_LEN(sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    sodium_bin2base64(sig, sizeof(sig), mac, sizeof(mac), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    size_t cap = strlen(unsigned_token) + strlen(sig) + 1;
    char *token = malloc(cap);
    assert_non_null(token);
    snprintf(token, cap, "%s%s", unsigned_token, sig);
    free(unsigned_token);
    return token;
}

/* Signs grants_json (a JSON object) with libjwt, which adds "typ":"JWT"; caller frees. */
static char *make_signed(jwt_alg_t alg, const unsigned char *key, const char *grants_json) {
    jwt_t *jwt = NULL;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grants_json), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)SECRET_LEN), 0);
    char *token = jwt_encode_str(jwt);
    assert_non_null(token);
    jwt_free(jwt);
    return token;
}

static token_status_t verify(const char *token) {
    token_claims_t claims;
    return token_verify(secret, SECRET_LEN, token, NOW, &claims);
}

#define GOOD_CLAIMS                                                                                \
    "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\",\"iat\":1700000000,"       \
    "\"exp\":1700086400}"

static void test_roundtrip(void **state) {
    (void)state;
    char *token = NULL;
    assert_int_equal(
        token_issue(secret, SECRET_LEN, 42, "a@example.com", "alice", NOW, 86400, &token), 0);
    token_claims_t claims;
    assert_int_equal(token_verify(secret, SECRET_LEN, token, NOW + 10, &claims), TOKEN_OK);
    assert_int_equal(claims.user_id, 42);
    assert_string_equal(claims.email, "a@example.com");
    assert_string_equal(claims.username, "alice");
    assert_int_equal(claims.issued_at, NOW);
    assert_int_equal(claims.expires_at, NOW + 86400);
    /* exp is exclusive: at exp the token is over. */
    assert_int_equal(token_verify(secret, SECRET_LEN, token, NOW + 86399, &claims), TOKEN_OK);
    assert_int_equal(token_verify(secret, SECRET_LEN, token, NOW + 86400, &claims), TOKEN_EXPIRED);
    assert_int_equal(token_verify(other_secret, SECRET_LEN, token, NOW, &claims), TOKEN_INVALID);
    /* Short secrets are refused outright. */
    assert_int_equal(token_verify(secret, 31, token, NOW, &claims), TOKEN_INVALID);
    char *unused = NULL;
    assert_int_equal(token_issue(secret, 31, 42, "a@example.com", "alice", NOW, 60, &unused), -1);
    free(token);

    char *hs256_by_libjwt = make_signed(JWT_ALG_HS256, secret, GOOD_CLAIMS);
    assert_int_equal(verify(hs256_by_libjwt), TOKEN_OK);
    free(hs256_by_libjwt);
}

static void test_alg_none(void **state) {
    (void)state;
    char *token = make_raw("{\"alg\":\"none\"}", GOOD_CLAIMS, "");
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
    token = make_raw("{\"alg\":\"none\",\"typ\":\"JWT\"}", GOOD_CLAIMS, "c2ln");
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
    token = make_raw("{\"alg\":\"NONE\"}", GOOD_CLAIMS, "");
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
}

static void test_other_hmac_algs(void **state) {
    (void)state;
    char *token = make_signed(JWT_ALG_HS384, secret, GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
    token = make_signed(JWT_ALG_HS512, secret, GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
}

static void test_expired(void **state) {
    (void)state;
    char *token = make_signed(JWT_ALG_HS256, secret,
                              "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\","
                              "\"exp\":1699999999}");
    assert_int_equal(verify(token), TOKEN_EXPIRED);
    free(token);
}

static void test_tampered_payload(void **state) {
    (void)state;
    char *token = make_signed(JWT_ALG_HS256, secret, GOOD_CLAIMS);
    char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    char *payload = b64url("{\"sub\":\"1\",\"email\":\"a@example.com\",\"username\":\"alice\","
                           "\"exp\":1700086400}");
    size_t cap = strlen(token) + strlen(payload) + 1;
    char *forged = malloc(cap);
    assert_non_null(forged);
    snprintf(forged, cap, "%.*s.%s%s", (int)(dot1 - token), token, payload, dot2);
    assert_int_equal(verify(forged), TOKEN_INVALID);
    free(forged);
    free(payload);

    token[strlen(token) - 1] ^= 1; /* flip a bit of the signature */
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
}

static void test_bad_claims(void **state) {
    (void)state;
    const char *cases[] = {
        /* missing sub */
        "{\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        /* non-numeric, zero, negative, padded, overflowing, integer sub */
        "{\"sub\":\"abc\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"0\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"-4\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"042\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"42 \",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"9223372036854775808\",\"email\":\"a@example.com\",\"username\":\"alice\","
        "\"exp\":1700086400}",
        "{\"sub\":42,\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400}",
        /* missing or non-integer exp */
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\"}",
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":"
        "\"1700086400\"}",
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1.7e9}",
        /* missing email / username, or of the wrong type */
        "{\"sub\":\"42\",\"username\":\"alice\",\"exp\":1700086400}",
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"exp\":1700086400}",
        "{\"sub\":\"42\",\"email\":7,\"username\":\"alice\",\"exp\":1700086400}",
        /* iat present but not an integer */
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\",\"exp\":1700086400,"
        "\"iat\":\"x\"}",
        /* username over 63 bytes */
        "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":"
        "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"exp\":1700086400}",
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *token = make_signed(JWT_ALG_HS256, secret, cases[i]);
        if (verify(token) != TOKEN_INVALID)
            fail_msg("case %zu accepted: %s", i, cases[i]);
        free(token);
    }

    /* "typ" may be absent or "JWT", nothing else. */
    char *token = make_hs256_raw("{\"alg\":\"HS256\"}", GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_OK);
    free(token);
    token = make_hs256_raw("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_OK);
    free(token);
    token = make_hs256_raw("{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}", GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
    token = make_hs256_raw("{\"alg\":\"HS256\",\"typ\":1}", GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
    /* Algorithm names are case-sensitive: an HS256 signature under "hs256". */
    token = make_hs256_raw("{\"alg\":\"hs256\",\"typ\":\"JWT\"}", GOOD_CLAIMS);
    assert_int_equal(verify(token), TOKEN_INVALID);
    free(token);
}

static void test_garbage(void **state) {
    (void)state;
    const char *garbage[] = {
        "",
        ".",
        "..",
        "...",
        "a.b.c.d",
        "abc",
        "a.b",
        "a.b.c",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJhbGciOiJIUzI1NiJ9.e30.",
        "eyJhbGciOiJIUzI1NiJ9.!!!!.abc",
        "e30.e30.e30",
        "bnVsbA.bnVsbA.",
        "W10.W10.abc",
        "\xff\xfe.\x01.\x02",
    };
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
        if (verify(garbage[i]) != TOKEN_INVALID)
            fail_msg("case %zu accepted", i);
    assert_int_equal(verify(NULL), TOKEN_INVALID);

    size_t huge_len = 64 * 1024;
    char *huge = malloc(huge_len + 1);
    assert_non_null(huge);
    memset(huge, 'a', huge_len);
    huge[huge_len] = '\0';
    huge[100] = '.';
    huge[200] = '.';
    assert_int_equal(verify(huge), TOKEN_INVALID);
    free(huge);

    /* A genuine token padded past 8 KiB by a long claim is refused unparsed. */
    char claims[9000];
    snprintf(claims, sizeof(claims),
             "{\"sub\":\"42\",\"email\":\"a@example.com\",\"username\":\"alice\","
             "\"exp\":1700086400,\"pad\":\"%07000d\"}",
             0);
    char *padded = make_signed(JWT_ALG_HS256, secret, claims);
    assert_true(strlen(padded) > 8192);
    assert_int_equal(verify(padded), TOKEN_INVALID);
    free(padded);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),        cmocka_unit_test(test_alg_none),
        cmocka_unit_test(test_other_hmac_algs),  cmocka_unit_test(test_expired),
        cmocka_unit_test(test_tampered_payload), cmocka_unit_test(test_bad_claims),
        cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
