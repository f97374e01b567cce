/* A raw TCP client for the tests that serve in process: blocking sends, and
 * reads that poll against a deadline, so that no test sleeps and hopes. A
 * connect or send that fails fails the running cmocka test. */
#ifndef CHATD_TESTS_NET_CLIENT_H
#define CHATD_TESTS_NET_CLIENT_H

#include <stddef.h>
#include <stdint.h>

/* The longest any one wait of these tests may take. */
#define WAIT_MS 3000

#define CLIENT_BUF_BYTES 262144

typedef struct {
    int fd;
    char buf[CLIENT_BUF_BYTES + 1]; /* room for the NUL client_read puts after the bytes */
    size_t len;
} client_t;

/* One HTTP response; head and body are NUL-terminated. */
typedef struct {
    int status;
    char head[4096];
    char body[8192];
    size_t body_len;
} response_t;

int64_t now_ms(void);

/* A loopback port that was free a moment ago. */
int free_port(void);

/* Connects to 127.0.0.1:port; client_close frees the client. */
client_t *client_open_port(int port);
/* The same with TCP_NODELAY; rcvbuf > 0 shrinks the receive buffer (a slow reader). */
client_t *client_open_nodelay(int port, int rcvbuf);
void client_close(client_t *c);

void client_send(client_t *c, const void *data, size_t len);
void client_send_str(client_t *c, const char *s);

/* Reads more bytes before the deadline: >0 read, 0 EOF (or reset), -1 timeout. */
int client_fill(client_t *c, int64_t deadline);

/* Reads one response within WAIT_MS; what follows it stays in the client's
 * buffer. head_request: a Content-Length without a body. Returns 0, or -1
 * when it does not arrive whole in time. */
int client_read(client_t *c, response_t *r, int head_request);

/* True when the server closes the connection before the deadline. */
int client_sees_close(client_t *c, int timeout_ms);

/* Copies header name's value (cut to outlen - 1 bytes) to out; returns out,
 * or NULL when the response has no such header. */
const char *find_header(const response_t *r, const char *name, char *out, size_t outlen);
void assert_header(const response_t *r, const char *name, const char *expected);
void assert_no_header(const response_t *r, const char *name);

#endif
