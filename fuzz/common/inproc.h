/* chatd in process, for the fuzz targets that speak to the server.
 *
 * The real server: main.c's start-up (secret, password hashing, store,
 * chat layer), the route table of src/api/routes.c, SQLite in a temporary
 * directory, THREADS=1. The fuzzing thread drives its one I/O loop
 * (server_loop) and plays the client over a loopback socket, one
 * connection at a time, so that everything an input causes (store jobs,
 * libuv requests, the connection's close and free) is over when the input
 * is: a leak is a leak of that input, and a hang is caught here.
 *
 * Store jobs are counted through the linker (--wrap=store_submit), so that
 * "the server has nothing left to do" can be known instead of guessed.
 * Every wait has a deadline; missing it aborts with what was pending.
 * With CHATD_FUZZ_TRACE set in the environment, what the server sends on
 * each connection is printed (to replay one input and see why). */
#ifndef CHATD_FUZZ_INPROC_H
#define CHATD_FUZZ_INPROC_H

#include "core/buf.h"
#include "core/config.h"

#include <stddef.h>
#include <stdint.h>

/* The users registered at start: ids 1 and 2. */
#define INPROC_EMAIL_1    "fuzz1@example.com"
#define INPROC_USERNAME_1 "fuzz1"
#define INPROC_EMAIL_2    "fuzz2@example.com"
#define INPROC_USERNAME_2 "fuzz2"
/* The signing secret (JWT_SECRET), so that seeds can carry valid tokens. */
#define INPROC_JWT_SECRET "chatd-fuzzing-secret-not-for-production-0123456789"

typedef struct {
    int fd;
    buf_t in; /* everything the server sent */
    int eof;  /* the server closed its side (FIN or reset) */
    int reset;
    int shut; /* FIN sent */
} inproc_client_t;

/* Starts the server once per process, with settings (NAME=VALUE strings,
 * NULL-terminated) applied over the harness's own; registers users 1 and
 * 2. Aborts on any failure. */
void inproc_start(const char *const *settings);
const config_t *inproc_config(void);
/* A token of user 1 or 2, valid for a year; owned by the harness. */
const char *inproc_token(int user);

/* Connects and waits until the server has accepted. */
void inproc_connect(inproc_client_t *c);
/* Sends every byte (unless the server closes first), running the server
 * and reading its answers meanwhile. */
void inproc_send(inproc_client_t *c, const void *data, size_t len);
/* Sends data in pieces (1-8), cut at points derived from seed, letting the
 * server read and act on each (inproc_settle) before the next: the same
 * bytes in several reads. */
void inproc_send_pieces(inproc_client_t *c, const void *data, size_t len, int pieces,
                        uint64_t seed);
/* A hash of data (FNV-1a), to derive such choices from an input. */
uint64_t inproc_hash(const void *data, size_t len);
/* Runs the server until it has nothing left to do for now: every byte sent
 * read, no store job or libuv request pending, nothing unsent, nothing more
 * arriving. */
void inproc_settle(inproc_client_t *c);
/* Sends FIN and runs the server until it has closed the connection and
 * released it, and no job of it is left. Closes the socket; c->in stays
 * until inproc_client_free. */
void inproc_finish(inproc_client_t *c);
void inproc_client_free(inproc_client_t *c);

#endif
