/* libFuzzer target: token verification (src/auth/token.c over libjwt).
 *
 * The first byte chooses how the input becomes a token:
 *  0: the rest is the token, as a client would send it.
 *  1: the rest is the payload JSON, under the header
 *     {"alg":"HS256","typ":"JWT"} and signed with the server's secret; the
 *     second byte picks a variation (another secret, no signature, another
 *     header) that must never verify.
 *  2: the rest is "header JSON \n payload JSON", both encoded and signed
 *     with the server's secret (HS256).
 *
 * Checks, for every token:
 *  - TOKEN_OK only if the token is three parts whose third is the HS256
 *    HMAC of the first two with the server's secret; whose header's alg is
 *    exactly "HS256" and typ, when present, exactly "JWT"; and whose payload
 *    has a sub that is a positive decimal int64 in a string, an integer exp
 *    in the future, an integer iat if any, and string email and username
 *    that fit; and the claims handed back are those. Checked here with
 *    OpenSSL's HMAC and jansson, not with libjwt.
 *  - TOKEN_EXPIRED only for such a token whose exp is not in the future.
 *  - With mode 1's plain header and the right secret, the verdict is
 *    exactly the one those rules give for the payload (nothing valid is
 *    refused either). */
#include "auth/token.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_S INT64_C(1700000000)

static const unsigned char secret[] = "fuzzing-secret-0123456789abcdef0123456789";
#define SECRET_LEN (sizeof(secret) - 1)
static const unsigned char other_secret[] = "another-secret-0123456789abcdef0123456789";

static void fail(const char *what, const char *token) {
    fprintf(stderr, "jwt_fuzz: %s\ntoken: %.300s\n", what, token);
    abort();
}

/* ---- base64url ----------------------------------------------------------- */

/* Unpadded base64url of n bytes into out (room for 4 * n / 3 + 4). */
static size_t b64url_encode(const unsigned char *in, size_t n, char *out) {
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    size_t j = 0;
    for (int i = 0; i < len; i++) {
        char c = out[i];
        if (c == '=')
            break;
        out[j++] = c == '+' ? '-' : c == '/' ? '_' : c;
    }
    out[j] = '\0';
    return j;
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' || c == '+' ? 62 : c == '_' || c == '/' ? 63 : -1;
}

/* Decodes a base64url part the way libjwt 1.10 reads it: up to the first
 * character that is not base64 (either alphabet), a lone last character
 * ignored; the result is NUL-terminated and read as a C string. Returns a
 * malloc'ed string. */
