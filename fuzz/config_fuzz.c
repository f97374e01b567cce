/* libFuzzer target: configuration parsing (src/core/config.c).
 *
 * The first byte chooses the way in; the rest is the input:
 *  0: config_set, one call per line. A line starting with a byte below
 *     0x40 names the setting by that byte (an index into the documented
 *     names) and the rest of the line is the value; any other line is
 *     NAME=VALUE as written.
 *  1: config_load of a .env file holding the bytes as they are.
 *  2: config_load of a .env file written from NAME=VALUE pairs (as in 0),
 *     each value quoted and escaped, against a model: the last assignment
 *     of each name applied with config_set (LOG_LEVEL wins over RUST_LOG).
 *     Both must succeed or fail alike, and on success agree to the byte.
 *
 * Checks: nothing crashes; config_set returns 0, 1 (exactly for names
 * that are no setting) or -1 with a message, and a refused value leaves the
 * configuration as it was; a refused DATABASE_URL or JWT_SECRET is never
 * echoed in the message; after every success each value is within its
 * documented range (config.c's table, README "Configuration"). The .env
 * file lives in a memfd, and the environment is cleared of every setting
 * at start, so that only the input speaks. */
#include "core/config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DAY_MS  86400000LL
#define ONE_GIB (1LL << 30)

/* Every setting, from config.c's own table. */
#define NNAMES      config_setting_count()
#define names_at(i) config_setting_name(i)

#define MAX_PAIRS 64

static int env_fd = -1;
static char env_path[64];

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "config_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---- the documented ranges -------------------------------------------- */

static int text_ok(const char *s, size_t cap, int may_be_empty) {
    size_t len = strnlen(s, cap);
    return len < cap && (may_be_empty || len > 0);
}

static int starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void expect_range(const char *name, long long v, long long lo, long long hi) {
    if (v < lo || v > hi) {
        char detail[160];
        snprintf(detail, sizeof(detail), "%s = %lld, outside [%lld, %lld]", name, v, lo, hi);
        fail("value out of its documented range", detail);
    }
}

