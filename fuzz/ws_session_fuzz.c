/* libFuzzer target: a WebSocket connection after the upgrade, with the real
 * chat session behind it (src/net/ws_conn.c, ws_out.c, src/chat/session.c
 * and what they call), in process (fuzz/common/inproc.c).
 *
 * Each input is one connection: a valid upgrade to room 1 as user 1, then
 * the input's bytes as the client's frames, then, once the server has
 * nothing left to do, FIN. The first byte of the input is not sent; it
 * chooses how the rest is: bit 0 set, with the upgrade request in the same
 * write (the bytes the connection holds at the upgrade); bits 1-3, in how
 * many writes (1-8), cut at points derived from the input, each read by
 * the server before the next is sent. MAX_MESSAGE_BYTES is 1024, so that
 * small inputs reach it.
 *
 * What the server must do is worked out with chatd's frame parser
 * (src/net/ws_frame.c, which the connection uses and ws_frame_fuzz checks
 * against wslay) and its event parser (src/chat/client_event.c, which
 * client_event_fuzz checks). Checks:
 *  - the upgrade is answered 101, well-formed, with the right
 *    Sec-WebSocket-Accept;
 *  - every frame the server sends is well-formed: final, unmasked, no RSV
 *    bits, a known opcode, the length in its shortest form, control frames
 *    within 125 bytes; text is UTF-8 holding a JSON object with a known
 *    event type; nothing follows a close frame; nothing is cut short;
 *  - every ping is answered with a pong with its payload, in order;
 *  - the close: with the code of the protocol error the parser finds
 *    (1002, 1003, 1007, 1009), or the client's own code when it closes
 *    (1000 for a close without one), and no close frame while the client
 *    broke no rule and did not close;
 *  - every event: {"type":"ping"} gets a pong event, and an event the
 *    parser refuses gets an error event with its code; never an
 *    "internal" error;
 *  - the server closes the connection (never a reset), and nothing is left
 *    behind: no store job, no libuv request, no handle; ASan and LSan watch
 *    the rest. */
#include "chat/client_event.h"
#include "common/http_check.h"
#include "common/inproc.h"
#include "core/utf8.h"
#include "net/ws_frame.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PINGS 4096

static const char *const settings[] = {"MAX_MESSAGE_BYTES=1024", NULL};

static const char websocket_key[] = "dGhlIHNhbXBsZSBub25jZQ==";
static const char websocket_accept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static const char *const event_types[] = {"message",  "typing", "presence", "read",
                                          "recovery", "error",  "pong",     "auth"};

static const char *const error_codes[] = {"invalid_json", "validation_failed", "unknown_type"};
#define NCODES (sizeof(error_codes) / sizeof(error_codes[0]))

typedef struct {
    size_t off, len;
} span_t;

/* What the server must answer, from the client's bytes. */
typedef struct {
    buf_t pings; /* ping payloads, back to back */
    span_t ping[MAX_PINGS];
    size_t ping_count;
    int ping_events;
    int errors[NCODES]; /* error events the session must send, by code */
    int close_code;     /* the code the server's close frame must carry; 0: none */
} expected_t;

static void fail(const char *what, const char *detail, const inproc_client_t *c) {
    fprintf(stderr, "ws_session_fuzz: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    if (c != NULL) {
        fprintf(stderr, "the server sent %zu bytes:", c->in.len);
        for (size_t i = 0; i < c->in.len && i < 2048; i++)
            fprintf(stderr, "%s%02x", i % 32 ? " " : "\n", (uint8_t)c->in.data[i]);
        fprintf(stderr, "\n");
    }
    abort();
}

/* ---- the reference ------------------------------------------------------- */

static int ref_on_text(void *ctx, char *data, size_t len) {
    expected_t *e = ctx;
    client_event_t ev;
    if (client_event_parse(data, len, &ev) != 0) {
        for (size_t i = 0; i < NCODES; i++)
            if (strcmp(ev.error_code, error_codes[i]) == 0)
                e->errors[i]++;
        return 0;
    }
    e->ping_events += ev.type == CLIENT_EVENT_PING;
    client_event_free(&ev);
    return 0;
}

