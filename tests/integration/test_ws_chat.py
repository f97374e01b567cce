"""Chat over WebSocket: message shape, REST and socket posts reaching
subscribers, client_id echo and idempotency, ping/pong, token swap, errors
that keep the connection open, and room isolation."""

import asyncio

import websockets

from api import claims_for, create_room, is_rfc3339_ms, make_jwt, post_message
from wsclient import connect, run

ORIGINAL_FIELDS = ("sender", "sender_id", "content", "id", "room_id", "username", "created_at")


def assert_ws_message(event, user, room_id, content):
    assert event["type"] == "message", event
    for key in ORIGINAL_FIELDS:
        assert key in event, f"message event without {key}: {event}"
    assert event["sender"] == user.email, event
    assert event["sender_id"] == user.id, event
    assert event["username"] == user.username, event
    assert event["room_id"] == room_id, event
    assert event["content"] == content, event
    assert isinstance(event["id"], int) and event["id"] > 0, event
    assert is_rfc3339_ms(event["created_at"]), event


def stored(server, message_id):
    rows = server.db.query(
        "SELECT id, room_id, sender_id, content, client_id FROM messages "
        f"WHERE id = {int(message_id)}"
    )
    return rows[0] if rows else None


def test_two_users_in_room_1(ws_server, ws_users):
    alice, bob = ws_users[0], ws_users[1]

    async def main():
        a = await connect(ws_server, 1, alice.token, name="alice")
        b = await connect(ws_server, 1, bob.token, name="bob")
        await a.sync()
        await b.sync()
        content = "Hello! ✓ é 日本"
        await a.send_message(content, client_id="two-users-1")
        mine = await a.expect("message", pred=lambda e: e["content"] == content)
        theirs = await b.expect("message", pred=lambda e: e["content"] == content)
        # Committed before it was broadcast: the row is there already.
        row = stored(ws_server, theirs["id"])
        assert row is not None and row["content"] == content, row
        assert_ws_message(mine, alice, 1, content)
        assert_ws_message(theirs, alice, 1, content)
        assert mine["client_id"] == "two-users-1", mine
        assert mine["id"] == theirs["id"]
        assert mine["created_at"] == theirs["created_at"]

        await b.send_message("Hi alice")
        got = await a.expect("message", pred=lambda e: e["content"] == "Hi alice")
        assert_ws_message(got, bob, 1, "Hi alice")
        assert got["id"] > mine["id"]
        echo = await b.expect("message", pred=lambda e: e["content"] == "Hi alice")
        assert echo["id"] == got["id"]
        assert echo.get("client_id") is None, echo
        await a.close()
        await b.close()

        r = ws_server.get("/rooms/1/messages?limit=200", token=alice.token)
        assert r.status_code == 200
        ids = [m["id"] for m in r.json()["messages"]]
        assert mine["id"] in ids and got["id"] in ids

    run(main())


def test_rest_post_reaches_socket_subscribers(ws_server, ws_users):
    alice, bob, carol = ws_users[:3]
    room = create_room(ws_server, alice)["id"]

    async def main():
        subs = [await connect(ws_server, room, u.token, name=u.username) for u in (alice, bob)]
        for s in subs:
            await s.sync()
        posted = post_message(ws_server, carol, room, "from REST ✓", client_id="rest-1")
        for s in subs:
            ev = await s.expect("message")
            assert_ws_message(ev, carol, room, "from REST ✓")
            assert ev["id"] == posted["id"]
            assert ev["created_at"] == posted["created_at"]
        # The poster's own socket gets it too, with its client_id.
        c = await connect(ws_server, room, carol.token, name="carol")
        await c.sync()
        posted = post_message(ws_server, carol, room, "again", client_id="rest-2")
        ev = await c.expect("message")
        assert ev["id"] == posted["id"] and ev["client_id"] == "rest-2", ev
        for s in subs + [c]:
            await s.close()

    run(main())


def test_rooms_are_isolated(ws_server, ws_users):
    alice, bob = ws_users[:2]
    r1 = create_room(ws_server, alice)["id"]
    r2 = create_room(ws_server, alice)["id"]

    async def main():
        in1 = await connect(ws_server, r1, bob.token)
        in2 = await connect(ws_server, r2, bob.token)
        await in1.sync()
        await in2.sync()
        post_message(ws_server, alice, r1, "only for room 1")
        post_message(ws_server, alice, r2, "only for room 2")
        ev = await in2.expect("message")
        assert ev["content"] == "only for room 2" and ev["room_id"] == r2
        ev = await in1.expect("message")
        assert ev["content"] == "only for room 1" and ev["room_id"] == r1
        assert not in1.skipped or all(e["type"] != "message" for e in in1.skipped)
        await in1.close()
        await in2.close()

    run(main())


