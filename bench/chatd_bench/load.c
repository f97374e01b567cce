/* The phases of a run after setup: connect, warm-up, measure, drain (or
 * hold), the publishing schedule, and the per-delivery accounting. */
#include "bench.h"
#include "procstat.h"
#include "scan.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NS_PER_S    1000000000ull
#define TICK_NS     NS_PER_S
#define MAX_WAIT_NS (20 * 1000000ull) /* the loop looks at the clock at least this often */
#define BURST_MAX   4096              /* sends per loop turn, so reading keeps up */

static int in_measured_window(const bench_t *b, uint64_t ts) {
    return ts >= b->t_meas0 && ts < b->t_meas1;
}

void load_on_message(bench_t *b, conn_t *c, const void *event) {
    const bench_event_t *ev = event;
    room_t *room = &b->rooms[c->room];
    uint64_t age = b->now_ns > ev->ts_ns ? b->now_ns - ev->ts_ns : 0;
    if (c->role == ROLE_PUB) {
        if (ev->pub != c->pub)
            return; /* another publisher's message to the same room */
        c->acked++;
        room->acked++;
        room->stored++;
        room->stored_sum += (uint64_t)ev->id;
        room->stored_mix += bench_mix64((uint64_t)ev->id);
        if (ev->seq != c->acked - 1)
            c->ack_gaps++;
        if (in_measured_window(b, ev->ts_ns))
            hist_record(&b->ack_lat, age);
        if (room->nsubs == 0)
            room->last_progress_ns = b->now_ns;
        return;
    }
    b->deliveries++;
    room->deliveries++;
    room->last_progress_ns = b->now_ns;
    if (b->phase == PH_MEASURE)
        b->meas_deliveries++;
    if (in_measured_window(b, ev->ts_ns))
        hist_record(&b->lat, age);
    hist_record(&b->tick_lat, age);
    if (ev->id <= c->last_id || ev->room_id != room->id)
        c->disorder++;
    else
        c->last_id = ev->id;
    c->received++;
    c->id_sum += (uint64_t)ev->id;
    c->id_mix += bench_mix64((uint64_t)ev->id);
}

/* Next open publisher of a room in turn, or NULL. */
static conn_t *room_next_pub(room_t *r) {
    for (int tries = 0; tries < r->npubs; tries++) {
        conn_t *c = r->pubs[r->pub_next++ % r->npubs];
        if (c->state == CS_OPEN)
            return c;
    }
    return NULL;
}

static void count_sent(bench_t *b, room_t *r) {
    r->sent++;
    b->sent++;
    if (b->phase == PH_MEASURE)
        b->meas_sent++;
}

static int64_t room_inflight(const room_t *r) {
    uint64_t done = r->nsubs > 0 ? r->deliveries / (uint64_t)r->nsubs : r->acked;
    return (int64_t)(r->sent - r->forgiven) - (int64_t)done;
}

static void publish_window(bench_t *b) {
    for (int i = 0; i < b->opt.rooms; i++) {
        room_t *r = &b->rooms[i];
        int64_t room_left = b->opt.window - room_inflight(r);
        for (int64_t k = 0; k < room_left; k++) {
            conn_t *c = room_next_pub(r);
            if (c == NULL || client_publish(b, c, bench_now_ns()) != 0)
                break;
            count_sent(b, r);
        }
    }
}

/* Open loop: message k is due at t_load0 + k / rate, whatever came back. */
static uint64_t publish_rate(bench_t *b) {
    double per_ns = b->opt.rate / 1e9;
    uint64_t due = (uint64_t)((double)(b->now_ns - b->t_load0) * per_ns) + 1;
    for (int burst = 0;
         b->pub_next >= 0 && b->sent + b->send_backlog_drops < due && burst < BURST_MAX; burst++) {
        uint64_t k = b->sent + b->send_backlog_drops;
        uint64_t scheduled = b->t_load0 + (uint64_t)((double)k / per_ns);
        uint64_t now = bench_now_ns();
        if (now > scheduled && now - scheduled > b->max_send_lag_ns)
            b->max_send_lag_ns = now - scheduled;
        room_t *r = &b->rooms[b->pub_next % b->opt.rooms];
        b->pub_next++;
        conn_t *c = room_next_pub(r);
        if (c == NULL || client_publish(b, c, now) != 0)
            b->send_backlog_drops++;
        else
            count_sent(b, r);
    }
    uint64_t next = b->t_load0 + (uint64_t)((double)(b->sent + b->send_backlog_drops) / per_ns);
    return next > b->now_ns ? next - b->now_ns : 0;
}

