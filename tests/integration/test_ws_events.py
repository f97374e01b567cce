"""Ephemeral and per-user events: typing, presence and read receipts."""

import asyncio

from api import create_room, post_message, register
from wsclient import connect, run


def subset(event, **fields):
    return all(event.get(k) == v for k, v in fields.items())


def room_view(server, user, room_id):
    r = server.get("/rooms", token=user.token)
    assert r.status_code == 200, r.text
    return next(room for room in r.json() if room["id"] == room_id)


# --------------------------------------------------------------------------
# typing


def test_typing_goes_to_the_others_at_most_once_per_2s(ws_server, ws_users):
    alice, bob, carol = ws_users[:3]
    room = create_room(ws_server, alice)["id"]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        b = await connect(ws_server, room, bob.token, name="bob")
        c = await connect(ws_server, room, carol.token, name="carol")
        for x in (a, b, c):
            await x.sync()
        for _ in range(5):
            await a.send_json({"type": "typing"})
        await a.send_message("done typing", client_id="typing-marker")
        # The marker goes through the store; typing does not, so anything
        # forwarded for the five typings has arrived by the time it has.
        for x in (b, c):
            got = await x.collect_until(lambda e: subset(e, type="message", content="done typing"))
            typing = [e for e in got if e["type"] == "typing"]
            assert len(typing) == 1, f"{x.name} got {typing}"
            assert subset(
                typing[0], type="typing", user_id=alice.id, username=alice.username
            ), typing
        mine = await a.collect_until(lambda e: subset(e, type="message", client_id="typing-marker"))
        assert not [e for e in mine if e["type"] == "typing"], "the typist got its own typing"

        # Another user's typing is forwarded independently of alice's window.
        await b.send_json({"type": "typing"})
        ev = await a.expect("typing")
        assert subset(ev, user_id=bob.id, username=bob.username), ev
        ev = await c.expect("typing")
        assert subset(ev, user_id=bob.id), ev

        # After the window, alice's typing is forwarded again. (This waits
        # out the 2 s window the contract defines; there is no event to
        # wait for instead.)
        await asyncio.sleep(2.2)
        await a.send_json({"type": "typing"})
        ev = await b.expect("typing")
        assert subset(ev, user_id=alice.id), ev
        for x in (a, b, c):
            await x.close()

    run(main())


def test_typing_is_per_room(ws_server, ws_users):
    alice, bob = ws_users[:2]
    r1 = create_room(ws_server, alice)["id"]
    r2 = create_room(ws_server, alice)["id"]

    async def main():
        a1 = await connect(ws_server, r1, alice.token)
        a2 = await connect(ws_server, r2, alice.token)
        b1 = await connect(ws_server, r1, bob.token)
        b2 = await connect(ws_server, r2, bob.token)
        for x in (a1, a2, b1, b2):
            await x.sync()
        await a1.send_json({"type": "typing"})
        await a2.send_json({"type": "typing"})
        assert subset(await b1.expect("typing"), user_id=alice.id)
        assert subset(await b2.expect("typing"), user_id=alice.id)
        for x in (a1, a2, b1, b2):
            await x.close()

    run(main())


# --------------------------------------------------------------------------
# presence


def test_presence_first_connection_online_last_offline(ws_server, ws_users):
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]

    def bob_presence(events):
        return [e for e in events if e["type"] == "presence" and e.get("user_id") == bob.id]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        await a.sync()
        b1 = await connect(ws_server, room, bob.token, name="bob-1")
        await b1.sync()
        ev = await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert subset(ev, type="presence", user_id=bob.id, username=bob.username,
                      status="online"), ev

        # A second connection of the same user: no second "online".
        b2 = await connect(ws_server, room, bob.token, name="bob-2")
        await b2.sync()
        await b2.send_message("marker 1")
        got = await a.collect_until(lambda e: subset(e, type="message", content="marker 1"))
        assert not bob_presence(got), got

        # Closing one of the two: still online.
        await b1.close()
        await b2.send_message("marker 2")
        got = await a.collect_until(lambda e: subset(e, type="message", content="marker 2"))
        assert not bob_presence(got), got

        # The last one: offline.
        await b2.close()
        ev = await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert subset(ev, type="presence", user_id=bob.id, username=bob.username,
                      status="offline"), ev

        # Back again: online again.
        b3 = await connect(ws_server, room, bob.token, name="bob-3")
        ev = await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert subset(ev, status="online"), ev
        await b3.close()
        ev = await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert subset(ev, status="offline"), ev
        await a.close()

    run(main())


