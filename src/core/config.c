/* Configuration from the environment and an optional .env file.
 *
 * One table (settings[]) describes every variable: its default as text, its
 * help line, how to parse it and its range. Defaults, config_set, config_load
 * and --help all walk that table, so they cannot disagree. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct setting setting_t;
typedef int (*setting_parse_fn)(config_t *cfg, const setting_t *s, const char *value, char *err,
                                size_t errlen);

struct setting {
    const char *name;
    const char *def; /* as text; DEFAULT_CORES: usable cores; NULL: none */
    const char *help;
    setting_parse_fn parse;
    size_t offset;
    long long min, max; /* integers: the range; text: max is the field's size */
};

#define DEFAULT_CORES "cores"

static int parse_int(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_size(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_text(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_database_url(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_redis_url(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_jwt_secret(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_cors(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_log_level(config_t *, const setting_t *, const char *, char *, size_t);
static int parse_log_format(config_t *, const setting_t *, const char *, char *, size_t);

#define OFF(field)          offsetof(config_t, field)
#define TEXT(field)         parse_text, OFF(field), 1, (long long)sizeof(((config_t *)0)->field)
#define INT(field, lo, hi)  parse_int, OFF(field), (lo), (hi)
#define SIZE(field, lo, hi) parse_size, OFF(field), (lo), (hi)
#define SPECIAL(fn, field)  fn, OFF(field), 0, (long long)sizeof(((config_t *)0)->field)

#define DAY_MS  86400000LL
#define ONE_GIB (1LL << 30)

static const setting_t settings[] = {
    {"HOST", "0.0.0.0", "listen address", TEXT(host)},
    {"PORT", "3000", "listen port", INT(port, 1, 65535)},
    {"DATABASE_URL", "sqlite:./data/chat.db",
     "sqlite:<path>, or postgres://user:pass@host:port/db (postgresql:// too)",
     SPECIAL(parse_database_url, database_url)},
    {"JWT_SECRET", "",
     "token signing secret, at least 32 bytes; unset: generated and kept in "
     "DATA_DIR/jwt_secret",
     SPECIAL(parse_jwt_secret, jwt_secret)},
    {"JWT_EXPIRATION_HOURS", "24", "token lifetime in hours",
     INT(jwt_expiration_hours, 1, 24 * 365 * 10)},
    {"CORS_ORIGINS", "*", "\"*\" or a comma-separated list of origins (also checked on WebSocket)",
     SPECIAL(parse_cors, cors_origins)},
    {"LOG_LEVEL", "info", "debug, info, warn, error or off", SPECIAL(parse_log_level, log_level)},
    {"RUST_LOG", NULL, "alias for LOG_LEVEL (LOG_LEVEL wins when both are set)",
     SPECIAL(parse_log_level, log_level)},
    {"LOG_FORMAT", "json", "json or text", SPECIAL(parse_log_format, log_format)},
    {"THREADS", DEFAULT_CORES, "I/O threads (default: cores this process may run on)",
     INT(threads, 1, 256)},
    {"REDIS_URL", "", "redis://host:port; set: enables the multi-node bridge",
     SPECIAL(parse_redis_url, redis_url)},
    {"DATA_DIR", "./data", "directory for the generated JWT secret", TEXT(data_dir)},
    {"MAX_HEADER_BYTES", "16384", "request line + headers; over it: 431",
     SIZE(max_header_bytes, 1024, 1 << 20)},
    {"MAX_BODY_BYTES", "1048576", "JSON request body; over it: 413",
     SIZE(max_body_bytes, 1024, ONE_GIB)},
    {"MAX_MESSAGE_BYTES", "16384", "one inbound WebSocket message; over it: close 1009",
     SIZE(max_message_bytes, 1024, ONE_GIB)},
    {"MAX_UPLOAD_BYTES", "10485760", "one attachment", SIZE(max_upload_bytes, 1, 16 * ONE_GIB)},
    {"MAX_CONNECTIONS", "100000", "open TCP connections; over it new ones are closed at once",
     INT(max_connections, 1, 10000000)},
    {"MAX_CONNECTIONS_PER_IP", "0", "open connections per client IP; 0 = no cap",
     INT(max_connections_per_ip, 0, 10000000)},
    {"HEADER_TIMEOUT_MS", "10000", "time to receive a complete request head",
     INT(header_timeout_ms, 1, DAY_MS)},
    {"IDLE_TIMEOUT_MS", "60000", "idle keep-alive HTTP connection",
     INT(idle_timeout_ms, 1, DAY_MS)},
    {"WS_PING_INTERVAL_MS", "30000", "WebSocket ping interval",
     INT(ws_ping_interval_ms, 1, DAY_MS)},
    {"WS_PING_TIMEOUT_MS", "60000", "close a WebSocket peer silent for this long",
     INT(ws_ping_timeout_ms, 1, DAY_MS)},
    {"WS_OUTBOUND_LIMIT_BYTES", "4194304", "unsent bytes queued for one WebSocket; over it: 1013",
     SIZE(ws_outbound_limit_bytes, 1024, ONE_GIB)},
    {"RATE_LIMIT_AUTH", "30", "/auth/* requests per minute per IP; 0 = off",
     INT(rate_limit_auth, 0, 1000000)},
    {"RATE_LIMIT_MESSAGES", "20", "messages per second per user; 0 = off",
     INT(rate_limit_messages, 0, 1000000)},
    {"SHUTDOWN_TIMEOUT_MS", "10000", "graceful shutdown bound",
     INT(shutdown_timeout_ms, 1, DAY_MS)},
    {"ARGON2_MEMORY_KIB", "19456", "Argon2id memory cost in KiB (no lower value accepted)",
     INT(argon2_memory_kib, 19456, 4194304)},
    {"ARGON2_ITERATIONS", "2", "Argon2id time cost (no lower value accepted)",
     INT(argon2_iterations, 2, 1000)},
    {"ARGON2_CONCURRENCY", DEFAULT_CORES, "password hashes running at once (default: cores)",
     INT(argon2_concurrency, 1, 256)},
    {"ARGON2_IDLE_PRIORITY", "1",
     "1: hash at idle CPU priority (SCHED_IDLE), only on time the I/O threads leave; 0: normal",
     INT(argon2_idle_priority, 0, 1)},
    {"ARGON2_QUEUE_LIMIT", "256", "password hashes waiting before 503",
     INT(argon2_queue_limit, 1, 1000000)},
    {"STORE_READERS", "2", "database reader threads", INT(store_readers, 1, 64)},
    {"STORE_BATCH_MAX", "1024", "most writes in one group commit",
     INT(store_batch_max, 1, 1000000)},
    {"STORE_QUEUE_LIMIT", "65536", "pending database jobs before 503",
     INT(store_queue_limit, 1, 10000000)},
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

size_t config_setting_count(void) {
    return NSETTINGS;
}

const char *config_setting_name(size_t index) {
    return index < NSETTINGS ? settings[index].name : NULL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static void *field(config_t *cfg, const setting_t *s) {
    return (char *)cfg + s->offset;
}

/* Strict decimal: optional '-', digits, nothing else; no overflow. */
static int parse_ll(const char *text, long long *out) {
    const char *p = text[0] == '-' ? text + 1 : text;
    if (!isdigit((unsigned char)*p))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

static int parse_ranged(const setting_t *s, const char *value, long long *out, char *err,
                        size_t errlen) {
    if (parse_ll(value, out) == 0 && *out >= s->min && *out <= s->max)
        return 0;
    set_err(err, errlen, "%s: expected an integer between %lld and %lld, got \"%.64s\"", s->name,
            s->min, s->max, value);
    return -1;
}

static int parse_int(config_t *cfg, const setting_t *s, const char *value, char *err,
                     size_t errlen) {
    long long v;
    if (parse_ranged(s, value, &v, err, errlen) != 0)
        return -1;
    *(int *)field(cfg, s) = (int)v;
    return 0;
}

static int parse_size(config_t *cfg, const setting_t *s, const char *value, char *err,
                      size_t errlen) {
    long long v;
    if (parse_ranged(s, value, &v, err, errlen) != 0)
        return -1;
    *(size_t *)field(cfg, s) = (size_t)v;
    return 0;
}

/* Copies value into the char[max] field; min = 1 means it must not be empty. */
static int copy_text(config_t *cfg, const setting_t *s, const char *value, long long min, char *err,
                     size_t errlen) {
    size_t len = strlen(value);
    if ((long long)len < min) {
        set_err(err, errlen, "%s: must not be empty", s->name);
        return -1;
    }
    if ((long long)len >= s->max) {
        set_err(err, errlen, "%s: longer than %lld bytes", s->name, s->max - 1);
        return -1;
    }
    memcpy(field(cfg, s), value, len + 1);
    return 0;
}

static int parse_text(config_t *cfg, const setting_t *s, const char *value, char *err,
                      size_t errlen) {
    return copy_text(cfg, s, value, s->min, err, errlen);
}

static int has_prefix(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The URL may carry a password, so it is never echoed in the error. */
static int parse_database_url(config_t *cfg, const setting_t *s, const char *value, char *err,
                              size_t errlen) {
    const char *rest = NULL;
    if (has_prefix(value, "sqlite:"))
        rest = value + strlen("sqlite:");
    else if (has_prefix(value, "postgres://"))
        rest = value + strlen("postgres://");
    else if (has_prefix(value, "postgresql://"))
        rest = value + strlen("postgresql://");
    if (rest == NULL || *rest == '\0') {
        set_err(err, errlen, "%s: expected sqlite:<path>, postgres://... or postgresql://...",
                s->name);
        return -1;
    }
    return copy_text(cfg, s, value, 1, err, errlen);
}

static int parse_redis_url(config_t *cfg, const setting_t *s, const char *value, char *err,
                           size_t errlen) {
    if (*value != '\0' && (!has_prefix(value, "redis://") || value[strlen("redis://")] == '\0')) {
        set_err(err, errlen, "%s: expected redis://host:port", s->name);
        return -1;
    }
    return copy_text(cfg, s, value, 0, err, errlen);
}

/* Empty means unset (a secret is then generated); never echoed. */
static int parse_jwt_secret(config_t *cfg, const setting_t *s, const char *value, char *err,
                            size_t errlen) {
    size_t len = strlen(value);
    if (len > 0 && len < 32) {
        set_err(err, errlen, "%s: must be at least 32 bytes, got %zu", s->name, len);
        return -1;
    }
    return copy_text(cfg, s, value, 0, err, errlen);
}

static int parse_log_level(config_t *cfg, const setting_t *s, const char *value, char *err,
                           size_t errlen) {
    log_level_t level;
    if (log_parse_level(value, &level) != 0) {
        set_err(err, errlen, "%s: expected debug, info, warn, error or off, got \"%.64s\"", s->name,
                value);
        return -1;
    }
    cfg->log_level = level;
    return 0;
}

static int parse_log_format(config_t *cfg, const setting_t *s, const char *value, char *err,
                            size_t errlen) {
    if (strcmp(value, "json") == 0) {
        cfg->log_format = LOG_FORMAT_JSON;
    } else if (strcmp(value, "text") == 0) {
        cfg->log_format = LOG_FORMAT_TEXT;
    } else {
        set_err(err, errlen, "%s: expected json or text, got \"%.64s\"", s->name, value);
        return -1;
    }
    return 0;
}

/* scheme://host[:port] with no path, as browsers send in Origin. */
static int origin_valid(const char *o, size_t len) {
    size_t skip;
    if (len > 7 && strncmp(o, "http://", 7) == 0)
        skip = 7;
    else if (len > 8 && strncmp(o, "https://", 8) == 0)
        skip = 8;
    else
        return 0;
    for (size_t i = skip; i < len; i++) {
        unsigned char c = (unsigned char)o[i];
        if (!isalnum(c) && strchr("-.:[]", c) == NULL)
            return 0;
    }
    return 1;
}

static int parse_cors(config_t *cfg, const setting_t *s, const char *value, char *err,
                      size_t errlen) {
    size_t count = 0;
    char origins[CONFIG_MAX_CORS_ORIGINS][sizeof(cfg->cors_origins[0])];
    const char *p = value;
    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] == '*' && p[1 + strspn(p + 1, " \t")] == '\0') {
        cfg->cors_any = 1;
        cfg->cors_origin_count = 0;
        return 0;
    }
    for (;;) {
        size_t len = strcspn(p, ",");
        const char *start = p;
        size_t n = len;
        while (n > 0 && (*start == ' ' || *start == '\t')) {
            start++;
            n--;
        }
        while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\t'))
            n--;
        if (n == 0) {
            set_err(err, errlen, "%s: empty entry in the list", s->name);
            return -1;
        }
        if (count == CONFIG_MAX_CORS_ORIGINS) {
            set_err(err, errlen, "%s: more than %d origins", s->name, CONFIG_MAX_CORS_ORIGINS);
            return -1;
        }
        if (n >= sizeof(origins[0]) || !origin_valid(start, n)) {
            set_err(err, errlen,
                    "%s: expected \"*\" or origins like https://example.com, got "
                    "\"%.*s\"",
                    s->name, (int)(n > 64 ? 64 : n), start);
            return -1;
        }
        memcpy(origins[count], start, n);
        origins[count][n] = '\0';
        count++;
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    cfg->cors_any = 0;
    cfg->cors_origin_count = count;
    memcpy(cfg->cors_origins, origins, count * sizeof(origins[0]));
    return 0;
}

/* The cores this process may run on: under `taskset` or a container's
 * cpuset that is fewer than the machine's online cores, and sizing threads
 * by the machine would make them share the few cores they get. */
static int usable_cores(void) {
    cpu_set_t set;
    long n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) == 0)
        n = CPU_COUNT(&set);
    if (n < 1)
        n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

void config_defaults(config_t *cfg) {
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        if (s->def == NULL)
            continue;
        if (strcmp(s->def, DEFAULT_CORES) == 0) {
            *(int *)field(cfg, s) = usable_cores();
            continue;
        }
        /* The defaults are in range by construction; test_config checks it. */
        (void)s->parse(cfg, s, s->def, NULL, 0);
    }
}

static const setting_t *find_setting(const char *name) {
    for (size_t i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return &settings[i];
    return NULL;
}

int config_set(config_t *cfg, const char *name, const char *value, char *err, size_t errlen) {
    const setting_t *s = find_setting(name);
    if (s == NULL)
        return 1;
    return s->parse(cfg, s, value, err, errlen) == 0 ? 0 : -1;
}

/* ---- .env file ---- */

typedef struct {
    char **keys; /* each "KEY\0VALUE", owned */
    size_t count, cap;
} dotenv_t;

static void dotenv_free(dotenv_t *d) {
    for (size_t i = 0; i < d->count; i++)
        free(d->keys[i]);
    free(d->keys);
}

static int dotenv_add(dotenv_t *d, const char *key, size_t key_len, const char *value,
                      size_t value_len) {
    if (d->count == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **keys = realloc(d->keys, cap * sizeof(*keys));
        if (keys == NULL)
            return -1;
        d->keys = keys;
        d->cap = cap;
    }
    char *entry = malloc(key_len + value_len + 2);
    if (entry == NULL)
        return -1;
    memcpy(entry, key, key_len);
    entry[key_len] = '\0';
    memcpy(entry + key_len + 1, value, value_len);
    entry[key_len + 1 + value_len] = '\0';
    d->keys[d->count++] = entry;
    return 0;
}

/* The last assignment in the file wins, as when the file is sourced. */
static const char *dotenv_get(const dotenv_t *d, const char *key) {
    for (size_t i = d->count; i-- > 0;)
        if (strcmp(d->keys[i], key) == 0)
            return d->keys[i] + strlen(d->keys[i]) + 1;
    return NULL;
}

static const char *skip_blank(const char *p) {
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* Parses one line in place (value unescaped into line itself). Returns 1 with
 * key/value set, 0 for a blank or comment line, -1 when malformed. */
static int dotenv_parse_line(char *line, const char **key, size_t *key_len, const char **value,
                             size_t *value_len) {
    char *p = (char *)skip_blank(line);
    if (*p == '\0' || *p == '#')
        return 0;
    if (strncmp(p, "export", 6) == 0 && (p[6] == ' ' || p[6] == '\t'))
        p = (char *)skip_blank(p + 6);
    if (!isalpha((unsigned char)*p) && *p != '_')
        return -1;
    *key = p;
    while (isalnum((unsigned char)*p) || *p == '_')
        p++;
    *key_len = (size_t)(p - *key);
    p = (char *)skip_blank(p);
    if (*p != '=')
        return -1;
    p = (char *)skip_blank(p + 1);
    if (*p == '"' || *p == '\'') {
        char quote = *p++;
        char *out = p;
        *value = p;
        while (*p != quote) {
            if (*p == '\0')
                return -1;
            if (quote == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\' || p[1] == 'n')) {
                *out++ = p[1] == 'n' ? '\n' : p[1];
                p += 2;
            } else {
                *out++ = *p++;
            }
        }
        *value_len = (size_t)(out - *value);
        p = (char *)skip_blank(p + 1);
        return (*p == '\0' || *p == '#') ? 1 : -1;
    }
    *value = p;
    size_t n = 0;
    while (p[n] != '\0' && !(p[n] == '#' && n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')))
        n++;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    *value_len = n;
    return 1;
}

/* A missing file is not an error: the environment alone is then used. */
static int dotenv_read(dotenv_t *d, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 0;
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r'))
            line[--got] = '\0';
        /* A NUL byte inside a line would silently cut it short. */
        int r = (size_t)got == strlen(line) ? 0 : -1;
        const char *key = NULL, *value = NULL;
        size_t key_len = 0, value_len = 0;
        if (r == 0)
            r = dotenv_parse_line(line, &key, &key_len, &value, &value_len);
        if (r < 0) {
            set_err(err, errlen, "%s:%d: malformed line (expected KEY=VALUE)", path, lineno);
            rc = -1;
            break;
        }
        if (r == 1 && dotenv_add(d, key, key_len, value, value_len) != 0) {
            set_err(err, errlen, "%s: out of memory", path);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        set_err(err, errlen, "%s: read error", path);
        rc = -1;
    }
    free(line);
    fclose(f);
    return rc;
}

int config_load(config_t *cfg, const char *env_path, char *err, size_t errlen) {
    dotenv_t file = {0};
    config_defaults(cfg);
    if (env_path != NULL && dotenv_read(&file, env_path, err, errlen) != 0) {
        dotenv_free(&file);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < NSETTINGS && rc == 0; i++) {
        const setting_t *s = &settings[i];
        const char *value = getenv(s->name);
        if (value == NULL)
            value = dotenv_get(&file, s->name);
        if (value == NULL)
            continue;
        if (strcmp(s->name, "RUST_LOG") == 0 &&
            (getenv("LOG_LEVEL") != NULL || dotenv_get(&file, "LOG_LEVEL") != NULL))
            continue;
        rc = s->parse(cfg, s, value, err, errlen);
    }
    dotenv_free(&file);
    return rc == 0 ? 0 : -1;
}

void config_print_help(FILE *out) {
    int name_w = 0, def_w = 0;
    for (size_t i = 0; i < NSETTINGS; i++) {
        const char *def = settings[i].def ? settings[i].def : "";
        int n = (int)strlen(settings[i].name), d = (int)strlen(def);
        name_w = n > name_w ? n : name_w;
        def_w = d > def_w ? d : def_w;
    }
    def_w = def_w < 7 ? 7 : def_w;
    fprintf(out, "Settings (environment variables, or KEY=VALUE lines in ./.env):\n");
    fprintf(out, "  %-*s  %-*s  %s\n", name_w, "NAME", def_w, "DEFAULT", "MEANING");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const setting_t *s = &settings[i];
        const char *def = s->def == NULL ? "" : s->def[0] == '\0' ? "(unset)" : s->def;
        fprintf(out, "  %-*s  %-*s  %s\n", name_w, s->name, def_w, def, s->help);
    }
}

int config_origin_allowed(const config_t *cfg, const char *origin, size_t len) {
    if (cfg->cors_any)
        return 1;
    for (size_t i = 0; i < cfg->cors_origin_count; i++) {
        const char *o = cfg->cors_origins[i];
        if (strlen(o) == len && memcmp(o, origin, len) == 0)
            return 1;
    }
    return 0;
}
