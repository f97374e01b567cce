"""Rooms: create, get, join/leave, members, private rooms, DMs."""

import pytest

from api import assert_error, assert_room_shape, create_room, is_rfc3339_ms, post_message, register
from harness import unique


def room_ids(server, user):
    r = server.get("/rooms", token=user.token)
    assert r.status_code == 200, r.text
    rooms = r.json()
    ids = [x["id"] for x in rooms]
    assert ids == sorted(ids), "GET /rooms must be ordered by id"
    return ids


def members(server, user, room_id):
    r = server.get(f"/rooms/{room_id}/members", token=user.token)
    assert r.status_code == 200, r.text
    out = r.json()
    assert isinstance(out, list)
    for m in out:
        assert set(m) >= {"id", "username", "joined_at", "online"}, m
        assert isinstance(m["id"], int)
        assert is_rfc3339_ms(m["joined_at"]), m
        assert isinstance(m["online"], bool), m
    return out


def test_list_rooms_shape(server, users):
    r = server.get("/rooms", token=users[0].token)
    assert r.status_code == 200, r.text
    rooms = r.json()
    assert [(x["id"], x["name"]) for x in rooms[:3]] == [
        (1, "General"),
        (2, "Random"),
        (3, "Tech Talk"),
    ]
    for room in rooms:
        assert_room_shape(room)


def test_create_room(server, users):
    alice = users[0]
    name = unique("Room ")
    r = server.post("/rooms", {"name": name}, token=alice.token)
    assert r.status_code == 201, r.text
    room = r.json()
    assert_room_shape(room)
    assert room["name"] == name
    assert room["is_private"] is False
    assert room["member_count"] == 1
    assert room["id"] > 3

    assert [m["id"] for m in members(server, alice, room["id"])] == [alice.id]
    assert room["id"] in room_ids(server, alice)
    # public: visible to everyone
    assert room["id"] in room_ids(server, users[1])

    r = server.get(f"/rooms/{room['id']}", token=users[1].token)
    assert r.status_code == 200, r.text
    got = r.json()
    assert_room_shape(got)
    assert got["id"] == room["id"] and got["name"] == name


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": ""}, "name"),
        ({"name": "n" * 101}, "name"),
        ({"name": "é" * 101}, "name"),
        ({}, "name"),
        ({"name": 12}, "name"),
        ({"name": None}, "name"),
        ({"name": "ok", "is_private": "yes"}, "is_private"),
        ({"name": "ok", "is_private": 1}, "is_private"),
    ],
)
def test_create_room_validation(server, users, body, field):
    r = server.post("/rooms", body, token=users[0].token)
    assert_error(r, 400, "validation_failed", mentions=field)


@pytest.mark.parametrize("name", ["n" * 100, "é" * 100, "x", "Ünïcødé 🎉 room"])
def test_create_room_name_bounds(server, users, name):
    r = server.post("/rooms", {"name": name}, token=users[0].token)
    assert r.status_code == 201, r.text
    assert r.json()["name"] == name


def test_create_room_requires_auth(server):
    assert_error(server.post("/rooms", {"name": "x"}), 401, "missing_token")


@pytest.mark.parametrize("path", ["/rooms/999999", "/rooms/0", "/rooms/abc", "/rooms/-1",
                                  "/rooms/99999999999999999999", "/rooms/1.5"])
def test_unknown_room_404(server, users, path):
    assert_error(server.get(path, token=users[0].token), 404, "not_found")


def test_unknown_room_other_endpoints_404(server, users):
    t = users[0].token
    assert_error(server.post("/rooms/999999/join", token=t), 404, "not_found")
    assert_error(server.post("/rooms/999999/leave", token=t), 404, "not_found")
    assert_error(server.get("/rooms/999999/members", token=t), 404, "not_found")
    assert_error(server.get("/rooms/999999/messages", token=t), 404, "not_found")
    assert_error(server.post("/rooms/999999/messages", {"content": "x"}, token=t), 404,
                 "not_found")
    assert_error(server.post("/rooms/999999/members", {"user_id": users[1].id}, token=t),
                 404, "not_found")


def test_join_and_leave(server, users):
    alice, bob = users[0], users[1]
    room = create_room(server, alice)
    rid = room["id"]

    r = server.post(f"/rooms/{rid}/join", token=bob.token)
    assert r.status_code == 200, r.text
    joined = r.json()
    assert joined["id"] == rid
    assert joined["member_count"] == 2
    # idempotent
    r = server.post(f"/rooms/{rid}/join", token=bob.token)
    assert r.status_code == 200, r.text
    assert r.json()["member_count"] == 2

    ms = members(server, alice, rid)
    assert sorted(m["id"] for m in ms) == sorted([alice.id, bob.id])
    by_id = {m["id"]: m for m in ms}
    assert by_id[bob.id]["username"] == bob.username
    assert by_id[bob.id]["online"] is False

    r = server.post(f"/rooms/{rid}/leave", token=bob.token)
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert [m["id"] for m in members(server, alice, rid)] == [alice.id]
    r = server.get(f"/rooms/{rid}", token=alice.token)
    assert r.json()["member_count"] == 1
    # leaving again is fine
    assert server.post(f"/rooms/{rid}/leave", token=bob.token).status_code == 204


def test_join_seeded_room(server, users):
    r = server.post("/rooms/3/join", token=users[2].token)
    assert r.status_code == 200, r.text
    assert users[2].id in [m["id"] for m in members(server, users[2], 3)]


