"""SIGTERM with sockets open and messages in flight: every socket gets 1001
after every acknowledged message, and nothing acknowledged is lost."""

import asyncio
import signal
import threading

import websockets

from api import Collector, create_room, register
from wsclient import connect, run

ROOMS = 2
SEEN_BEFORE_SIGTERM = 40


def test_sigterm_closes_1001_after_everything_acknowledged(backend, threads, make_server):
    srv = make_server(backend, env={"THREADS": threads})
    poster, sub1, sub2, typist = (register(srv) for _ in range(4))
    rooms = [create_room(srv, poster)["id"] for _ in range(ROOMS)]

    async def socket_sender(client, tag):
        i = 0
        try:
            while True:
                await client.send_message(f"{tag} {i} ✓", client_id=f"{tag}-{i}")
                i += 1
                await asyncio.sleep(0.001)
        except websockets.ConnectionClosed:
            pass

    async def main():
        subs = {r: [await connect(srv, r, u.token, name=f"sub{r}-{u.id}") for u in (sub1, sub2)]
                for r in rooms}
        senders = {r: await connect(srv, r, typist.token, name=f"snd{r}") for r in rooms}
        everyone = [c for r in rooms for c in subs[r]] + list(senders.values())
        await asyncio.gather(*(c.sync() for c in everyone))

        readers = [asyncio.create_task(c.wait_closed(timeout=30)) for c in everyone]
        stop = threading.Event()
        collectors = [Collector(srv, poster, r, 100000, f"rest{r}", stop) for r in rooms]
        for col in collectors:
            col.start()
        writers = [asyncio.create_task(socket_sender(senders[r], f"ws{r}")) for r in rooms]

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while not all(len(subs[r][0].messages()) >= SEEN_BEFORE_SIGTERM for r in rooms):
            assert loop.time() < deadline, "messages did not flow before SIGTERM"
            await asyncio.sleep(0.01)
        srv.signal(signal.SIGTERM)

        codes = await asyncio.gather(*readers)
        await asyncio.gather(*writers)
        stop.set()
        await loop.run_in_executor(None, lambda: [col.join(30) for col in collectors])
        return subs, senders, collectors, codes, everyone

    subs, senders, collectors, codes, everyone = run(main(), timeout=90)
    rc = srv.wait_exit(20)
    assert rc == 0, f"exit code {rc}; log:\n{srv.log_tail()}"
    assert codes == [1001] * len(everyone), list(zip([c.name for c in everyone], codes))

    for r, col in zip(rooms, collectors):
        rest_acked = dict(col.acked)
        ws_acked = {
            e["id"]: e["content"]
            for e in senders[r].messages()
            if str(e.get("client_id", "")).startswith(f"ws{r}-")
        }
        acked = {**rest_acked, **ws_acked}
        assert rest_acked and ws_acked, "both REST and socket posts should have been acknowledged"
        rows = srv.db.query(f"SELECT id, content FROM messages WHERE room_id = {r}")
        stored = {row["id"]: row["content"] for row in rows}
        lost = {i: c for i, c in acked.items() if stored.get(i) != c}
        assert not lost, f"room {r}: {len(lost)} acknowledged messages not stored"
        for c in subs[r] + [senders[r]]:
            got = c.messages()
            ids = [e["id"] for e in got]
            assert all(b > a for a, b in zip(ids, ids[1:])), f"{c.name}: out of order"
            missing = sorted(set(acked) - set(ids))
            assert not missing, (
                f"{c.name}: {len(missing)} acknowledged messages not delivered before 1001, "
                f"e.g. {missing[:5]} (acknowledged by "
                f"{'REST 201' if missing[0] in rest_acked else 'socket echo'}; "
                f"last delivered {ids[-3:]}, last acknowledged {sorted(acked)[-3:]})"
            )
            phantom = [e["id"] for e in got if stored.get(e["id"]) != e["content"]]
            assert not phantom, f"{c.name}: delivered but not stored: {phantom[:5]}"
