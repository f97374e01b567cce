/* The application context every handler reaches through req->app: the
 * configuration, the store and the token secret. Created by main, read-only
 * while the server runs (so every I/O thread may read it without locks). */
#ifndef CHATD_API_APP_H
#define CHATD_API_APP_H

#include "chat/chat.h"
#include "core/config.h"
#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const config_t *cfg;
    store_t *store;
    unsigned char jwt_secret[512];
    size_t jwt_secret_len;
    int64_t started_at_ms;
    chat_t chat;
} app_t;

#endif
