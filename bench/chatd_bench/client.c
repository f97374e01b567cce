/* The connections: non-blocking connect, the opening handshake, frames in
 * and out. One level-triggered epoll set, one read per ready connection per
 * loop turn into the loop's single read buffer; a connection keeps bytes of
 * its own only while a frame is incomplete. */
#include "bench.h"
#include "procstat.h"
#include "scan.h"
#include "ws.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define RBUF_SIZE   (1u << 20)
#define FRAME_MAX   (256u << 10) /* larger frames are skipped, not parsed */
#define HEAD_MAX    8192
#define OUT_LIMIT   (16u << 20) /* a publisher's unsent bytes before messages are dropped */
#define EVENTS_MAX  512
#define CONTENT_MAX 4096

static uint64_t rng_state;

/* xorshift64*: mask keys need to vary, not to be secret, in a load test. */
static uint32_t rng32(void) {
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

static void set_events(bench_t *b, conn_t *c, int want_out) {
    if (c->want_out == want_out)
        return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.ptr = c};
    epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = want_out;
}

static void release(conn_t *c) {
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    free(c->msg);
    free(c->out);
    free(c->key);
    c->in = c->msg = c->out = NULL;
    c->key = NULL;
    c->in_len = c->msg_len = c->out_len = c->out_off = c->out_cap = 0;
    c->state = CS_CLOSED;
}

/* A connection that never became ready. */
static void conn_fail(bench_t *b, conn_t *c, const char *why) {
    bench_count_code(b->connect_errors, why, strlen(why));
    b->connect_failures++;
    b->pending--;
    release(c);
}

/* An open connection that ended; code is the server's close code (1006: none). */
static void conn_lost(bench_t *b, conn_t *c, unsigned code) {
    char text[16];
    snprintf(text, sizeof(text), "%u", code);
    bench_count_code(b->close_codes, text, strlen(text));
    b->closed_by_server++;
    c->close_code = (uint16_t)code;
    if (c->role == ROLE_SUB)
        b->rooms[c->room].nsubs--;
    release(c);
}

/* Queues bytes for c, writing at once when nothing is queued. Returns 0, or
 * -1 when the backlog is over OUT_LIMIT (nothing queued) or the socket failed. */
static int conn_write(bench_t *b, conn_t *c, const uint8_t *p, size_t n) {
    if (c->out_len == c->out_off) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
        }
        if (n == 0)
            return 0;
        c->out_len = c->out_off = 0;
    }
    if (c->out_len - c->out_off + n > OUT_LIMIT)
        return -1;
    if (c->out_len + n > c->out_cap) {
        /* Compact first, grow only when that is not enough. */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
        if (c->out_len + n > c->out_cap) {
            uint32_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + n)
                cap *= 2;
            uint8_t *grown = realloc(c->out, cap);
            if (grown == NULL)
                return -1;
            c->out = grown;
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += (uint32_t)n;
    set_events(b, c, 1);
    return 0;
}

static int send_frame(bench_t *b, conn_t *c, int opcode, const void *payload, size_t n) {
    uint8_t frame[WS_MAX_HEADER + CONTENT_MAX + 64], mask[4];
    if (n > CONTENT_MAX + 64)
        return -1;
    uint32_t m = rng32();
    memcpy(mask, &m, 4);
    size_t hl = ws_frame_header(frame, opcode, n, mask);
    memcpy(frame + hl, payload, n);
    ws_apply_mask(frame + hl, n, mask, 0);
    return conn_write(b, c, frame, hl + n);
}

int client_publish(bench_t *b, conn_t *c, uint64_t ts_ns) {
    static const char HEAD[] = "{\"type\":\"message\",\"content\":\"";
    char json[CONTENT_MAX + 64];
    memcpy(json, HEAD, sizeof(HEAD) - 1);
    size_t len = sizeof(HEAD) - 1;
    size_t clen = scan_format_content(json + len, CONTENT_MAX, ts_ns, b->run, c->pub, c->seq_sent,
                                      b->opt.size);
    if (clen == 0 || c->state != CS_OPEN)
        return -1;
    len += clen;
    json[len++] = '"';
    json[len++] = '}';
    if (send_frame(b, c, WS_OP_TEXT, json, len) != 0)
        return -1;
    c->seq_sent++;
    return 0;
}

static void on_text(bench_t *b, conn_t *c, const uint8_t *p, size_t n) {
    bench_event_t ev;
    switch (scan_event(p, n, b->run, &ev)) {
    case EV_MESSAGE:
        if (ev.marked)
            load_on_message(b, c, &ev);
        else
            b->foreign++;
        break;
    case EV_ERROR:
        b->error_events++;
        bench_count_code(b->errors, ev.code ? ev.code : "?", ev.code ? ev.code_len : 1);
        break;
    case EV_PRESENCE:
        b->presence++;
        break;
    default:
        b->other_events++;
        break;
    }
}