def test_same_user_two_connections_both_receive(ws_server, ws_users):
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]

    async def main():
        d1 = await connect(ws_server, room, alice.token, name="alice-1")
        d2 = await connect(ws_server, room, alice.token, name="alice-2")
        await d1.sync()
        await d2.sync()
        await d1.send_message("from device 1", client_id="dev-1")
        e1 = await d1.expect("message")
        e2 = await d2.expect("message")
        assert e1["id"] == e2["id"] and e2["content"] == "from device 1"
        assert e1["client_id"] == "dev-1"
        post_message(ws_server, bob, room, "to both devices")
        assert (await d1.expect("message"))["content"] == "to both devices"
        assert (await d2.expect("message"))["content"] == "to both devices"
        await d1.close()
        await d2.close()

    run(main())


def test_client_id_echo_and_idempotency(ws_server, ws_users):
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        b = await connect(ws_server, room, bob.token, name="bob")
        await a.sync()
        await b.sync()
        await a.send_message("first", client_id="cid-1")
        first = await a.expect("message")
        assert first["client_id"] == "cid-1" and first["content"] == "first"
        assert (await b.expect("message"))["id"] == first["id"]

        # Repeat: nothing new stored; the stored message, to this connection only.
        await a.send_message("first, resent", client_id="cid-1")
        again = await a.expect("message")
        assert again["id"] == first["id"], again
        assert again["content"] == "first" and again["client_id"] == "cid-1", again
        await a.send_message("second", client_id="cid-2")
        second = await a.expect("message")
        assert second["content"] == "second" and second["id"] > first["id"]
        nxt = await b.expect("message")
        assert nxt["id"] == second["id"], f"bob got the repeat: {nxt}"

        # The same client_id over REST is the same message too.
        r = ws_server.post(
            f"/rooms/{room}/messages", {"content": "first", "client_id": "cid-1"}, token=alice.token
        )
        assert r.status_code == 200, r.text
        assert r.json()["id"] == first["id"]
        posted = post_message(ws_server, alice, room, "via REST", client_id="cid-3")
        ev = await a.expect("message")
        assert ev["id"] == posted["id"]
        await a.send_message("via REST, resent over the socket", client_id="cid-3")
        ev = await a.expect("message")
        assert ev["id"] == posted["id"] and ev["content"] == "via REST", ev

        # client_id is per sender: bob's cid-1 is his own message.
        await b.send_message("bob's own", client_id="cid-1")
        bobs = await b.expect("message", pred=lambda e: e["content"] == "bob's own")
        assert bobs["id"] > posted["id"] and bobs["client_id"] == "cid-1"

        # Marker: bob saw exactly one copy of each stored message.
        got = [e for e in b.events if e["type"] == "message"]
        ids = [e["id"] for e in got]
        assert len(ids) == len(set(ids)), f"bob got duplicates: {ids}"
        await a.close()
        await b.close()

    run(main())
    rows = ws_server.db.query(
        f"SELECT id FROM messages WHERE room_id = {room} AND sender_id = {alice.id}"
    )
    assert len(rows) == 3, rows


def test_application_ping_pong(ws_server, ws_users):
    async def main():
        async with await connect(ws_server, 1, ws_users[0].token) as c:
            for _ in range(3):
                await c.send_json({"type": "ping"})
                ev = await c.expect("pong")
                assert ev == {"type": "pong"}

    run(main())


def test_auth_swaps_in_a_fresh_token(ws_server, ws_users):
    alice = ws_users[0]
    room = create_room(ws_server, alice)["id"]
    r = ws_server.post("/auth/refresh", token=alice.token)
    fresh = r.json()["token"] if r.status_code == 200 else make_jwt(claims_for(alice, 7200))

    async def main():
        async with await connect(ws_server, room, alice.token) as c:
            await c.sync()
            await c.send_json({"type": "auth", "token": fresh})
            # Accepted silently: no error before the pong.
            before = await c.sync()
            assert not [e for e in before if e["type"] == "error"], before
            await c.send_message("after auth")
            ev = await c.expect("message")
            assert ev["sender_id"] == alice.id and ev["content"] == "after auth"

    run(main())


