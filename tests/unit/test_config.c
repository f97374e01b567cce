/* Configuration: defaults, strict values with ranges, .env files, CORS. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"

#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every setting (from config.c's table) and a stray key are cleared around
 * each test, so the caller's environment cannot leak in. */

static int clear_env(void **state) {
    (void)state;
    for (size_t i = 0; i < config_setting_count(); i++)
        unsetenv(config_setting_name(i));
    unsetenv("UNKNOWN_KEY");
    return 0;
}

/* Writes text to a fresh temporary file; the caller unlinks and frees. */
static char *write_env_file(const char *text) {
    char *path = strdup("/tmp/chatd_test_env_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int load_file(config_t *cfg, const char *text, char *err, size_t errlen) {
    char *path = write_env_file(text);
    int rc = config_load(cfg, path, err, errlen);
    unlink(path);
    free(path);
    return rc;
}

static void test_defaults(void **state) {
    (void)state;
    config_t cfg;
    char err[256] = "";
    assert_int_equal(config_load(&cfg, "/nonexistent/.env", err, sizeof(err)), 0);
    assert_string_equal(cfg.host, "0.0.0.0");
    assert_int_equal(cfg.port, 3000);
    assert_string_equal(cfg.database_url, "sqlite:./data/chat.db");
    assert_string_equal(cfg.jwt_secret, "");
    assert_int_equal(cfg.jwt_expiration_hours, 24);
    assert_true(cfg.cors_any);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    /* "cores" is the CPU affinity mask, not the machine. */
    cpu_set_t allowed;
    assert_int_equal(sched_getaffinity(0, sizeof(allowed), &allowed), 0);
    long cores = CPU_COUNT(&allowed);
    assert_int_equal(cfg.threads, cores < 1 ? 1 : cores > 256 ? 256 : cores);
    assert_int_equal(cfg.argon2_concurrency, cfg.threads);
    assert_int_equal(cfg.argon2_idle_priority, 1);
    assert_string_equal(cfg.redis_url, "");
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.max_header_bytes, 16384);
    assert_int_equal(cfg.max_body_bytes, 1048576);
    assert_int_equal(cfg.max_message_bytes, 16384);
    assert_int_equal(cfg.max_upload_bytes, 10485760);
    assert_int_equal(cfg.max_connections, 100000);
    assert_int_equal(cfg.max_connections_per_ip, 0);
    assert_int_equal(cfg.header_timeout_ms, 10000);
    assert_int_equal(cfg.idle_timeout_ms, 60000);
    assert_int_equal(cfg.ws_ping_interval_ms, 30000);
    assert_int_equal(cfg.ws_ping_timeout_ms, 60000);
    assert_int_equal(cfg.ws_outbound_limit_bytes, 4194304);
    assert_int_equal(cfg.rate_limit_auth, 30);
    assert_int_equal(cfg.rate_limit_messages, 20);
    assert_int_equal(cfg.shutdown_timeout_ms, 10000);
    assert_int_equal(cfg.argon2_memory_kib, 19456);
    assert_int_equal(cfg.argon2_iterations, 2);
    assert_int_equal(cfg.argon2_queue_limit, 256);
    assert_int_equal(cfg.store_readers, 2);
    assert_int_equal(cfg.store_batch_max, 1024);
    assert_int_equal(cfg.store_queue_limit, 65536);

    config_t plain;
    config_defaults(&plain);
    assert_memory_equal(&plain, &cfg, sizeof(cfg));
}

static void expect_bad(const char *name, const char *value, const char *expected_err) {
    config_t cfg;
    char err[256] = "";
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, name, value, err, sizeof(err)), -1);
    assert_non_null(strstr(err, name));
    assert_ptr_equal(strchr(err, '\n'), NULL);
    if (expected_err != NULL)
        assert_string_equal(err, expected_err);
}

static void expect_ok(const char *name, const char *value) {
    config_t cfg;
    char err[256] = "";
    config_defaults(&cfg);
    if (config_set(&cfg, name, value, err, sizeof(err)) != 0)
        fail_msg("%s=%s refused: %s", name, value, err);
}

static void test_bad_values_name_the_variable(void **state) {
    (void)state;
    expect_bad("PORT", "abc", "PORT: expected an integer between 1 and 65535, got \"abc\"");
    expect_bad("PORT", "", NULL);
    expect_bad("PORT", "80x", NULL);
    expect_bad("PORT", " 80", NULL);
    expect_bad("PORT", "+80", NULL);
    expect_bad("PORT", "99999999999999999999999", NULL);
    expect_bad("MAX_BODY_BYTES", "1e6", NULL);
    expect_bad("DATABASE_URL", "mysql://x", NULL);
    expect_bad("DATABASE_URL", "sqlite:", NULL);
    expect_bad("HOST", "", NULL);
    expect_bad("LOG_LEVEL", "loud", NULL);
    expect_bad("RUST_LOG", "chatd=loud", NULL);
    expect_bad("LOG_FORMAT", "xml", NULL);
    expect_bad("REDIS_URL", "localhost:6379", NULL);
    expect_bad("CORS_ORIGINS", "example.com", NULL);

    config_t cfg;
    char err[256];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "NOT_A_SETTING", "1", err, sizeof(err)), 1);

    /* config_load stops at the first bad one, with cfg's error naming it. */
    setenv("THREADS", "0", 1);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), -1);
    assert_string_equal(err, "THREADS: expected an integer between 1 and 256, got \"0\"");
    unsetenv("THREADS");
}

