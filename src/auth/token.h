/* JWT HS256 tokens (libjwt), with what libjwt 1.10 leaves to the caller:
 * the algorithm pinned to HS256 and `exp` checked against the clock.
 * Thread-safe; cheap enough (one HMAC) to run on an I/O loop. */
#ifndef CHATD_AUTH_TOKEN_H
#define CHATD_AUTH_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#define TOKEN_SECRET_MIN 32
#define TOKEN_MAX_BYTES  8192 /* longer tokens are refused unparsed */

typedef struct {
    int64_t user_id; /* claim "sub", a decimal string */
    char email[256];
    char username[64];
    int64_t issued_at;  /* "iat", seconds */
    int64_t expires_at; /* "exp", seconds */
} token_claims_t;

typedef enum {
    TOKEN_OK = 0,
    TOKEN_INVALID, /* malformed, bad signature, wrong alg, missing/invalid claims */
    TOKEN_EXPIRED, /* valid signature, exp <= now */
} token_status_t;

/* Signs a token for user with iat = now_s and exp = now_s + lifetime_s.
 * On success returns 0 and *out_jwt (caller frees with free()). -1 on error. */
int token_issue(const unsigned char *secret, size_t secret_len, int64_t user_id, const char *email,
                const char *username, int64_t now_s, int64_t lifetime_s, char **out_jwt);

/* Verifies signature (HS256 only), "sub" and "exp". Fills *claims on TOKEN_OK. */
token_status_t token_verify(const unsigned char *secret, size_t secret_len, const char *jwt,
                            int64_t now_s, token_claims_t *claims);

#endif
