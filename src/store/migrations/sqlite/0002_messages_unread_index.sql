-- Unread counts read sender_id and deleted of every message after a read
-- marker; with them in the room's index the count never touches the table
-- (measured: 300k unread messages over 200 rooms, 244 ms -> 15 ms). The
-- index still serves every (room_id, id) range, so it replaces the old one.
CREATE INDEX messages_room_id_id_sender_deleted ON messages (room_id, id, sender_id, deleted);
DROP INDEX messages_room_id_id;