def test_auth_with_a_bad_token_is_an_error_and_keeps_the_session(ws_server, ws_users):
    """Decision: a failed swap is an `error` event (invalid_token or
    token_expired) and the connection stays open on the token it has."""
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]
    expired = make_jwt(claims_for(alice, lifetime_s=-60))
    cases = [
        ({"type": "auth", "token": "garbage"}, "invalid_token"),
        ({"type": "auth", "token": expired}, "token_expired"),
        ({"type": "auth"}, None),
        ({"type": "auth", "token": 42}, None),
    ]

    async def main():
        async with await connect(ws_server, room, alice.token) as c:
            for frame, code in cases:
                await c.send_json(frame)
                err = await c.expect("error")
                assert isinstance(err.get("error"), str) and err["error"], err
                if code is not None:
                    assert err["code"] == code, (frame, err)
                else:
                    assert err["code"] in ("validation_failed", "invalid_token"), (frame, err)
                await c.sync()
            # Someone else's valid token does not change who this socket is.
            await c.send_json({"type": "auth", "token": bob.token})
            await c.expect("error")
            await c.send_message("still alice")
            ev = await c.expect("message")
            assert ev["sender_id"] == alice.id, ev

    run(main())


def test_errors_keep_the_connection_open(ws_server, ws_users):
    """Decisions: invalid JSON → invalid_json; a JSON value that is not an
    object, an unknown or missing type, a missing or bad content, a bad
    client_id → validation_failed (unknown_type also accepted for an unknown
    type). Errors go to the sender only."""
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]
    bad = [
        ("{not json", ("invalid_json",)),
        ('{"type":"message","content":"x"', ("invalid_json",)),
        ("", ("invalid_json",)),
        ("[1,2,3]", ("validation_failed", "invalid_json")),
        ('"message"', ("validation_failed", "invalid_json")),
        ('{"type":"dance"}', ("validation_failed", "unknown_type")),
        ('{"content":"no type"}', ("validation_failed",)),
        ('{"type":42}', ("validation_failed",)),
        ('{"type":"message"}', ("validation_failed",)),
        ('{"type":"message","content":""}', ("validation_failed",)),
        ('{"type":"message","content":"   \\n\\t "}', ("validation_failed",)),
        ('{"type":"message","content":17}', ("validation_failed",)),
        ('{"type":"message","content":"' + "x" * 4001 + '"}', ("validation_failed",)),
        (
            '{"type":"message","content":"ok","client_id":"' + "c" * 65 + '"}',
            ("validation_failed",),
        ),
        ('{"type":"message","content":"ok","client_id":7}', ("validation_failed",)),
        ('{"type":"read","message_id":"abc"}', ("validation_failed",)),
        ('{"type":"read"}', ("validation_failed",)),
    ]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        b = await connect(ws_server, room, bob.token, name="bob")
        await a.sync()
        await b.sync()
        for i, (text, codes) in enumerate(bad):
            await a.send_raw(text)
            err = await a.expect("error")
            assert err["code"] in codes, (text[:60], err)
            assert isinstance(err["error"], str) and err["error"], err
            # Still open, and a valid message works.
            await a.send_message(f"valid {i}")
            ev = await a.expect("message")
            assert ev["content"] == f"valid {i}", ev
        msgs = await b.collect(len(bad))
        assert [m["content"] for m in msgs] == [f"valid {i}" for i in range(len(bad))]
        assert not b.of_type("error"), b.of_type("error")
        # 4000 characters (not bytes) is the limit: multi-byte content fits.
        await a.send_message("é" * 4000)
        ev = await a.expect("message")
        assert len(ev["content"]) == 4000
        await a.close()
        await b.close()

    run(main())


def test_aborted_client_leaves_the_room_working(ws_server, ws_users):
    """A client vanishing without a close handshake leaves the room working."""
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]

    async def main():
        gone = await connect(ws_server, room, bob.token)
        await gone.sync()
        gone.ws.transport.abort()
        b = await connect(ws_server, room, bob.token)
        await b.sync()
        post_message(ws_server, alice, room, "after an abort")
        assert (await b.expect("message"))["content"] == "after an abort"
        await b.close()

    run(main())


def test_many_rooms_one_user_concurrently(ws_server, ws_users):
    alice = ws_users[0]
    rooms = [create_room(ws_server, alice)["id"] for _ in range(4)]

    async def main():
        clients = [await connect(ws_server, r, alice.token) for r in rooms]
        await asyncio.gather(*(c.sync() for c in clients))
        await asyncio.gather(*(c.send_message(f"in {r}") for c, r in zip(clients, rooms)))
        for c, r in zip(clients, rooms):
            ev = await c.expect("message")
            assert ev["room_id"] == r and ev["content"] == f"in {r}"
        await asyncio.gather(*(c.close() for c in clients))

    run(main())


def test_closed_connection_is_reported_cleanly(ws_server, ws_users):
    async def main():
        c = await connect(ws_server, 1, ws_users[0].token)
        await c.sync()
        await c.ws.close(code=1000, reason="bye")
        assert c.ws.close_code == 1000, c.ws.close_code
        try:
            await c.ws.recv()
        except websockets.ConnectionClosedOK:
            pass

    run(main())