def test_presence_is_per_room(ws_server, ws_users):
    alice, bob = ws_users[:2]
    r1 = create_room(ws_server, alice)["id"]
    r2 = create_room(ws_server, alice)["id"]

    async def main():
        a1 = await connect(ws_server, r1, alice.token)
        a2 = await connect(ws_server, r2, alice.token)
        await a1.sync()
        await a2.sync()
        b1 = await connect(ws_server, r1, bob.token)
        ev = await a1.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert ev["status"] == "online"
        # Bob online in room 1 only: room 2 hears of him when he joins it.
        b2 = await connect(ws_server, r2, bob.token)
        ev = await a2.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert ev["status"] == "online"
        await b1.close()
        ev = await a1.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert ev["status"] == "offline"
        await b2.send_message("room 2 marker")
        got = await a2.collect_until(lambda e: subset(e, type="message", content="room 2 marker"))
        assert not [e for e in got if e["type"] == "presence" and e.get("user_id") == bob.id]
        for x in (a1, a2, b2):
            await x.close()

    run(main())


def test_presence_of_an_aborted_connection(ws_server, ws_users):
    """A client that vanishes without a close handshake still goes offline."""
    alice = ws_users[0]
    bob = register(ws_server)
    room = create_room(ws_server, alice)["id"]

    async def main():
        a = await connect(ws_server, room, alice.token)
        await a.sync()
        b = await connect(ws_server, room, bob.token)
        await b.sync()
        assert (await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id))[
            "status"
        ] == "online"
        b.ws.transport.abort()
        ev = await a.expect("presence", pred=lambda e: e.get("user_id") == bob.id)
        assert ev["status"] == "offline"
        await a.close()

    run(main())


# --------------------------------------------------------------------------
# read markers


def test_read_receipts_over_the_socket(ws_server, ws_users):
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]
    m = [post_message(ws_server, bob, room, f"m{i}")["id"] for i in range(4)]
    assert room_view(ws_server, alice, room)["last_read_message_id"] is None

    def receipt(user, mid):
        return {"type": "read", "user_id": user.id, "message_id": mid}

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        a2 = await connect(ws_server, room, alice.token, name="alice-2")
        b = await connect(ws_server, room, bob.token, name="bob")
        for x in (a, a2, b):
            await x.sync()

        await a.send_json({"type": "read", "message_id": m[2]})
        for x in (a, a2, b):
            ev = await x.expect("read")
            assert subset(ev, **receipt(alice, m[2])), (x.name, ev)
        view = room_view(ws_server, alice, room)
        assert view["last_read_message_id"] == m[2], view
        assert view["unread_count"] == 1, view

        # Backwards: ignored, no receipt, the marker stays.
        await a.send_json({"type": "read", "message_id": m[0]})
        await a.send_json({"type": "read", "message_id": m[2]})  # the same: no receipt either
        early = await a.sync()
        assert not [e for e in early if e["type"] == "read"], early
        assert room_view(ws_server, alice, room)["last_read_message_id"] == m[2]
        await a.send_json({"type": "read", "message_id": m[3]})
        for x in (a, a2, b):
            ev = await x.expect("read")
            assert subset(ev, **receipt(alice, m[3])), (x.name, "only the forward receipt", ev)
        view = room_view(ws_server, alice, room)
        assert view["last_read_message_id"] == m[3] and view["unread_count"] == 0, view
        for x in (a, a2, b):
            await x.close()

    run(main())


def test_read_receipts_over_rest(ws_server, ws_users):
    alice, bob = ws_users[:2]
    room = create_room(ws_server, alice)["id"]
    m = [post_message(ws_server, alice, room, f"r{i}")["id"] for i in range(3)]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        b = await connect(ws_server, room, bob.token, name="bob")
        await a.sync()
        await b.sync()
        r = ws_server.post(f"/rooms/{room}/read", {"message_id": m[1]}, token=bob.token)
        assert r.status_code == 204, r.text
        for x in (a, b):
            ev = await x.expect("read")
            assert subset(ev, type="read", user_id=bob.id, message_id=m[1]), ev
        assert room_view(ws_server, bob, room)["last_read_message_id"] == m[1]

        # Backwards over REST: 204, nothing moves, nothing is broadcast.
        r = ws_server.post(f"/rooms/{room}/read", {"message_id": m[0]}, token=bob.token)
        assert r.status_code == 204, r.text
        assert room_view(ws_server, bob, room)["last_read_message_id"] == m[1]
        r = ws_server.post(f"/rooms/{room}/read", {"message_id": m[2]}, token=bob.token)
        assert r.status_code == 204, r.text
        for x in (a, b):
            ev = await x.expect("read")
            assert subset(ev, user_id=bob.id, message_id=m[2]), (x.name, ev)

        # Bad bodies.
        r = ws_server.post(f"/rooms/{room}/read", {"message_id": "x"}, token=bob.token)
        assert r.status_code == 400, r.text
        r = ws_server.post(f"/rooms/{room}/read", {}, token=bob.token)
        assert r.status_code == 400, r.text
        r = ws_server.post(f"/rooms/{room}/read", {"message_id": m[2]})
        assert r.status_code == 401, r.text
        await a.close()
        await b.close()

    run(main())
