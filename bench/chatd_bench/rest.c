/* The REST side of a run: users and rooms, over plain blocking HTTP/1.1
 * (a few hundred requests at most, before any WebSocket opens). */
#include "bench.h"
#include "scan.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define REST_TIMEOUT_S 60
#define REST_MAX_BODY  (1 << 20)
/* Reading the run's messages back must not take the run's deadline. */
#define READ_BACK_BUDGET_S 60

/* Sends one request with Connection: close. Returns the HTTP status with the
 * body in *body (malloc'd, NUL-terminated, the caller frees it), or -1 on a
 * transport error. */
static int rest_call(const bench_opts_t *o, const char *method, const char *path, const char *token,
                     const char *json_body, char **body) {
    *body = NULL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = REST_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port), .sin_addr = o->addr};
    char *req = NULL, *resp = NULL;
    int status = -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto out;
    size_t blen = json_body ? strlen(json_body) : 0;
    int n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n"
                     "%s%s%s%s%sContent-Length: %zu\r\n\r\n%s",
                     method, path, o->host, o->port, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "",
                     json_body ? "Content-Type: application/json" : "", json_body ? "\r\n" : "",
                     blen, json_body ? json_body : "");
    if (n < 0) {
        req = NULL;
        goto out;
    }
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(fd, req + off, (size_t)(n - off));
        if (w <= 0)
            goto out;
        off += w;
    }
    size_t len = 0, cap = 4096;
    resp = malloc(cap);
    if (resp == NULL)
        goto out;
    for (;;) {
        if (len + 1 == cap) {
            if (cap >= REST_MAX_BODY)
                goto out;
            char *grown = realloc(resp, cap * 2);
            if (grown == NULL)
                goto out;
            resp = grown;
            cap *= 2;
        }
        ssize_t r = read(fd, resp + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        len += (size_t)r;
    }
    resp[len] = '\0';
    char *head_end = strstr(resp, "\r\n\r\n");
    if (head_end == NULL || sscanf(resp, "HTTP/1.%*d %d", &status) != 1) {
        status = -1;
        goto out;
    }
    /* chatd answers with Content-Length; Connection: close makes EOF the end. */
    *body = strdup(head_end + 4);
    if (*body == NULL)
        status = -1;
out:
    free(req);
    free(resp);
    close(fd);
    return status;
}

/* The string field key of a JSON object body, strdup'd, or NULL. */
static char *json_string_field(const char *body, const char *key) {
    json_t *root = json_loads(body ? body : "", 0, NULL);
    const char *v = json_string_value(json_object_get(root, key));
    char *copy = v ? strdup(v) : NULL;
    json_decref(root);
    return copy;
}

static int64_t json_int_field(const char *body, const char *key) {
    json_t *root = json_loads(body ? body : "", 0, NULL);
    int64_t v = json_is_integer(json_object_get(root, key))
                    ? (int64_t)json_integer_value(json_object_get(root, key))
                    : -1;
    json_decref(root);
    return v;
}

/* Registers user i of this run, or logs in when the email already exists.
 * Returns its token (malloc'd) or NULL after printing why. */
static void user_credentials(const bench_t *b, int i, char *email, size_t elen, char *creds,
                             size_t clen) {
    snprintf(email, elen, "bench-%08x-%d@example.com", b->run, i);
    snprintf(creds, clen,
             "{\"email\":\"%s\",\"password\":\"chatd-bench-password\",\"username\":\"bench%d\"}",
             email, i);
}

int rest_login(const bench_t *b, int user) {
    char email[128], creds[512], *body;
    user_credentials(b, user, email, sizeof(email), creds, sizeof(creds));
    int status = rest_call(&b->opt, "POST", "/auth/login", NULL, creds, &body);
    free(body);
    return status;
}

static char *register_user(bench_t *b, int i) {
    char email[128], creds[512];
    user_credentials(b, i, email, sizeof(email), creds, sizeof(creds));
    char *body;
    int status = rest_call(&b->opt, "POST", "/auth/register", NULL, creds, &body);
    if (status == 409) {
        free(body);
        status = rest_call(&b->opt, "POST", "/auth/login", NULL, creds, &body);
    }
    char *token = (status == 200 || status == 201) ? json_string_field(body, "token") : NULL;
    if (token == NULL)
        fprintf(stderr, "chatd-bench: registering %s: %s %s\n", email,
                status < 0 ? "no answer" : "HTTP",
                status < 0 ? ""
                : body     ? body
                           : "");
    free(body);
    return token;
}

