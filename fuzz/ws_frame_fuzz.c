/* libFuzzer target: chatd's WebSocket frame parser (src/net/ws_frame.c)
 * against wslay 1.1.1 as the reference, on the same client-to-server bytes.
 *
 * The input is a raw byte stream as a client would send it after the
 * upgrade. Checks, in order:
 *  1. chatd gives the same result whether the stream arrives in one read, in
 *     a few reads split at input-derived points, or one byte per read:
 *     same messages, same verdict, same state at the end (partial frames).
 *  2. chatd and wslay deliver the same messages (text, ping, pong, close,
 *     with their payloads) in the same order, and end with the same
 *     verdict: still open, closed by the peer's close frame, or failed with
 *     the same close code. The differences that are intended, or that are
 *     wslay's, are each handled below where they are explained.
 * A disagreement aborts, so libFuzzer keeps the input. */
#include "net/ws_frame.h"

#include <wslay/wslay.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* wslay 1.1.1 checks the UTF-8 of a close reason per chunk of payload and
 * skips the first two bytes of every chunk, not only of the first, so a
 * close frame that straddles two reads is misjudged. wslay reads at most
 * 4096 bytes at a time; keeping the input within that makes every frame
 * one chunk for it. */
#define MAX_INPUT   4096
#define MAX_MESSAGE 1024
#define MAX_EVENTS  (MAX_INPUT / 2 + 8)

enum { OPEN = 0, CLOSED = -1 }; /* verdicts besides close codes */
enum { EV_TEXT = 1, EV_BINARY = 2, EV_CLOSE = 8, EV_PING = 9, EV_PONG = 10 };

static void disagree(const char *what, int chatd, int wslay) {
    fprintf(stderr, "ws_frame_fuzz: %s (chatd %d, wslay %d)\n", what, chatd, wslay);
    abort();
}

/* ---- the messages each side delivered --------------------------------- */

typedef struct {
    int kind;
    size_t off, len;
} event_t;

typedef struct {
    event_t events[MAX_EVENTS];
    size_t count;
    uint8_t data[MAX_INPUT + 16];
    size_t used;
} event_log_t;

static void log_add(event_log_t *log, int kind, const void *data, size_t len) {
    if (log->count == MAX_EVENTS || len > sizeof(log->data) - log->used)
        disagree("more payload delivered than was sent", 0, 0);
    log->events[log->count++] = (event_t){kind, log->used, len};
    if (len > 0)
        memcpy(log->data + log->used, data, len);
    log->used += len;
}

static int events_equal(const event_log_t *a, size_t ai, const event_log_t *b, size_t bi) {
    const event_t *x = &a->events[ai], *y = &b->events[bi];
    return x->kind == y->kind && x->len == y->len &&
           memcmp(a->data + x->off, b->data + y->off, x->len) == 0;
}

/* The first n events of a and b are the same. */
static int logs_share_prefix(const event_log_t *a, const event_log_t *b, size_t n) {
    if (a->count < n || b->count < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!events_equal(a, i, b, i))
            return 0;
    return 1;
}

static int close_code_of(const event_log_t *log, size_t i) {
    const event_t *e = &log->events[i];
    return e->len >= 2 ? log->data[e->off] << 8 | log->data[e->off + 1] : 0;
}

/* ---- UTF-8 as wslay sees it: a byte-at-a-time verdict ----------------- */

enum { U8_ACCEPT, U8_INCOMPLETE, U8_REJECT };

/* RFC 3629's table of well-formed sequences. */
static int utf8_scan(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i], lo = 0x80, hi = 0xBF;
        size_t extra;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        } else {
            return U8_REJECT;
        }
        for (size_t k = 1; k <= extra; k++) {
            if (i + k >= n)
                return U8_INCOMPLETE;
            uint8_t cc = s[i + k];
            if (k == 1 ? cc < lo || cc > hi : (cc & 0xC0) != 0x80)
                return U8_REJECT;
        }
        i += extra + 1;
    }
    return U8_ACCEPT;
}

/* ---- chatd ------------------------------------------------------------ */

static int chatd_on_text(void *ctx, char *data, size_t len) {
    log_add(ctx, EV_TEXT, data, len);
    return 0;
}

/* A close frame ends reading, as it does for the connection and for wslay. */
static int chatd_on_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
    log_add(ctx, opcode, data, len);
    return opcode == WS_OP_CLOSE;
}

