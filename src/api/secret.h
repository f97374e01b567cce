/* The token signing secret: JWT_SECRET, or one generated once and kept in
 * DATA_DIR/jwt_secret (mode 0600) so tokens survive restarts. */
#ifndef CHATD_API_SECRET_H
#define CHATD_API_SECRET_H

#include "core/config.h"

#include <stddef.h>

/* Fills secret (capacity cap) and *len. Returns 0, or -1 with err. */
int secret_load(const config_t *cfg, unsigned char *secret, size_t cap, size_t *len, char *err,
                size_t errlen);

#endif
