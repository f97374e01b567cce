#include "api/routes.h"

#include "api/app.h"
#include "api/call.h"
#include "api/handlers.h"
#include "auth/token.h"
#include "core/timeutil.h"

#include <string.h>
#include <strings.h>

const route_t api_routes[] = {
    {"GET", "/health", handle_health, 0},
    {"GET", "/ready", handle_ready, 0},
    {"GET", "/metrics", handle_metrics, 0},

    {"POST", "/auth/register", handle_register, ROUTE_JSON},
    {"POST", "/auth/login", handle_login, ROUTE_JSON},
    {"POST", "/auth/refresh", handle_refresh, ROUTE_AUTH},
    {"GET", "/me", handle_me, ROUTE_AUTH},

    {"GET", "/rooms", handle_rooms_list, ROUTE_AUTH},
    {"POST", "/rooms", handle_room_create, ROUTE_AUTH | ROUTE_JSON},
    {"GET", "/rooms/:id", handle_room_get, ROUTE_AUTH},
    {"POST", "/rooms/:id/join", handle_room_join, ROUTE_AUTH},
    {"POST", "/rooms/:id/leave", handle_room_leave, ROUTE_AUTH},
    {"GET", "/rooms/:id/members", handle_room_members, ROUTE_AUTH},
    {"POST", "/rooms/:id/members", handle_room_add_member, ROUTE_AUTH | ROUTE_JSON},
    {"POST", "/dms", handle_dm_open, ROUTE_AUTH | ROUTE_JSON},

    {"POST", "/rooms/:id/read", handle_room_read, ROUTE_AUTH | ROUTE_JSON},

    {"GET", "/rooms/:room_id/messages", handle_messages_list, ROUTE_AUTH},
    {"POST", "/rooms/:room_id/messages", handle_message_post, ROUTE_AUTH | ROUTE_JSON},

    {"GET", "/ws/:room_id", handle_websocket, ROUTE_AUTH | ROUTE_WEBSOCKET},
};

const size_t api_route_count = sizeof(api_routes) / sizeof(api_routes[0]);

/* Browsers cannot set headers on a WebSocket, so the upgrade also takes
 * ?token=. Returns a token (pointing into the header or into query_token),
 * or NULL after answering 401. */
static const char *bearer_token(http_request_t *req, char *query_token, size_t cap) {
    const char *header = http_request_header(req, "Authorization");
    if ((header == NULL || header[0] == '\0') && (req->route_flags & ROUTE_WEBSOCKET)) {
        int len = http_request_query(req, "token", query_token, cap);
        if (len > 0)
            return query_token;
        if (len == -2) {
            http_respond_error(req, 401, "invalid_token", "invalid token");
            return NULL;
        }
    }
    if (header == NULL || header[0] == '\0') {
        http_respond_error(req, 401, "missing_token", "missing bearer token");
        return NULL;
    }
    if (strncasecmp(header, "Bearer ", 7) != 0) {
        http_respond_error(req, 401, "invalid_token", "the Authorization header must be Bearer");
        return NULL;
    }
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    if (*token == '\0') {
        http_respond_error(req, 401, "missing_token", "missing bearer token");
        return NULL;
    }
    return token;
}

int api_authenticate(http_request_t *req) {
    /* /auth/refresh counts against RATE_LIMIT_AUTH before its token is
     * looked at, as register and login do before their bodies are. */
    if (strncmp(req->route, "/auth/", 6) == 0 && api_limit_auth(req) != 0)
        return -1;
    char query_token[TOKEN_MAX_BYTES + 1];
    const char *token = bearer_token(req, query_token, sizeof(query_token));
    if (token == NULL)
        return -1;
    app_t *app = req->app;
    token_claims_t claims;
    token_status_t status =
        token_verify(app->jwt_secret, app->jwt_secret_len, token, time_wall_ms() / 1000, &claims);
    if (status == TOKEN_EXPIRED) {
        http_respond_error(req, 401, "token_expired", "the token has expired");
        return -1;
    }
    if (status != TOKEN_OK) {
        http_respond_error(req, 401, "invalid_token", "invalid token");
        return -1;
    }
    req->auth.user_id = claims.user_id;
    memcpy(req->auth.email, claims.email, sizeof(req->auth.email));
    memcpy(req->auth.username, claims.username, sizeof(req->auth.username));
    req->auth.expires_at = claims.expires_at;
    return 0;
}

int api_shutdown_ready(void *app) {
    return chat_shutdown_ready(&((app_t *)app)->chat);
}
