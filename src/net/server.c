/* The server: I/O loops, their listeners and threads, and the order of a
 * graceful shutdown.
 *
 * Shutdown: the first SIGTERM/SIGINT (watched on loop 0) tells every loop,
 * through its inbox, to stop accepting and close its idle connections; the
 * requests under way are answered (with Connection: close) until
 * SHUTDOWN_TIMEOUT_MS, when whatever is left is closed. WebSockets stop
 * delivering messages at once; the sweep then waits for every loop to have
 * done so and for shutdown_ready (within the same deadline), runs what the
 * inbox holds, and closes them with 1001 after what they have queued
 * (loop_ws_shutdown). A loop with no
 * connections left closes its handles and its uv_run returns. Loop 0 keeps
 * watching signals until every other loop has reported back, so a second
 * signal can still force the stop: it closes every connection at once. */
#include "core/log.h"
#include "net/net_internal.h"
#include "net/ws_conn.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

struct server_s {
    server_options_t opts;
    struct sockaddr_storage addr; /* where every loop listens */
    net_ip_counts_t *ip_counts;   /* MAX_CONNECTIONS_PER_IP; NULL: no cap */
    net_loop_t **loops;
    int nloops;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int signals_open;
    int signals_seen;
    int loops_finished;     /* loops other than 0 that are done; loop 0's thread only */
    atomic_int loops_quiet; /* loops that no longer deliver WebSocket messages */
};

/* splitmix64's finaliser is a bijection: distinct counters, distinct ids. */
static uint64_t mix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void net_loop_request_id(net_loop_t *nl, char out[17]) {
    static const char hex[] = "0123456789abcdef";
    uint64_t v = mix64(nl->id_seed + nl->id_counter++);
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[v & 15];
        v >>= 4;
    }
    out[16] = '\0';
}

static uint64_t random_seed(const void *salt) {
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) == (ssize_t)sizeof(seed))
        return seed;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)salt);
}

static void loop_close_handles(net_loop_t *nl) {
    if (nl->listener_open) {
        nl->listener_open = 0;
        uv_close((uv_handle_t *)&nl->listener, NULL);
    }
    if (nl->timer_open) {
        nl->timer_open = 0;
        uv_close((uv_handle_t *)&nl->sweep, NULL);
    }
    if (nl->inbox_open) {
        nl->inbox_open = 0;
        inbox_close(&nl->inbox, NULL);
    }
    ws_out_close(nl);
}

/* Frees a loop whose handles are closed and whose uv_loop_t is done. */
static void loop_free(net_loop_t *nl) {
    shared_buf_unref(nl->ws_ping);
    free(nl);
}

