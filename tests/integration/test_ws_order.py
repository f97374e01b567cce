"""Ordering and recovery: many senders at once reach every subscriber in
one increasing id order; `?since=` replays exactly what was missed, marks
where live messages begin, and gives up (recovered:false) past 1000."""

import asyncio
import threading

import pytest

from api import Collector, create_room, post_message, register
from wsclient import connect, run

SENDERS = 5
PER_SENDER = 100
SUBSCRIBERS = 3
RECOVERY_LIMIT = 1000


@pytest.fixture(scope="module")
def crowd(ws_server):
    return [register(ws_server) for _ in range(SENDERS + SUBSCRIBERS)]


def room_ids(server, room, after=0):
    rows = server.db.query(
        f"SELECT id FROM messages WHERE room_id = {int(room)} AND id > {int(after)} ORDER BY id"
    )
    return [r["id"] for r in rows]


def assert_increasing(ids, who):
    bad = [(a, b) for a, b in zip(ids, ids[1:]) if b <= a]
    assert not bad, f"{who}: ids not strictly increasing, e.g. {bad[:3]}"


async def burst(client, n, tag):
    """Sends n messages as fast as the socket takes them, then waits for
    the n echoes; returns them in arrival order."""
    for i in range(n):
        await client.send_message(f"{tag} {i}", client_id=f"{tag}-{i}")
    return await client.collect(
        n, timeout=60, pred=lambda e: str(e.get("client_id", "")).startswith(f"{tag}-")
    )


def test_five_senders_three_subscribers_same_order(ws_server, crowd):
    senders, subscribers = crowd[:SENDERS], crowd[SENDERS:]
    room = create_room(ws_server, senders[0])["id"]
    total = SENDERS * PER_SENDER

    async def main():
        subs = [await connect(ws_server, room, u.token, name=f"sub{i}")
                for i, u in enumerate(subscribers)]
        snds = [await connect(ws_server, room, u.token, name=f"snd{i}")
                for i, u in enumerate(senders)]
        await asyncio.gather(*(c.sync() for c in subs + snds))

        async def send_all(i, c):
            for j in range(PER_SENDER):
                await c.send_message(f"sender {i} message {j}", client_id=f"s{i}-{j}")

        await asyncio.gather(*(send_all(i, c) for i, c in enumerate(snds)))
        got = await asyncio.gather(*(c.collect(total, timeout=90) for c in subs + snds))
        await asyncio.gather(*(c.close() for c in subs + snds))
        return got

    got = run(main(), timeout=150)
    expected_contents = {
        f"sender {i} message {j}" for i in range(SENDERS) for j in range(PER_SENDER)
    }
    reference = [e["id"] for e in got[0]]
    assert_increasing(reference, "subscriber 0")
    assert len(set(reference)) == total
    assert {e["content"] for e in got[0]} == expected_contents
    for k, events in enumerate(got):
        ids = [e["id"] for e in events]
        assert ids == reference, f"connection {k} saw another order or set"
    # The store agrees: exactly these ids, in this room.
    assert room_ids(ws_server, room) == reference
    # Each sender's own 100 carry their client_ids, in the order sent.
    for i in range(SENDERS):
        own = [e for e in got[SUBSCRIBERS + i] if e.get("client_id", "").startswith(f"s{i}-")]
        assert [e["client_id"] for e in own] == [f"s{i}-{j}" for j in range(PER_SENDER)], (
            f"sender {i}: own echoes {len(own)}"
        )
        assert all(e["sender_id"] == senders[i].id for e in own)
    # Content by id is the same everywhere.
    by_id = {e["id"]: e["content"] for e in got[0]}
    for events in got[1:]:
        assert {e["id"]: e["content"] for e in events} == by_id


def test_reconnect_with_since_gets_exactly_what_it_missed(ws_server, crowd):
    alice, bob = crowd[0], crowd[1]
    room = create_room(ws_server, alice)["id"]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        b = await connect(ws_server, room, bob.token, name="bob")
        await a.sync()
        await b.sync()
        first = await burst(a, 10, "before")
        seen = await b.collect(10)
        last_seen = seen[-1]["id"]
        await b.close()
        missed = await burst(a, 20, "while-away")

        b = await connect(ws_server, room, bob.token, name="bob-again", since=last_seen)
        events = await b.collect_until(lambda e: e["type"] == "recovery")
        replay = [e for e in events if e["type"] == "message"]
        marker = events[-1]
        assert marker == {"type": "recovery", "recovered": True, "count": 20}, marker
        assert [e["id"] for e in replay] == [e["id"] for e in missed]
        assert [e["content"] for e in replay] == [f"while-away {i}" for i in range(20)]
        assert all(e["room_id"] == room and e["sender_id"] == alice.id for e in replay)
        # Live after the marker.
        await a.send_message("live")
        ev = await b.expect("message")
        assert ev["content"] == "live" and ev["id"] > missed[-1]["id"]
        assert first[-1]["id"] == last_seen
        await a.close()
        await b.close()

    run(main())


def test_since_edges(ws_server, crowd):
    alice = crowd[0]
    room = create_room(ws_server, alice)["id"]
    posted = [post_message(ws_server, alice, room, f"edge {i}")["id"] for i in range(5)]

    async def recover(since):
        c = await connect(ws_server, room, alice.token, since=since)
        events = await c.collect_until(lambda e: e["type"] == "recovery")
        await c.close()
        return [e["id"] for e in events if e["type"] == "message"], events[-1]

    async def main():
        # Up to date: nothing replayed, count 0.
        ids, marker = await recover(posted[-1])
        assert ids == [] and marker == {"type": "recovery", "recovered": True, "count": 0}
        # since=0: the whole room.
        ids, marker = await recover(0)
        assert ids == posted and marker["count"] == 5
        # An id from before the room existed, or from another room: the
        # room's messages after it.
        ids, marker = await recover(posted[1])
        assert ids == posted[2:] and marker["count"] == 3
        # Past the newest id: nothing.
        ids, marker = await recover(posted[-1] + 1000)
        assert ids == [] and marker["count"] == 0
        # Without since: no marker at all, live messages only.
        c = await connect(ws_server, room, alice.token)
        await c.sync()
        assert not c.of_type("recovery") and not c.messages()
        await c.close()

    run(main())


