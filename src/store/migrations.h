/* Numbered SQL migrations, compiled into the binary from
 * src/store/migrations/<backend>/NNNN_name.sql (scripts/embed_migrations.sh
 * generates the table at build time). */
#ifndef CHATD_STORE_MIGRATIONS_H
#define CHATD_STORE_MIGRATIONS_H

#include <stddef.h>

typedef struct {
    const char *backend; /* "sqlite" or "postgres" */
    int version;         /* NNNN */
    const char *name;    /* file name without .sql */
    const char *sql;     /* the whole file */
} migration_t;

/* Sorted by backend, then version. */
extern const migration_t chatd_migrations[];
extern const size_t chatd_migration_count;

#endif
