/* Structured logging: one line per event on stderr, JSON or key=value.
 *
 * Thread-safe: each line is formatted into a local buffer and written with a
 * single write(2), so lines from different threads never interleave.
 * Never pass tokens, passwords or Authorization values as fields. */
#ifndef CHATD_CORE_LOG_H
#define CHATD_CORE_LOG_H

#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_OFF } log_level_t;
typedef enum { LOG_FORMAT_JSON = 0, LOG_FORMAT_TEXT } log_format_t;

typedef enum { LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_DBL } log_field_type_t;

typedef struct {
    const char *key;
    log_field_type_t type;
    union {
        const char *s; /* may be NULL: logged as null */
        long long i;
        double d;
    } v;
} log_field_t;

#define LOG_S(k, val) ((log_field_t){.key = (k), .type = LOG_FIELD_STR, .v.s = (val)})
#define LOG_I(k, val) ((log_field_t){.key = (k), .type = LOG_FIELD_INT, .v.i = (long long)(val)})
#define LOG_D(k, val) ((log_field_t){.key = (k), .type = LOG_FIELD_DBL, .v.d = (double)(val)})

void log_configure(log_level_t min_level, log_format_t format);
int log_enabled(log_level_t level);

/* Parses "debug|info|warn|warning|error|off" (case-insensitive; a RUST_LOG
 * style "chatd=debug,tower=info" takes the last level it recognises).
 * Returns 0 and sets *out, or -1 when nothing is recognised. */
int log_parse_level(const char *text, log_level_t *out);

void log_write(log_level_t level, const char *msg, const log_field_t *fields, size_t nfields);

#define LOG_FIELDS_(...)  ((const log_field_t[]){__VA_ARGS__})
#define LOG_NFIELDS_(...) (sizeof(LOG_FIELDS_(__VA_ARGS__)) / sizeof(log_field_t))
/* log_info("message", LOG_S("k", v), LOG_I("n", 3)); at least one field. */
#define log_debug(msg, ...)                                                                        \
    log_write(LOG_DEBUG, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_info(msg, ...)                                                                         \
    log_write(LOG_INFO, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_warn(msg, ...)                                                                         \
    log_write(LOG_WARN, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
#define log_error(msg, ...)                                                                        \
    log_write(LOG_ERROR, msg, LOG_FIELDS_(__VA_ARGS__), LOG_NFIELDS_(__VA_ARGS__))
/* Without fields. */
#define log_info0(msg)  log_write(LOG_INFO, msg, NULL, 0)
#define log_warn0(msg)  log_write(LOG_WARN, msg, NULL, 0)
#define log_error0(msg) log_write(LOG_ERROR, msg, NULL, 0)

#endif