static void test_ranges_at_edges(void **state) {
    (void)state;
    expect_ok("PORT", "1");
    expect_ok("PORT", "65535");
    expect_bad("PORT", "0", NULL);
    expect_bad("PORT", "65536", NULL);
    expect_bad("PORT", "-1", NULL);
    expect_ok("ARGON2_MEMORY_KIB", "19456");
    expect_bad("ARGON2_MEMORY_KIB", "19455", NULL);
    expect_ok("ARGON2_ITERATIONS", "2");
    expect_bad("ARGON2_ITERATIONS", "1", NULL);
    expect_ok("THREADS", "256");
    expect_bad("THREADS", "257", NULL);
    expect_ok("MAX_HEADER_BYTES", "1024");
    expect_bad("MAX_HEADER_BYTES", "1023", NULL);
    expect_ok("HEADER_TIMEOUT_MS", "1");
    expect_bad("HEADER_TIMEOUT_MS", "0", NULL);
    expect_ok("RATE_LIMIT_AUTH", "0");
    expect_bad("RATE_LIMIT_AUTH", "-1", NULL);
    expect_ok("MAX_CONNECTIONS_PER_IP", "0");
    expect_ok("JWT_EXPIRATION_HOURS", "1");
    expect_bad("JWT_EXPIRATION_HOURS", "0", NULL);
    expect_ok("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/chat");
    expect_ok("DATABASE_URL", "postgresql://u@localhost/chat");
    expect_ok("DATABASE_URL", "sqlite::memory:");
    expect_ok("REDIS_URL", "redis://127.0.0.1:6379");
    expect_ok("LOG_LEVEL", "WARN");

    config_t cfg;
    char err[256];
    config_defaults(&cfg);
    assert_int_equal(config_set(&cfg, "MAX_UPLOAD_BYTES", "17179869184", err, sizeof(err)), 0);
    assert_true(cfg.max_upload_bytes == (size_t)17179869184ULL);
}

static void test_jwt_secret(void **state) {
    (void)state;
    config_t cfg;
    char err[256];
    config_defaults(&cfg);
    const char *short_secret = "0123456789abcdef0123456789abcde"; /* 31 bytes */
    assert_int_equal(config_set(&cfg, "JWT_SECRET", short_secret, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "JWT_SECRET"));
    assert_null(strstr(err, short_secret)); /* secrets are never echoed */
    const char *ok_secret = "0123456789abcdef0123456789abcdef";
    assert_int_equal(config_set(&cfg, "JWT_SECRET", ok_secret, err, sizeof(err)), 0);
    assert_string_equal(cfg.jwt_secret, ok_secret);
    assert_int_equal(config_set(&cfg, "JWT_SECRET", "", err, sizeof(err)), 0);
    assert_string_equal(cfg.jwt_secret, "");
}

