/* Which accepted connections are kept:
 *   - file descriptors: one that would leave fewer than the headroom free
 *     is closed, so that the store can still reconnect and the process can
 *     still open what it needs (fd_limit);
 *   - MAX_CONNECTIONS, process-wide (max_connections);
 *   - MAX_CONNECTIONS_PER_IP: open connections per client address, in one
 *     table shared by every loop (per_ip).
 * A refused connection is closed at once, without an answer. Each refusal
 * is counted in chatd_connections_rejected_total and logged, at most once
 * per NET_REJECT_LOG_MS per loop and reason (with how many since).
 *
 * The table holds an entry per address with open connections, and drops it
 * when the last one closes: it never holds more than the open connections. */
#include "core/log.h"
#include "net/net_internal.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define IP_SHARDS 16
#define IP_SLOTS  1024 /* per shard */

typedef struct ip_entry_s ip_entry_t;
struct ip_entry_s {
    ip_entry_t *next;
    uint32_t count;
    uint8_t family;
    uint8_t addr[16];
};

struct net_ip_counts_s {
    uint64_t seed;
    struct {
        pthread_mutex_t lock;
        ip_entry_t *slots[IP_SLOTS];
    } shards[IP_SHARDS];
};

net_ip_counts_t *net_ip_counts_new(void) {
    net_ip_counts_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (getrandom(&t->seed, sizeof(t->seed), GRND_NONBLOCK) != (ssize_t)sizeof(t->seed))
        t->seed = (uint64_t)(uintptr_t)t;
    for (int i = 0; i < IP_SHARDS; i++)
        pthread_mutex_init(&t->shards[i].lock, NULL);
    return t;
}

void net_ip_counts_free(net_ip_counts_t *t) {
    if (t == NULL)
        return;
    for (int i = 0; i < IP_SHARDS; i++) {
        for (int j = 0; j < IP_SLOTS; j++) {
            ip_entry_t *next;
            for (ip_entry_t *e = t->shards[i].slots[j]; e != NULL; e = next) {
                next = e->next;
                free(e);
            }
        }
        pthread_mutex_destroy(&t->shards[i].lock);
    }
    free(t);
}

/* Seeded, so that nobody can pick addresses that share a slot. */
static uint64_t addr_hash(uint64_t seed, uint8_t family, const uint8_t addr[16]) {
    uint64_t h = seed ^ family;
    for (int i = 0; i < 16; i += 8) {
        uint64_t word;
        memcpy(&word, addr + i, 8);
        h ^= word;
        h += 0x9e3779b97f4a7c15ull;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        h ^= h >> 31;
    }
    return h;
}

/* Finds the link that points at the entry for the address (or at NULL). */
static ip_entry_t **ip_find(ip_entry_t **slot, uint8_t family, const uint8_t addr[16]) {
    ip_entry_t **link = slot;
    while (*link != NULL && ((*link)->family != family || memcmp((*link)->addr, addr, 16) != 0))
        link = &(*link)->next;
    return link;
}

typedef enum { IP_COUNTED, IP_OVER_CAP, IP_NO_MEMORY } ip_acquire_t;

static ip_acquire_t ip_acquire(net_ip_counts_t *t, uint8_t family, const uint8_t addr[16],
                               int max) {
    uint64_t h = addr_hash(t->seed, family, addr);
    size_t shard = (size_t)(h >> 32) % IP_SHARDS;
    ip_acquire_t result = IP_COUNTED;
    pthread_mutex_lock(&t->shards[shard].lock);
    ip_entry_t **link = ip_find(&t->shards[shard].slots[h % IP_SLOTS], family, addr);
    if (*link != NULL) {
        if ((*link)->count >= (uint32_t)max)
            result = IP_OVER_CAP;
        else
            (*link)->count++;
    } else {
        ip_entry_t *e = calloc(1, sizeof(*e));
        if (e == NULL) {
            result = IP_NO_MEMORY;
        } else {
            e->family = family;
            memcpy(e->addr, addr, 16);
            e->count = 1;
            *link = e;
        }
    }
    pthread_mutex_unlock(&t->shards[shard].lock);
    return result;
}

