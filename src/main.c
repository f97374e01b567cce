/* chatd: start-up, the command line, and the order of shutdown.
 *
 *   chatd            serve (settings from the environment or ./.env)
 *   chatd migrate    apply database migrations and exit
 *   chatd --help     list every setting with its default
 *   chatd --version  print the version */
#include "api/app.h"
#include "api/routes.h"
#include "api/secret.h"
#include "auth/crypto_jobs.h"
#include "auth/password.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "net/server.h"
#include "store/store.h"

#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#ifndef CHATD_VERSION
#define CHATD_VERSION "0.0.0"
#endif

static void print_usage(FILE *out) {
    fprintf(out, "usage: chatd [migrate | --help | --version]\n\n"
                 "chatd is a realtime chat backend: REST API, JWT auth, WebSocket chat,\n"
                 "SQLite or PostgreSQL storage. Settings come from the environment or a\n"
                 ".env file in the working directory (the environment wins):\n\n");
    config_print_help(out);
}

/* Creates the directory of a sqlite: DATABASE_URL (one level, like ./data),
 * so `make run` works from a fresh clone. Returns 0 or -1 with err. */
static int prepare_sqlite_dir(const config_t *cfg, char *err, size_t errlen) {
    if (strncmp(cfg->database_url, "sqlite:", 7) != 0)
        return 0;
    char dir[sizeof(cfg->database_url)];
    snprintf(dir, sizeof(dir), "%s", cfg->database_url + 7);
    char *slash = strrchr(dir, '/');
    if (slash == NULL || slash == dir)
        return 0;
    *slash = '\0';
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "DATABASE_URL: cannot create directory %.200s: %s", dir,
                 strerror(errno));
        return -1;
    }
    return 0;
}

static int serve(const config_t *cfg) {
    char err[512] = "";
    app_t app = {.cfg = cfg, .started_at_ms = time_wall_ms()};
    if (secret_load(cfg, app.jwt_secret, sizeof(app.jwt_secret), &app.jwt_secret_len, err,
                    sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        return 1;
    }
    if (password_init(cfg->argon2_memory_kib, cfg->argon2_iterations) != 0) {
        fprintf(stderr, "chatd: cannot initialise password hashing\n");
        return 1;
    }
    crypto_jobs_configure(cfg->argon2_concurrency, cfg->argon2_queue_limit,
                          cfg->argon2_idle_priority);
    if (prepare_sqlite_dir(cfg, err, sizeof(err)) != 0 ||
        store_open(&app.store, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        return 1;
    }
    if (chat_init(&app.chat, cfg, app.store, app.jwt_secret, app.jwt_secret_len) != 0) {
        fprintf(stderr, "chatd: out of memory\n");
        store_close(app.store);
        return 1;
    }
    server_options_t options = {
        .cfg = cfg,
        .routes = api_routes,
        .route_count = api_route_count,
        .authenticate = api_authenticate,
        .app = &app,
        .shutdown_ready = api_shutdown_ready,
    };
    server_t *server;
    if (server_start(&server, &options, err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        chat_stop_publishing(&app.chat);
        store_close(app.store);
        chat_destroy(&app.chat);
        return 1;
    }
    log_info("chatd started", LOG_S("version", CHATD_VERSION),
             LOG_S("database", store_backend_name(app.store)));
    int rc = server_run(server);
    /* The loops are stopped: finish the hashes and commit whatever is still
     * queued (their results go nowhere: the inboxes are closed), then free. */
    crypto_jobs_shutdown();
    chat_stop_publishing(&app.chat);
    store_close(app.store);
    server_free(server);
    chat_destroy(&app.chat);
    sodium_memzero(app.jwt_secret, sizeof(app.jwt_secret));
    log_info("chatd stopped", LOG_I("exit_code", rc == 0 ? 0 : 1));
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *command = argc > 1 ? argv[1] : NULL;
    if (argc > 2) {
        print_usage(stderr);
        return 2;
    }
    if (command != NULL && (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0)) {
        print_usage(stdout);
        return 0;
    }
    if (command != NULL && (strcmp(command, "--version") == 0 || strcmp(command, "-V") == 0)) {
        printf("chatd %s\n", CHATD_VERSION);
        return 0;
    }
    if (command != NULL && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "chatd: unknown command \"%s\"\n", command);
        print_usage(stderr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);

    static config_t cfg;
    char err[512] = "";
    if (config_load(&cfg, ".env", err, sizeof(err)) != 0) {
        fprintf(stderr, "chatd: %s\n", err);
        return 1;
    }
    log_configure(cfg.log_level, cfg.log_format);

    if (command != NULL) {
        if (prepare_sqlite_dir(&cfg, err, sizeof(err)) != 0 ||
            store_migrate(&cfg, err, sizeof(err)) != 0) {
            fprintf(stderr, "chatd: %s\n", err);
            return 1;
        }
        log_info("migrations applied",
                 LOG_S("database_url_scheme",
                       strncmp(cfg.database_url, "sqlite:", 7) == 0 ? "sqlite" : "postgres"));
        return 0;
    }
    return serve(&cfg);
}