static const ws_parser_handlers_t chatd_handlers = {chatd_on_text, chatd_on_control};

typedef struct {
    ws_parser_t parser;
    event_log_t log;
    int verdict;
    size_t stop_at; /* input bytes handed over when the parser stopped */
} chatd_run_t;

/* Feeds one read through a buffer of exactly its size, so that reading
 * past the end of a read is caught by ASan. */
static int chatd_feed(chatd_run_t *run, const uint8_t *in, size_t n) {
    uint8_t *copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, in, n);
    int rc = ws_parser_feed(&run->parser, copy, n, &chatd_handlers, &run->log);
    free(copy);
    if (rc == -2)
        disagree("out of memory with messages capped at MAX_MESSAGE", rc, 0);
    return rc;
}

/* Feeds in[0..n) cut at cuts[] (ascending), or one byte per read when
 * bytewise; leaves the parser as it ended for the caller to inspect. */
static void chatd_run(chatd_run_t *run, const uint8_t *in, size_t n, const size_t *cuts,
                      size_t ncuts, int bytewise) {
    memset(&run->log, 0, sizeof(run->log));
    ws_parser_init(&run->parser, MAX_MESSAGE);
    run->verdict = OPEN;
    size_t pos = 0, k = 0;
    while (pos < n) {
        size_t end = bytewise ? pos + 1 : k < ncuts ? cuts[k++] : n;
        if (end <= pos)
            continue;
        int rc = chatd_feed(run, in + pos, end - pos);
        pos = end;
        if (rc != 0) {
            run->verdict = rc == -1 ? CLOSED : rc;
            break;
        }
    }
    run->stop_at = pos;
}

static void chatd_expect_same(const chatd_run_t *a, const chatd_run_t *b) {
    const ws_parser_t *p = &a->parser, *q = &b->parser;
    if (a->verdict != b->verdict)
        disagree("chatd: verdict depends on how the input was split", a->verdict, b->verdict);
    if (a->log.count != b->log.count || !logs_share_prefix(&a->log, &b->log, a->log.count))
        disagree("chatd: messages depend on how the input was split", a->verdict, b->verdict);
    if (a->verdict == OPEN && (p->in_payload != q->in_payload || p->header_len != q->header_len ||
                               p->fragmented != q->fragmented || p->message_len != q->message_len ||
                               (p->in_payload && p->payload_done != q->payload_done)))
        disagree("chatd: state depends on how the input was split", 0, 0);
}

/* ---- wslay ------------------------------------------------------------ */

typedef struct {
    const uint8_t *in;
    size_t len, pos;
    event_log_t log;
    int saw_binary_frame;
    size_t events_before_binary;
} ref_run_t;

static ssize_t ref_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                        void *user) {
    (void)flags;
    ref_run_t *run = user;
    size_t n = run->len - run->pos < len ? run->len - run->pos : len;
    if (n == 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    memcpy(buf, run->in + run->pos, n);
    run->pos += n;
    return (ssize_t)n;
}

/* wslay answers pings and echoes closes itself; chatd's parser leaves that
 * to the connection. What is compared is that both delivered the ping or
 * close; the answers go nowhere. */
static ssize_t ref_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                        void *user) {
    (void)ctx, (void)data, (void)flags, (void)user;
    return (ssize_t)len;
}

static void ref_on_frame_start(wslay_event_context_ptr ctx,
                               const struct wslay_event_on_frame_recv_start_arg *arg, void *user) {
    (void)ctx;
    ref_run_t *run = user;
    if (arg->opcode == WSLAY_BINARY_FRAME && !run->saw_binary_frame) {
        run->saw_binary_frame = 1;
        run->events_before_binary = run->log.count;
    }
}

static void ref_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user) {
    (void)ctx;
    log_add(&((ref_run_t *)user)->log, arg->opcode, arg->msg, arg->msg_length);
}

/* One call reads all that is there: the whole input fits wslay's buffer. */
static void ref_read(wslay_event_context_ptr ctx) {
    if (wslay_event_recv(ctx) == WSLAY_ERR_NOMEM)
        abort();
}

/* wslay queues a close frame with the code of any error it finds and stops
 * reading; the code is known once that frame has been "sent". */