def test_unread_count_counts_others_messages(server, users):
    alice, bob = users[0], users[1]
    room = create_room(server, alice)
    rid = room["id"]
    assert server.post(f"/rooms/{rid}/join", token=bob.token).status_code == 200
    for i in range(3):
        post_message(server, alice, rid, f"unread {i}")

    def room_for(user):
        r = server.get("/rooms", token=user.token)
        return next(x for x in r.json() if x["id"] == rid)

    assert room_for(bob)["unread_count"] == 3
    assert room_for(alice)["unread_count"] == 0
    assert room_for(bob)["member_count"] == 2


# ------------------------------------------------------------ private rooms


def test_private_room_access_rules(server):
    owner = register(server)
    outsider = register(server)
    guest = register(server)
    room = create_room(server, owner, is_private=True)
    rid = room["id"]
    assert room["is_private"] is True
    assert room["member_count"] == 1

    assert rid in room_ids(server, owner)
    assert rid not in room_ids(server, outsider)

    t = outsider.token
    assert_error(server.get(f"/rooms/{rid}", token=t), 403, "forbidden")
    assert_error(server.get(f"/rooms/{rid}/messages", token=t), 403, "forbidden")
    assert_error(server.post(f"/rooms/{rid}/messages", {"content": "hi"}, token=t), 403,
                 "forbidden")
    assert_error(server.post(f"/rooms/{rid}/join", token=t), 403, "forbidden")
    assert_error(server.get(f"/rooms/{rid}/members", token=t), 403, "forbidden")
    # a non-member cannot add people, not even themselves
    assert_error(server.post(f"/rooms/{rid}/members", {"user_id": outsider.id}, token=t),
                 403, "forbidden")
    assert rid not in room_ids(server, outsider)

    # the owner posts; the outsider still cannot read it
    post_message(server, owner, rid, "secret plans")
    assert_error(server.get(f"/rooms/{rid}/messages", token=t), 403, "forbidden")

    # a member adds the guest: now everything works for them
    r = server.post(f"/rooms/{rid}/members", {"user_id": guest.id}, token=owner.token)
    assert r.status_code == 200, r.text
    assert rid in room_ids(server, guest)
    r = server.get(f"/rooms/{rid}", token=guest.token)
    assert r.status_code == 200 and r.json()["member_count"] == 2
    r = server.get(f"/rooms/{rid}/messages", token=guest.token)
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["messages"]] == ["secret plans"]
    post_message(server, guest, rid, "hello from the guest")
    assert sorted(m["id"] for m in members(server, guest, rid)) == sorted([owner.id, guest.id])
    # adding an existing member again is harmless
    r = server.post(f"/rooms/{rid}/members", {"user_id": guest.id}, token=owner.token)
    assert r.status_code == 200, r.text
    assert len(members(server, owner, rid)) == 2

    # the guest leaves and loses access
    assert server.post(f"/rooms/{rid}/leave", token=guest.token).status_code == 204
    assert_error(server.get(f"/rooms/{rid}/messages", token=guest.token), 403, "forbidden")
    assert rid not in room_ids(server, guest)


def test_add_member_validation(server):
    owner = register(server)
    room = create_room(server, owner, is_private=True)
    rid = room["id"]
    t = owner.token
    assert_error(server.post(f"/rooms/{rid}/members", {"user_id": 987654321}, token=t), 404,
                 "not_found")
    assert_error(server.post(f"/rooms/{rid}/members", {}, token=t), 400, "validation_failed",
                 "user_id")
    assert_error(server.post(f"/rooms/{rid}/members", {"user_id": "2"}, token=t), 400,
                 "validation_failed", "user_id")


# -------------------------------------------------------------------- DMs


def test_dm_is_idempotent_and_private(server):
    a = register(server)
    b = register(server)
    c = register(server)
    r = server.post("/dms", {"user_id": b.id}, token=a.token)
    assert r.status_code == 201, r.text
    dm = r.json()
    assert_room_shape(dm)
    assert dm["is_private"] is True
    assert dm["member_count"] == 2

    r = server.post("/dms", {"user_id": b.id}, token=a.token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == dm["id"]
    # the same room from the other side
    r = server.post("/dms", {"user_id": a.id}, token=b.token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == dm["id"]

    assert dm["id"] in room_ids(server, a)
    assert dm["id"] in room_ids(server, b)
    assert dm["id"] not in room_ids(server, c)
    assert sorted(m["id"] for m in members(server, a, dm["id"])) == sorted([a.id, b.id])

    post_message(server, a, dm["id"], "psst")
    r = server.get(f"/rooms/{dm['id']}/messages", token=b.token)
    assert [m["content"] for m in r.json()["messages"]] == ["psst"]
    assert_error(server.get(f"/rooms/{dm['id']}/messages", token=c.token), 403, "forbidden")
    assert_error(server.post(f"/rooms/{dm['id']}/join", token=c.token), 403, "forbidden")

    # a different pair gets a different room
    r = server.post("/dms", {"user_id": c.id}, token=a.token)
    assert r.status_code == 201, r.text
    assert r.json()["id"] != dm["id"]


def test_dm_errors(server, users):
    t = users[0].token
    assert_error(server.post("/dms", {"user_id": 987654321}, token=t), 404, "not_found")
    assert_error(server.post("/dms", {}, token=t), 400, "validation_failed", "user_id")
    assert_error(server.post("/dms", {"user_id": "x"}, token=t), 400, "validation_failed",
                 "user_id")
    assert_error(server.post("/dms", {"user_id": users[1].id}), 401, "missing_token")
