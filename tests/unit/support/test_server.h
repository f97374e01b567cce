/* The server under test, run in process: server_run on a thread of its own,
 * stopped with SIGTERM as an operator would. Any step that fails fails the
 * running cmocka test. */
#ifndef CHATD_TESTS_TEST_SERVER_H
#define CHATD_TESTS_TEST_SERVER_H

#include "core/config.h"
#include "net/server.h"

#include <pthread.h>

typedef struct {
    config_t cfg;
    server_t *server;
    pthread_t thread;
    int rc; /* server_run's result, read once the thread is joined */
} test_server_t;

/* config_defaults, then what every server test shares: 127.0.0.1 on a free
 * port, two loops, a 2 s shutdown bound and any CORS origin. */
void test_server_config(config_t *cfg);

/* server_start with opts (whose cfg is normally &s->cfg), then server_run on
 * a new thread. */
void test_server_start(test_server_t *s, const server_options_t *opts);

/* server_run must return 0 within 10 s of now; then the server is freed. */
void test_server_join(test_server_t *s);

/* SIGTERM, then test_server_join. */
void test_server_stop(test_server_t *s);

#endif
