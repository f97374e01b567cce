#include "scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static const char FILLER[] = "the quick brown fox jumps over the lazy dog ";

/* Parses decimal digits at *p; returns the count of digits read. */
static size_t parse_u64(const uint8_t *p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    size_t n = 0;
    while (p + n < end && p[n] >= '0' && p[n] <= '9' && n < 20)
        v = v * 10 + (uint64_t)(p[n++] - '0');
    *out = v;
    return n;
}

static size_t parse_hex32(const uint8_t *p, const uint8_t *end, uint32_t *out) {
    uint32_t v = 0;
    size_t n = 0;
    for (; p + n < end && n < 8; n++) {
        uint8_t c = p[n];
        if (c >= '0' && c <= '9')
            v = v << 4 | (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint32_t)(c - 'a' + 10);
        else
            break;
    }
    *out = v;
    return n;
}

/* The number after key in [p, end), or 0 when absent. */
static int64_t field_int(const uint8_t *p, const uint8_t *end, const char *key, size_t klen) {
    const uint8_t *k = memmem(p, (size_t)(end - p), key, klen);
    if (k == NULL)
        return 0;
    uint64_t v;
    return parse_u64(k + klen, end, &v) > 0 ? (int64_t)v : 0;
}

/* Reads "#T<ts>#<run>:<pub>:<seq>#" at p. */
static int parse_marker(const uint8_t *p, const uint8_t *end, uint32_t run, bench_event_t *ev) {
    if (end - p < 2 || p[0] != '#' || p[1] != 'T')
        return 0;
    p += 2;
    uint64_t ts, pub, seq;
    uint32_t tag;
    size_t n = parse_u64(p, end, &ts);
    if (n == 0 || p + n >= end || p[n] != '#')
        return 0;
    p += n + 1;
    n = parse_hex32(p, end, &tag);
    if (n == 0 || tag != run || p + n >= end || p[n] != ':')
        return 0;
    p += n + 1;
    n = parse_u64(p, end, &pub);
    if (n == 0 || pub > UINT32_MAX || p + n >= end || p[n] != ':')
        return 0;
    p += n + 1;
    n = parse_u64(p, end, &seq);
    if (n == 0 || p + n >= end || p[n] != '#')
        return 0;
    ev->ts_ns = ts;
    ev->pub = (uint32_t)pub;
    ev->seq = seq;
    return 1;
}

int scan_marker(const char *content, size_t len, uint32_t run, bench_event_t *ev) {
    const uint8_t *p = (const uint8_t *)content;
    return parse_marker(p, p + len, run, ev);
}

/* Consumes the literal lit at *p. */
static int expect(const uint8_t **p, const uint8_t *end, const char *lit, size_t len) {
    if ((size_t)(end - *p) < len || memcmp(*p, lit, len) != 0)
        return 0;
    *p += len;
    return 1;
}

static int number(const uint8_t **p, const uint8_t *end, int64_t *out) {
    uint64_t v;
    size_t n = parse_u64(*p, end, &v);
    *p += n;
    *out = (int64_t)v;
    return n > 0;
}

/* chatd's own layout, read in one pass: ,"id":N,"sender_id":N,"room_id":N,
 * "content":" (the common case; memmem per key costs several times more).
 * Returns where the content starts, or NULL when the layout differs. */
static const uint8_t *chatd_layout(const uint8_t *p, const uint8_t *end, bench_event_t *ev) {
    int64_t sender;
    if (expect(&p, end, ",\"id\":", 6) && number(&p, end, &ev->id) &&
        expect(&p, end, ",\"sender_id\":", 13) && number(&p, end, &sender) &&
        expect(&p, end, ",\"room_id\":", 11) && number(&p, end, &ev->room_id) &&
        expect(&p, end, ",\"content\":\"", 12))
        return p;
    ev->id = ev->room_id = 0;
    return NULL;
}

event_type_t scan_event(const uint8_t *p, size_t n, uint32_t run, bench_event_t *ev) {
    static const char TYPE[] = "{\"type\":\"";
    const uint8_t *end = p + n;
    memset(ev, 0, sizeof(*ev));
    ev->type = EV_OTHER;
    if (n < sizeof(TYPE) - 1 || memcmp(p, TYPE, sizeof(TYPE) - 1) != 0)
        return EV_OTHER;
    const uint8_t *t = p + sizeof(TYPE) - 1;
    const uint8_t *q = memchr(t, '"', (size_t)(end - t));
    if (q == NULL)
        return EV_OTHER;
    size_t tlen = (size_t)(q - t);
    q++;
    if (tlen == 7 && memcmp(t, "message", 7) == 0) {
        ev->type = EV_MESSAGE;
        const uint8_t *content = chatd_layout(q, end, ev);
        if (content == NULL) { /* another field order: search for each key */
            static const char CONTENT[] = "\"content\":\"";
            ev->id = field_int(q, end, "\"id\":", 5);
            ev->room_id = field_int(q, end, "\"room_id\":", 10);
            content = memmem(q, (size_t)(end - q), CONTENT, sizeof(CONTENT) - 1);
            if (content != NULL)
                content += sizeof(CONTENT) - 1;
        }
        if (content != NULL)
            ev->marked = parse_marker(content, end, run, ev);
    } else if (tlen == 8 && memcmp(t, "presence", 8) == 0) {
        ev->type = EV_PRESENCE;
    } else if (tlen == 5 && memcmp(t, "error", 5) == 0) {
        ev->type = EV_ERROR;
        static const char CODE[] = "\"code\":\"";
        const uint8_t *c = memmem(q, (size_t)(end - q), CODE, sizeof(CODE) - 1);
        if (c != NULL) {
            c += sizeof(CODE) - 1;
            const uint8_t *ce = memchr(c, '"', (size_t)(end - c));
            if (ce != NULL) {
                ev->code = (const char *)c;
                ev->code_len = (size_t)(ce - c);
            }
        }
    }
    return ev->type;
}

size_t scan_format_content(char *out, size_t cap, uint64_t ts_ns, uint32_t run, uint32_t pub,
                           uint64_t seq, size_t pad_to) {
    int n = snprintf(out, cap, "#T%" PRIu64 "#%x:%" PRIu32 ":%" PRIu64 "# ", ts_ns, run, pub, seq);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    size_t len = (size_t)n;
    if (pad_to >= cap)
        return 0;
    while (len < pad_to) {
        size_t take = sizeof(FILLER) - 1;
        if (take > pad_to - len)
            take = pad_to - len;
        memcpy(out + len, FILLER, take);
        len += take;
    }
    /* Content must not end in whitespace-only filler trimmed by anyone. */
    if (len > 0 && out[len - 1] == ' ')
        out[len - 1] = '.';
    out[len] = '\0';
    return len;
}
