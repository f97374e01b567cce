/* The verdict of a run: loss accounting and the final table or JSON. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint64_t expected;   /* stored messages x subscribers of their room */
    uint64_t received;   /* marked messages received by subscribers, whole run */
    uint64_t missing;    /* expected but not received */
    uint64_t unexpected; /* received but not among the stored (acknowledged) ones */
    uint64_t disorder;   /* ids not above the previous one: duplicates or reordering */
    uint64_t incomplete; /* subscribers whose set of ids differs from their room's */
    uint64_t stored, unacked, ack_gaps;
    int read_back;          /* stored ids read back through the API */
    uint64_t echo_mismatch; /* rooms where echoes and the API disagree */
} verdict_t;

typedef struct {
    uint64_t count, sum, mix;
} ids_t;

/* What the room stored: read back through the API when that was done,
 * otherwise as the publishers' echoes tell it. */
static ids_t room_ids(const room_t *r) {
    if (r->api_checked)
        return (ids_t){r->api_stored, r->api_sum, r->api_mix};
    return (ids_t){r->stored, r->stored_sum, r->stored_mix};
}

/* Every subscriber must have received exactly the ids stored in its room:
 * same count, same sum, same sum of mixed ids, each above the one before.
 * Closed subscribers count too: what they missed is lost. */
static void verify(const bench_t *b, verdict_t *v) {
    memset(v, 0, sizeof(*v));
    v->read_back = b->opt.rooms > 0;
    for (int i = 0; i < b->opt.rooms; i++) {
        const room_t *r = &b->rooms[i];
        v->stored += room_ids(r).count;
        v->read_back &= r->api_checked;
        if (r->api_checked && (r->api_stored != r->stored || r->api_sum != r->stored_sum))
            v->echo_mismatch++;
    }
    for (int i = 0; i < b->nconns; i++) {
        const conn_t *c = &b->conns[i];
        ids_t want = room_ids(&b->rooms[c->room]);
        if (c->role == ROLE_PUB) {
            v->unacked += c->seq_sent - c->acked;
            v->ack_gaps += c->ack_gaps;
            continue;
        }
        if (!c->was_ready)
            continue;
        v->expected += want.count;
        v->received += c->received;
        v->disorder += c->disorder;
        uint64_t distinct = c->received - c->disorder;
        if (distinct != want.count || c->id_sum != want.sum || c->id_mix != want.mix ||
            c->disorder != 0) {
            v->incomplete++;
            if (distinct < want.count)
                v->missing += want.count - distinct;
            else if (distinct > want.count)
                v->unexpected += distinct - want.count;
            else
                v->unexpected++; /* same count, other ids */
        }
    }
}

static double ms(uint64_t ns) {
    return (double)ns / 1e6;
}

static void print_codes(FILE *out, const char *label, const code_count_t *t, int json) {
    int first = 1;
    if (json)
        fprintf(out, ",\"%s\":{", label);
    for (int i = 0; i < BENCH_MAX_CODES && t[i].count; i++) {
        if (json)
            fprintf(out, "%s\"%s\":%" PRIu64, first ? "" : ",", t[i].code, t[i].count);
        else
            fprintf(out, "%s%s x%" PRIu64, first ? " (" : ", ", t[i].code, t[i].count);
        first = 0;
    }
    fputs(json ? "}" : (first ? "" : ")"), out);
}

static double cpu_pct(double c0, double c1, double secs) {
    return secs > 0 && c0 >= 0 && c1 >= c0 ? 100.0 * (c1 - c0) / secs : -1;
}