/* Handles one complete frame. Returns 0, or -1 when the connection ended. */
static int on_frame(bench_t *b, conn_t *c, const ws_frame_t *f, const uint8_t *p) {
    size_t n = (size_t)f->payload_len;
    switch (f->opcode) {
    case WS_OP_TEXT:
    case WS_OP_CONT:
        if (f->opcode == WS_OP_TEXT && f->fin && c->msg == NULL) {
            on_text(b, c, p, n);
            return 0;
        }
        if ((f->opcode == WS_OP_TEXT) != (c->msg == NULL) || c->msg_len + n > FRAME_MAX) {
            b->protocol_errors++;
            conn_lost(b, c, 1002);
            return -1;
        }
        uint8_t *grown = realloc(c->msg, c->msg_len + n + 1);
        if (grown == NULL)
            return -1;
        c->msg = grown;
        memcpy(c->msg + c->msg_len, p, n);
        c->msg_len += (uint32_t)n;
        if (f->fin) {
            on_text(b, c, c->msg, c->msg_len);
            free(c->msg);
            c->msg = NULL;
            c->msg_len = 0;
        }
        return 0;
    case WS_OP_PING:
        send_frame(b, c, WS_OP_PONG, p, n);
        return 0;
    case WS_OP_CLOSE: {
        unsigned code = n >= 2 ? (unsigned)p[0] << 8 | p[1] : 1005;
        send_frame(b, c, WS_OP_CLOSE, p, n >= 2 ? 2 : 0);
        conn_lost(b, c, code);
        return -1;
    }
    default:
        b->other_events++;
        return 0;
    }
}

/* Parses frames in p[0..n). Returns the bytes consumed (the rest is an
 * incomplete frame), or -1 when the connection ended. */
static ssize_t on_frames(bench_t *b, conn_t *c, const uint8_t *p, size_t n) {
    size_t off = 0;
    while (off < n) {
        if (c->skip > 0) {
            size_t take = c->skip < n - off ? (size_t)c->skip : n - off;
            c->skip -= take;
            off += take;
            continue;
        }
        ws_frame_t f;
        int r = ws_parse_header(p + off, n - off, &f);
        if (r == 0)
            break;
        if (r < 0) {
            b->protocol_errors++;
            conn_lost(b, c, 1002);
            return -1;
        }
        if (f.payload_len > FRAME_MAX) {
            b->oversized++;
            c->skip = f.payload_len;
            off += f.header_len;
            continue;
        }
        if (f.header_len + f.payload_len > n - off)
            break;
        if (on_frame(b, c, &f, p + off + f.header_len) != 0)
            return -1;
        off += f.header_len + (size_t)f.payload_len;
    }
    return (ssize_t)off;
}

/* Handles the response head; returns the bytes it used, 0 when incomplete,
 * -1 when the connection failed. */
static ssize_t on_handshake(bench_t *b, conn_t *c, const uint8_t *p, size_t n) {
    size_t head = ws_head_length(p, n);
    if (head == 0) {
        if (n > HEAD_MAX) {
            conn_fail(b, c, "response head too large");
            return -1;
        }
        return 0;
    }
    int status;
    if (ws_check_response(p, head, c->key, &status) != 0) {
        char why[32];
        if (status == 101 || status == 0)
            snprintf(why, sizeof(why), "bad handshake");
        else
            snprintf(why, sizeof(why), "HTTP %d", status);
        conn_fail(b, c, why);
        return -1;
    }
    free(c->key);
    c->key = NULL;
    c->state = CS_OPEN;
    c->was_ready = 1;
    b->pending--;
    b->ready++;
    if (c->role == ROLE_SUB)
        b->rooms[c->room].nsubs++;
    if (b->ready + b->connect_failures == b->nconns)
        b->t_all_ready = b->now_ns;
    return (ssize_t)head;
}

void client_on_readable(bench_t *b, conn_t *c) {
    if (c->state == CS_CONNECTING)
        return; /* the EPOLLOUT side reports how connect() ended */
    uint32_t have = c->in_len;
    if (have > 0) {
        memcpy(b->rbuf, c->in, have);
        free(c->in);
        c->in = NULL;
        c->in_len = 0;
    }
    ssize_t r = read(c->fd, b->rbuf + have, RBUF_SIZE - have);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        r = 0;
    } else if (r <= 0) {
        if (c->state == CS_OPEN)
            conn_lost(b, c, 1006);
        else
            conn_fail(b, c, r == 0 ? "closed during handshake" : strerror(errno));
        return;
    }
    size_t n = have + (size_t)r, off = 0;
    if (c->state == CS_HANDSHAKE) {
        ssize_t used = on_handshake(b, c, b->rbuf, n);
        if (used < 0)
            return;
        off = (size_t)used;
    }
    if (c->state == CS_OPEN && off < n) {
        ssize_t used = on_frames(b, c, b->rbuf + off, n - off);
        if (used < 0)
            return;
        off += (size_t)used;
    }
    if (off < n) {
        c->in = malloc(n - off);
        if (c->in == NULL) {
            conn_lost(b, c, 1011);
            return;
        }
        memcpy(c->in, b->rbuf + off, n - off);
        c->in_len = (uint32_t)(n - off);
    }
}