static void server_close_signals(server_t *s) {
    if (!s->signals_open)
        return;
    s->signals_open = 0;
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void on_loop_finished(inbox_item_t *item);
static void on_sweep(uv_timer_t *timer);
static void loop_resume_accepting(net_loop_t *nl, uint64_t now);

/* A shutting-down loop with no connections left closes its handles; loop 0
 * waits for the others first (it owns the signal watchers). */
static void loop_maybe_finish(net_loop_t *nl) {
    server_t *s = nl->server;
    if (!nl->shutting_down || nl->finished || nl->conn_count > 0)
        return;
    if (nl->index == 0 && s->loops_finished < s->nloops - 1)
        return;
    nl->finished = 1;
    if (nl->index == 0) {
        server_close_signals(s);
    } else {
        /* Reuses the shutdown item: it has run, and runs no more. */
        nl->shutdown_item.run = on_loop_finished;
        inbox_post(&s->loops[0]->inbox, &nl->shutdown_item);
    }
    loop_close_handles(nl);
}

static void on_loop_finished(inbox_item_t *item) {
    net_loop_t *nl = container_of(item, net_loop_t, shutdown_item);
    server_t *s = nl->server;
    s->loops_finished++;
    loop_maybe_finish(s->loops[0]);
}

void net_loop_conn_gone(net_loop_t *nl) {
    loop_maybe_finish(nl);
}

static void loop_begin_shutdown(net_loop_t *nl, int force) {
    if (!nl->shutting_down) {
        nl->shutting_down = 1;
        nl->shutdown_deadline_ms = uv_now(&nl->loop) + (uint64_t)nl->cfg->shutdown_timeout_ms;
        if (nl->listener_open) {
            nl->listener_open = 0;
            uv_close((uv_handle_t *)&nl->listener, NULL);
        }
        /* From here on every message this loop accepted is counted by
         * shutdown_ready. This may run from an inbox item, where the inbox
         * must not be drained: the next steps run from the sweep, due now. */
        nl->ws_drop_inbound = 1;
        nl->ws_shutdown_phase = 1;
        atomic_fetch_add(&nl->server->loops_quiet, 1);
        if (nl->timer_open)
            uv_timer_start(&nl->sweep, on_sweep, 0, uv_timer_get_repeat(&nl->sweep));
    }
    http_conn_close_idle(nl, force);
    if (force) {
        nl->ws_shutdown_phase = 2;
        ws_close_all(nl, uv_now(&nl->loop), 1);
    }
    loop_maybe_finish(nl);
}

/* WebSockets get their 1001 once no accepted message can still be on its
 * way to them: every loop has stopped delivering messages (a message that
 * one loop accepts may be published to subscribers on all of them) and
 * shutdown_ready says the accepted ones are published; or at the deadline.
 * Then what this loop's inbox holds (those publications) is queued first. */
static void loop_ws_shutdown(net_loop_t *nl, uint64_t now) {
    server_t *s = nl->server;
    if (nl->ws_shutdown_phase != 1)
        return;
    int (*ready)(void *app) = s->opts.shutdown_ready;
    int quiet = atomic_load(&s->loops_quiet) == s->nloops;
    if (now < nl->shutdown_deadline_ms && (!quiet || (ready != NULL && !ready(s->opts.app))))
        return;
    nl->ws_shutdown_phase = 2;
    inbox_drain(&nl->inbox);
    ws_close_all(nl, now, 0);
}

static void on_shutdown_item(inbox_item_t *item) {
    loop_begin_shutdown(container_of(item, net_loop_t, shutdown_item), 0);
}

static void on_force_item(inbox_item_t *item) {
    loop_begin_shutdown(container_of(item, net_loop_t, force_item), 1);
}

static void on_signal(uv_signal_t *handle, int signum) {
    server_t *s = handle->data;
    const char *name = signum == SIGTERM ? "SIGTERM" : "SIGINT";
    int force = ++s->signals_seen > 1;
    if (s->signals_seen == 1)
        log_info("shutting down", LOG_S("signal", name),
                 LOG_I("timeout_ms", s->opts.cfg->shutdown_timeout_ms));
    else if (s->signals_seen == 2)
        log_warn("second signal: closing every connection now", LOG_S("signal", name));
    else
        return;
    for (int i = 1; i < s->nloops; i++) {
        net_loop_t *nl = s->loops[i];
        inbox_post(&nl->inbox, force ? &nl->force_item : &nl->shutdown_item);
    }
    loop_begin_shutdown(s->loops[0], force);
}

static void on_sweep(uv_timer_t *timer) {
    net_loop_t *nl = timer->data;
    uint64_t now = uv_now(&nl->loop);
    loop_ws_shutdown(nl, now);
    loop_resume_accepting(nl, now);
    ws_sweep(nl, now);
    if (nl->shutting_down && now >= nl->shutdown_deadline_ms) {
        if (nl->conns != NULL)
            log_warn("shutdown timeout: closing connections", LOG_I("loop", nl->index));
        http_conn_close_idle(nl, 1);
    } else {
        http_conn_sweep(nl, now);
    }
}

static void on_connection(uv_stream_t *listener, int status) {
    net_loop_t *nl = listener->data;
    if (status == UV_EMFILE || status == UV_ENFILE) {
        /* libuv's spare descriptor (it keeps one per loop, to accept and
         * close what waits when descriptors run out) is gone too. */
        net_note_reject(nl, CONN_REJECT_FD_LIMIT, NULL);
        net_loop_pause_accepting(nl);
        return;
    }
    if (status < 0) {
        /* Logged unless the last pause began less than NET_REJECT_LOG_MS
         * ago (accept_resume_ms is 0 before the first one). */
        uint64_t now = uv_now(&nl->loop);
        if (now >= nl->accept_resume_ms + NET_REJECT_LOG_MS)
            log_warn("accept failed: pausing", LOG_S("error", uv_strerror(status)),
                     LOG_I("pause_ms", NET_ACCEPT_PAUSE_MS));
        net_loop_pause_accepting(nl);
        return;
    }
    http_conn_accept(nl);
}

static void on_listener_paused(uv_handle_t *handle) {
    net_loop_t *nl = handle->data;
    nl->accept_paused = 2;
}

/* libuv keeps accepting while a listener is readable, so a failing accept
 * would be retried at once, forever; closing the listener is the one way to
 * stop it. What waits in its backlog is refused; with SO_REUSEPORT the
 * other loops keep accepting meanwhile. */
void net_loop_pause_accepting(net_loop_t *nl) {
    if (!nl->listener_open || nl->shutting_down)
        return;
    nl->listener_open = 0;
    nl->accept_paused = 1;
    nl->accept_resume_ms = uv_now(&nl->loop) + NET_ACCEPT_PAUSE_MS;
    uv_close((uv_handle_t *)&nl->listener, on_listener_paused);
}

static int loop_listen(net_loop_t *nl, const struct sockaddr *addr, char *err, size_t errlen);

static void loop_resume_accepting(net_loop_t *nl, uint64_t now) {
    if (nl->accept_paused != 2 || nl->shutting_down || now < nl->accept_resume_ms)
        return;
    char err[256];
    nl->accept_paused = 0;
    if (loop_listen(nl, (const struct sockaddr *)&nl->server->addr, err, sizeof(err)) == 0) {
        log_info("accepting again", LOG_I("loop", nl->index));
        return;
    }
    if (nl->listener_open) {
        net_loop_pause_accepting(nl);
    } else {
        nl->accept_paused = 2;
        nl->accept_resume_ms = now + NET_ACCEPT_PAUSE_MS;
    }
}

static int shorter(int shortest, int ms) {
    return ms > 0 && ms < shortest ? ms : shortest;
}

/* Deadlines are checked a few times per shortest timeout, at most every
 * 250 ms: one timer per loop instead of one per connection. */
static uint64_t sweep_interval_ms(const config_t *cfg) {
    int shortest = shorter(cfg->header_timeout_ms, cfg->idle_timeout_ms);
    shortest = shorter(shortest, cfg->ws_ping_interval_ms);
    shortest = shorter(shortest, cfg->ws_ping_timeout_ms);
    int ms = shortest / 4;
    return (uint64_t)(ms < 10 ? 10 : ms > 250 ? 250 : ms);
}

static int loop_listen(net_loop_t *nl, const struct sockaddr *addr, char *err, size_t errlen) {
    const config_t *cfg = nl->cfg;
    int rc = uv_tcp_init_ex(&nl->loop, &nl->listener, addr->sa_family);
    if (rc == 0) {
        nl->listener_open = 1;
        nl->listener.data = nl;
        uv_os_fd_t fd;
        int one = 1;
        rc = uv_fileno((uv_handle_t *)&nl->listener, &fd);
        if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
            rc = -errno;
    }
    if (rc == 0)
        rc = uv_tcp_bind(&nl->listener, addr, 0);
    /* libuv reports EADDRINUSE from uv_listen, not from the bind. */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&nl->listener, SOMAXCONN, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* Closes what is open and frees a loop that is not running. */
static void loop_discard(net_loop_t *nl) {
    loop_close_handles(nl);
    uv_run(&nl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&nl->loop);
    loop_free(nl);
}

static void fd_limits(net_loop_t *nl) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > INT32_MAX)
        return;
    nl->fd_limit = (int)rl.rlim_cur;
    nl->fd_headroom = nl->fd_limit / 4 < NET_FD_HEADROOM ? nl->fd_limit / 4 : NET_FD_HEADROOM;
}

