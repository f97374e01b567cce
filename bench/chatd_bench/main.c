/* chatd-bench: how many users will this box carry? See --help. */
#include "bench.h"
#include "procstat.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_count_code(code_count_t *table, const char *code, size_t len) {
    if (len >= sizeof(table[0].code))
        len = sizeof(table[0].code) - 1;
    for (int i = 0; i < BENCH_MAX_CODES; i++) {
        if (table[i].count == 0) {
            memcpy(table[i].code, code, len);
            table[i].code[len] = '\0';
            for (size_t k = 0; k < len; k++) /* codes end up in JSON */
                if (table[i].code[k] == '"' || table[i].code[k] == '\\' ||
                    (unsigned char)table[i].code[k] < 0x20)
                    table[i].code[k] = '?';
        }
        if (strncmp(table[i].code, code, len) == 0 && table[i].code[len] == '\0') {
            table[i].count++;
            return;
        }
    }
    table[BENCH_MAX_CODES - 1].count++; /* the last row also takes the rest */
}

/* Subscribers first, spread over the rooms; then publishers, likewise. With
 * enough users each publisher has its own and the subscribers share the rest. */
static int make_conns(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    b->nconns = o->subs + o->pubs;
    b->conns = calloc((size_t)b->nconns, sizeof(*b->conns));
    if (b->conns == NULL)
        return -1;
    int own = b->ntokens > o->pubs ? o->pubs : 0; /* users reserved for publishers */
    int shared = b->ntokens - own;
    for (int i = 0; i < b->nconns; i++) {
        conn_t *c = &b->conns[i];
        c->fd = -1;
        if (i < o->subs) {
            c->role = ROLE_SUB;
            c->room = i % o->rooms;
            c->user = own + i % shared;
        } else {
            int p = i - o->subs;
            c->role = ROLE_PUB;
            c->pub = (uint32_t)p;
            c->room = p % o->rooms;
            c->user = own ? p : p % b->ntokens;
            room_t *r = &b->rooms[c->room];
            conn_t **grown = realloc(r->pubs, (size_t)(r->npubs + 1) * sizeof(*grown));
            if (grown == NULL)
                return -1;
            r->pubs = grown;
            r->pubs[r->npubs++] = c;
        }
    }
    return 0;
}

static void cleanup(bench_t *b) {
    client_close_all(b);
    for (int i = 0; i < b->ntokens; i++)
        free(b->tokens[i]);
    free(b->tokens);
    if (b->rooms)
        for (int i = 0; i < b->opt.rooms; i++)
            free(b->rooms[i].pubs);
    free(b->rooms);
    free(b->conns);
    free(b->opt.room_ids);
}

int main(int argc, char **argv) {
    static bench_t bench;
    bench_t *b = &bench;
    b->epfd = -1;
    if (opts_parse(&b->opt, argc, argv) == 1)
        return selftest_run() == 0 ? 0 : 1;
    signal(SIGPIPE, SIG_IGN);
    const bench_opts_t *o = &b->opt;
    /* The backstop behind the loop's own deadline: SIGALRM ends the process. */
    alarm((unsigned)(o->connect_timeout + o->warmup + o->duration + o->drain + 120 +
                     (o->users * 0.5)));
    if (getrandom(&b->run, sizeof(b->run), 0) != (ssize_t)sizeof(b->run))
        b->run = (uint32_t)bench_now_ns();
    b->server_pid = o->pid > 0 ? o->pid : proc_find_listener(o->port);
    if (o->pid <= 0 && (ntohl(o->addr.s_addr) >> 24) != 127)
        b->server_pid = -1;
    int rc = 1;
    if (rest_setup(b) != 0 || make_conns(b) != 0 || client_init(b) != 0)
        goto out;
    if (o->hold ? hold_run(b) : load_run(b))
        goto out;
    if (!o->hold && !o->no_verify_api) {
        if (!o->quiet)
            fprintf(stderr, "chatd-bench: reading the stored messages back\n");
        if (rest_read_back(b) != 0)
            fprintf(stderr, "chatd-bench: could not read the messages back; checking against "
                            "the echoes only\n");
    }
    if (o->hold)
        report_hold(b);
    else
        report_load(b);
    fflush(stdout);
    rc = 0;
out:
    cleanup(b);
    return rc;
}
