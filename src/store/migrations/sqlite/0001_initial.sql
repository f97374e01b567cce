-- chatd schema, SQLite. Timestamps are INTEGER milliseconds since the epoch
-- (UTC); booleans are INTEGER 0/1. AUTOINCREMENT so that ids are never
-- reused: message ids are cursors, user ids are in issued tokens.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE CHECK (email <> ''),
    password_hash TEXT NOT NULL,
    username TEXT NOT NULL CHECK (username <> ''),
    created_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
) STRICT;

-- created_by is NULL for the seeded rooms. dm_key ("<lower id>:<higher id>")
-- is set only on direct-message rooms and makes opening a DM idempotent.
CREATE TABLE rooms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL CHECK (name <> ''),
    is_private INTEGER NOT NULL DEFAULT 0 CHECK (is_private IN (0, 1)),
    created_by INTEGER REFERENCES users (id) ON DELETE SET NULL,
    dm_key TEXT UNIQUE,
    created_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
) STRICT;

CREATE TABLE room_members (
    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    joined_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    last_read_message_id INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX room_members_user_id ON room_members (user_id);

-- UNIQUE (sender_id, client_id) makes posts idempotent; NULL client_ids
-- never collide.
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sender_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    room_id INTEGER NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    content TEXT NOT NULL,
    client_id TEXT,
    created_at INTEGER NOT NULL
        DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
    edited_at INTEGER,
    deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    UNIQUE (sender_id, client_id)
) STRICT;

CREATE INDEX messages_room_id_id ON messages (room_id, id);

INSERT INTO rooms (id, name, is_private, created_by)
VALUES (1, 'General', 0, NULL), (2, 'Random', 0, NULL), (3, 'Tech Talk', 0, NULL);