static int origin_ok(const char *o, size_t cap) {
    size_t len = strnlen(o, cap);
    size_t skip = starts_with(o, "http://") ? 7 : starts_with(o, "https://") ? 8 : 0;
    if (len == cap || skip == 0 || len <= skip)
        return 0;
    for (size_t i = skip; i < len; i++) {
        unsigned char c = (unsigned char)o[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 strchr("-.:[]", c) != NULL;
        if (!ok)
            return 0;
    }
    return 1;
}

static void check_ranges(const config_t *c) {
    if (!text_ok(c->host, sizeof(c->host), 0) || !text_ok(c->data_dir, sizeof(c->data_dir), 0))
        fail("HOST or DATA_DIR empty or unterminated", NULL);
    expect_range("PORT", c->port, 1, 65535);
    const char *url = c->database_url;
    size_t rest = starts_with(url, "sqlite:")         ? 7
                  : starts_with(url, "postgres://")   ? 11
                  : starts_with(url, "postgresql://") ? 13
                                                      : 0;
    if (!text_ok(url, sizeof(c->database_url), 0) || rest == 0 || url[rest] == '\0')
        fail("DATABASE_URL not sqlite:<path> or postgres(ql)://...", NULL);
    size_t secret_len = strnlen(c->jwt_secret, sizeof(c->jwt_secret));
    if (secret_len == sizeof(c->jwt_secret) || (secret_len > 0 && secret_len < 32))
        fail("JWT_SECRET neither unset nor at least 32 bytes", NULL);
    expect_range("JWT_EXPIRATION_HOURS", c->jwt_expiration_hours, 1, 24 * 365 * 10);
    if (c->cors_any != 0 && c->cors_any != 1)
        fail("cors_any not a boolean", NULL);
    if (!c->cors_any) {
        expect_range("CORS_ORIGINS count", (long long)c->cors_origin_count, 1,
                     CONFIG_MAX_CORS_ORIGINS);
        for (size_t i = 0; i < c->cors_origin_count; i++)
            if (!origin_ok(c->cors_origins[i], sizeof(c->cors_origins[i])))
                fail("CORS_ORIGINS holds something that is no origin", c->cors_origins[i]);
    }
    expect_range("LOG_LEVEL", c->log_level, LOG_DEBUG, LOG_OFF);
    expect_range("LOG_FORMAT", c->log_format, LOG_FORMAT_JSON, LOG_FORMAT_TEXT);
    expect_range("THREADS", c->threads, 1, 256);
    if (!text_ok(c->redis_url, sizeof(c->redis_url), 1) ||
        (c->redis_url[0] != '\0' &&
         (!starts_with(c->redis_url, "redis://") || c->redis_url[8] == 0)))
        fail("REDIS_URL neither unset nor redis://...", NULL);
    expect_range("MAX_HEADER_BYTES", (long long)c->max_header_bytes, 1024, 1 << 20);
    expect_range("MAX_BODY_BYTES", (long long)c->max_body_bytes, 1024, ONE_GIB);
    expect_range("MAX_MESSAGE_BYTES", (long long)c->max_message_bytes, 1024, ONE_GIB);
    expect_range("MAX_UPLOAD_BYTES", (long long)c->max_upload_bytes, 1, 16 * ONE_GIB);
    expect_range("MAX_CONNECTIONS", c->max_connections, 1, 10000000);
    expect_range("MAX_CONNECTIONS_PER_IP", c->max_connections_per_ip, 0, 10000000);
    expect_range("HEADER_TIMEOUT_MS", c->header_timeout_ms, 1, DAY_MS);
    expect_range("IDLE_TIMEOUT_MS", c->idle_timeout_ms, 1, DAY_MS);
    expect_range("WS_PING_INTERVAL_MS", c->ws_ping_interval_ms, 1, DAY_MS);
    expect_range("WS_PING_TIMEOUT_MS", c->ws_ping_timeout_ms, 1, DAY_MS);
    expect_range("WS_OUTBOUND_LIMIT_BYTES", (long long)c->ws_outbound_limit_bytes, 1024, ONE_GIB);
    expect_range("RATE_LIMIT_AUTH", c->rate_limit_auth, 0, 1000000);
    expect_range("RATE_LIMIT_MESSAGES", c->rate_limit_messages, 0, 1000000);
    expect_range("SHUTDOWN_TIMEOUT_MS", c->shutdown_timeout_ms, 1, DAY_MS);
    expect_range("ARGON2_MEMORY_KIB", c->argon2_memory_kib, 19456, 4194304);
    expect_range("ARGON2_ITERATIONS", c->argon2_iterations, 2, 1000);
    expect_range("ARGON2_CONCURRENCY", c->argon2_concurrency, 1, 256);
    expect_range("ARGON2_QUEUE_LIMIT", c->argon2_queue_limit, 1, 1000000);
    expect_range("STORE_READERS", c->store_readers, 1, 64);
    expect_range("STORE_BATCH_MAX", c->store_batch_max, 1, 1000000);
    expect_range("STORE_QUEUE_LIMIT", c->store_queue_limit, 1, 10000000);
}

/* ---- the input as NAME=VALUE pairs ------------------------------------ */

typedef struct {
    char name[64];
    char *value; /* NUL-terminated copy, owned */
} pair_t;

/* Splits the input into lines and each line into a pair. Returns the
 * number of pairs (at most MAX_PAIRS). */
static size_t split_pairs(const uint8_t *data, size_t size, pair_t *pairs) {
    size_t count = 0, pos = 0;
    while (pos < size && count < MAX_PAIRS) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t end = nl != NULL ? (size_t)(nl - data) : size;
        const char *line = (const char *)data + pos;
        size_t len = end - pos;
        pair_t *p = &pairs[count];
        const char *value;
        size_t value_len;
        if (len > 0 && (uint8_t)line[0] < 0x40) {
            snprintf(p->name, sizeof(p->name), "%s", names_at((uint8_t)line[0] % NNAMES));
            value = line + 1;
            value_len = len - 1;
        } else {
            const char *eq = memchr(line, '=', len);
            size_t name_len = eq != NULL ? (size_t)(eq - line) : len;
            if (name_len >= sizeof(p->name))
                name_len = sizeof(p->name) - 1;
            memcpy(p->name, line, name_len);
            p->name[name_len] = '\0';
            value = eq != NULL ? eq + 1 : line + len;
            value_len = eq != NULL ? len - (size_t)(eq + 1 - line) : 0;
        }
        p->value = strndup(value, value_len); /* env values end at a NUL */
        if (p->value == NULL)
            abort();
        count++;
        pos = end + 1;
    }
    return count;
}

