"""kill -9 and SIGTERM while REST and WebSocket clients post at once and
subscribers record everything they receive: every acknowledged message (a
201, or the sender's own echo) is in the database with its exact content,
nothing that was broadcast is missing from it, and a retry with the same
client_id finds each message stored once or not at all."""

import asyncio
import json
import signal
import socket
import threading
import time

import pytest

from api import create_room, register
from harness import wait_until
from load import (
    RestPoster,
    WsSender,
    assert_all_stored,
    assert_received_stored,
    read_all,
)
from wsclient import RawWs, connect, run

ROOMS = 2
REST_PER_ROOM = 2
WS_PER_ROOM = 2
SUBS_PER_ROOM = 2


class Load:
    """REST posters, WebSocket senders and subscribers on ROOMS rooms."""

    def __init__(self, srv, tag):
        self.srv = srv
        self.tag = tag
        self.users = [register(srv) for _ in range(3)]
        self.rooms = [create_room(srv, self.users[0])["id"] for _ in range(ROOMS)]
        self.stop = threading.Event()
        self.posters = [
            RestPoster(srv, self.users[k % 2], r, f"{tag}r{r}p{k}", self.stop)
            for r in self.rooms
            for k in range(REST_PER_ROOM)
        ]
        self.senders = []
        self.subs = []
        self.readers = []

    async def open_sockets(self):
        writer, reader = self.users[1], self.users[2]
        for r in self.rooms:
            for k in range(SUBS_PER_ROOM):
                self.subs.append(await connect(self.srv, r, reader.token, name=f"sub{r}-{k}"))
            for k in range(WS_PER_ROOM):
                client = await connect(self.srv, r, writer.token, name=f"snd{r}-{k}")
                self.senders.append(WsSender(client, writer, r, f"{self.tag}w{r}s{k}"))
        clients = self.clients()
        await asyncio.gather(*(c.sync() for c in clients))
        self.readers = [asyncio.create_task(read_all(c)) for c in clients]

    def clients(self):
        return self.subs + [s.client for s in self.senders]

    def start(self, ws_stop):
        for p in self.posters:
            p.start()
        return [asyncio.create_task(s.run(ws_stop)) for s in self.senders]

    def counts(self):
        rest = sum(len(p.acked()) for p in self.posters)
        ws = sum(len(s.acked()) for s in self.senders)
        seen = min(len(c.messages()) for c in self.subs)
        return rest, ws, seen

    def join_posters(self):
        self.stop.set()
        for p in self.posters:
            p.join(30)
            assert not p.is_alive(), f"{p.tag} still running"

    def acked(self):
        out = {}
        for p in self.posters:
            out.update(p.acked())
        for s in self.senders:
            out.update(s.acked())
        return out

    def check(self, db):
        acked = self.acked()
        assert_all_stored(db, acked)
        assert_received_stored(db, self.clients())
        return acked

    def retry_unacknowledged(self):
        """Posts again, with the same client_id and user, every message that
        got no answer: each was stored before the crash (200, the stored
        row) or not at all (201 now). Returns how many were found stored."""
        srv = self.srv
        pending = []
        for p in self.posters:
            pending += [(p.user, p.room_id, a["client_id"], a["content"]) for a in p.unanswered()]
        for s in self.senders:
            pending += [(s.user, s.room_id, cid, c) for cid, c in s.unacked().items()]
        found = 0
        for user, room, cid, content in pending:
            r = srv.post(f"/rooms/{room}/messages", {"content": content, "client_id": cid},
                         token=user.token)
            assert r.status_code in (200, 201), (cid, r.status_code, r.text)
            assert r.json()["content"] == content, (cid, r.json())
            found += r.status_code == 200
        ids = [f"'{cid}'" for _, _, cid, _ in pending]
        if ids:
            rows = srv.db.query(
                f"SELECT client_id, count(*) AS n FROM messages "
                f"WHERE client_id IN ({','.join(ids)}) GROUP BY client_id"
            )
            assert {r["client_id"] for r in rows} == {cid for _, _, cid, _ in pending}
            assert all(r["n"] == 1 for r in rows), [r for r in rows if r["n"] != 1]
        return found


ROUNDS = 2
MIN_REST, MIN_WS, MIN_SEEN = 60, 40, 60


async def start_load_and_wait_for_traffic(load):
    """Opens the sockets, starts every poster and waits (deadline 60 s) until
    enough REST posts, socket posts and deliveries have happened; returns the
    event that stops the socket senders and the writer tasks."""
    await load.open_sockets()
    ws_stop = asyncio.Event()
    writers = load.start(ws_stop)
    deadline = time.monotonic() + 60
    while True:
        rest, ws, seen = load.counts()
        if rest >= MIN_REST and ws >= MIN_WS and seen >= MIN_SEEN:
            return ws_stop, writers
        assert time.monotonic() < deadline, f"too little traffic: {load.counts()}"
        await asyncio.sleep(0.005)


