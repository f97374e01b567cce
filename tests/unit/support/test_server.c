#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_server.h"
#include "net_client.h"

#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

void test_server_config(config_t *cfg) {
    config_defaults(cfg);
    snprintf(cfg->host, sizeof(cfg->host), "127.0.0.1");
    cfg->port = free_port();
    cfg->threads = 2;
    cfg->shutdown_timeout_ms = 2000;
    cfg->cors_any = 1;
}

static void *run_server(void *arg) {
    test_server_t *s = arg;
    s->rc = server_run(s->server);
    return NULL;
}

void test_server_start(test_server_t *s, const server_options_t *opts) {
    char err[256] = "";
    if (server_start(&s->server, opts, err, sizeof(err)) != 0)
        fail_msg("server_start: %s", err);
    s->rc = -99;
    assert_int_equal(pthread_create(&s->thread, NULL, run_server, s), 0);
}

void test_server_join(test_server_t *s) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    assert_int_equal(pthread_timedjoin_np(s->thread, NULL, &until), 0);
    assert_int_equal(s->rc, 0);
    server_free(s->server);
    s->server = NULL;
}

void test_server_stop(test_server_t *s) {
    assert_int_equal(kill(getpid(), SIGTERM), 0);
    test_server_join(s);
}
