/* What the load generator reads out of chatd's events without a JSON parse:
 * the event type, a message's id and room, and the marker that the
 * publisher put at the start of the content. Events are chatd's own JSON,
 * so a few fixed keys found with memmem are enough; anything unexpected is
 * reported as EV_OTHER or as an unmarked message, never guessed at. */
#ifndef CHATD_BENCH_SCAN_H
#define CHATD_BENCH_SCAN_H

#include <stddef.h>
#include <stdint.h>

typedef enum { EV_OTHER, EV_MESSAGE, EV_PRESENCE, EV_ERROR } event_type_t;

typedef struct {
    event_type_t type;
    int64_t id;       /* message: its id; 0 when absent */
    int64_t room_id;  /* message: its room; 0 when absent */
    int marked;       /* message: the content carries this run's marker */
    uint64_t ts_ns;   /* the publisher's CLOCK_MONOTONIC time of sending */
    uint32_t pub;     /* the publisher's index */
    uint64_t seq;     /* the publisher's sequence number */
    const char *code; /* error: the code, not NUL-terminated */
    size_t code_len;
} bench_event_t;

/* Reads one text message. run is this run's tag, so that messages posted by
 * someone else (or another run) count as unmarked. Returns the event type. */
event_type_t scan_event(const uint8_t *p, size_t n, uint32_t run, bench_event_t *ev);

/* Reads the marker at the start of a message's content (unescaped). Returns
 * 1 with ts_ns, pub and seq filled when it is this run's, else 0. */
int scan_marker(const char *content, size_t len, uint32_t run, bench_event_t *ev);

/* Writes the content of one message: "#T<ts>#<run>:<pub>:<seq># " and filler
 * up to pad_to bytes. Returns the length, or 0 if it does not fit in cap. */
size_t scan_format_content(char *out, size_t cap, uint64_t ts_ns, uint32_t run, uint32_t pub,
                           uint64_t seq, size_t pad_to);

#endif
