/* The statements both backends run. The SQL is the common subset of SQLite
 * 3.40 and PostgreSQL 15: booleans are read through CAST(... AS INTEGER),
 * timestamps are integers (milliseconds since the epoch, UTC) bound by the
 * caller, and "no row inserted" comes from ON CONFLICT DO NOTHING RETURNING
 * rather than from a constraint error. */
#include "store/backend.h"

/* The room as seen by user $1 (0: nobody); order of enum ROOM_COL_*. */
#define ROOM_SELECT                                                                                \
    "SELECT r.id, r.name, CAST(r.is_private AS INTEGER), COALESCE(r.created_by, 0), "              \
    "r.created_at, "                                                                               \
    "(SELECT count(*) FROM room_members c WHERE c.room_id = r.id), "                               \
    "COALESCE(m.last_read_message_id, 0), "                                                        \
    "CASE WHEN m.user_id IS NULL THEN 0 ELSE "                                                     \
    "(SELECT count(*) FROM messages g WHERE g.room_id = r.id "                                     \
    "AND g.id > m.last_read_message_id AND g.sender_id <> m.user_id AND NOT g.deleted) END "       \
    "FROM rooms r LEFT JOIN room_members m "                                                       \
    "ON m.room_id = r.id AND m.user_id = CAST($1 AS BIGINT) "

/* Order of enum MSG_COL_*. */
#define MESSAGE_SELECT                                                                             \
    "SELECT m.id, m.sender_id, m.room_id, m.content, m.client_id, m.created_at, "                  \
    "COALESCE(m.edited_at, 0), CAST(m.deleted AS INTEGER), u.email, u.username "                   \
    "FROM messages m JOIN users u ON u.id = m.sender_id "

const store_sql_t store_sql[STMT_COUNT] = {
    [STMT_PING] = {"ping", "SELECT 1"},
    [STMT_USER_AUTH] = {"user_auth", "SELECT email, username FROM users WHERE id = $1"},
    [STMT_USER_BY_EMAIL] = {"user_by_email", "SELECT id, email, username, password_hash, "
                                             "created_at FROM users WHERE email = $1"},
    [STMT_USER_BY_ID] = {"user_by_id", "SELECT id, email, username, NULL, created_at "
                                       "FROM users WHERE id = $1"},
    [STMT_USER_INSERT] = {"user_insert",
                          "INSERT INTO users (email, password_hash, username, created_at) "
                          "VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING id"},
    [STMT_ROOM_ACCESS] = {"room_access",
                          "SELECT CAST(r.is_private AS INTEGER), "
                          "CAST(r.dm_key IS NOT NULL AS INTEGER), "
                          "CAST(EXISTS (SELECT 1 FROM room_members m WHERE m.room_id = r.id "
                          "AND m.user_id = $2) AS INTEGER) FROM rooms r WHERE r.id = $1"},
    [STMT_ROOM_GET] = {"room_get", ROOM_SELECT "WHERE r.id = $2"},
    [STMT_ROOMS_LIST] = {"rooms_list", ROOM_SELECT "WHERE CAST($1 AS BIGINT) = 0 "
                                                   "OR NOT r.is_private OR m.user_id IS NOT NULL "
                                                   "ORDER BY r.id"},
    [STMT_ROOM_INSERT] = {"room_insert", "INSERT INTO rooms (name, is_private, created_by, "
                                         "created_at) VALUES ($1, $2, $3, $4) RETURNING id"},
    [STMT_DM_INSERT] = {"dm_insert",
                        "INSERT INTO rooms (name, is_private, created_by, dm_key, created_at) "
                        "VALUES ($1, TRUE, $2, $3, $4) ON CONFLICT (dm_key) DO NOTHING "
                        "RETURNING id"},
    [STMT_ROOM_BY_DM_KEY] = {"room_by_dm_key", "SELECT id FROM rooms WHERE dm_key = $1"},
    [STMT_MEMBER_INSERT] = {"member_insert",
                            "INSERT INTO room_members (room_id, user_id, joined_at) "
                            "VALUES ($1, $2, $3) ON CONFLICT (room_id, user_id) DO NOTHING"},
    [STMT_MEMBER_DELETE] = {"member_delete",
                            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2"},
    [STMT_MEMBERS] = {"members", "SELECT u.id, u.username, m.joined_at FROM room_members m "
                                 "JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 "
                                 "ORDER BY m.joined_at, u.id"},
    /* The WHERE names SQLite's partial index (messages with a client_id);
     * it matches PostgreSQL's full UNIQUE (sender_id, client_id) as well. */
    [STMT_MESSAGE_INSERT] = {"message_insert",
                             "INSERT INTO messages (sender_id, room_id, content, client_id, "
                             "created_at) VALUES ($1, $2, $3, $4, $5) "
                             "ON CONFLICT (sender_id, client_id) WHERE client_id IS NOT NULL "
                             "DO NOTHING RETURNING id"},
    [STMT_MESSAGE_BY_CLIENT_ID] = {"message_by_client_id",
                                   MESSAGE_SELECT "WHERE m.sender_id = $1 AND m.client_id = $2"},
    [STMT_PAGE_DESC] = {"page_desc", MESSAGE_SELECT "WHERE m.room_id = $1 AND m.id < $2 "
                                                    "ORDER BY m.id DESC LIMIT $3"},
    [STMT_PAGE_ASC] = {"page_asc", MESSAGE_SELECT "WHERE m.room_id = $1 AND m.id > $2 "
                                                  "AND m.id < $3 ORDER BY m.id LIMIT $4"},
    /* $1 room, $2 reader, $3 message: is_private, is_member, the marker,
     * whether the message is in the room; no row when the room is unknown. */
    [STMT_READ_ACCESS] = {"read_access", "SELECT CAST(r.is_private AS INTEGER), "
                                         "CAST(m.user_id IS NOT NULL AS INTEGER), "
                                         "COALESCE(m.last_read_message_id, 0), "
                                         "CAST(EXISTS (SELECT 1 FROM messages g WHERE g.id = $3 "
                                         "AND g.room_id = r.id) AS INTEGER) "
                                         "FROM rooms r LEFT JOIN room_members m "
                                         "ON m.room_id = r.id AND m.user_id = $2 WHERE r.id = $1"},
    /* Makes a non-member a member as it moves the marker; a row comes back
     * only when the marker moved (the WHERE keeps it from going backwards,
     * even against another node's write). */
    [STMT_READ_MARK] = {"read_mark",
                        "INSERT INTO room_members (room_id, user_id, joined_at, "
                        "last_read_message_id) VALUES ($1, $2, $4, $3) "
                        "ON CONFLICT (room_id, user_id) DO UPDATE "
                        "SET last_read_message_id = excluded.last_read_message_id "
                        "WHERE room_members.last_read_message_id < "
                        "excluded.last_read_message_id RETURNING last_read_message_id"},
    [STMT_MIGRATION_APPLIED] = {"migration_applied",
                                "SELECT 1 FROM schema_migrations WHERE version = $1"},
    [STMT_MIGRATION_RECORD] = {"migration_record",
                               "INSERT INTO schema_migrations (version, name, applied_at) "
                               "VALUES ($1, $2, $3)"},
};