static int ref_on_control(void *ctx, int opcode, const uint8_t *data, size_t len) {
    expected_t *e = ctx;
    if (opcode == WS_OP_PING && e->ping_count < MAX_PINGS) {
        e->ping[e->ping_count++] = (span_t){e->pings.len, len};
        if (buf_append(&e->pings, data, len) != 0)
            abort();
    }
    if (opcode == WS_OP_CLOSE)
        e->close_code = len >= 2 ? data[0] << 8 | data[1] : WS_CLOSE_NORMAL;
    return opcode == WS_OP_CLOSE;
}

static void expect_from_frames(const uint8_t *frames, size_t len, expected_t *e) {
    static const ws_parser_handlers_t handlers = {ref_on_text, ref_on_control};
    uint8_t *copy = malloc(len ? len : 1); /* the parser unmasks in place */
    if (copy == NULL)
        abort();
    memcpy(copy, frames, len);
    ws_parser_t parser;
    ws_parser_init(&parser, inproc_config()->max_message_bytes);
    int rc = ws_parser_feed(&parser, copy, len, &handlers, e);
    ws_parser_reset(&parser);
    free(copy);
    if (rc == -2)
        abort();
    if (rc > 0)
        e->close_code = rc;
}

/* ---- reading what the server sent --------------------------------------- */

typedef struct {
    int opcode;
    const uint8_t *payload;
    size_t len;
} frame_t;

/* Reads one server frame at p (n bytes left). Returns its size, 0 when cut
 * short, or fails. */
static size_t read_frame(const uint8_t *p, size_t n, frame_t *f, const inproc_client_t *c) {
    if (n < 2)
        return 0;
    if ((p[0] & 0xF0) != 0x80)
        fail("a server frame not final, or with RSV bits", NULL, c);
    if (p[1] & 0x80)
        fail("a masked server frame", NULL, c);
    f->opcode = p[0] & 0x0F;
    uint64_t len = p[1] & 0x7F;
    size_t head = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        head = 4;
        if (len < 126)
            fail("a 16-bit length for a short frame", NULL, c);
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | p[i];
        head = 10;
        if (len < 65536 || (len >> 63))
            fail("a 64-bit length not in its shortest form", NULL, c);
    }
    if (f->opcode != WS_OP_TEXT && f->opcode != WS_OP_CLOSE && f->opcode != WS_OP_PING &&
        f->opcode != WS_OP_PONG)
        fail("a server frame with an opcode chatd does not send", NULL, c);
    if (f->opcode >= WS_OP_CLOSE && len > WS_CONTROL_MAX)
        fail("a control frame over 125 bytes", NULL, c);
    if (n - head < len)
        return 0;
    f->payload = p + head;
    f->len = (size_t)len;
    return head + (size_t)len;
}

