#include "inproc.h"

#include "api/app.h"
#include "api/routes.h"
#include "api/secret.h"
#include "auth/crypto_jobs.h"
#include "auth/password.h"
#include "auth/token.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "net/server.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* Long enough for a password hash on a busy machine; a server that takes
 * longer than this to answer or close is stuck. */
#define WAIT_MS 10000

static config_t cfg;
static app_t app;
static server_t *server;
static uv_loop_t *loop;
static char tmp_dir[256];
static char *tokens[2];
static int trace; /* CHATD_FUZZ_TRACE set: print what the server sent */

static void die(const char *what, const char *detail) {
    fprintf(stderr, "inproc: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* ---- store jobs in flight ------------------------------------------------ */

/* Each submitted job's done callback is swapped for one that counts it
 * back in and then calls the original. Jobs are submitted and completed on
 * the loop thread; the lock is for any other submitter. */
typedef struct {
    store_job_t *job;
    store_done_cb done;
} tracked_job_t;

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static tracked_job_t *jobs;
static size_t jobs_count, jobs_cap;

int __real_store_submit(store_t *store, store_job_t *job);
int __wrap_store_submit(store_t *store, store_job_t *job);

static void tracked_done(store_job_t *job) {
    store_done_cb done = NULL;
    pthread_mutex_lock(&jobs_lock);
    for (size_t i = 0; i < jobs_count; i++) {
        if (jobs[i].job == job) {
            done = jobs[i].done;
            jobs[i] = jobs[--jobs_count];
            break;
        }
    }
    pthread_mutex_unlock(&jobs_lock);
    if (done == NULL)
        die("a store job came back that was never submitted", NULL);
    job->done = done;
    done(job);
}

int __wrap_store_submit(store_t *store, store_job_t *job) {
    pthread_mutex_lock(&jobs_lock);
    if (jobs_count == jobs_cap) {
        jobs_cap = jobs_cap ? jobs_cap * 2 : 64;
        jobs = realloc(jobs, jobs_cap * sizeof(*jobs));
        if (jobs == NULL)
            abort();
    }
    jobs[jobs_count++] = (tracked_job_t){job, job->done};
    store_done_cb done = job->done;
    job->done = tracked_done;
    pthread_mutex_unlock(&jobs_lock);
    int rc = __real_store_submit(store, job);
    if (rc != 0) {
        pthread_mutex_lock(&jobs_lock);
        for (size_t i = 0; i < jobs_count; i++)
            if (jobs[i].job == job)
                jobs[i] = jobs[--jobs_count];
        pthread_mutex_unlock(&jobs_lock);
        job->done = done;
    }
    return rc;
}

static size_t jobs_in_flight(void) {
    pthread_mutex_lock(&jobs_lock);
    size_t n = jobs_count;
    pthread_mutex_unlock(&jobs_lock);
    return n;
}

/* ---- what the loop holds ------------------------------------------------- */

typedef struct {
    size_t conns;     /* TCP handles that are no listener, closing ones included */
    size_t unread;    /* bytes waiting in their sockets */
    size_t unwritten; /* bytes queued in libuv for them */
} loop_scan_t;

static void scan_handle(uv_handle_t *h, void *arg) {
    loop_scan_t *scan = arg;
    if (h->type != UV_TCP)
        return;
    uv_os_fd_t fd;
    if (uv_is_closing(h) || uv_fileno(h, &fd) != 0) {
        scan->conns++;
        return;
    }
    int listening = 0;
    socklen_t len = sizeof(listening);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening)
        return;
    scan->conns++;
    int unread = 0;
    if (ioctl(fd, FIONREAD, &unread) == 0 && unread > 0)
        scan->unread += (size_t)unread;
    scan->unwritten += uv_stream_get_write_queue_size((uv_stream_t *)h);
}

static loop_scan_t scan_loop(void) {
    loop_scan_t scan = {0};
    uv_walk(loop, scan_handle, &scan);
    return scan;
}

static void check_deadline(uint64_t deadline_ns, const char *waiting_for) {
    if (time_monotonic_ns() < deadline_ns)
        return;
    loop_scan_t s = scan_loop();
    char detail[256];
    snprintf(detail, sizeof(detail),
             "connections %zu, unread %zu, unwritten %zu, store jobs %zu, libuv requests %u",
             s.conns, s.unread, s.unwritten, jobs_in_flight(), loop->active_reqs.count);
    fprintf(stderr, "inproc: no progress for %d ms while waiting for %s\n", WAIT_MS, waiting_for);
    die("server stuck", detail);
}

static uint64_t deadline(void) {
    return time_monotonic_ns() + (uint64_t)WAIT_MS * 1000000u;
}

/* ---- the client side ----------------------------------------------------- */

/* Reads what has arrived. Returns the number of bytes read. */
static size_t client_read(inproc_client_t *c) {
    size_t total = 0;
    char chunk[65536];
    while (!c->eof) {
        ssize_t n = recv(c->fd, chunk, sizeof(chunk), MSG_DONTWAIT);
        if (n > 0) {
            if (buf_append(&c->in, chunk, (size_t)n) != 0)
                abort();
            total += (size_t)n;
        } else if (n == 0) {
            c->eof = 1;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else if (errno != EINTR) {
            c->eof = c->reset = 1; /* ECONNRESET: the server closed with input unread */
        }
    }
    return total;
}

static size_t client_pending(const inproc_client_t *c) {
    int n = 0;
    return !c->eof && ioctl(c->fd, FIONREAD, &n) == 0 && n > 0 ? (size_t)n : 0;
}

void inproc_connect(inproc_client_t *c) {
    memset(c, 0, sizeof(*c));
    c->in = (buf_t)BUF_INIT;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)cfg.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) != 0)
        die("cannot connect to the server", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint64_t until = deadline();
    while (scan_loop().conns == 0) {
        check_deadline(until, "the accept");
        uv_run(loop, UV_RUN_ONCE);
    }
}