static int setup_tokens(bench_t *b) {
    int n = b->opt.token ? 1 : b->opt.users;
    b->tokens = calloc((size_t)n, sizeof(*b->tokens));
    if (b->tokens == NULL)
        return -1;
    b->ntokens = n;
    if (b->opt.token) {
        b->tokens[0] = strdup(b->opt.token);
        return b->tokens[0] ? 0 : -1;
    }
    if (!b->opt.quiet && n > 1)
        fprintf(stderr, "chatd-bench: registering %d users\n", n);
    for (int i = 0; i < n; i++) {
        b->tokens[i] = register_user(b, i);
        if (b->tokens[i] == NULL)
            return -1;
    }
    return 0;
}

static int room_last_id(bench_t *b, int64_t room_id, int64_t *last);

static int setup_rooms(bench_t *b) {
    const bench_opts_t *o = &b->opt;
    b->rooms = calloc((size_t)o->rooms, sizeof(*b->rooms));
    if (b->rooms == NULL)
        return -1;
    for (int i = 0; i < o->rooms; i++) {
        char *body = NULL;
        int status;
        if (o->room_ids) {
            char path[64];
            snprintf(path, sizeof(path), "/rooms/%" PRId64, o->room_ids[i]);
            status = rest_call(o, "GET", path, b->tokens[0], NULL, &body);
        } else {
            char req[128];
            snprintf(req, sizeof(req), "{\"name\":\"bench %08x %d\"}", b->run, i);
            status = rest_call(o, "POST", "/rooms", b->tokens[0], req, &body);
        }
        int64_t id = (status == 200 || status == 201) ? json_int_field(body, "id") : -1;
        if (id <= 0) {
            fprintf(stderr, "chatd-bench: room %d: HTTP %d %s\n", i, status, body ? body : "");
            free(body);
            return -1;
        }
        free(body);
        b->rooms[i].id = id;
        if (o->room_ids && room_last_id(b, id, &b->rooms[i].after_id) != 0)
            return -1;
    }
    return 0;
}

/* One page of GET /rooms/:id/messages; returns the parsed body or NULL. */
static json_t *messages_page(bench_t *b, int64_t room_id, const char *query) {
    char path[128], *body;
    snprintf(path, sizeof(path), "/rooms/%" PRId64 "/messages?%s", room_id, query);
    int status = rest_call(&b->opt, "GET", path, b->tokens[0], NULL, &body);
    json_t *root = status == 200 ? json_loads(body, 0, NULL) : NULL;
    if (root == NULL)
        fprintf(stderr, "chatd-bench: GET %s: HTTP %d\n", path, status);
    free(body);
    return root;
}

/* The newest message id of an existing room (0 when it has none): messages
 * up to it are not this run's. */
static int room_last_id(bench_t *b, int64_t room_id, int64_t *last) {
    json_t *root = messages_page(b, room_id, "limit=1");
    if (root == NULL)
        return -1;
    json_t *msgs = json_object_get(root, "messages");
    json_t *m = json_array_get(msgs, json_array_size(msgs) - 1);
    *last = m ? (int64_t)json_integer_value(json_object_get(m, "id")) : 0;
    json_decref(root);
    return 0;
}

int rest_read_back(bench_t *b) {
    uint64_t deadline = bench_now_ns() + READ_BACK_BUDGET_S * 1000000000ull;
    for (int i = 0; i < b->opt.rooms; i++) {
        room_t *r = &b->rooms[i];
        int64_t after = r->after_id;
        for (int more = 1; more;) {
            if (bench_now_ns() > deadline) {
                fprintf(stderr, "chatd-bench: reading back took over %d s\n", READ_BACK_BUDGET_S);
                return -1;
            }
            char query[64];
            snprintf(query, sizeof(query), "after=%" PRId64 "&limit=200", after);
            json_t *root = messages_page(b, r->id, query);
            if (root == NULL)
                return -1;
            json_t *msgs = json_object_get(root, "messages"), *m;
            size_t k;
            json_array_foreach(msgs, k, m) {
                int64_t id = (int64_t)json_integer_value(json_object_get(m, "id"));
                const char *content = json_string_value(json_object_get(m, "content"));
                bench_event_t ev;
                if (id > after)
                    after = id;
                if (content && scan_marker(content, strlen(content), b->run, &ev)) {
                    r->api_stored++;
                    r->api_sum += (uint64_t)id;
                    r->api_mix += bench_mix64((uint64_t)id);
                }
            }
            more = json_is_true(json_object_get(root, "has_more")) && json_array_size(msgs) > 0;
            json_decref(root);
        }
        r->api_checked = 1;
    }
    return 0;
}

int rest_setup(bench_t *b) {
    char *body;
    int status = rest_call(&b->opt, "GET", "/health", NULL, NULL, &body);
    free(body);
    if (status != 200) {
        fprintf(stderr, "chatd-bench: no chatd at %s:%d (GET /health: %s%d)\n", b->opt.host,
                b->opt.port, status < 0 ? "no answer " : "HTTP ", status);
        return -1;
    }
    if (setup_tokens(b) != 0 || setup_rooms(b) != 0)
        return -1;
    return 0;
}
