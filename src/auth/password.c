/* Argon2id through libsodium. The cost is fixed at password_init; hashes
 * carry their own parameters, so verification follows whatever cost a stored
 * hash was made with. */
#include "auth/password.h"

#include <sodium.h>
#include <string.h>

_Static_assert(PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES, "PASSWORD_HASH_MAX");

static unsigned long long opslimit;
static size_t memlimit;
static char dummy_hash[PASSWORD_HASH_MAX];

int password_init(int memory_kib, int iterations) {
    if (sodium_init() < 0 || memory_kib <= 0 || iterations <= 0)
        return -1;
    opslimit = (unsigned long long)iterations;
    memlimit = (size_t)memory_kib * 1024;
    if (opslimit < crypto_pwhash_OPSLIMIT_MIN || memlimit < crypto_pwhash_MEMLIMIT_MIN)
        return -1;

    unsigned char random_password[32];
    randombytes_buf(random_password, sizeof(random_password));
    int rc = password_hash((const char *)random_password, sizeof(random_password), dummy_hash);
    sodium_memzero(random_password, sizeof(random_password));
    return rc;
}

int password_hash(const char *password, size_t len, char out[PASSWORD_HASH_MAX]) {
    if (password == NULL)
        password = "";
    if (crypto_pwhash_str_alg(out, password, len, opslimit, memlimit,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return -1;
    return 0;
}

int password_verify(const char *hash, const char *password, size_t len) {
    if (hash == NULL || strnlen(hash, PASSWORD_HASH_MAX) == PASSWORD_HASH_MAX)
        return 0;
    if (password == NULL)
        password = "";
    return crypto_pwhash_str_verify(hash, password, len) == 0;
}

const char *password_dummy_hash(void) {
    return dummy_hash;
}
