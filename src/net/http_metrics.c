/* Network metrics, shared by every loop: open connections (atomic), requests
 * by route/method/status (a small table under a mutex), one latency
 * histogram (atomic buckets), and the WebSocket counters (atomic). */
#include "net/net_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Routes, methods and statuses are few, but a status or method an
 * application never meant to send must not grow the table without bound. */
#define MAX_SERIES 1024

typedef struct {
    char route[96];
    char method[16];
    int status;
    uint64_t count;
} series_t;

static const double bucket_bounds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                       0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static atomic_int open_connections;
static atomic_int open_websockets;
static _Atomic uint64_t slow_consumers_closed;
static _Atomic uint64_t ws_frames_sent;
static _Atomic uint64_t bucket_counts[NBUCKETS + 1]; /* the last one is +Inf */
static _Atomic uint64_t duration_sum_us;
static _Atomic uint64_t connections_rejected[CONN_REJECT_KINDS];

static pthread_mutex_t series_lock = PTHREAD_MUTEX_INITIALIZER;
static series_t *series;
static size_t series_count;
static size_t series_cap;

int http_metrics_conn_acquire(int max) {
    int now = atomic_fetch_add(&open_connections, 1);
    if (max > 0 && now >= max) {
        atomic_fetch_sub(&open_connections, 1);
        return -1;
    }
    return 0;
}

void http_metrics_conn_release(void) {
    atomic_fetch_sub(&open_connections, 1);
}

void http_metrics_conn_rejected(conn_reject_t reason) {
    atomic_fetch_add_explicit(&connections_rejected[reason], 1, memory_order_relaxed);
}

void ws_metrics_open(int delta) {
    atomic_fetch_add_explicit(&open_websockets, delta, memory_order_relaxed);
}

void ws_metrics_slow_consumer(void) {
    atomic_fetch_add_explicit(&slow_consumers_closed, 1, memory_order_relaxed);
}

void ws_metrics_frames_sent(uint64_t frames) {
    atomic_fetch_add_explicit(&ws_frames_sent, frames, memory_order_relaxed);
}