/* A room whose window stays full with nothing arriving has lost messages
 * (or the server stopped): count it and reopen the window. */
static void check_stalls(bench_t *b) {
    uint64_t limit = (uint64_t)(b->opt.stall_timeout * 1e9);
    for (int i = 0; i < b->opt.rooms; i++) {
        room_t *r = &b->rooms[i];
        int64_t inflight = room_inflight(r);
        if (inflight > 0 && b->now_ns - r->last_progress_ns > limit) {
            b->stalls++;
            r->forgiven += (uint64_t)inflight;
            r->last_progress_ns = b->now_ns;
        }
    }
}

static const char *phase_name(int phase) {
    static const char *names[] = {"setup", "connect", "warm-up", "measure", "drain", "done"};
    return names[phase];
}

static void progress(bench_t *b, uint64_t *last_ns, uint64_t *last_sent, uint64_t *last_deliv) {
    if (b->opt.quiet || b->now_ns - *last_ns < TICK_NS)
        return;
    double dt = (double)(b->now_ns - *last_ns) / 1e9;
    double t = (double)(b->now_ns - b->t_connect0) / 1e9;
    fprintf(stderr,
            "chatd-bench: %6.1fs %-7s conns %d/%d  sent %8.0f/s  deliveries %10.0f/s  "
            "p50 %7.2f ms  p99 %7.2f ms  errors %" PRIu64 "  closed %" PRIu64 "\n",
            t, phase_name(b->phase), b->ready - (int)b->closed_by_server, b->nconns,
            (double)(b->sent - *last_sent) / dt, (double)(b->deliveries - *last_deliv) / dt,
            (double)hist_quantile(&b->tick_lat, 0.5) / 1e6,
            (double)hist_quantile(&b->tick_lat, 0.99) / 1e6, b->error_events, b->closed_by_server);
    hist_reset(&b->tick_lat);
    *last_ns = b->now_ns;
    *last_sent = b->sent;
    *last_deliv = b->deliveries;
}

/* Everything sent came back to every open subscriber and publisher. */
static int drained(const bench_t *b) {
    for (int i = 0; i < b->nconns; i++) {
        const conn_t *c = &b->conns[i];
        if (c->state != CS_OPEN)
            continue;
        if (c->role == ROLE_PUB ? c->acked < c->seq_sent : c->received < b->rooms[c->room].stored)
            return 0;
    }
    return 1;
}

/* Opens every connection; returns 0 when at least one is ready. */
static int connect_all(bench_t *b, uint64_t deadline) {
    uint64_t last = b->now_ns = bench_now_ns();
    b->t_connect0 = b->now_ns;
    b->phase = PH_CONNECT;
    while (b->ready + b->connect_failures < b->nconns && b->now_ns < deadline) {
        client_launch_some(b);
        if (client_poll(b, 5 * 1000000ull) != 0)
            return -1;
        if (!b->opt.quiet && b->now_ns - last >= TICK_NS) {
            fprintf(stderr, "chatd-bench: %6.1fs connect ready %d/%d, failed %d\n",
                    (double)(b->now_ns - b->t_connect0) / 1e9, b->ready, b->nconns,
                    b->connect_failures);
            last = b->now_ns;
        }
    }
    for (int i = 0; i < b->nconns; i++) {
        conn_t *c = &b->conns[i];
        if (c->state == CS_CONNECTING || c->state == CS_HANDSHAKE || c->state == CS_IDLE) {
            if (c->state != CS_IDLE)
                b->pending--;
            bench_count_code(b->connect_errors, "timeout", 7);
            b->connect_failures++;
            if (c->fd >= 0)
                close(c->fd);
            free(c->key);
            c->key = NULL;
            c->fd = -1;
            c->state = CS_CLOSED;
        }
    }
    if (b->t_all_ready == 0)
        b->t_all_ready = b->now_ns;
    return b->ready > 0 ? 0 : -1;
}

