/* HS256 tokens over libjwt 1.10, which verifies the signature but leaves the
 * rest to us: it accepts HS384/HS512 signed with the same key and never looks
 * at "exp". Every check that matters is therefore made here, after
 * jwt_decode has verified the signature with the key (never NULL: libjwt
 * skips verification without one).
 *
 * "sub" is accepted only as a string holding a positive decimal int64, the
 * form token_issue writes; RFC 7519 makes "sub" a StringOrURI, so a JSON
 * number there is not a token of ours and is refused. */
#include "auth/token.h"

#include <errno.h>
#include <jwt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int secret_usable(const unsigned char *secret, size_t secret_len) {
    return secret != NULL && secret_len >= TOKEN_SECRET_MIN && secret_len <= INT_MAX;
}

int token_issue(const unsigned char *secret, size_t secret_len, int64_t user_id, const char *email,
                const char *username, int64_t now_s, int64_t lifetime_s, char **out_jwt) {
    if (!secret_usable(secret, secret_len) || user_id <= 0 || email == NULL || username == NULL ||
        lifetime_s <= 0 || now_s > INT64_MAX - lifetime_s)
        return -1;
    jwt_t *jwt = NULL;
    char *token = NULL;
    char sub[24];
    snprintf(sub, sizeof(sub), "%lld", (long long)user_id);
    if (jwt_new(&jwt) != 0)
        return -1;
    if (jwt_add_grant(jwt, "sub", sub) != 0 || jwt_add_grant(jwt, "email", email) != 0 ||
        jwt_add_grant(jwt, "username", username) != 0 ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) != 0 ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + lifetime_s)) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, secret, (int)secret_len) != 0)
        goto done;
    token = jwt_encode_str(jwt);
done:
    jwt_free(jwt);
    if (token == NULL)
        return -1;
    *out_jwt = token;
    return 0;
}

/* A positive int64 in canonical decimal: no sign, no leading zero. */
static int parse_user_id(const char *text, int64_t *out) {
    if (text == NULL || text[0] < '1' || text[0] > '9')
        return -1;
    int64_t v = 0;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        int digit = *p - '0';
        if (v > (INT64_MAX - digit) / 10)
            return -1;
        v = v * 10 + digit;
    }
    *out = v;
    return 0;
}

/* An integer claim; 0 when absent (*present = 0), -1 when not a JSON integer.
 * libjwt's jwt_get_grant_int converts strings, so the claim is read as the
 * JSON text of its value, which for an integer is digits only. */
static int get_int_claim(jwt_t *jwt, const char *name, int64_t *out, int *present) {
    char *json = jwt_get_grants_json(jwt, name);
    *present = json != NULL;
    if (json == NULL)
        return 0;
    const char *digits = json[0] == '-' ? json + 1 : json;
    char *end;
    errno = 0;
    long long v = strtoll(json, &end, 10);
    int ok = *digits >= '0' && *digits <= '9' && errno == 0 && *end == '\0';
    free(json);
    if (!ok)
        return -1;
    *out = v;
    return 0;
}

static int copy_string_claim(jwt_t *jwt, const char *name, char *out, size_t cap) {
    const char *v = jwt_get_grant(jwt, name);
    if (v == NULL)
        return -1;
    size_t len = strlen(v);
    if (len >= cap)
        return -1;
    memcpy(out, v, len + 1);
    return 0;
}

/* libjwt maps "alg" to an enum case-insensitively, so "hs256" would pass
 * as HS256; JWS algorithm names are case-sensitive (RFC 7515 4.1.1). */
static int header_alg_ok(jwt_t *jwt) {
    const char *alg = jwt_get_header(jwt, "alg");
    return jwt_get_alg(jwt) == JWT_ALG_HS256 && alg != NULL && strcmp(alg, "HS256") == 0;
}

/* "typ" is optional, but when present it must say JWT. */
static int header_typ_ok(jwt_t *jwt) {
    char *typ_json = jwt_get_headers_json(jwt, "typ");
    if (typ_json == NULL)
        return 1;
    free(typ_json);
    const char *typ = jwt_get_header(jwt, "typ");
    return typ != NULL && strcmp(typ, "JWT") == 0;
}

static token_status_t check_claims(jwt_t *jwt, int64_t now_s, token_claims_t *claims) {
    token_claims_t c;
    memset(&c, 0, sizeof(c));
    if (!header_alg_ok(jwt) || !header_typ_ok(jwt))
        return TOKEN_INVALID;
    if (parse_user_id(jwt_get_grant(jwt, "sub"), &c.user_id) != 0)
        return TOKEN_INVALID;
    int exp_present, iat_present;
    if (get_int_claim(jwt, "exp", &c.expires_at, &exp_present) != 0 || !exp_present ||
        get_int_claim(jwt, "iat", &c.issued_at, &iat_present) != 0)
        return TOKEN_INVALID;
    if (copy_string_claim(jwt, "email", c.email, sizeof(c.email)) != 0 ||
        copy_string_claim(jwt, "username", c.username, sizeof(c.username)) != 0)
        return TOKEN_INVALID;
    if (c.expires_at <= now_s)
        return TOKEN_EXPIRED;
    *claims = c;
    return TOKEN_OK;
}

token_status_t token_verify(const unsigned char *secret, size_t secret_len, const char *token,
                            int64_t now_s, token_claims_t *claims) {
    if (!secret_usable(secret, secret_len) || token == NULL || token[0] == '\0' ||
        strnlen(token, TOKEN_MAX_BYTES + 1) > TOKEN_MAX_BYTES)
        return TOKEN_INVALID;
    jwt_t *jwt = NULL;
    if (jwt_decode(&jwt, token, secret, (int)secret_len) != 0 || jwt == NULL) {
        jwt_free(jwt);
        return TOKEN_INVALID;
    }
    token_status_t status = check_claims(jwt, now_s, claims);
    jwt_free(jwt);
    return status;
}