static void free_pairs(pair_t *pairs, size_t count) {
    for (size_t i = 0; i < count; i++)
        free(pairs[i].value);
}

static int is_setting(const char *name) {
    for (size_t i = 0; i < NNAMES; i++)
        if (strcmp(names_at(i), name) == 0)
            return 1;
    return 0;
}

/* Applies one pair and checks config_set's contract. */
static int set_checked(config_t *cfg, const pair_t *p) {
    config_t before = *cfg;
    char err[256] = "";
    int rc = config_set(cfg, p->name, p->value, err, sizeof(err));
    if (rc == 1) {
        /* New settings may exist that this list does not know yet. */
        if (is_setting(p->name))
            fail("a documented setting was not recognised", p->name);
        if (memcmp(&before, cfg, sizeof(before)) != 0)
            fail("an unknown name changed the configuration", p->name);
        return 1;
    }
    if (rc == 0) {
        check_ranges(cfg);
        return 0;
    }
    if (rc != -1)
        fail("config_set returned something else than -1, 0 or 1", p->name);
    if (err[0] == '\0' || strstr(err, p->name) == NULL)
        fail("a refused value without a message naming the setting", p->name);
    if (memcmp(&before, cfg, sizeof(before)) != 0)
        fail("a refused value changed the configuration", p->name);
    int secret = strcmp(p->name, "DATABASE_URL") == 0 || strcmp(p->name, "JWT_SECRET") == 0;
    if (secret && strlen(p->value) >= 8 && strstr(err, p->value) != NULL) {
        /* Unless the message says it anyway ("postgres://" is in it). */
        config_t scratch;
        char canary_err[256] = "";
        config_defaults(&scratch);
        config_set(&scratch, p->name, "\x01", canary_err, sizeof(canary_err));
        if (strstr(canary_err, p->value) == NULL)
            fail("a secret was echoed in the error message", p->name);
    }
    return -1;
}

static void run_config_set(const uint8_t *data, size_t size) {
    static pair_t pairs[MAX_PAIRS];
    size_t count = split_pairs(data, size, pairs);
    config_t cfg;
    config_defaults(&cfg);
    check_ranges(&cfg);
    for (size_t i = 0; i < count; i++)
        set_checked(&cfg, &pairs[i]);
    free_pairs(pairs, count);
}

/* ---- config_load -------------------------------------------------------- */

static void write_env(const void *data, size_t size) {
    if (ftruncate(env_fd, 0) != 0 || pwrite(env_fd, data, size, 0) != (ssize_t)size)
        abort();
}

static int load_checked(config_t *cfg) {
    char err[512] = "";
    int rc = config_load(cfg, env_path, err, sizeof(err));
    if (rc == 0)
        check_ranges(cfg);
    else if (rc != -1 || err[0] == '\0')
        fail("config_load failed without a message", NULL);
    return rc;
}

static void run_config_load(const uint8_t *data, size_t size) {
    write_env(data, size);
    config_t cfg;
    load_checked(&cfg);
}

/* Writes value quoted for a .env line: only ", \ and newline need
 * escaping. Returns the end of what it wrote. */
static char *put_quoted(char *p, const char *value) {
    *p++ = '"';
    for (; *value != '\0'; value++) {
        if (*value == '"' || *value == '\\' || *value == '\n') {
            *p++ = '\\';
            *p++ = *value == '\n' ? 'n' : *value;
        } else {
            *p++ = *value;
        }
    }
    *p++ = '"';
    return p;
}