static void on_connected(bench_t *b, conn_t *c) {
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        conn_fail(b, c, strerror(err ? err : errno));
        return;
    }
    char key[WS_KEY_LEN + 1], path[64], host_port[300], req[2048];
    if (ws_make_key(key) != 0 || (c->key = strdup(key)) == NULL) {
        conn_fail(b, c, "no key");
        return;
    }
    snprintf(path, sizeof(path), "/ws/%" PRId64, b->rooms[c->room].id);
    snprintf(host_port, sizeof(host_port), "%s:%d", b->opt.host, b->opt.port);
    int n = ws_format_request(req, sizeof(req), host_port, path, b->tokens[c->user], key);
    c->state = CS_HANDSHAKE;
    c->want_out = 1;
    set_events(b, c, 0);
    if (n < 0 || write(c->fd, req, (size_t)n) != n)
        conn_fail(b, c, "handshake write failed");
}

static void on_writable(bench_t *b, conn_t *c) {
    if (c->state == CS_CONNECTING) {
        on_connected(b, c);
        return;
    }
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            return;
        if (w <= 0) {
            conn_lost(b, c, 1006);
            return;
        }
        c->out_off += (uint32_t)w;
    }
    c->out_off = c->out_len = 0;
    set_events(b, c, 0);
}

static void launch(bench_t *b, conn_t *c) {
    const bench_opts_t *o = &b->opt;
    c->t_start_ns = b->now_ns;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    b->pending++;
    if (c->fd < 0) {
        conn_fail(b, c, strerror(errno));
        return;
    }
    if (c->role == ROLE_PUB) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    if (o->source_count > 0) {
        int one = 1;
        setsockopt(c->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        struct sockaddr_in src = {.sin_family = AF_INET,
                                  .sin_addr = o->sources[(c - b->conns) % o->source_count]};
        if (bind(c->fd, (struct sockaddr *)&src, sizeof(src)) != 0) {
            conn_fail(b, c, strerror(errno));
            return;
        }
    }
    struct sockaddr_in dst = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port), .sin_addr = o->addr};
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS) {
        conn_fail(b, c, strerror(errno));
        return;
    }
    c->state = CS_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->want_out = 1;
    if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        conn_fail(b, c, strerror(errno));
}

void client_launch_some(bench_t *b) {
    double rate = b->opt.connect_rate;
    while (b->launched < b->nconns && b->pending < b->opt.max_pending) {
        if (rate > 0 && (double)b->launched >= rate * (double)(b->now_ns - b->t_connect0) / 1e9 + 1)
            break;
        launch(b, &b->conns[b->launched++]);
    }
}

int client_init(bench_t *b) {
    if (getrandom(&rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state))
        rng_state = bench_now_ns();
    rng_state |= 1;
    long need = b->nconns + 64;
    if (raise_nofile(need) < need) {
        fprintf(stderr, "chatd-bench: %d connections need %ld file descriptors; the limit is %ld\n",
                b->nconns, need, raise_nofile(need));
        return -1;
    }
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    b->rbuf = malloc(RBUF_SIZE);
    for (int i = 0; i < b->nconns; i++)
        b->conns[i].fd = -1;
    return b->epfd >= 0 && b->rbuf != NULL ? 0 : -1;
}

int client_poll(bench_t *b, uint64_t timeout_ns) {
    struct epoll_event events[EVENTS_MAX];
    struct timespec ts = {.tv_sec = (time_t)(timeout_ns / 1000000000u),
                          .tv_nsec = (long)(timeout_ns % 1000000000u)};
    int n = epoll_pwait2(b->epfd, events, EVENTS_MAX, &ts, NULL);
    if (n < 0 && errno != EINTR)
        return -1;
    b->now_ns = bench_now_ns();
    for (int i = 0; i < n; i++) {
        conn_t *c = events[i].data.ptr;
        if (c->state == CS_CLOSED)
            continue;
        if (events[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
            if (c->state == CS_CONNECTING || (events[i].events & EPOLLOUT)) {
                on_writable(b, c);
                if (c->state == CS_CLOSED)
                    continue;
            }
        }
        if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            client_on_readable(b, c);
    }
    return 0;
}

void client_close_all(bench_t *b) {
    static const uint8_t goodbye[2] = {0x03, 0xe8}; /* 1000 */
    for (int i = 0; i < b->nconns; i++) {
        conn_t *c = &b->conns[i];
        if (c->state == CS_OPEN && c->out_len == c->out_off)
            send_frame(b, c, WS_OP_CLOSE, goodbye, sizeof(goodbye));
        if (c->state != CS_CLOSED && c->state != CS_IDLE)
            release(c);
        free(c->in);
        c->in = NULL;
    }
    if (b->epfd >= 0)
        close(b->epfd);
    b->epfd = -1;
    free(b->rbuf);
    b->rbuf = NULL;
}
