#include "bench.h"

#include <arpa/inet.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out) {
    fprintf(out,
            "usage: chatd-bench [options]\n"
            "\n"
            "Load generator for chatd's WebSocket fan-out. Registers users through the\n"
            "REST API, creates rooms (or uses existing ones), opens authenticated\n"
            "WebSockets, posts messages and measures what comes back: deliveries/s\n"
            "(one message event received by one subscriber), latency percentiles from\n"
            "the send time carried in each message, lost and duplicated deliveries,\n"
            "connect time, and the server's CPU and RSS when it runs on this host.\n"
            "Progress goes to stderr once a second; the result to stdout.\n"
            "\n"
            "Target:\n"
            "  --host HOST           server address (default 127.0.0.1)\n"
            "  --port PORT           server port (default 3000)\n"
            "  --allow-remote        allow a target outside 127.0.0.0/8\n"
            "  --pid PID             the server's process, for CPU and RSS (default: the\n"
            "                        process listening on PORT, when it is visible)\n"
            "\n"
            "Load:\n"
            "  --subs N              subscriber connections, spread over the rooms (default 100)\n"
            "  --pubs N              publisher connections, spread over the rooms (default 1)\n"
            "  --rooms N             rooms to create with POST /rooms (default 1)\n"
            "  --room-ids A,B,...    use these existing public rooms instead\n"
            "  --users N             users to register (default: one per publisher plus up to\n"
            "                        4 shared by the subscribers; each costs the server a\n"
            "                        password hash); 1: one user for everything\n"
            "  --token JWT           use this token for every connection, register nobody\n"
            "  --rate R              messages/s in total, open loop: sent on schedule,\n"
            "                        whatever the server does (default 0)\n"
            "                        0: as fast as --window allows\n"
            "  --window W            at --rate 0, messages in flight per room, where in\n"
            "                        flight = sent - deliveries / subscribers (default 64)\n"
            "  --size B              content bytes per message (default 64, at least 48)\n"
            "  --login-storm N       fire N concurrent POST /auth/login (the run's users)\n"
            "                        into the measured window, to see whether password\n"
            "                        hashing slows the deliveries down (default 0)\n"
            "  --login-at S          when, in seconds into the measured window (default 1)\n"
            "\n"
            "Timing (seconds):\n"
            "  --warmup S            publish before measuring (default 2)\n"
            "  --duration S          measured window; with --hold, time held (default 5)\n"
            "  --drain S             after publishing, wait this long at most for the\n"
            "                        rest to arrive (default 3)\n"
            "  --connect-timeout S   give up on connections not ready by then (default 30)\n"
            "  --stall-timeout S     at --rate 0, a room without progress this long is\n"
            "                        counted as a stall and its window reopened (default 5)\n"
            "\n"
            "Connections:\n"
            "  --connect-rate N      new connections per second (default 5000; 0: no limit)\n"
            "  --max-pending N       handshakes in progress at once (default 256)\n"
            "  --source-ips A,B,...  bind connections round-robin to these local addresses\n"
            "                        (e.g. 127.0.0.1,127.0.0.2) when one runs out of ports\n"
            "\n"
            "Modes and output:\n"
            "  --hold                open --subs idle connections, hold them --duration s,\n"
            "                        report the server's RSS before/after and per connection\n"
            "  --no-verify-api       skip reading the run's messages back with\n"
            "                        GET /rooms/:id/messages to check deliveries against\n"
            "                        what was stored (default: read back)\n"
            "  --json                print one JSON object instead of the table\n"
            "  --quiet               no progress lines\n"
            "  --selftest            check the handshake, frame, scanner and histogram code\n"
            "  --help                this text\n"
            "\n"
            "Every run stops by itself: connect timeout + warm-up + duration + drain,\n"
            "plus a few seconds, is a hard deadline.\n");
}

static double arg_num(const char *name, const char *s, double min, double max) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "chatd-bench: bad value for --%s: %s (%g..%g)\n", name, s, min, max);
        exit(2);
    }
    return v;
}