static void copy_label(char *dst, size_t cap, const char *src) {
    size_t len = strnlen(src, cap - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static series_t *series_find(const char *route, const char *method, int status) {
    for (size_t i = 0; i < series_count; i++) {
        series_t *s = &series[i];
        if (s->status == status && strncmp(s->route, route, sizeof(s->route) - 1) == 0 &&
            strncmp(s->method, method, sizeof(s->method) - 1) == 0)
            return s;
    }
    if (series_count == MAX_SERIES)
        return NULL;
    if (series_count == series_cap) {
        size_t cap = series_cap ? series_cap * 2 : 32;
        series_t *grown = realloc(series, cap * sizeof(*grown));
        if (grown == NULL)
            return NULL;
        series = grown;
        series_cap = cap;
    }
    series_t *s = &series[series_count++];
    copy_label(s->route, sizeof(s->route), route);
    copy_label(s->method, sizeof(s->method), method);
    s->status = status;
    s->count = 0;
    return s;
}

void http_metrics_observe(const char *route, const char *method, int status, double seconds) {
    size_t b = 0;
    while (b < NBUCKETS && seconds > bucket_bounds[b])
        b++;
    atomic_fetch_add(&bucket_counts[b], 1);
    atomic_fetch_add(&duration_sum_us, (uint64_t)(seconds * 1e6));
    pthread_mutex_lock(&series_lock);
    series_t *s = series_find(route, method, status);
    if (s != NULL)
        s->count++;
    pthread_mutex_unlock(&series_lock);
}

/* Label values are route patterns and method names; escape anyway. */
static int append_label(buf_t *out, const char *name, const char *value) {
    int rc = buf_printf(out, "%s=\"", name);
    for (const char *p = value; *p != '\0' && rc == 0; p++) {
        if (*p == '"' || *p == '\\')
            rc = buf_printf(out, "\\%c", *p);
        else if (*p == '\n')
            rc = buf_append_str(out, "\\n");
        else
            rc = buf_append(out, p, 1);
    }
    return rc | buf_append_str(out, "\"");
}

static int render_requests(buf_t *out) {
    int rc = buf_append_str(out, "# HELP chatd_http_requests_total HTTP requests answered, by "
                                 "route pattern, method and status.\n"
                                 "# TYPE chatd_http_requests_total counter\n");
    pthread_mutex_lock(&series_lock);
    for (size_t i = 0; i < series_count && rc == 0; i++) {
        rc |= buf_append_str(out, "chatd_http_requests_total{");
        rc |= append_label(out, "route", series[i].route);
        rc |= buf_append_str(out, ",");
        rc |= append_label(out, "method", series[i].method);
        rc |= buf_printf(out, ",status=\"%d\"} %llu\n", series[i].status,
                         (unsigned long long)series[i].count);
    }
    pthread_mutex_unlock(&series_lock);
    return rc;
}

static int render_histogram(buf_t *out) {
    int rc = buf_append_str(out, "# HELP chatd_http_request_duration_seconds Time from a "
                                 "complete request to its written response.\n"
                                 "# TYPE chatd_http_request_duration_seconds histogram\n");
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= NBUCKETS; b++) {
        cumulative += atomic_load(&bucket_counts[b]);
        if (b < NBUCKETS)
            rc |= buf_printf(out, "chatd_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                             bucket_bounds[b], (unsigned long long)cumulative);
        else
            rc |= buf_printf(out, "chatd_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                             (unsigned long long)cumulative);
    }
    rc |= buf_printf(out, "chatd_http_request_duration_seconds_sum %.6f\n",
                     (double)atomic_load(&duration_sum_us) / 1e6);
    rc |= buf_printf(out, "chatd_http_request_duration_seconds_count %llu\n",
                     (unsigned long long)cumulative);
    return rc;
}

static int render_rejected(buf_t *out) {
    int rc = buf_append_str(out, "# HELP chatd_connections_rejected_total Connections closed at "
                                 "accept, by reason.\n"
                                 "# TYPE chatd_connections_rejected_total counter\n");
    for (int r = 0; r < CONN_REJECT_KINDS; r++)
        rc |= buf_printf(out, "chatd_connections_rejected_total{reason=\"%s\"} %llu\n",
                         net_reject_name((conn_reject_t)r),
                         (unsigned long long)atomic_load(&connections_rejected[r]));
    return rc;
}

int server_metrics_render(buf_t *out) {
    int rc = buf_printf(out,
                        "# HELP chatd_open_connections Open HTTP connections.\n"
                        "# TYPE chatd_open_connections gauge\n"
                        "chatd_open_connections %d\n",
                        atomic_load(&open_connections));
    rc |= render_rejected(out);
    rc |= render_requests(out);
    rc |= render_histogram(out);
    rc |= buf_printf(out,
                     "# HELP chatd_websocket_connections Open WebSocket connections.\n"
                     "# TYPE chatd_websocket_connections gauge\n"
                     "chatd_websocket_connections %d\n"
                     "# HELP chatd_websocket_slow_consumers_closed_total WebSocket connections "
                     "closed with 1013 for exceeding WS_OUTBOUND_LIMIT_BYTES.\n"
                     "# TYPE chatd_websocket_slow_consumers_closed_total counter\n"
                     "chatd_websocket_slow_consumers_closed_total %llu\n"
                     "# HELP chatd_websocket_frames_sent_total WebSocket frames written to "
                     "sockets.\n"
                     "# TYPE chatd_websocket_frames_sent_total counter\n"
                     "chatd_websocket_frames_sent_total %llu\n",
                     atomic_load(&open_websockets),
                     (unsigned long long)atomic_load(&slow_consumers_closed),
                     (unsigned long long)atomic_load(&ws_frames_sent));
    return rc != 0 ? -1 : 0;
}