async def until(predicate, timeout=30):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.002)


def test_replay_and_live_have_no_gap_and_no_duplicate(ws_server, crowd):
    """Messages keep arriving while the replay is read: replay + live is
    still every message of the room after `since`, once, in order."""
    alice, bob, carol = crowd[0], crowd[1], crowd[2]
    room = create_room(ws_server, alice)["id"]
    since = post_message(ws_server, alice, room, "already seen")["id"]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        await a.sync()
        await burst(a, 300, "missed")
        stop = threading.Event()
        posters = [Collector(ws_server, u, room, 60, f"live-{u.id}", stop) for u in (bob, carol)]
        for p in posters:
            p.start()
        # Connect as the posters start, and again while they still run.
        clients = []
        for i in range(3):
            c = await connect(ws_server, room, alice.token, since=since, name=f"reconnect{i}")
            clients.append(c)
            await until(lambda: sum(len(p.acked) for p in posters) >= 30 * (i + 1))
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: [p.join(60) for p in posters])
        acked = sorted(i for p in posters for i, _ in p.acked)
        assert len(acked) == 120, [p.statuses[-3:] for p in posters]
        last = acked[-1]
        results = []
        for c in clients:
            events = await c.collect_until(
                lambda e: e["type"] == "message" and e["id"] == last, timeout=60
            )
            if not any(e["type"] == "recovery" for e in events):
                # Late or never: read on a little so that the failure says which.
                try:
                    events += await c.collect_until(lambda e: e["type"] == "recovery", 3)
                except AssertionError:
                    pass
            results.append(events)
            await c.close()
        await a.close()
        return results

    results = run(main(), timeout=120)
    expected = room_ids(ws_server, room, after=since)
    assert len(expected) == 300 + 120
    for k, events in enumerate(results):
        kinds = [e for e in events if e["type"] in ("message", "recovery")]
        markers = [i for i, e in enumerate(kinds) if e["type"] == "recovery"]
        assert len(markers) == 1, (
            f"client {k}: {len(markers)} recovery markers in {len(kinds)} events"
            + (f" (at {markers}: {[kinds[i] for i in markers]})" if markers else "")
        )
        at = markers[0]
        marker = kinds[at]
        assert marker["recovered"] is True and marker["count"] == at, (k, marker, at)
        assert at >= 300, f"client {k}: only {at} replayed"
        ids = [e["id"] for e in kinds if e["type"] == "message"]
        dups = sorted({i for i in ids if ids.count(i) > 1})
        where = [
            ("replay" if pos < at else "live", i) for pos, i in enumerate(ids) if i in dups[:3]
        ]
        assert ids == expected, (
            f"client {k}: replay+live differs from the room: "
            f"missing {sorted(set(expected) - set(ids))[:5]}, duplicated {dups[:5]} "
            f"(seen as {where}), marker after {at} replayed"
        )


def test_more_than_1000_missing_is_not_replayed(ws_server, crowd):
    alice, bob = crowd[0], crowd[1]
    room = create_room(ws_server, alice)["id"]
    before = post_message(ws_server, alice, room, "before the flood")["id"]

    async def main():
        a = await connect(ws_server, room, alice.token, name="alice")
        await a.sync()
        flood = [e["id"] for e in await burst(a, RECOVERY_LIMIT + 1, "flood")]
        assert room_ids(ws_server, room, after=before) == flood

        # 1001 missing: no replay, recovered:false first.
        b = await connect(ws_server, room, bob.token, since=before, name="bob")
        await b.sync()
        await a.send_message("live 1")
        await a.send_message("live 2")
        await b.expect("message", timeout=30, pred=lambda e: e["content"] == "live 2")
        # Everything the connection received, the events sync() passed over included.
        kinds = [e for e in b.events if e["type"] in ("message", "recovery")]
        shown = [(e["type"], e.get("content") or e) for e in kinds[:4]]
        assert kinds[0] == {"type": "recovery", "recovered": False, "since": before}, (
            f"the recovery marker must come first: {shown}"
        )
        assert [e["content"] for e in kinds[1:]] == ["live 1", "live 2"], kinds[1:5]
        # The client then pages with after=since.
        r = ws_server.get(f"/rooms/{room}/messages?after={before}&limit=200", token=bob.token)
        assert r.status_code == 200
        page = r.json()
        assert [m["id"] for m in page["messages"]] == flood[:200] and page["has_more"] is True

        # Exactly 1000 missing: replayed.
        everything = room_ids(ws_server, room, after=before)
        since = everything[-RECOVERY_LIMIT - 1]
        c = await connect(ws_server, room, bob.token, since=since, name="bob-1000")
        events = await c.collect_until(lambda e: e["type"] == "recovery", timeout=30)
        replay = [e["id"] for e in events if e["type"] == "message"]
        assert events[-1] == {"type": "recovery", "recovered": True, "count": RECOVERY_LIMIT}
        assert replay == everything[-RECOVERY_LIMIT:]
        for x in (a, b, c):
            await x.close()

    run(main(), timeout=120)