static void ip_release(net_ip_counts_t *t, uint8_t family, const uint8_t addr[16]) {
    uint64_t h = addr_hash(t->seed, family, addr);
    size_t shard = (size_t)(h >> 32) % IP_SHARDS;
    pthread_mutex_lock(&t->shards[shard].lock);
    ip_entry_t **link = ip_find(&t->shards[shard].slots[h % IP_SLOTS], family, addr);
    ip_entry_t *e = *link;
    if (e != NULL && --e->count == 0) {
        *link = e->next;
        free(e);
    }
    pthread_mutex_unlock(&t->shards[shard].lock);
}

/* ---- refusals ----------------------------------------------------------- */

static const char *const reject_names[CONN_REJECT_KINDS] = {"max_connections", "per_ip",
                                                            "fd_limit"};

static const char *const reject_messages[CONN_REJECT_KINDS] = {
    "connections refused: MAX_CONNECTIONS reached",
    "connections refused: MAX_CONNECTIONS_PER_IP reached",
    "connections refused: file descriptors running out",
};

const char *net_reject_name(conn_reject_t reason) {
    return reject_names[reason];
}

void net_note_reject(net_loop_t *nl, conn_reject_t reason, const char *peer) {
    http_metrics_conn_rejected(reason);
    nl->rejects_unlogged[reason]++;
    uint64_t now = uv_now(&nl->loop);
    if (nl->reject_logged_ms[reason] != 0 && now < nl->reject_logged_ms[reason] + NET_REJECT_LOG_MS)
        return;
    log_warn(reject_messages[reason], LOG_S("reason", reject_names[reason]),
             LOG_I("refused", (int64_t)nl->rejects_unlogged[reason]),
             LOG_S("last_peer", peer != NULL ? peer : ""), LOG_I("loop", nl->index));
    nl->reject_logged_ms[reason] = now != 0 ? now : 1;
    nl->rejects_unlogged[reason] = 0;
}

/* ---- admission ---------------------------------------------------------- */

static int fd_headroom_ok(const http_conn_t *conn) {
    const net_loop_t *nl = conn->nl;
    if (nl->fd_limit <= 0)
        return 1;
    uv_os_fd_t fd;
    if (uv_fileno((const uv_handle_t *)&conn->tcp, &fd) != 0)
        return 1;
    /* Descriptors are handed out lowest first: this one's number says at
     * least that many are in use. */
    return fd < nl->fd_limit - nl->fd_headroom;
}

static int refuse(http_conn_t *conn, conn_reject_t reason) {
    char peer[INET6_ADDRSTRLEN];
    http_conn_peer_name(conn, peer, sizeof(peer));
    net_note_reject(conn->nl, reason, peer);
    return -1;
}

int net_conn_admit(http_conn_t *conn) {
    net_loop_t *nl = conn->nl;
    if (!fd_headroom_ok(conn))
        return refuse(conn, CONN_REJECT_FD_LIMIT);
    if (http_metrics_conn_acquire(nl->cfg->max_connections) != 0)
        return refuse(conn, CONN_REJECT_MAX_CONNECTIONS);
    int per_ip = nl->cfg->max_connections_per_ip;
    if (per_ip > 0 && nl->ip_counts != NULL && conn->peer_family != 0) {
        ip_acquire_t got = ip_acquire(nl->ip_counts, conn->peer_family, conn->peer_addr, per_ip);
        if (got != IP_COUNTED) {
            http_metrics_conn_release();
            if (got == IP_OVER_CAP)
                return refuse(conn, CONN_REJECT_PER_IP);
            log_error0("out of memory counting a connection");
            return -1;
        }
        conn->ip_counted = 1;
    }
    return 0;
}

void net_conn_release(http_conn_t *conn) {
    http_metrics_conn_release();
    if (conn->ip_counted) {
        ip_release(conn->nl->ip_counts, conn->peer_family, conn->peer_addr);
        conn->ip_counted = 0;
    }
}
