/* The login storm: many POST /auth/login at once while the load runs, to see
 * whether password hashing starves the server's I/O. Each login blocks on
 * its own thread, so the event loop and its measurements go on untouched. */
#include "bench.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOGIN_STACK (256u << 10)

typedef struct login_s {
    pthread_t thread;
    const bench_t *b;
    int user;
    int started;
    int status;
    uint64_t ns;
} login_t;

static void *login_main(void *arg) {
    login_t *l = arg;
    uint64_t t0 = bench_now_ns();
    l->status = rest_login(l->b, l->user);
    l->ns = bench_now_ns() - t0;
    return NULL;
}

int login_storm_fire(bench_t *b) {
    int n = b->opt.login_storm;
    b->logins = calloc((size_t)n, sizeof(*b->logins));
    if (b->logins == NULL)
        return -1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, LOGIN_STACK);
    for (int i = 0; i < n; i++) {
        login_t *l = &b->logins[i];
        l->b = b;
        l->user = i % b->ntokens;
        l->started = pthread_create(&l->thread, &attr, login_main, l) == 0;
    }
    pthread_attr_destroy(&attr);
    b->logins_fired = 1;
    return 0;
}

void login_storm_join(bench_t *b) {
    if (!b->logins_fired)
        return;
    for (int i = 0; i < b->opt.login_storm; i++) {
        login_t *l = &b->logins[i];
        if (!l->started) {
            b->logins_failed++;
            bench_count_code(b->login_statuses, "no thread", 9);
            continue;
        }
        pthread_join(l->thread, NULL);
        char status[16];
        snprintf(status, sizeof(status), "%d", l->status);
        bench_count_code(b->login_statuses, status, strlen(status));
        if (l->status == 200) {
            b->logins_ok++;
            hist_record(&b->login_lat, l->ns);
        } else {
            b->logins_failed++;
        }
    }
    free(b->logins);
    b->logins = NULL;
    b->logins_fired = 0;
}
