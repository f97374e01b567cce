#include "api/secret.h"

#include "auth/token.h"
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GENERATED_SECRET_BYTES 32

static int read_secret_file(const char *path, unsigned char *secret, size_t cap, size_t *len,
                            char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : (snprintf(err, errlen, "%s: %s", path, strerror(errno)), -1);
    ssize_t n = read(fd, secret, cap);
    close(fd);
    while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    if (n < TOKEN_SECRET_MIN) {
        snprintf(err, errlen, "%s: the secret must be at least %d bytes", path, TOKEN_SECRET_MIN);
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

static int write_secret_file(const char *path, unsigned char *secret, size_t cap, size_t *len,
                             char *err, size_t errlen) {
    unsigned char raw[GENERATED_SECRET_BYTES];
    randombytes_buf(raw, sizeof(raw));
    /* Hex, so an operator can copy the file's content into JWT_SECRET. */
    char hex[GENERATED_SECRET_BYTES * 2 + 1];
    sodium_bin2hex(hex, sizeof(hex), raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    size_t hex_len = strlen(hex);
    int ok = write(fd, hex, hex_len) == (ssize_t)hex_len && fsync(fd) == 0;
    close(fd);
    if (!ok || hex_len > cap) {
        snprintf(err, errlen, "%s: could not write the secret", path);
        unlink(path);
        return -1;
    }
    memcpy(secret, hex, hex_len);
    *len = hex_len;
    sodium_memzero(hex, sizeof(hex));
    log_warn("JWT_SECRET is not set: generated one and stored it; set JWT_SECRET to share "
             "it between nodes",
             LOG_S("path", path));
    return 0;
}

int secret_load(const config_t *cfg, unsigned char *secret, size_t cap, size_t *len, char *err,
                size_t errlen) {
    size_t given = strlen(cfg->jwt_secret);
    if (given > 0) {
        if (given > cap) {
            snprintf(err, errlen, "JWT_SECRET: longer than %zu bytes", cap);
            return -1;
        }
        memcpy(secret, cfg->jwt_secret, given);
        *len = given;
        return 0;
    }
    if (mkdir(cfg->data_dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "DATA_DIR: cannot create %s: %s", cfg->data_dir, strerror(errno));
        return -1;
    }
    char path[600];
    snprintf(path, sizeof(path), "%s/jwt_secret", cfg->data_dir);
    int rc = read_secret_file(path, secret, cap, len, err, errlen);
    if (rc <= 0)
        return rc;
    return write_secret_file(path, secret, cap, len, err, errlen);
}