static char *b64url_decode(const char *in, size_t n) {
    char *out = malloc(n + 1);
    if (out == NULL)
        abort();
    size_t len = 0, j = 0;
    unsigned acc = 0;
    int bits = 0;
    while (j < n && b64_value(in[j]) >= 0) {
        acc = (acc << 6) | (unsigned)b64_value(in[j++]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out[len] = '\0';
    return out;
}

/* ---- the rules, independently ------------------------------------------- */

/* A positive int64 in canonical decimal. */
static int canonical_id(const char *s, int64_t *out) {
    if (s == NULL || s[0] < '1' || s[0] > '9' || strlen(s) > 19)
        return 0;
    unsigned long long v = 0;
    for (const char *p = s; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return 0;
        v = v * 10 + (unsigned long long)(*p - '0');
    }
    if (strlen(s) == 19 && strcmp(s, "9223372036854775807") > 0)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static int string_fits(json_t *v, size_t cap) {
    return json_is_string(v) && strlen(json_string_value(v)) < cap;
}

/* The verdict chatd's rules give for a payload (already authentic, under
 * an acceptable header), with the claims for TOKEN_OK. */
static token_status_t payload_verdict(const char *payload_text, token_claims_t *claims) {
    json_t *p = json_loads(payload_text, 0, NULL);
    token_status_t verdict = TOKEN_INVALID;
    json_t *exp = json_object_get(p, "exp"), *iat = json_object_get(p, "iat");
    json_t *email = json_object_get(p, "email"), *username = json_object_get(p, "username");
    memset(claims, 0, sizeof(*claims));
    if (json_is_object(p) &&
        canonical_id(json_string_value(json_object_get(p, "sub")), &claims->user_id) &&
        json_is_integer(exp) && (iat == NULL || json_is_integer(iat)) &&
        string_fits(email, sizeof(claims->email)) &&
        string_fits(username, sizeof(claims->username))) {
        claims->expires_at = json_integer_value(exp);
        claims->issued_at = iat != NULL ? json_integer_value(iat) : 0;
        strcpy(claims->email, json_string_value(email));
        strcpy(claims->username, json_string_value(username));
        verdict = claims->expires_at > NOW_S ? TOKEN_OK : TOKEN_EXPIRED;
    }
    json_decref(p);
    return verdict;
}

/* The header: alg exactly HS256, typ absent or exactly JWT. */
static int header_acceptable(const char *header_text) {
    json_t *h = json_loads(header_text, 0, NULL);
    const char *alg = json_string_value(json_object_get(h, "alg"));
    json_t *typ = json_object_get(h, "typ");
    int ok = json_is_object(h) && alg != NULL && strcmp(alg, "HS256") == 0 &&
             (typ == NULL || (json_is_string(typ) && strcmp(json_string_value(typ), "JWT") == 0));
    json_decref(h);
    return ok;
}

/* What verification may answer for token: TOKEN_INVALID unless it is
 * authentic under an acceptable header, else the payload's verdict. */
static token_status_t reference_verdict(const char *token, token_claims_t *claims) {
    if (strlen(token) > TOKEN_MAX_BYTES)
        return TOKEN_INVALID;
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 != NULL ? strchr(dot1 + 1, '.') : NULL;
    if (dot2 == NULL)
        return TOKEN_INVALID;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    HMAC(EVP_sha256(), secret, (int)SECRET_LEN, (const unsigned char *)token,
         (size_t)(dot2 - token), mac, &mac_len);
    char expected_sig[EVP_MAX_MD_SIZE * 2];
    b64url_encode(mac, mac_len, expected_sig);
    if (strcmp(dot2 + 1, expected_sig) != 0)
        return TOKEN_INVALID;
    char *header = b64url_decode(token, (size_t)(dot1 - token));
    char *payload = b64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    token_status_t verdict =
        header_acceptable(header) ? payload_verdict(payload, claims) : TOKEN_INVALID;
    free(header);
    free(payload);
    return verdict;
}

static int claims_equal(const token_claims_t *a, const token_claims_t *b) {
    return a->user_id == b->user_id && a->expires_at == b->expires_at &&
           a->issued_at == b->issued_at && strcmp(a->email, b->email) == 0 &&
           strcmp(a->username, b->username) == 0;
}

/* Verifies token and holds the answer against the rules. must_refuse: the
 * token was built not to verify. exact: the answer must be the reference's
 * (the token is authentic under the plain header). */
static void check_token(const char *token, int must_refuse, int exact) {
    token_claims_t claims, ref_claims;
    memset(&claims, 0, sizeof(claims));
    token_status_t status = token_verify(secret, SECRET_LEN, token, NOW_S, &claims);
    if (status != TOKEN_OK && status != TOKEN_INVALID && status != TOKEN_EXPIRED)
        fail("token_verify returned no token_status_t", token);
    if (status != TOKEN_INVALID && must_refuse)
        fail("a token built not to verify was accepted", token);
    if (status == TOKEN_INVALID && !exact)
        return;
    token_status_t ref = reference_verdict(token, &ref_claims);
    if (status == TOKEN_OK && ref != TOKEN_OK)
        fail("accepted a token that is not authentic, valid and current", token);
    if (status == TOKEN_EXPIRED && ref != TOKEN_EXPIRED)
        fail("called expired a token that is not authentic and valid", token);
    if (status == TOKEN_OK && !claims_equal(&claims, &ref_claims))
        fail("the claims handed back are not the token's", token);
    if (exact && status != ref)
        fail("an authentic token under the plain header got another verdict than the rules", token);
}

/* ---- building tokens ----------------------------------------------------- */

/* header.payload.signature into out (room for 2 * (hlen + plen) + 128). */
static void build_token(const char *header, size_t hlen, const char *payload, size_t plen,
                        const unsigned char *key, const EVP_MD *md, char *out) {
    size_t n = b64url_encode((const unsigned char *)header, hlen, out);
    out[n++] = '.';
    n += b64url_encode((const unsigned char *)payload, plen, out + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    if (md != NULL)
        HMAC(md, key, (int)SECRET_LEN, (const unsigned char *)out, n, mac, &mac_len);
    out[n++] = '.';
    b64url_encode(mac, mac_len, out + n);
}

static const char plain_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Headers and keys that must not verify, with their reason. */
static const struct {
    const char *header;
    int other_key;
    int algorithm; /* 0 HS256, 1 HS384, 2 HS512, 3 unsigned */
} refused[] = {
    {plain_header, 1, 0},
    {plain_header, 0, 3},
    {"{\"alg\":\"none\",\"typ\":\"JWT\"}", 0, 3},
    {"{\"alg\":\"none\"}", 0, 0},
    {"{\"alg\":\"HS384\",\"typ\":\"JWT\"}", 0, 1},
    {"{\"alg\":\"HS512\",\"typ\":\"JWT\"}", 0, 2},
    {"{\"alg\":\"hs256\",\"typ\":\"JWT\"}", 0, 0},
    {"{\"alg\":\"HS256\",\"typ\":\"jwt\"}", 0, 0},
    {"{\"alg\":\"HS256\",\"typ\":\"JWS\"}", 0, 0},
    {"{\"alg\":\"HS256\",\"typ\":7}", 0, 0},
    {"{\"typ\":\"JWT\"}", 0, 0},
    {"{\"alg\":\"RS256\",\"typ\":\"JWT\"}", 0, 0},
};
#define NREFUSED (sizeof(refused) / sizeof(refused[0]))

static const EVP_MD *algorithm_md(int algorithm) {
    return algorithm == 0   ? EVP_sha256()
           : algorithm == 1 ? EVP_sha384()
           : algorithm == 2 ? EVP_sha512()
                            : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0 || size > TOKEN_MAX_BYTES)
        return 0;
    int mode = data[0] % 3;
    const char *rest = (const char *)data + 1;
    size_t rest_len = size - 1;
    char *token = malloc(2 * size + 256 + sizeof(plain_header) * 2);
    if (token == NULL)
        abort();
    if (mode == 0) {
        memcpy(token, rest, rest_len);
        token[rest_len] = '\0'; /* a token ends at its first NUL, as a header value does */
        check_token(token, 0, 0);
    } else if (mode == 1) {
        if (rest_len == 0) {
            free(token);
            return 0;
        }
        unsigned variation = (uint8_t)rest[0] % (NREFUSED + 1);
        rest++, rest_len--;
        if (variation == NREFUSED) {
            build_token(plain_header, strlen(plain_header), rest, rest_len, secret, EVP_sha256(),
                        token);
            /* A payload with a NUL is read only up to it, by libjwt and by
             * the rules alike; the verdict is still exact. */
            check_token(token, 0, 1);
        } else {
            const char *h = refused[variation].header;
            build_token(h, strlen(h), rest, rest_len,
                        refused[variation].other_key ? other_secret : secret,
                        algorithm_md(refused[variation].algorithm), token);
            check_token(token, 1, 0);
        }
    } else {
        const char *nl = memchr(rest, '\n', rest_len);
        size_t hlen = nl != NULL ? (size_t)(nl - rest) : rest_len;
        const char *payload = nl != NULL ? nl + 1 : rest + rest_len;
        build_token(rest, hlen, payload, rest_len - hlen - (nl != NULL), secret, EVP_sha256(),
                    token);
        check_token(token, 0, 0);
    }
    free(token);
    return 0;
}