static int close_code_valid(int code) {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

static void check_event(const frame_t *f, int *pongs, int *errors, const inproc_client_t *c) {
    if (!utf8_valid(f->payload, f->len))
        fail("a text frame that is not UTF-8", NULL, c);
    json_t *root = json_loadb((const char *)f->payload, f->len, 0, NULL);
    const char *type = json_string_value(json_object_get(root, "type"));
    int known = 0;
    for (size_t i = 0; type != NULL && i < sizeof(event_types) / sizeof(event_types[0]); i++)
        known |= strcmp(type, event_types[i]) == 0;
    if (!json_is_object(root) || !known)
        fail("a text frame that is no event", NULL, c);
    if (strcmp(type, "pong") == 0)
        (*pongs)++;
    if (strcmp(type, "error") == 0) {
        const char *code = json_string_value(json_object_get(root, "code"));
        if (code == NULL || !json_is_string(json_object_get(root, "error")))
            fail("an error event without code and message", NULL, c);
        if (strcmp(code, "internal") == 0)
            fail("an internal error from client input", NULL, c);
        for (size_t i = 0; i < NCODES; i++)
            if (strcmp(code, error_codes[i]) == 0)
                errors[i]++;
    }
    json_decref(root);
}

static void check_frames(const inproc_client_t *c, size_t off, const expected_t *e) {
    const uint8_t *out = (const uint8_t *)c->in.data;
    size_t pongs = 0;
    int pong_events = 0, errors[NCODES] = {0}, close_code = 0;
    while (off < c->in.len) {
        if (close_code != 0)
            fail("a frame after the close frame", NULL, c);
        frame_t f;
        size_t size = read_frame(out + off, c->in.len - off, &f, c);
        if (size == 0)
            fail("a server frame cut short", NULL, c);
        off += size;
        if (f.opcode == WS_OP_TEXT) {
            check_event(&f, &pong_events, errors, c);
        } else if (f.opcode == WS_OP_PONG) {
            if (pongs == e->ping_count || f.len != e->ping[pongs].len ||
                memcmp(f.payload, e->pings.data + e->ping[pongs].off, f.len) != 0)
                fail("a pong that answers no ping, or not in order", NULL, c);
            pongs++;
        } else if (f.opcode == WS_OP_CLOSE) {
            if (f.len == 1)
                fail("a close frame with a one-byte payload", NULL, c);
            close_code = f.len >= 2 ? f.payload[0] << 8 | f.payload[1] : WS_CLOSE_NORMAL;
            if (!close_code_valid(close_code) ||
                (f.len > 2 && !utf8_valid(f.payload + 2, f.len - 2)))
                fail("a close frame with an invalid code or reason", NULL, c);
        }
    }
    char detail[96];
    if (pongs != e->ping_count && e->ping_count < MAX_PINGS) {
        snprintf(detail, sizeof(detail), "%zu pings, %zu pongs", e->ping_count, pongs);
        fail("a ping went unanswered", detail, c);
    }
    if (close_code != e->close_code) {
        snprintf(detail, sizeof(detail), "expected %d, got %d", e->close_code, close_code);
        fail("the close code is not the one the input calls for", detail, c);
    }
    if (pong_events != e->ping_events)
        fail("a ping event without its pong event, or the other way round", NULL, c);
    for (size_t i = 0; i < NCODES; i++)
        if (errors[i] < e->errors[i])
            fail("a refused event without its error event", error_codes[i], c);
}

/* ---- the target ----------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    inproc_start(settings);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0)
        return 0;
    int with_upgrade = data[0] & 1;
    int pieces = 1 + ((data[0] >> 1) & 7);
    const uint8_t *frames = data + 1;
    size_t frames_len = size - 1;

    expected_t e;
    memset(&e, 0, sizeof(e));
    e.pings = (buf_t)BUF_INIT;
    expect_from_frames(frames, frames_len, &e);

    char request[1024];
    int rlen = snprintf(request, sizeof(request),
                        "GET /ws/1 HTTP/1.1\r\nHost: fuzz\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Key: %s\r\nAuthorization: Bearer %s\r\n\r\n",
                        websocket_key, inproc_token(1));
    inproc_client_t c;
    inproc_connect(&c);
    if (with_upgrade) {
        uint8_t *all = malloc((size_t)rlen + frames_len);
        if (all == NULL)
            abort();
        memcpy(all, request, (size_t)rlen);
        memcpy(all + rlen, frames, frames_len);
        /* One stream, cut anywhere: frames may come in the request's read. */
        inproc_send_pieces(&c, all, (size_t)rlen + frames_len, pieces, inproc_hash(data, size));
        free(all);
    } else {
        inproc_send(&c, request, (size_t)rlen);
        inproc_settle(&c);
        inproc_send_pieces(&c, frames, frames_len, pieces, inproc_hash(data, size));
    }
    inproc_settle(&c);
    inproc_finish(&c);

    if (c.reset)
        fail("the server reset the connection", NULL, &c);
    http_response_t r;
    int rc = http_check_response(c.in.data != NULL ? c.in.data : "", c.in.len, 0, &r);
    if (rc <= 0)
        fail("no well-formed answer to the upgrade", rc < 0 ? r.why : "cut short", &c);
    if (r.status != 101 || strcmp(r.accept, websocket_accept) != 0 ||
        !http_check_generated_id(r.request_id))
        fail("the upgrade was not answered 101 with the right accept key and an id", NULL, &c);
    check_frames(&c, r.length, &e);
    buf_free(&e.pings);
    inproc_client_free(&c);
    return 0;
}