void report_load(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    verdict_t v;
    verify(b, &v);
    double meas = (double)(b->t_meas1 - b->t_meas0) / 1e9;
    double connect_s = (double)(b->t_all_ready - b->t_connect0) / 1e9;
    double dps = meas > 0 ? (double)b->meas_deliveries / meas : 0;
    double sps = meas > 0 ? (double)b->meas_sent / meas : 0;
    double scpu = b->server_pid > 0 ? cpu_pct(b->server_cpu0, b->server_cpu1, meas) : -1;
    double ccpu = cpu_pct(b->client_cpu0, b->client_cpu1, meas);
    const hist_t *h = &b->lat, *a = &b->ack_lat;
    if (o->json) {
        printf("{\"mode\":\"load\",\"subs\":%d,\"pubs\":%d,\"rooms\":%d,\"users\":%d,"
               "\"rate\":%g,\"window\":%d,\"size\":%zu,\"warmup_s\":%g,\"duration_s\":%g,"
               "\"measured_s\":%.3f,\"conns\":%d,\"connect_failures\":%d,\"connect_s\":%.3f,"
               "\"sent\":%" PRIu64 ",\"sent_per_s\":%.0f,\"deliveries\":%" PRIu64
               ",\"deliveries_per_s\":%.0f,",
               o->subs, o->pubs, o->rooms, b->ntokens, o->rate, o->window, o->size, o->warmup,
               o->duration, meas, b->ready, b->connect_failures, connect_s, b->meas_sent, sps,
               b->meas_deliveries, dps);
        printf("\"latency_samples\":%" PRIu64 ",\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
               "\"max_us\":%.1f,\"ack_p50_us\":%.1f,\"ack_p99_us\":%.1f,\"ack_max_us\":%.1f,",
               h->count, ms(hist_quantile(h, 0.5)) * 1e3, ms(hist_quantile(h, 0.99)) * 1e3,
               ms(hist_quantile(h, 0.999)) * 1e3, ms(h->max) * 1e3, ms(hist_quantile(a, 0.5)) * 1e3,
               ms(hist_quantile(a, 0.99)) * 1e3, ms(a->max) * 1e3);
        printf("\"stored_read_back\":%s,\"echo_mismatch_rooms\":%" PRIu64 ",",
               v.read_back ? "true" : "false", v.echo_mismatch);
        printf("\"total_sent\":%" PRIu64 ",\"stored\":%" PRIu64 ",\"unacked\":%" PRIu64
               ",\"ack_gaps\":%" PRIu64 ",\"expected_deliveries\":%" PRIu64
               ",\"total_deliveries\":%" PRIu64 ",\"missing\":%" PRIu64 ",\"unexpected\":%" PRIu64
               ",\"duplicates_or_reordered\":%" PRIu64 ",\"incomplete_subs\":%" PRIu64
               ",\"error_events\":%" PRIu64 ",\"closed_by_server\":%" PRIu64
               ",\"protocol_errors\":%" PRIu64 ",\"oversized_frames\":%" PRIu64
               ",\"foreign_messages\":%" PRIu64 ",\"presence_events\":%" PRIu64
               ",\"stalls\":%" PRIu64 ",\"send_drops\":%" PRIu64 ",\"max_send_lag_us\":%.1f,",
               b->sent, v.stored, v.unacked, v.ack_gaps, v.expected, v.received, v.missing,
               v.unexpected, v.disorder, v.incomplete, b->error_events, b->closed_by_server,
               b->protocol_errors, b->oversized, b->foreign, b->presence, b->stalls,
               b->send_backlog_drops, ms(b->max_send_lag_ns) * 1e3);
        printf("\"server_pid\":%d,\"server_cpu_pct\":%.1f,\"server_rss_start_kb\":%ld,"
               "\"server_rss_end_kb\":%ld,\"client_cpu_pct\":%.1f",
               (int)b->server_pid, scpu, b->rss_before_kb, b->rss_after_kb, ccpu);
        if (o->login_storm > 0) {
            printf(",\"login_storm\":%d,\"logins_ok\":%" PRIu64 ",\"logins_failed\":%" PRIu64
                   ",\"login_p50_us\":%.1f,\"login_p99_us\":%.1f,\"login_max_us\":%.1f",
                   o->login_storm, b->logins_ok, b->logins_failed,
                   ms(hist_quantile(&b->login_lat, 0.5)) * 1e3,
                   ms(hist_quantile(&b->login_lat, 0.99)) * 1e3, ms(b->login_lat.max) * 1e3);
            print_codes(stdout, "login_statuses", b->login_statuses, 1);
        }
        print_codes(stdout, "errors_by_code", b->errors, 1);
        print_codes(stdout, "close_codes", b->close_codes, 1);
        print_codes(stdout, "connect_errors", b->connect_errors, 1);
        printf("}\n");
        return;
    }
    printf("chatd-bench: %d room(s), %d subscriber(s), %d publisher(s), %d user(s), ", o->rooms,
           o->subs, o->pubs, b->ntokens);
    if (o->rate > 0)
        printf("%g msgs/s open loop", o->rate);
    else
        printf("max rate, window %d per room", o->window);
    printf(", %zu-byte content\n", o->size);
    printf("  connections   %d ready in %.2f s, %d failed", b->ready, connect_s,
           b->connect_failures);
    print_codes(stdout, "", b->connect_errors, 0);
    printf("\n  measured      %.2f s (after %g s warm-up)\n", meas, o->warmup);
    printf("  sent          %" PRIu64 " msgs, %.0f/s\n", b->meas_sent, sps);
    printf("  deliveries    %" PRIu64 ", %.0f/s\n", b->meas_deliveries, dps);
    printf("  latency       p50 %.2f ms  p99 %.2f ms  p99.9 %.2f ms  max %.2f ms  (%" PRIu64
           " samples)\n",
           ms(hist_quantile(h, 0.5)), ms(hist_quantile(h, 0.99)), ms(hist_quantile(h, 0.999)),
           ms(h->max), h->count);
    printf("  ack latency   p50 %.2f ms  p99 %.2f ms  max %.2f ms (publisher's own echo)\n",
           ms(hist_quantile(a, 0.5)), ms(hist_quantile(a, 0.99)), ms(a->max));
    printf("  whole run     %" PRIu64 " sent, %" PRIu64 " stored (%s), %" PRIu64
           " unacknowledged; %" PRIu64 " of %" PRIu64 " deliveries\n",
           b->sent, v.stored, v.read_back ? "read back through the API" : "from the echoes",
           v.unacked, v.received, v.expected);
    if (v.echo_mismatch)
        printf("  echoes        in %" PRIu64 " room(s) the publishers' echoes do not match what "
               "was stored\n",
               v.echo_mismatch);
    printf("  loss          %" PRIu64 " missing, %" PRIu64 " unexpected, %" PRIu64
           " duplicate or out of order; %" PRIu64 " subscriber(s) incomplete%s\n",
           v.missing, v.unexpected, v.disorder, v.incomplete,
           v.incomplete == 0 && v.unacked == 0 ? " (none lost)" : "");
    printf("  errors        %" PRIu64 " error events", b->error_events);
    print_codes(stdout, "", b->errors, 0);
    printf(", %" PRIu64 " closed by server", b->closed_by_server);
    print_codes(stdout, "", b->close_codes, 0);
    printf(", %" PRIu64 " stalls, %" PRIu64 " send drops\n", b->stalls, b->send_backlog_drops);
    if (o->login_storm > 0) {
        printf("  login storm   %d logins %g s into the window: %" PRIu64 " ok, %" PRIu64 " failed",
               o->login_storm, o->login_at, b->logins_ok, b->logins_failed);
        print_codes(stdout, "", b->login_statuses, 0);
        printf("; p50 %.0f ms  p99 %.0f ms  max %.0f ms\n", ms(hist_quantile(&b->login_lat, 0.5)),
               ms(hist_quantile(&b->login_lat, 0.99)), ms(b->login_lat.max));
    }
    if (b->server_pid > 0)
        printf("  server        pid %d: CPU %.0f%%, RSS %.1f -> %.1f MiB\n", (int)b->server_pid,
               scpu, (double)b->rss_before_kb / 1024, (double)b->rss_after_kb / 1024);
    else
        printf("  server        not on this host (or not visible): no CPU or RSS\n");
    printf("  client        CPU %.0f%% of one core%s\n", ccpu,
           ccpu > 90 ? " (the client may be the limit)" : "");
}