void inproc_send(inproc_client_t *c, const void *data, size_t len) {
    const char *p = data;
    uint64_t until = deadline();
    while (len > 0 && !c->eof) {
        ssize_t n = send(c->fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            until = deadline();
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break; /* EPIPE, ECONNRESET: the server has closed */
        /* The socket is full: the server reads when it runs. */
        check_deadline(until, "the server to read");
        uv_run(loop, UV_RUN_ONCE);
        client_read(c);
    }
}

uint64_t inproc_hash(const void *data, size_t len) {
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

void inproc_send_pieces(inproc_client_t *c, const void *data, size_t len, int pieces,
                        uint64_t seed) {
    size_t cuts[8];
    if (pieces < 1 || pieces > 8)
        pieces = 1;
    for (int i = 0; i < pieces - 1; i++) {
        cuts[i] = len ? (size_t)(seed % (len + 1)) : 0;
        seed = seed * 0x9e3779b97f4a7c15ull + 1;
    }
    qsort(cuts, (size_t)(pieces - 1), sizeof(cuts[0]), cmp_size);
    size_t pos = 0;
    for (int i = 0; i < pieces; i++) {
        size_t end = i < pieces - 1 ? cuts[i] : len;
        inproc_send(c, (const char *)data + pos, end - pos);
        if (i < pieces - 1)
            inproc_settle(c);
        pos = end;
    }
}

static int quiet(inproc_client_t *c) {
    client_read(c);
    loop_scan_t s = scan_loop();
    return s.unread == 0 && s.unwritten == 0 && jobs_in_flight() == 0 &&
           loop->active_reqs.count == 0 && client_pending(c) == 0;
}

void inproc_settle(inproc_client_t *c) {
    uint64_t until = deadline();
    for (;;) {
        /* Quiet twice around a non-blocking turn: wake-ups already posted
         * (an inbox item, a timer due now) run in that turn. */
        if (quiet(c)) {
            size_t before = c->in.len;
            uv_run(loop, UV_RUN_NOWAIT);
            if (quiet(c) && c->in.len == before)
                return;
            continue;
        }
        check_deadline(until, "the server to settle");
        uv_run(loop, UV_RUN_ONCE);
    }
}

void inproc_finish(inproc_client_t *c) {
    if (!c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = 1;
    }
    uint64_t until = deadline();
    for (;;) {
        client_read(c);
        if (c->eof && scan_loop().conns == 0 && jobs_in_flight() == 0 &&
            loop->active_reqs.count == 0)
            break;
        check_deadline(until, "the server to close the connection");
        uv_run(loop, UV_RUN_ONCE);
    }
    close(c->fd);
    c->fd = -1;
    if (trace)
        fprintf(stderr, "--- the server sent %zu bytes%s ---\n%.*s\n--- end ---\n", c->in.len,
                c->reset ? " and reset the connection" : "", (int)c->in.len,
                c->in.data != NULL ? c->in.data : "");
}

void inproc_client_free(inproc_client_t *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    buf_free(&c->in);
}

/* ---- start-up ------------------------------------------------------------ */

static int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        die("no free port", strerror(errno));
    close(fd);
    return ntohs(addr.sin_port);
}

static void remove_tmp_dir(void) {
    DIR *d = opendir(tmp_dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char path[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", tmp_dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(tmp_dir);
}

static void set(const char *name, const char *value) {
    char err[256];
    if (config_set(&cfg, name, value, err, sizeof(err)) != 0)
        die("bad setting", err);
}

static void apply(const char *setting) {
    char name[64];
    const char *eq = strchr(setting, '=');
    if (eq == NULL || (size_t)(eq - setting) >= sizeof(name))
        die("a setting is not NAME=VALUE", setting);
    memcpy(name, setting, (size_t)(eq - setting));
    name[eq - setting] = '\0';
    set(name, eq + 1);
}

/* Registers a user through the API, as a client would. */
static void register_user(const char *email, const char *username) {
    char body[256], request[512];
    int blen = snprintf(body, sizeof(body),
                        "{\"email\":\"%s\",\"password\":\"correct horse battery\","
                        "\"username\":\"%s\"}",
                        email, username);
    int rlen = snprintf(request, sizeof(request),
                        "POST /auth/register HTTP/1.1\r\nHost: fuzz\r\n"
                        "Content-Type: application/json\r\nContent-Length: %d\r\n"
                        "Connection: close\r\n\r\n%s",
                        blen, body);
    inproc_client_t c;
    inproc_connect(&c);
    inproc_send(&c, request, (size_t)rlen);
    inproc_finish(&c);
    if (buf_append(&c.in, "", 1) != 0 || strncmp(c.in.data, "HTTP/1.1 201 ", 13) != 0)
        die("registering a user failed", c.in.data);
    inproc_client_free(&c);
}

void inproc_start(const char *const *settings) {
    if (server != NULL)
        return;
    signal(SIGPIPE, SIG_IGN);
    trace = getenv("CHATD_FUZZ_TRACE") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/chatd-fuzz-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(tmp_dir) == NULL)
        die("cannot make a temporary directory", strerror(errno));
    atexit(remove_tmp_dir);

    char value[512];
    config_defaults(&cfg);
    set("HOST", "127.0.0.1");
    snprintf(value, sizeof(value), "%d", free_port());
    set("PORT", value);
    snprintf(value, sizeof(value), "sqlite:%s/chat.db", tmp_dir);
    set("DATABASE_URL", value);
    set("DATA_DIR", tmp_dir);
    set("JWT_SECRET", INPROC_JWT_SECRET);
    set("THREADS", "1");
    set("STORE_READERS", "1");
    set("ARGON2_CONCURRENCY", "1");
    /* Request lines would drown libFuzzer's output; warnings still show. */
    set("LOG_LEVEL", "warn");
    for (size_t i = 0; settings != NULL && settings[i] != NULL; i++)
        apply(settings[i]);
    log_configure(cfg.log_level, cfg.log_format);

    /* The order of main.c's serve(). */
    char err[512] = "";
    app.cfg = &cfg;
    app.started_at_ms = time_wall_ms();
    if (secret_load(&cfg, app.jwt_secret, sizeof(app.jwt_secret), &app.jwt_secret_len, err,
                    sizeof(err)) != 0 ||
        password_init(cfg.argon2_memory_kib, cfg.argon2_iterations) != 0)
        die("cannot load the secret or set up hashing", err);
    crypto_jobs_configure(cfg.argon2_concurrency, cfg.argon2_queue_limit, cfg.argon2_idle_priority);
    if (store_open(&app.store, &cfg, err, sizeof(err)) != 0)
        die("cannot open the store", err);
    if (chat_init(&app.chat, &cfg, app.store, app.jwt_secret, app.jwt_secret_len) != 0)
        die("cannot start the chat layer", NULL);
    server_options_t options = {
        .cfg = &cfg,
        .routes = api_routes,
        .route_count = api_route_count,
        .authenticate = api_authenticate,
        .app = &app,
        .shutdown_ready = api_shutdown_ready,
    };
    if (server_start(&server, &options, err, sizeof(err)) != 0)
        die("cannot start the server", err);
    loop = server_loop(server, 0);

    register_user(INPROC_EMAIL_1, INPROC_USERNAME_1);
    register_user(INPROC_EMAIL_2, INPROC_USERNAME_2);
    const char *emails[2] = {INPROC_EMAIL_1, INPROC_EMAIL_2};
    const char *names[2] = {INPROC_USERNAME_1, INPROC_USERNAME_2};
    for (int i = 0; i < 2; i++)
        if (token_issue(app.jwt_secret, app.jwt_secret_len, i + 1, emails[i], names[i],
                        time_wall_ms() / 1000, 365 * 86400, &tokens[i]) != 0)
            die("cannot issue a token", NULL);
}

const config_t *inproc_config(void) {
    return &cfg;
}

const char *inproc_token(int user) {
    return tokens[user == 2 ? 1 : 0];
}
