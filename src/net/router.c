#include "net/router.h"

#include <stdint.h>
#include <string.h>

/* A path parameter is a positive int64 in canonical decimal: no sign, no
 * leading zero, nothing but digits. "0", "007", "-1" and 2^63 are not ids, so
 * they make the pattern miss (404) rather than reach a handler. */
static int parse_id(const char *s, size_t len, int64_t *out) {
    if (len == 0 || len > 19 || s[0] < '1' || s[0] > '9')
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > (uint64_t)INT64_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* Matches path against pattern segment by segment; a trailing slash is a
 * segment of its own, so "/rooms/" does not match "/rooms". */
static int pattern_match(const char *pattern, const char *path, int64_t *params, size_t *count) {
    size_t n = 0;
    const char *p = pattern;
    const char *s = path;
    for (;;) {
        if (*p != '/' || *s != '/')
            return *p == '\0' && *s == '\0';
        p++;
        s++;
        size_t plen = strcspn(p, "/");
        size_t slen = strcspn(s, "/");
        if (plen > 0 && p[0] == ':') {
            if (n == HTTP_MAX_PATH_PARAMS || parse_id(s, slen, &params[n]) != 0)
                return 0;
            n++;
        } else if (plen != slen || memcmp(p, s, plen) != 0) {
            return 0;
        }
        p += plen;
        s += slen;
        if (*p == '\0' && *s == '\0') {
            *count = n;
            return 1;
        }
    }
}

static void allow_add(char *allow, size_t allow_len, const char *method) {
    size_t used = strlen(allow);
    size_t mlen = strlen(method);
    /* Listed already? Compare whole entries only. */
    for (const char *a = allow; *a != '\0';) {
        size_t alen = strcspn(a, ",");
        if (alen == mlen && memcmp(a, method, mlen) == 0)
            return;
        a += alen;
        while (*a == ',' || *a == ' ')
            a++;
    }
    size_t need = (used > 0 ? 2 : 0) + mlen;
    if (used + need + 1 > allow_len)
        return;
    if (used > 0) {
        memcpy(allow + used, ", ", 2);
        used += 2;
    }
    memcpy(allow + used, method, mlen + 1);
}

route_match_t router_match(const route_t *routes, size_t count, const char *method,
                           const char *path, const route_t **route, int64_t *params,
                           size_t *param_count, char *allow, size_t allow_len) {
    int path_known = 0;
    if (allow_len > 0)
        allow[0] = '\0';
    for (size_t i = 0; i < count; i++) {
        int64_t found[HTTP_MAX_PATH_PARAMS];
        size_t nfound = 0;
        if (!pattern_match(routes[i].pattern, path, found, &nfound))
            continue;
        if (strcmp(routes[i].method, method) == 0) {
            *route = &routes[i];
            memcpy(params, found, nfound * sizeof(found[0]));
            *param_count = nfound;
            return ROUTE_MATCHED;
        }
        path_known = 1;
        if (allow_len > 0)
            allow_add(allow, allow_len, routes[i].method);
    }
    return path_known ? ROUTE_WRONG_METHOD : ROUTE_NO_PATH;
}