static net_loop_t *loop_new(server_t *s, int index, const struct sockaddr *addr, char *err,
                            size_t errlen) {
    net_loop_t *nl = calloc(1, sizeof(*nl));
    if (nl == NULL || uv_loop_init(&nl->loop) != 0) {
        free(nl);
        snprintf(err, errlen, "cannot create I/O loop %d", index);
        return NULL;
    }
    nl->server = s;
    nl->opts = &s->opts;
    nl->cfg = s->opts.cfg;
    nl->index = index;
    nl->ip_counts = s->ip_counts;
    fd_limits(nl);
    nl->id_seed = random_seed(nl);
    nl->shutdown_item.run = on_shutdown_item;
    nl->force_item.run = on_force_item;
    if (inbox_init(&nl->inbox, &nl->loop) != 0) {
        snprintf(err, errlen, "cannot create I/O loop %d", index);
        loop_discard(nl);
        return NULL;
    }
    nl->inbox_open = 1;
    if (ws_out_init(nl) != 0) {
        snprintf(err, errlen, "cannot create I/O loop %d", index);
        loop_discard(nl);
        return NULL;
    }
    uv_timer_init(&nl->loop, &nl->sweep);
    nl->timer_open = 1;
    nl->sweep.data = nl;
    uint64_t every = sweep_interval_ms(nl->cfg);
    uv_timer_start(&nl->sweep, on_sweep, every, every);
    if (loop_listen(nl, addr, err, errlen) != 0) {
        loop_discard(nl);
        return NULL;
    }
    return nl;
}

