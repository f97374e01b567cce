"""The original README's curl flow, on a fresh database, for both backends."""

import datetime

from api import assert_message_shape, assert_room_shape, is_rfc3339_ms, parse_rfc3339_ms


def test_readme_curl_flow(server):
    # register
    r = server.post(
        "/auth/register",
        {"email": "alice@example.com", "password": "password123", "username": "alice"},
    )
    assert r.status_code == 201, r.text
    assert r.headers["Content-Type"].startswith("application/json")
    reg = r.json()
    assert set(reg) >= {"token", "user"}
    assert isinstance(reg["token"], str) and reg["token"].count(".") == 2
    assert reg["user"]["email"] == "alice@example.com"
    assert reg["user"]["username"] == "alice"

    # login
    r = server.post("/auth/login", {"email": "alice@example.com", "password": "password123"})
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert r.json()["user"]["id"] == reg["user"]["id"]

    # list rooms: the three seeded rooms, nothing else on a fresh database
    r = server.get("/rooms", token=token)
    assert r.status_code == 200, r.text
    rooms = r.json()
    assert [(x["id"], x["name"]) for x in rooms] == [
        (1, "General"),
        (2, "Random"),
        (3, "Tech Talk"),
    ]
    for room in rooms:
        assert_room_shape(room)
        assert room["is_private"] is False
        assert room["unread_count"] == 0
        assert room["last_read_message_id"] is None

    # post a message
    r = server.post("/rooms/1/messages", {"content": "Hello, World!"}, token=token)
    assert r.status_code == 201, r.text
    msg = r.json()
    assert msg["content"] == "Hello, World!"
    assert msg["room_id"] == 1
    assert msg["sender_id"] == reg["user"]["id"]
    assert msg["sender"] == "alice@example.com"
    assert msg["username"] == "alice"
    assert msg["edited_at"] is None
    assert msg.get("client_id") is None
    assert is_rfc3339_ms(msg["created_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((parse_rfc3339_ms(msg["created_at"]) - now).total_seconds()) < 120

    # with a client_id, it comes back
    r = server.post(
        "/rooms/1/messages", {"content": "again", "client_id": "readme-1"}, token=token
    )
    assert r.status_code == 201, r.text
    msg2 = r.json()
    assert msg2["client_id"] == "readme-1"
    assert msg2["id"] > msg["id"]

    # and the history has both, ascending
    r = server.get("/rooms/1/messages", token=token)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["has_more"] is False
    assert [m["id"] for m in page["messages"]] == [msg["id"], msg2["id"]]
    for m in page["messages"]:
        assert_message_shape(m, room_id=1)


def test_user_created_at_and_room_created_at_are_rfc3339(server):
    r = server.post(
        "/auth/register",
        {"email": "bob@example.com", "password": "password123", "username": "bob"},
    )
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert set(user) >= {"id", "email", "username", "created_at"}
    assert "password" not in user and "password_hash" not in user
    assert is_rfc3339_ms(user["created_at"])
    assert isinstance(user["id"], int) and user["id"] > 0