/* A .env key is [A-Za-z_][A-Za-z0-9_]*; other names cannot be written. */
static int env_key_ok(const char *name) {
    if (name[0] == '\0' || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (const char *c = name; *c != '\0'; c++)
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_'))
            return 0;
    return 1;
}

static void clear_after_nul(char *s, size_t cap) {
    size_t len = strnlen(s, cap);
    if (len < cap)
        memset(s + len, 0, cap - len);
}

/* Equal values: the bytes after a string's NUL do not count (parse_cors
 * builds the list in an uninitialised array and copies whole entries). */
static int same_values(const config_t *a, const config_t *b) {
    config_t x = *a, y = *b;
    config_t *both[2] = {&x, &y};
    for (int i = 0; i < 2; i++) {
        config_t *c = both[i];
        clear_after_nul(c->host, sizeof(c->host));
        clear_after_nul(c->database_url, sizeof(c->database_url));
        clear_after_nul(c->jwt_secret, sizeof(c->jwt_secret));
        clear_after_nul(c->redis_url, sizeof(c->redis_url));
        clear_after_nul(c->data_dir, sizeof(c->data_dir));
        for (size_t k = 0; k < CONFIG_MAX_CORS_ORIGINS; k++) {
            if (c->cors_any || k >= c->cors_origin_count)
                memset(c->cors_origins[k], 0, sizeof(c->cors_origins[k]));
            else
                clear_after_nul(c->cors_origins[k], sizeof(c->cors_origins[k]));
        }
    }
    return memcmp(&x, &y, sizeof(x)) == 0;
}

static void run_model(const uint8_t *data, size_t size) {
    static pair_t pairs[MAX_PAIRS];
    size_t count = split_pairs(data, size, pairs);
    size_t kept = 0, cap = 1;
    for (size_t i = 0; i < count; i++) {
        if (!env_key_ok(pairs[i].name)) {
            free(pairs[i].value);
            continue;
        }
        pairs[kept++] = pairs[i];
        cap += strlen(pairs[kept - 1].name) + 2 * strlen(pairs[kept - 1].value) + 4;
    }
    char *file = malloc(cap);
    if (file == NULL)
        abort();
    char *end = file;
    for (size_t i = 0; i < kept; i++) {
        end += sprintf(end, "%s=", pairs[i].name);
        end = put_quoted(end, pairs[i].value);
        *end++ = '\n';
    }
    write_env(file, (size_t)(end - file));
    free(file);

    config_t loaded;
    int rc = load_checked(&loaded);

    /* The model: the last value of each name, RUST_LOG only without
     * LOG_LEVEL, each through config_set. */
    config_t model;
    config_defaults(&model);
    int model_rc = 0, has_log_level = 0;
    for (size_t i = 0; i < kept; i++)
        has_log_level |= strcmp(pairs[i].name, "LOG_LEVEL") == 0;
    for (size_t i = 0; i < kept; i++) {
        int last = 1;
        for (size_t j = i + 1; j < kept && last; j++)
            last = strcmp(pairs[i].name, pairs[j].name) != 0;
        if (!last || (has_log_level && strcmp(pairs[i].name, "RUST_LOG") == 0))
            continue;
        if (set_checked(&model, &pairs[i]) == -1)
            model_rc = -1;
    }
    if (rc != model_rc)
        fail(rc == 0 ? "config_load accepted what config_set refuses"
                     : "config_load refused what config_set accepts",
             NULL);
    if (rc == 0 && !same_values(&loaded, &model))
        fail("config_load and config_set disagree on the values", NULL);
    free_pairs(pairs, kept);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    for (size_t i = 0; i < NNAMES; i++)
        unsetenv(names_at(i));
    env_fd = memfd_create("chatd-env", MFD_CLOEXEC);
    if (env_fd < 0)
        abort();
    snprintf(env_path, sizeof(env_path), "/proc/self/fd/%d", env_fd);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        run_config_set(data + 1, size - 1);
        break;
    case 1:
        run_config_load(data + 1, size - 1);
        break;
    default:
        run_model(data + 1, size - 1);
        break;
    }
    return 0;
}