static uint64_t secs(double s) {
    return (uint64_t)(s * 1e9);
}

static void snapshot_server(bench_t *b, long *rss, double *cpu) {
    if (b->server_pid > 0) {
        *rss = proc_rss_kb(b->server_pid);
        *cpu = proc_cpu_s(b->server_pid);
    }
}

int load_run(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    uint64_t hard =
        bench_now_ns() + secs(o->connect_timeout + o->warmup + o->duration + o->drain + 10);
    b->t_meas0 = b->t_meas1 = UINT64_MAX;
    if (connect_all(b, bench_now_ns() + secs(o->connect_timeout)) != 0) {
        fprintf(stderr, "chatd-bench: no connection could be opened\n");
        return -1;
    }
    b->phase = PH_WARMUP;
    b->t_load0 = b->now_ns;
    for (int i = 0; i < o->rooms; i++)
        b->rooms[i].last_progress_ns = b->now_ns;
    uint64_t phase_end = b->t_load0 + secs(o->warmup), last_tick = b->now_ns, last_sent = 0,
             last_deliv = 0, last_stall_check = b->now_ns;
    hist_reset(&b->tick_lat);
    while (b->phase != PH_DONE) {
        uint64_t wait = MAX_WAIT_NS;
        if (b->phase == PH_WARMUP || b->phase == PH_MEASURE) {
            if (o->rate > 0) {
                uint64_t next = publish_rate(b);
                if (next < wait)
                    wait = next;
            } else {
                publish_window(b);
            }
        }
        if (client_poll(b, wait) != 0)
            return -1;
        if (b->now_ns - last_stall_check > NS_PER_S / 10) {
            last_stall_check = b->now_ns;
            if (o->rate == 0 && b->phase != PH_DRAIN)
                check_stalls(b);
            if (b->phase == PH_DRAIN && drained(b))
                phase_end = b->now_ns;
        }
        if (o->login_storm > 0 && !b->logins_fired && b->phase == PH_MEASURE &&
            b->now_ns >= b->t_meas0 + secs(o->login_at) && login_storm_fire(b) != 0)
            return -1;
        progress(b, &last_tick, &last_sent, &last_deliv);
        if (b->now_ns >= hard) {
            fprintf(stderr, "chatd-bench: hard deadline reached\n");
            break;
        }
        if (b->now_ns < phase_end)
            continue;
        if (b->phase == PH_WARMUP) {
            b->phase = PH_MEASURE;
            b->t_meas0 = b->now_ns;
            phase_end = b->now_ns + secs(o->duration);
            hist_reset(&b->lat);
            hist_reset(&b->ack_lat);
            snapshot_server(b, &b->rss_before_kb, &b->server_cpu0);
            b->client_cpu0 = self_cpu_s();
        } else if (b->phase == PH_MEASURE) {
            b->phase = PH_DRAIN;
            b->t_meas1 = b->now_ns;
            phase_end = b->now_ns + secs(o->drain);
            snapshot_server(b, &b->rss_after_kb, &b->server_cpu1);
            b->client_cpu1 = self_cpu_s();
        } else {
            b->phase = PH_DONE;
        }
    }
    b->t_drain1 = b->now_ns;
    login_storm_join(b);
    if (b->t_meas1 == UINT64_MAX) { /* stopped by the deadline */
        b->t_meas1 = b->now_ns;
        snapshot_server(b, &b->rss_after_kb, &b->server_cpu1);
        b->client_cpu1 = self_cpu_s();
    }
    return 0;
}

int hold_run(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    if (b->server_pid > 0)
        b->rss_before_kb = proc_rss_kb(b->server_pid);
    if (connect_all(b, bench_now_ns() + secs(o->connect_timeout)) != 0) {
        fprintf(stderr, "chatd-bench: no connection could be opened\n");
        return -1;
    }
    b->phase = PH_MEASURE;
    uint64_t end = b->now_ns + secs(o->duration);
    while (b->now_ns < end)
        if (client_poll(b, end - b->now_ns < MAX_WAIT_NS * 10 ? end - b->now_ns
                                                              : MAX_WAIT_NS * 10) != 0)
            return -1;
    if (b->server_pid > 0)
        b->rss_after_kb = proc_rss_kb(b->server_pid);
    b->phase = PH_DONE;
    return 0;
}