static int ref_verdict(wslay_event_context_ptr ctx) {
    if (wslay_event_get_close_received(ctx))
        return CLOSED;
    if (wslay_event_get_read_enabled(ctx))
        return OPEN;
    wslay_event_send(ctx);
    int code = wslay_event_get_status_code_sent(ctx);
    /* Errors of its frame layer (a control frame over 125 bytes or not
     * final, a length not in its shortest form, a 64-bit length with the top
     * bit set) close without a status code. */
    if (code == WSLAY_CODE_NO_STATUS_RCVD)
        return WS_CLOSE_PROTOCOL_ERROR;
    if (code != WS_CLOSE_PROTOCOL_ERROR && code != WS_CLOSE_INVALID_PAYLOAD &&
        code != WS_CLOSE_TOO_BIG)
        disagree("wslay ended in an unexpected state", 0, code);
    return code;
}

/* ---- the comparison ---------------------------------------------------- */

/* The bytes of an unfinished text message that chatd holds are already
 * invalid UTF-8: wslay rejects those as they arrive (1007) where chatd checks
 * a message once it is complete, so chatd may instead report a later
 * problem, or nothing yet. Likewise for the reason of a close frame, which
 * wslay checks before the code and chatd after it. */
static int chatd_holds_invalid_utf8(const chatd_run_t *run, const uint8_t *in) {
    const ws_parser_t *p = &run->parser;
    if (p->message_len > 0 && utf8_scan(p->message, p->message_len) == U8_REJECT)
        return 1;
    if (p->opcode != WS_OP_CLOSE || p->payload_len < 2)
        return 0;
    if (p->in_payload) /* a close frame cut short by the end of the input */
        return p->payload_done > 2 && utf8_scan(p->control + 2, p->payload_done - 2) == U8_REJECT;
    if (p->header_len != 0) /* stopped at the header: the payload was never read */
        return 0;
    /* A complete close frame rejected for its code: find its payload from
     * where the bytewise run stopped, and unmask it. */
    if (run->verdict != WS_CLOSE_PROTOCOL_ERROR || run->stop_at < p->payload_len)
        return 0;
    uint8_t reason[WS_CONTROL_MAX];
    size_t start = run->stop_at - p->payload_len;
    for (size_t i = 2; i < p->payload_len; i++)
        reason[i - 2] = in[start + i] ^ p->mask[i & 3];
    return utf8_scan(reason, p->payload_len - 2) != U8_ACCEPT;
}

/* Completes a header chatd is still reading with zero bytes and returns its
 * new verdict: wslay judges the first two bytes and the extended length
 * before the masking key has arrived, chatd only the whole header. */
static int chatd_finish_header(chatd_run_t *run) {
    static const uint8_t zero[1] = {0};
    for (int i = 0; i < 14 && !run->parser.in_payload; i++) {
        int rc = chatd_feed(run, zero, 1);
        if (rc != 0)
            return rc == -1 ? CLOSED : rc;
    }
    return OPEN;
}