static void test_dotenv(void **state) {
    (void)state;
    config_t cfg;
    char err[256] = "";
    const char *text = "# a comment\n"
                       "\n"
                       "   \n"
                       "PORT=4000\n"
                       "export HOST=127.0.0.1\n"
                       "DATABASE_URL=\"postgres://u:p#1@localhost/db\"\n"
                       "DATA_DIR='/var/lib/chat data'  # trailing comment\n"
                       "LOG_FORMAT = text\r\n"
                       "REDIS_URL=redis://h:1 # inline comment\n"
                       "UNKNOWN_KEY=whatever\n"
                       "THREADS=3\n";
    setenv("THREADS", "5", 1); /* the environment wins over the file */
    assert_int_equal(load_file(&cfg, text, err, sizeof(err)), 0);
    unsetenv("THREADS");
    assert_int_equal(cfg.port, 4000);
    assert_string_equal(cfg.host, "127.0.0.1");
    assert_string_equal(cfg.database_url, "postgres://u:p#1@localhost/db");
    assert_string_equal(cfg.data_dir, "/var/lib/chat data");
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    assert_string_equal(cfg.redis_url, "redis://h:1");
    assert_int_equal(cfg.threads, 5);
    assert_null(getenv("UNKNOWN_KEY"));

    /* Escapes in double quotes, none in single quotes. */
    assert_int_equal(load_file(&cfg, "HOST=\"a\\\"b\"\nDATA_DIR='c\\d'\n", err, sizeof(err)), 0);
    assert_string_equal(cfg.host, "a\"b");
    assert_string_equal(cfg.data_dir, "c\\d");

    /* A bad value from the file names the variable too. */
    assert_int_equal(load_file(&cfg, "PORT=70000\n", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PORT: expected an integer"));
}

static void test_dotenv_malformed(void **state) {
    (void)state;
    config_t cfg;
    char err[256] = "";
    const char *bad[] = {
        "PORT=1\nthis is not an assignment\n",
        "PORT=1\nHOST=\"unterminated\n",
        "PORT=1\nHOST='a' trailing\n",
        "PORT=1\n1PORT=2\n",
        "PORT=1\n=2\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(load_file(&cfg, bad[i], err, sizeof(err)), -1);
        if (strstr(err, ":2: malformed line") == NULL)
            fail_msg("case %zu: %s", i, err);
        assert_true(strncmp(err, "/tmp/chatd_test_env_", 20) == 0);
    }
}

static void test_cors(void **state) {
    (void)state;
    config_t cfg;
    char err[256];
    config_defaults(&cfg);
    assert_true(config_origin_allowed(&cfg, "https://anything.example", 24));

    assert_int_equal(config_set(&cfg, "CORS_ORIGINS",
                                " https://example.com ,http://localhost:5173,http://[::1]:8080",
                                err, sizeof(err)),
                     0);
    assert_false(cfg.cors_any);
    assert_int_equal(cfg.cors_origin_count, 3);
    assert_string_equal(cfg.cors_origins[0], "https://example.com");
    assert_string_equal(cfg.cors_origins[1], "http://localhost:5173");
    assert_true(config_origin_allowed(&cfg, "https://example.com", 19));
    assert_true(config_origin_allowed(&cfg, "http://localhost:5173", 21));
    assert_true(config_origin_allowed(&cfg, "http://[::1]:8080", 17));
    assert_false(config_origin_allowed(&cfg, "https://example.com.evil", 24));
    assert_false(config_origin_allowed(&cfg, "https://example.co", 18));
    assert_false(config_origin_allowed(&cfg, "http://example.com", 18));
    assert_false(config_origin_allowed(&cfg, "", 0));
    /* len counts, not the NUL: a prefix of an allowed origin is not allowed. */
    assert_false(config_origin_allowed(&cfg, "https://example.com/x", 20));

    expect_bad("CORS_ORIGINS", "https://a.com,,https://b.com", NULL);
    expect_bad("CORS_ORIGINS", "https://a.com,", NULL);
    expect_bad("CORS_ORIGINS", "", NULL);
    expect_bad("CORS_ORIGINS", "*,https://a.com", NULL);
    expect_bad("CORS_ORIGINS", "https://a.com/path", NULL);
    expect_bad("CORS_ORIGINS", "ftp://a.com", NULL);
    expect_ok("CORS_ORIGINS", " * ");

    char list[64 * (CONFIG_MAX_CORS_ORIGINS + 1)] = "";
    for (int i = 0; i < CONFIG_MAX_CORS_ORIGINS; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%shttp://h%d.test",
                 i ? "," : "", i);
    expect_ok("CORS_ORIGINS", list);
    strcat(list, ",http://one-too-many.test");
    expect_bad("CORS_ORIGINS", list, NULL);
}

static void test_rust_log_alias(void **state) {
    (void)state;
    config_t cfg;
    char err[256];
    setenv("RUST_LOG", "chatd=debug,tower_http=warn", 1);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_WARN); /* the last level it recognises */
    setenv("RUST_LOG", "debug", 1);
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    setenv("LOG_LEVEL", "error", 1); /* LOG_LEVEL wins */
    assert_int_equal(config_load(&cfg, NULL, err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_ERROR);
    unsetenv("LOG_LEVEL");
    /* LOG_LEVEL in the file still wins over RUST_LOG in the environment. */
    assert_int_equal(load_file(&cfg, "LOG_LEVEL=off\n", err, sizeof(err)), 0);
    assert_int_equal(cfg.log_level, LOG_OFF);
    unsetenv("RUST_LOG");
}

static void test_help_lists_everything(void **state) {
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    config_print_help(f);
    fclose(f);
    const char *names[] = {"PORT",
                           "HOST",
                           "DATABASE_URL",
                           "JWT_SECRET",
                           "CORS_ORIGINS",
                           "RUST_LOG",
                           "ARGON2_MEMORY_KIB",
                           "THREADS",
                           "STORE_READERS",
                           "STORE_QUEUE_LIMIT",
                           "DATA_DIR",
                           "MAX_UPLOAD_BYTES"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_non_null(strstr(text, names[i]));
    assert_non_null(strstr(text, "19456"));
    free(text);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_bad_values_name_the_variable, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_ranges_at_edges, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_jwt_secret, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_dotenv, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_dotenv_malformed, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_cors, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_rust_log_alias, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_help_lists_everything, clear_env, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