static int resolve_host(const config_t *cfg, struct sockaddr_storage *ss, char *err,
                        size_t errlen) {
    memset(ss, 0, sizeof(*ss));
    if (uv_ip4_addr(cfg->host, cfg->port, (struct sockaddr_in *)ss) == 0 ||
        uv_ip6_addr(cfg->host, cfg->port, (struct sockaddr_in6 *)ss) == 0)
        return 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(cfg->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "HOST %s: %s", cfg->host, gai_strerror(rc));
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)cfg->port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)cfg->port);
    freeaddrinfo(res);
    return 0;
}

/* SO_REUSEPORT would let a second chatd (same user) join this port and
 * quietly take half of its connections. A plain socket cannot bind where any
 * listener is, so a probe bind turns that case into the error it should be. */
static int probe_port_free(const config_t *cfg, const struct sockaddr_storage *addr, char *err,
                           size_t errlen) {
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* the real bind reports what is wrong */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    socklen_t len =
        addr->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int taken = bind(fd, (const struct sockaddr *)addr, len) != 0 && errno == EADDRINUSE;
    close(fd);
    if (taken) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->host, cfg->port,
                 uv_strerror(UV_EADDRINUSE));
        return -1;
    }
    return 0;
}

static void loop_thread_main(void *arg) {
    net_loop_t *nl = arg;
    uv_run(&nl->loop, UV_RUN_DEFAULT);
}

static int start_signals(server_t *s) {
    uv_loop_t *loop = &s->loops[0]->loop;
    if (uv_signal_init(loop, &s->sigterm) != 0)
        return -1;
    if (uv_signal_init(loop, &s->sigint) != 0) {
        uv_close((uv_handle_t *)&s->sigterm, NULL);
        return -1;
    }
    s->signals_open = 1;
    s->sigterm.data = s->sigint.data = s;
    if (uv_signal_start(&s->sigterm, on_signal, SIGTERM) != 0 ||
        uv_signal_start(&s->sigint, on_signal, SIGINT) != 0)
        return -1;
    return 0;
}