static void compare(chatd_run_t *chatd, const uint8_t *in, wslay_event_context_ptr wctx,
                    ref_run_t *wslay) {
    const event_log_t *c = &chatd->log, *w = &wslay->log;
    const ws_parser_t *p = &chatd->parser;
    int cv = chatd->verdict, wv = ref_verdict(wctx);

    /* wslay checks a frame's header only once a byte of its payload has
     * arrived; chatd as soon as the header is complete. Give wslay one more
     * byte (what it would read next) before judging. */
    if (cv > 0 && wv == OPEN) {
        static const uint8_t one[1] = {0};
        wslay->in = one, wslay->len = 1, wslay->pos = 0;
        ref_read(wctx);
        wv = ref_verdict(wctx);
    }

    /* Binary messages are refused by policy (1003) where wslay delivers
     * them: compare up to the first binary frame, which wslay must reach
     * too, unless it refuses it for its size first. */
    if (cv == WS_CLOSE_UNSUPPORTED_DATA) {
        size_t before = wslay->saw_binary_frame ? wslay->events_before_binary : w->count;
        if (!wslay->saw_binary_frame && wv != WS_CLOSE_TOO_BIG)
            disagree("only chatd saw a binary frame", cv, wv);
        if (c->count != before || !logs_share_prefix(c, w, before))
            disagree("messages before a binary frame differ", cv, wv);
        return;
    }

    if (wv == WS_CLOSE_INVALID_PAYLOAD) {
        if (cv != WS_CLOSE_INVALID_PAYLOAD && !chatd_holds_invalid_utf8(chatd, in))
            disagree("only wslay found invalid UTF-8", cv, wv);
        /* wslay stopped inside the message; chatd may have gone on to
         * deliver control frames interleaved with its fragments. */
        if (!logs_share_prefix(c, w, w->count))
            disagree("messages differ before invalid UTF-8", cv, wv);
        for (size_t i = w->count; i < c->count; i++)
            if (c->events[i].kind == EV_TEXT)
                disagree("chatd delivered text after invalid UTF-8", cv, wv);
        return;
    }

    /* A close frame with a one-byte payload cannot hold a status code:
     * chatd fails it (1002, as RFC 6455 section 5.5.1 implies and Autobahn
     * case 7.3.2 expects); wslay takes it as a close without a code. */
    if (cv == WS_CLOSE_PROTOCOL_ERROR && wv == CLOSED && p->opcode == WS_OP_CLOSE &&
        p->payload_len == 1 && w->count == c->count + 1 && w->events[c->count].kind == EV_CLOSE &&
        w->events[c->count].len == 1) {
        if (!logs_share_prefix(c, w, c->count))
            disagree("messages before a one-byte close differ", cv, wv);
        return;
    }

    /* chatd accepts the close codes IANA registered after RFC 6455 (1012
     * service restart, 1013 try again later, which chatd itself sends, and
     * 1014 bad gateway); wslay 1.1.1 refuses them with 1002. */
    if (cv == CLOSED && wv == WS_CLOSE_PROTOCOL_ERROR && c->count == w->count + 1 &&
        c->events[w->count].kind == EV_CLOSE && close_code_of(c, w->count) >= 1012 &&
        close_code_of(c, w->count) <= 1014) {
        if (!logs_share_prefix(c, w, w->count))
            disagree("messages before a 1012-1014 close differ", cv, wv);
        return;
    }

    if (cv == OPEN && wv == WS_CLOSE_PROTOCOL_ERROR && !p->in_payload && p->header_len >= 2)
        cv = chatd_finish_header(chatd);

    if (cv != wv)
        disagree("verdicts differ", cv, wv);
    if (c->count != w->count || !logs_share_prefix(c, w, c->count))
        disagree("messages differ", cv, wv);
}

/* ---- the target -------------------------------------------------------- */

static uint64_t fnv1a(const uint8_t *data, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    return h;
}

static int cmp_size(const void *a, const void *b) {
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static chatd_run_t whole, split, bytewise;
    static ref_run_t wslay;
    if (size > MAX_INPUT)
        size = MAX_INPUT;

    uint64_t h = fnv1a(data, size);
    size_t cuts[3];
    for (int i = 0; i < 3; i++)
        cuts[i] = size ? (size_t)((h >> (20 * i)) % (size + 1)) : 0;
    qsort(cuts, 3, sizeof(cuts[0]), cmp_size);

    chatd_run(&whole, data, size, NULL, 0, 0);
    chatd_run(&split, data, size, cuts, 3, 0);
    chatd_run(&bytewise, data, size, NULL, 0, 1);
    chatd_expect_same(&whole, &split);
    chatd_expect_same(&whole, &bytewise);

    static const struct wslay_event_callbacks callbacks = {
        .recv_callback = ref_recv,
        .send_callback = ref_send,
        .on_frame_recv_start_callback = ref_on_frame_start,
        .on_msg_recv_callback = ref_on_msg,
    };
    memset(&wslay, 0, sizeof(wslay));
    wslay.in = data, wslay.len = size;
    wslay_event_context_ptr wctx;
    if (wslay_event_context_server_init(&wctx, &callbacks, &wslay) != 0)
        abort();
    wslay_event_config_set_max_recv_msg_length(wctx, MAX_MESSAGE);
    ref_read(wctx);

    /* The bytewise run knows where chatd stopped; its parser state is the
     * whole run's, checked above. */
    compare(&bytewise, data, wctx, &wslay);

    wslay_event_context_free(wctx);
    ws_parser_reset(&whole.parser);
    ws_parser_reset(&split.parser);
    ws_parser_reset(&bytewise.parser);
    return 0;
}