void report_hold(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    double connect_s = (double)(b->t_all_ready - b->t_connect0) / 1e9;
    long delta = b->rss_after_kb - b->rss_before_kb;
    double per_conn = b->ready > 0 && b->server_pid > 0 ? (double)delta * 1024 / b->ready : -1;
    if (o->json) {
        printf("{\"mode\":\"hold\",\"subs\":%d,\"conns\":%d,\"connect_failures\":%d,"
               "\"connect_s\":%.3f,\"held_s\":%g,\"closed_by_server\":%" PRIu64
               ",\"server_pid\":%d,\"server_rss_before_kb\":%ld,\"server_rss_after_kb\":%ld,"
               "\"bytes_per_conn\":%.0f",
               o->subs, b->ready, b->connect_failures, connect_s, o->duration, b->closed_by_server,
               (int)b->server_pid, b->rss_before_kb, b->rss_after_kb, per_conn);
        print_codes(stdout, "connect_errors", b->connect_errors, 1);
        printf("}\n");
        return;
    }
    printf("chatd-bench: hold %d idle connection(s) for %g s, %d user(s)\n", o->subs, o->duration,
           b->ntokens);
    printf("  connections   %d ready in %.2f s, %d failed", b->ready, connect_s,
           b->connect_failures);
    print_codes(stdout, "", b->connect_errors, 0);
    printf(", %" PRIu64 " closed by server\n", b->closed_by_server);
    if (b->server_pid > 0) {
        printf("  server RSS    %.1f MiB before, %.1f MiB held: %.0f bytes per connection\n",
               (double)b->rss_before_kb / 1024, (double)b->rss_after_kb / 1024, per_conn);
        printf("                (user-space memory only; kernel socket buffers are not in RSS)\n");
    } else {
        printf("  server        not on this host (or not visible): no RSS\n");
    }
}
