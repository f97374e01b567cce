/* Applies the numbered migrations compiled into the binary, in order, each
 * in its own transaction together with its row in schema_migrations, so a
 * migration is either wholly applied and recorded or not at all. */
#include "store/backend.h"
#include "store/migrations.h"

#include "core/log.h"
#include "core/timeutil.h"

#include <stdio.h>
#include <string.h>

static const char CREATE_TABLE[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                   "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                                   "applied_at BIGINT NOT NULL)";

/* 1 when applied now, 0 when it already was, -1 with err. */
static int apply_one(store_db_t *db, const migration_t *m, char *err, size_t errlen) {
    const store_backend_t *b = db->backend;
    char detail[512] = "";
    db_rows_t rows;
    db_param_t version = DBP_INT(m->version);
    int applied;
    if (b->exec(db, b->begin_sql, detail, sizeof detail) < 0)
        goto fail;
    /* Checked inside the transaction: another process may have just run it. */
    if (db_query(db, STMT_MIGRATION_APPLIED, &version, 1, &rows) < 0)
        goto fail;
    applied = db_next(&rows);
    db_finish(&rows);
    if (applied < 0)
        goto fail;
    if (applied == 0) {
        if (b->exec(db, m->sql, detail, sizeof detail) < 0)
            goto fail;
        db_param_t p[] = {version, DBP_STR(m->name), DBP_INT(time_wall_ms())};
        if (db_query(db, STMT_MIGRATION_RECORD, p, 3, &rows) < 0)
            goto fail;
        int rc = db_next(&rows);
        db_finish(&rows);
        if (rc < 0)
            goto fail;
    }
    if (b->exec(db, "COMMIT", detail, sizeof detail) < 0)
        goto fail;
    return applied == 0;
fail:
    b->exec(db, "ROLLBACK", NULL, 0);
    snprintf(err, errlen, "migration %s failed: %s", m->name,
             detail[0] != '\0' ? detail : "database error (see log)");
    return -1;
}

static int apply_all(store_db_t *db, char *err, size_t errlen) {
    const store_backend_t *b = db->backend;
    char detail[512] = "";
    if (b->exec(db, CREATE_TABLE, detail, sizeof detail) < 0) {
        snprintf(err, errlen, "cannot create schema_migrations: %s", detail);
        return -1;
    }
    for (size_t i = 0; i < chatd_migration_count; i++) {
        const migration_t *m = &chatd_migrations[i];
        if (m->backend == NULL || strcmp(m->backend, b->name) != 0)
            continue;
        int rc = apply_one(db, m, err, errlen);
        if (rc < 0)
            return -1;
        if (rc == 1)
            log_info("migration applied", LOG_S("backend", b->name), LOG_S("name", m->name));
    }
    return 0;
}

int store_migrations_apply(store_db_t *db, char *err, size_t errlen) {
    const store_backend_t *b = db->backend;
    char detail[512] = "";
    if (b->migrate_lock != NULL && b->exec(db, b->migrate_lock, detail, sizeof detail) < 0) {
        snprintf(err, errlen, "cannot lock for migrations: %s", detail);
        return -1;
    }
    int rc = apply_all(db, err, errlen);
    if (b->migrate_unlock != NULL)
        b->exec(db, b->migrate_unlock, NULL, 0);
    return rc;
}