/* Frees a server whose loops never ran; started is how many loop threads
 * (from loop 1 on) are running and must be stopped first. */
static void server_abort(server_t *s, int started) {
    for (int i = 1; i <= started; i++) {
        inbox_post(&s->loops[i]->inbox, &s->loops[i]->force_item);
        uv_thread_join(&s->loops[i]->thread);
    }
    server_close_signals(s);
    /* Loop 0 first: its inbox may hold items of the others. */
    for (int i = 0; i < s->nloops; i++) {
        net_loop_t *nl = s->loops[i];
        if (nl == NULL)
            continue;
        if (i >= 1 && i <= started) {
            uv_loop_close(&nl->loop);
            loop_free(nl);
        } else {
            loop_discard(nl);
        }
    }
    net_ip_counts_free(s->ip_counts);
    free(s->loops);
    free(s);
}

int server_start(server_t **out, const server_options_t *opts, char *err, size_t errlen) {
    const config_t *cfg = opts->cfg;
    *out = NULL;
    struct sockaddr_storage addr;
    if (resolve_host(cfg, &addr, err, errlen) != 0 || probe_port_free(cfg, &addr, err, errlen) != 0)
        return -1;
    server_t *s = calloc(1, sizeof(*s));
    if (s == NULL || (s->loops = calloc((size_t)(cfg->threads > 0 ? cfg->threads : 1),
                                        sizeof(net_loop_t *))) == NULL) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->opts = *opts;
    s->addr = addr;
    s->nloops = cfg->threads > 0 ? cfg->threads : 1;
    if (cfg->max_connections_per_ip > 0 && (s->ip_counts = net_ip_counts_new()) == NULL) {
        snprintf(err, errlen, "out of memory");
        server_abort(s, 0);
        return -1;
    }
    /* http-parser's head limit is process-wide; chatd runs one server. */
    http_parser_set_max_header_size(
        cfg->max_header_bytes > UINT32_MAX ? UINT32_MAX : (uint32_t)cfg->max_header_bytes);
    for (int i = 0; i < s->nloops; i++) {
        s->loops[i] = loop_new(s, i, (const struct sockaddr *)&addr, err, errlen);
        if (s->loops[i] == NULL) {
            server_abort(s, 0);
            return -1;
        }
    }
    if (start_signals(s) != 0) {
        snprintf(err, errlen, "cannot watch signals");
        server_abort(s, 0);
        return -1;
    }
    for (int i = 1; i < s->nloops; i++) {
        int rc = uv_thread_create(&s->loops[i]->thread, loop_thread_main, s->loops[i]);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start I/O thread: %s", uv_strerror(rc));
            server_abort(s, i - 1);
            return -1;
        }
    }
    log_info("listening", LOG_S("host", cfg->host), LOG_I("port", cfg->port),
             LOG_I("threads", s->nloops));
    *out = s;
    return 0;
}

int server_run(server_t *s) {
    uv_run(&s->loops[0]->loop, UV_RUN_DEFAULT);
    for (int i = 1; i < s->nloops; i++)
        uv_thread_join(&s->loops[i]->thread);
    log_info("shutdown complete", LOG_I("threads", s->nloops));
    return s->signals_seen > 1 ? -1 : 0;
}

void server_free(server_t *s) {
    if (s == NULL)
        return;
    for (int i = 0; i < s->nloops; i++) {
        if (uv_loop_close(&s->loops[i]->loop) != 0)
            log_error("I/O loop still busy at free", LOG_I("loop", i));
        loop_free(s->loops[i]);
    }
    net_ip_counts_free(s->ip_counts);
    free(s->loops);
    free(s);
}

uv_loop_t *server_loop(server_t *s, int index) {
    return &s->loops[index]->loop;
}
