/* chatd-bench: shared state of one run. One thread, one epoll loop; every
 * structure here is touched only by that thread. */
#ifndef CHATD_BENCH_BENCH_H
#define CHATD_BENCH_BENCH_H

#include "hist.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_SOURCES 64
#define BENCH_MAX_CODES   8

typedef struct {
    char host[256];
    int port;
    struct in_addr addr;
    int subs, pubs, rooms, users;
    int64_t *room_ids; /* given with --room-ids (owned), else NULL */
    char *token;       /* --token: one existing token for every connection */
    double rate;       /* messages/s in total; 0: as fast as the window allows */
    int window;        /* messages in flight per room at max rate */
    size_t size;       /* content bytes per message */
    double warmup, duration, drain, connect_timeout, stall_timeout;
    double connect_rate;
    int max_pending;
    struct in_addr sources[BENCH_MAX_SOURCES];
    int source_count;
    pid_t pid;
    int hold, json, quiet, allow_remote, no_verify_api;
    int login_storm; /* concurrent logins fired into the measured window */
    double login_at; /* seconds into the measured window */
} bench_opts_t;

enum { ROLE_SUB, ROLE_PUB };
enum { CS_IDLE, CS_CONNECTING, CS_HANDSHAKE, CS_OPEN, CS_CLOSED };

typedef struct conn {
    int fd;
    uint8_t role;
    uint8_t state;
    uint8_t was_ready;   /* the handshake succeeded at some point */
    uint16_t close_code; /* the server's close code, 0 if none */
    int room;            /* index into bench_t.rooms */
    int user;            /* index into bench_t.tokens */
    uint32_t pub;        /* publisher number (publishers only) */
    int want_out;        /* EPOLLOUT registered */
    /* Unparsed input: a response head or an incomplete frame. Allocated
     * only while something is incomplete. */
    uint8_t *in;
    uint32_t in_len;
    /* A fragmented text message being reassembled (rare; chatd sends whole frames). */
    uint8_t *msg;
    uint32_t msg_len;
    uint64_t skip; /* payload bytes of an oversized frame left to discard */
    /* Output the kernel did not take yet. */
    uint8_t *out;
    uint32_t out_len, out_off, out_cap;
    char *key; /* Sec-WebSocket-Key, during the handshake only */
    uint64_t t_start_ns;
    /* Every marked message id received, as a fingerprint (see verify). */
    int64_t last_id;
    uint64_t received, id_sum, id_mix, disorder;
    /* Publishers: sequence numbers sent and acknowledged by their echo. */
    uint64_t seq_sent, acked, ack_gaps;
} conn_t;

typedef struct {
    int64_t id;
    int nsubs;     /* open subscribers */
    conn_t **pubs; /* this room's publishers (owned array) */
    int npubs, pub_next;
    uint64_t sent, forgiven, deliveries, acked;
    uint64_t last_progress_ns;
    /* Fingerprint of the messages the server stored, from the echoes. */
    uint64_t stored, stored_sum, stored_mix;
    /* The same read back with GET /rooms/:id/messages after the run. */
    int64_t after_id; /* the room's last message before the run */
    int api_checked;
    uint64_t api_stored, api_sum, api_mix;
} room_t;

typedef struct {
    char code[32];
    uint64_t count;
} code_count_t;

enum { PH_SETUP, PH_CONNECT, PH_WARMUP, PH_MEASURE, PH_DRAIN, PH_DONE };

typedef struct {
    bench_opts_t opt;
    uint32_t run;  /* random tag of this run, in every content */
    char **tokens; /* one per user (owned) */
    int ntokens;
    room_t *rooms; /* owned */
    conn_t *conns; /* subscribers first, then publishers (owned) */
    int nconns;
    int epfd;
    int phase;
    uint8_t *rbuf; /* the one read buffer of the loop */
    uint64_t now_ns;

    /* connect phase */
    int launched, ready, pending, connect_failures;
    uint64_t t_connect0, t_all_ready;
    code_count_t connect_errors[BENCH_MAX_CODES];

    /* load */
    uint64_t t_load0, t_meas0, t_meas1, t_drain1;
    uint64_t sent, deliveries, meas_sent, meas_deliveries, foreign, presence, other_events;
    uint64_t oversized, protocol_errors, closed_by_server, send_backlog_drops, stalls;
    uint64_t max_send_lag_ns;
    int pub_next;
    hist_t lat, ack_lat, tick_lat;
    code_count_t errors[BENCH_MAX_CODES];
    code_count_t close_codes[BENCH_MAX_CODES];
    uint64_t error_events;

    /* login storm */
    struct login_s *logins; /* owned; login_storm entries */
    int logins_fired;
    uint64_t logins_ok, logins_failed;
    hist_t login_lat;
    code_count_t login_statuses[BENCH_MAX_CODES];

    /* server and client resources */
    pid_t server_pid;
    long rss_before_kb, rss_after_kb;
    double server_cpu0, server_cpu1, client_cpu0, client_cpu1;
} bench_t;

/* A 64-bit mix of a message id: with the count and the plain sum it makes
 * the fingerprint of a set of ids. */
static inline uint64_t bench_mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Milliseconds are enough for options; everything inside is nanoseconds. */
uint64_t bench_now_ns(void);
void bench_count_code(code_count_t *table, const char *code, size_t len);

/* opts.c: parses argv into b->opt; prints usage and exits on --help or an
 * error. Returns 1 for --selftest, 0 otherwise. */
int opts_parse(bench_opts_t *o, int argc, char **argv);

/* rest.c: registers users (or takes --token) and creates or checks rooms.
 * Returns 0, or -1 after printing why. */
int rest_setup(bench_t *b);
/* Reads back every message of this run in each room through the API and
 * fills the rooms' api_* fingerprints. Returns 0, or -1 after printing why. */
int rest_read_back(bench_t *b);
/* Logs in registered user number user (thread-safe). Returns the HTTP
 * status, or -1 when the server did not answer. */
int rest_login(const bench_t *b, int user);

/* login.c: the login storm, on threads of its own (each login blocks). */
int login_storm_fire(bench_t *b);
void login_storm_join(bench_t *b);

/* client.c: the epoll side. */
int client_init(bench_t *b);
void client_launch_some(bench_t *b);
/* Waits up to timeout_ns for events and handles them. Returns -1 on a fatal error. */
int client_poll(bench_t *b, uint64_t timeout_ns);
/* Sends one marked message from publisher c. Returns 0, or -1 when dropped. */
int client_publish(bench_t *b, conn_t *c, uint64_t ts_ns);
void client_close_all(bench_t *b);
/* Reads once from c and handles what arrived (the loop's handler, exposed
 * for the self-test). */
void client_on_readable(bench_t *b, conn_t *c);

/* load.c: the phases after setup. */
int load_run(bench_t *b);
int hold_run(bench_t *b);
/* Called for each marked message a connection receives. */
void load_on_message(bench_t *b, conn_t *c, const void *event);

/* report.c */
void report_load(bench_t *b);
void report_hold(bench_t *b);

int selftest_run(void);

#endif
