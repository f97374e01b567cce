#include "core/log.h"

#include "core/buf.h"
#include "core/timeutil.h"

#include <ctype.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static _Atomic int log_min_level = LOG_INFO;
static _Atomic int log_format = LOG_FORMAT_JSON;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_configure(log_level_t min_level, log_format_t format) {
    log_min_level = (int)min_level;
    log_format = (int)format;
}

int log_enabled(log_level_t level) {
    return (int)level >= log_min_level && level != LOG_OFF;
}

static int level_from_word(const char *word, size_t len, log_level_t *out) {
    static const struct {
        const char *name;
        log_level_t level;
    } words[] = {{"trace", LOG_DEBUG}, {"debug", LOG_DEBUG},  {"info", LOG_INFO},
                 {"warn", LOG_WARN},   {"warning", LOG_WARN}, {"error", LOG_ERROR},
                 {"off", LOG_OFF}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].name) == len && strncasecmp(words[i].name, word, len) == 0) {
            *out = words[i].level;
            return 0;
        }
    }
    return -1;
}

int log_parse_level(const char *text, log_level_t *out) {
    int found = -1;
    const char *p = text;
    while (*p != '\0') {
        size_t len = strcspn(p, ",");
        const char *word = p;
        size_t word_len = len;
        const char *eq = memchr(p, '=', len);
        if (eq != NULL) {
            word = eq + 1;
            word_len = len - (size_t)(word - p);
        }
        while (word_len > 0 && isspace((unsigned char)*word)) {
            word++;
            word_len--;
        }
        while (word_len > 0 && isspace((unsigned char)word[word_len - 1]))
            word_len--;
        if (level_from_word(word, word_len, out) == 0)
            found = 0;
        p += len;
        if (*p == ',')
            p++;
    }
    return found;
}

static void append_text_value(buf_t *line, const char *s) {
    if (s[0] != '\0' && strpbrk(s, " \"=\\\n\r\t") == NULL)
        buf_append_str(line, s);
    else
        buf_append_json_string(line, s, strlen(s));
}

void log_write(log_level_t level, const char *msg, const log_field_t *fields, size_t nfields) {
    if (!log_enabled(level))
        return;
    char ts[RFC3339_MS_LEN];
    time_format_rfc3339_ms(time_wall_ms(), ts);
    buf_t line = BUF_INIT;
    int json = log_format == LOG_FORMAT_JSON;
    if (json) {
        buf_printf(&line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, level_names[level]);
        buf_append_json_string(&line, msg, strlen(msg));
    } else {
        buf_printf(&line, "ts=%s level=%s msg=", ts, level_names[level]);
        append_text_value(&line, msg);
    }
    for (size_t i = 0; i < nfields; i++) {
        const log_field_t *f = &fields[i];
        if (json) {
            buf_append_str(&line, ",");
            buf_append_json_string(&line, f->key, strlen(f->key));
            buf_append_str(&line, ":");
        } else {
            buf_printf(&line, " %s=", f->key);
        }
        switch (f->type) {
        case LOG_FIELD_STR:
            if (f->v.s == NULL)
                buf_append_str(&line, "null");
            else if (json)
                buf_append_json_string(&line, f->v.s, strlen(f->v.s));
            else
                append_text_value(&line, f->v.s);
            break;
        case LOG_FIELD_INT:
            buf_printf(&line, "%lld", f->v.i);
            break;
        case LOG_FIELD_DBL:
            buf_printf(&line, "%.3f", f->v.d);
            break;
        }
    }
    buf_append_str(&line, json ? "}\n" : "\n");
    if (line.data != NULL) {
        ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
        (void)ignored;
    }
    buf_free(&line);
}
