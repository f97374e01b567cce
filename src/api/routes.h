/* The REST API's route table and its authentication hook. */
#ifndef CHATD_API_ROUTES_H
#define CHATD_API_ROUTES_H

#include "net/router.h"

extern const route_t api_routes[];
extern const size_t api_route_count;

/* server_options_t.authenticate: checks the bearer token and fills
 * req->auth, or answers 401 (missing_token, invalid_token, token_expired)
 * and returns -1. Whether the user still exists is checked by the store job
 * the handler submits (auth_user_id), in the same round trip. */
int api_authenticate(http_request_t *req);

/* server_options_t.shutdown_ready for an app_t. */
int api_shutdown_ready(void *app);

#endif
