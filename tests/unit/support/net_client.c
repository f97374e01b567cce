#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static client_t *client_connect(int port, int nodelay, int rcvbuf) {
    client_t *c = test_calloc(1, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    if (nodelay)
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (rcvbuf > 0)
        setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return c;
}

client_t *client_open_port(int port) {
    return client_connect(port, 0, 0);
}

client_t *client_open_nodelay(int port, int rcvbuf) {
    return client_connect(port, 1, rcvbuf);
}

void client_close(client_t *c) {
    close(c->fd);
    test_free(c);
}

void client_send(client_t *c, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        assert_true(n > 0);
        p += n;
        len -= (size_t)n;
    }
}

void client_send_str(client_t *c, const char *s) {
    client_send(c, s, strlen(s));
}

int client_fill(client_t *c, int64_t deadline) {
    int64_t left = deadline - now_ms();
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    if (left <= 0 || poll(&p, 1, (int)left) != 1)
        return -1;
    if (c->len == CLIENT_BUF_BYTES)
        fail_msg("client buffer full");
    ssize_t n = recv(c->fd, c->buf + c->len, CLIENT_BUF_BYTES - c->len, 0);
    if (n <= 0)
        return 0;
    c->len += (size_t)n;
    return (int)n;
}

const char *find_header(const response_t *r, const char *name, char *out, size_t outlen) {
    size_t nlen = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line != NULL && line[2] != '\0') {
        line += 2;
        if (strncasecmp(line, name, nlen) == 0 && line[nlen] == ':') {
            const char *v = line + nlen + 1;
            while (*v == ' ')
                v++;
            size_t vlen = strcspn(v, "\r");
            if (vlen >= outlen)
                vlen = outlen - 1;
            memcpy(out, v, vlen);
            out[vlen] = '\0';
            return out;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

int client_read(client_t *c, response_t *r, int head_request) {
    int64_t deadline = now_ms() + WAIT_MS;
    memset(r, 0, sizeof(*r));
    char *end;
    while (c->buf[c->len] = '\0', (end = strstr(c->buf, "\r\n\r\n")) == NULL) {
        if (client_fill(c, deadline) <= 0)
            return -1;
    }
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof(r->head));
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d", &r->status), 1);
    char value[32];
    size_t body_len = 0;
    if (!head_request && find_header(r, "Content-Length", value, sizeof(value)) != NULL)
        body_len = (size_t)atol(value);
    assert_true(body_len < sizeof(r->body));
    while (c->len < head_len + body_len) {
        if (client_fill(c, deadline) <= 0)
            return -1;
    }
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    return 0;
}

int client_sees_close(client_t *c, int timeout_ms) {
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int n = client_fill(c, deadline);
        if (n == 0)
            return 1;
        if (n < 0)
            return 0;
        c->len = 0; /* discard */
    }
}

void assert_header(const response_t *r, const char *name, const char *expected) {
    char value[256];
    if (find_header(r, name, value, sizeof(value)) == NULL)
        fail_msg("no %s header in:\n%s", name, r->head);
    assert_string_equal(value, expected);
}

void assert_no_header(const response_t *r, const char *name) {
    char value[256];
    if (find_header(r, name, value, sizeof(value)) != NULL)
        fail_msg("unexpected %s: %s", name, value);
}