def test_kill9_during_rest_and_websocket_posting(backend, make_server):
    srv = make_server(backend, env={"THREADS": 4})
    for round_ in range(ROUNDS):
        load = Load(srv, f"k{round_}")

        async def main():
            ws_stop, writers = await start_load_and_wait_for_traffic(load)
            srv.kill9()  # while everything is still posting
            await asyncio.gather(*writers)
            await asyncio.gather(*load.readers)

        run(main(), timeout=120)
        load.join_posters()
        srv.start()
        acked = load.check(srv.db)
        found = load.retry_unacknowledged()
        print(f"round {round_}: {len(acked)} acknowledged, {found} unacknowledged found stored")


@pytest.mark.parametrize("stalled", [False, True], ids=["clean", "stalled-reader"])
def test_sigterm_under_load_exits_in_time(backend, stalled, make_server):
    """SIGTERM while everything posts: exit 0 within SHUTDOWN_TIMEOUT_MS and
    a margin, even with a subscriber that reads nothing (it cannot take its
    close frame, so only the deadline ends it) and a request head that never
    ends; nothing acknowledged lost."""
    timeout_ms = 3000
    srv = make_server(backend, env={
        "THREADS": 2,
        "SHUTDOWN_TIMEOUT_MS": timeout_ms,
        # The stalled reader must still be there at SIGTERM, not cut off.
        "WS_OUTBOUND_LIMIT_BYTES": 256 * 1024 * 1024,
    })
    load = Load(srv, "t")
    stuck = []
    if stalled:
        raw = RawWs.connect(srv, load.rooms[0], load.users[2].token, rcvbuf=4096)
        stuck.append(raw)
        half = socket.create_connection(("127.0.0.1", srv.port))
        half.sendall(b"POST /rooms/1/messages HTTP/1.1\r\nHost: x\r\nContent-Le")
        stuck.append(half)

    async def main():
        ws_stop, writers = await start_load_and_wait_for_traffic(load)
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait_exit, 30)
        elapsed = time.monotonic() - t0
        await asyncio.gather(*writers)
        codes = await asyncio.gather(*load.readers)
        return rc, elapsed, codes

    rc, elapsed, codes = run(main(), timeout=120)
    load.join_posters()
    assert rc == 0, f"exit code {rc} after SIGTERM under load; log:\n{srv.log_tail()}"
    # Start-up of the store's drain and process exit: a generous margin.
    limit = timeout_ms / 1000 + 2.5
    assert elapsed <= limit, f"exit took {elapsed:.2f}s (SHUTDOWN_TIMEOUT_MS {timeout_ms})"
    if not stalled:
        assert codes == [1001] * len(codes), codes
    statuses = {a["status"] for p in load.posters for a in p.attempts}
    assert statuses <= {201, 503, None}, statuses

    texts = []
    if stalled:
        raw = stuck[0]
        raw.answer_pings = False
        texts = raw.read_until_close(timeout=10, reply=False).texts
        for s in stuck:
            s.close()

    srv.start()
    load.check(srv.db)
    # What the stalled reader had received before it was cut off was stored.
    got = [json.loads(t) for t in texts]
    msgs = {e["id"]: e["content"] for e in got if e.get("type") == "message"}
    if msgs:
        assert_all_stored(srv.db, msgs, what="delivered")
    load.retry_unacknowledged()


def test_restart_after_kill9_serves_sockets(backend, make_server):
    """After kill -9 and a restart, a reconnecting socket with since= gets
    exactly what was stored after its last message, and new posts flow."""
    srv = make_server(backend)
    user = register(srv)
    room = create_room(srv, user)["id"]

    async def before():
        c = await connect(srv, room, user.token)
        for i in range(5):
            await c.send_message(f"pre {i}", client_id=f"pre-{i}")
        got = await c.collect(5)
        await c.close()
        return got

    got = run(before())
    srv.kill9()
    srv.start()

    async def after():
        c = await connect(srv, room, user.token, since=got[1]["id"])
        replay = await c.collect(3)
        await c.expect("recovery")
        await c.send_message("post-crash", client_id="post-0")
        echo = await c.expect("message", pred=lambda e: e.get("client_id") == "post-0")
        await c.close()
        return replay, echo

    replay, echo = run(after())
    assert [e["id"] for e in replay] == [e["id"] for e in got[2:]]
    assert echo["id"] > got[-1]["id"]
    wait_until(lambda: srv.get("/ready").status_code == 200, 5, what="/ready")
