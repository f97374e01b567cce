/* Configuration: environment variables, optionally from a .env file in the
 * working directory (the real environment wins). The table of settings lives
 * in config.c; `chatd --help` prints it with the defaults. */
#ifndef CHATD_CORE_CONFIG_H
#define CHATD_CORE_CONFIG_H

#include "core/log.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONFIG_MAX_CORS_ORIGINS 32

typedef struct {
    char host[256];
    int port;
    char database_url[1024];
    /* JWT_SECRET as given; empty when unset (main then loads or generates
     * ./data/jwt_secret). Not NUL-safe by design: env values cannot hold NUL. */
    char jwt_secret[512];
    int jwt_expiration_hours;

    /* CORS_ORIGINS: "*" (cors_any = 1) or a comma-separated list. */
    int cors_any;
    size_t cors_origin_count;
    char cors_origins[CONFIG_MAX_CORS_ORIGINS][256];

    log_level_t log_level;
    log_format_t log_format;

    int threads;          /* I/O loops; default: cores in the CPU affinity mask */
    char redis_url[1024]; /* empty: single node */
    char data_dir[512];   /* where jwt_secret is kept; default ./data */

    size_t max_header_bytes;
    size_t max_body_bytes;
    size_t max_message_bytes;
    size_t max_upload_bytes;
    int max_connections;
    int max_connections_per_ip; /* 0 = no cap */
    int header_timeout_ms;
    int idle_timeout_ms;
    int ws_ping_interval_ms;
    int ws_ping_timeout_ms;
    size_t ws_outbound_limit_bytes;
    int rate_limit_auth;     /* per minute per IP, 0 = off */
    int rate_limit_messages; /* per second per user, 0 = off */
    int shutdown_timeout_ms;

    int argon2_memory_kib;
    int argon2_iterations;
    int argon2_concurrency;   /* hashes running at once, process-wide */
    int argon2_queue_limit;   /* waiting hashes before 503 */
    int argon2_idle_priority; /* 1: hashing threads run SCHED_IDLE */

    int store_readers;     /* reader threads (each with its own connection) */
    int store_batch_max;   /* most writes in one group commit */
    int store_queue_limit; /* pending store jobs before 503 */
} config_t;

/* Fills cfg with defaults, then applies the .env file at env_path (NULL: no
 * file; a missing file is fine) and the process environment. On a bad value
 * returns -1 with a one-line message naming the variable in err. */
int config_load(config_t *cfg, const char *env_path, char *err, size_t errlen);

/* Fills cfg with the defaults only. */
void config_defaults(config_t *cfg);

/* Sets one variable by name, as config_load does for each variable it finds.
 * Returns 0, 1 when the name is not a chatd setting (ignored), or -1 with a
 * message in err when the value is bad. */
int config_set(config_t *cfg, const char *name, const char *value, char *err, size_t errlen);

/* The settings' names, in --help order: index 0 .. config_setting_count()-1;
 * NULL past the end. */
size_t config_setting_count(void);
const char *config_setting_name(size_t index);

/* Prints every setting, its default and its meaning (for --help). */
void config_print_help(FILE *out);

/* True when origin is allowed by CORS_ORIGINS (always true for "*"). */
int config_origin_allowed(const config_t *cfg, const char *origin, size_t len);

#endif