static int64_t *parse_room_ids(const char *list, int *count) {
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    int64_t *ids = calloc((size_t)n, sizeof(*ids));
    if (ids == NULL)
        return NULL;
    const char *p = list;
    for (int i = 0; i < n; i++) {
        char *end;
        long long v = strtoll(p, &end, 10);
        if (end == p || v <= 0 || (*end != ',' && *end != '\0')) {
            free(ids);
            return NULL;
        }
        ids[i] = v;
        p = end + 1;
    }
    *count = n;
    return ids;
}

static int parse_sources(bench_opts_t *o, const char *list) {
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->source_count == BENCH_MAX_SOURCES ||
            inet_pton(AF_INET, tok, &o->sources[o->source_count]) != 1)
            return -1;
        o->source_count++;
    }
    return o->source_count > 0 ? 0 : -1;
}

static int resolve(bench_opts_t *o) {
    if (inet_pton(AF_INET, o->host, &o->addr) == 1)
        return 0;
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
    if (getaddrinfo(o->host, NULL, &hints, &res) != 0)
        return -1;
    o->addr = ((struct sockaddr_in *)res->ai_addr)->sin_addr;
    freeaddrinfo(res);
    return 0;
}

int opts_parse(bench_opts_t *o, int argc, char **argv) {
    enum {
        O_HOST = 256,
        O_PORT,
        O_SUBS,
        O_PUBS,
        O_ROOMS,
        O_ROOM_IDS,
        O_USERS,
        O_TOKEN,
        O_RATE,
        O_WINDOW,
        O_SIZE,
        O_WARMUP,
        O_DURATION,
        O_DRAIN,
        O_CTIMEOUT,
        O_STALL,
        O_CRATE,
        O_PENDING,
        O_SOURCES,
        O_PID,
        O_HOLD,
        O_NOVERIFY,
        O_LOGINS,
        O_LOGIN_AT,
        O_JSON,
        O_QUIET,
        O_REMOTE,
        O_SELFTEST,
        O_HELP
    };
    static const struct option longopts[] = {
        {"host", 1, 0, O_HOST},
        {"port", 1, 0, O_PORT},
        {"subs", 1, 0, O_SUBS},
        {"pubs", 1, 0, O_PUBS},
        {"rooms", 1, 0, O_ROOMS},
        {"room-ids", 1, 0, O_ROOM_IDS},
        {"users", 1, 0, O_USERS},
        {"token", 1, 0, O_TOKEN},
        {"rate", 1, 0, O_RATE},
        {"window", 1, 0, O_WINDOW},
        {"size", 1, 0, O_SIZE},
        {"warmup", 1, 0, O_WARMUP},
        {"duration", 1, 0, O_DURATION},
        {"drain", 1, 0, O_DRAIN},
        {"connect-timeout", 1, 0, O_CTIMEOUT},
        {"stall-timeout", 1, 0, O_STALL},
        {"connect-rate", 1, 0, O_CRATE},
        {"max-pending", 1, 0, O_PENDING},
        {"source-ips", 1, 0, O_SOURCES},
        {"pid", 1, 0, O_PID},
        {"hold", 0, 0, O_HOLD},
        {"json", 0, 0, O_JSON},
        {"no-verify-api", 0, 0, O_NOVERIFY},
        {"login-storm", 1, 0, O_LOGINS},
        {"login-at", 1, 0, O_LOGIN_AT},
        {"quiet", 0, 0, O_QUIET},
        {"allow-remote", 0, 0, O_REMOTE},
        {"selftest", 0, 0, O_SELFTEST},
        {"help", 0, 0, O_HELP},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 3000;
    o->subs = 100;
    o->pubs = 1;
    o->rooms = 1;
    o->users = -1;
    o->window = 64;
    o->size = 64;
    o->warmup = 2;
    o->duration = 5;
    o->drain = 3;
    o->connect_timeout = 30;
    o->stall_timeout = 5;
    o->connect_rate = 5000;
    o->max_pending = 256;
    o->login_at = 1;
    int selftest = 0, opt;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (opt) {
        case O_HOST:
            snprintf(o->host, sizeof(o->host), "%s", optarg);
            break;
        case O_PORT:
            o->port = (int)arg_num("port", optarg, 1, 65535);
            break;
        case O_SUBS:
            o->subs = (int)arg_num("subs", optarg, 0, 1000000);
            break;
        case O_PUBS:
            o->pubs = (int)arg_num("pubs", optarg, 0, 100000);
            break;
        case O_ROOMS:
            o->rooms = (int)arg_num("rooms", optarg, 1, 100000);
            break;
        case O_ROOM_IDS:
            free(o->room_ids);
            o->room_ids = parse_room_ids(optarg, &o->rooms);
            if (o->room_ids == NULL) {
                fprintf(stderr, "chatd-bench: bad --room-ids: %s\n", optarg);
                exit(2);
            }
            break;
        case O_USERS:
            o->users = (int)arg_num("users", optarg, 1, 100000);
            break;
        case O_TOKEN:
            o->token = optarg;
            break;
        case O_RATE:
            o->rate = arg_num("rate", optarg, 0, 1e8);
            break;
        case O_WINDOW:
            o->window = (int)arg_num("window", optarg, 1, 1000000);
            break;
        case O_SIZE:
            o->size = (size_t)arg_num("size", optarg, 48, 3900);
            break;
        case O_WARMUP:
            o->warmup = arg_num("warmup", optarg, 0, 3600);
            break;
        case O_DURATION:
            o->duration = arg_num("duration", optarg, 0.1, 3600);
            break;
        case O_DRAIN:
            o->drain = arg_num("drain", optarg, 0, 600);
            break;
        case O_CTIMEOUT:
            o->connect_timeout = arg_num("connect-timeout", optarg, 0.1, 3600);
            break;
        case O_STALL:
            o->stall_timeout = arg_num("stall-timeout", optarg, 0.1, 3600);
            break;
        case O_CRATE:
            o->connect_rate = arg_num("connect-rate", optarg, 0, 1e7);
            break;
        case O_PENDING:
            o->max_pending = (int)arg_num("max-pending", optarg, 1, 1000000);
            break;
        case O_SOURCES:
            if (parse_sources(o, optarg) != 0) {
                fprintf(stderr, "chatd-bench: bad --source-ips: %s\n", optarg);
                exit(2);
            }
            break;
        case O_PID:
            o->pid = (pid_t)arg_num("pid", optarg, 1, 1e9);
            break;
        case O_HOLD:
            o->hold = 1;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_NOVERIFY:
            o->no_verify_api = 1;
            break;
        case O_LOGINS:
            o->login_storm = (int)arg_num("login-storm", optarg, 0, 10000);
            break;
        case O_LOGIN_AT:
            o->login_at = arg_num("login-at", optarg, 0, 3600);
            break;
        case O_QUIET:
            o->quiet = 1;
            break;
        case O_REMOTE:
            o->allow_remote = 1;
            break;
        case O_SELFTEST:
            selftest = 1;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "chatd-bench: unexpected argument: %s\n", argv[optind]);
        exit(2);
    }
    if (selftest)
        return 1;
    if (resolve(o) != 0) {
        fprintf(stderr, "chatd-bench: cannot resolve %s\n", o->host);
        exit(2);
    }
    if ((ntohl(o->addr.s_addr) >> 24) != 127 && !o->allow_remote) {
        fprintf(stderr,
                "chatd-bench: %s is not a loopback address; pass --allow-remote to "
                "load a server on another host\n",
                o->host);
        exit(2);
    }
    if (o->hold)
        o->pubs = 0;
    if (o->login_storm > 0 && (o->token != NULL || o->hold)) {
        fprintf(stderr, "chatd-bench: --login-storm needs users of its own: not with --token "
                        "or --hold\n");
        exit(2);
    }
    if (o->subs + o->pubs == 0) {
        fprintf(stderr, "chatd-bench: nothing to do: --subs and --pubs are 0\n");
        exit(2);
    }
    if (o->users < 0) {
        int shared = o->subs < 4 ? o->subs : 4;
        o->users = o->pubs + (shared > 0 ? shared : 0);
        if (o->users < 1)
            o->users = 1;
    }
    return 0;
}
