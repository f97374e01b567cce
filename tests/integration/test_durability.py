"""Nothing acknowledged is ever lost: restarts, kill -9, SIGTERM under load."""

import signal
import threading

from api import Collector, create_room, login, post_message, register
from harness import wait_until


def check_persisted(srv, user, acked):
    """Every acknowledged (id, content) is in the database, exactly."""
    assert acked, "nothing was acknowledged"
    ids = sorted(i for i, _ in acked)
    assert len(set(ids)) == len(ids), "the same id was acknowledged twice"
    rows = srv.db.query(
        f"SELECT id, content FROM messages WHERE id >= {ids[0]} AND id <= {ids[-1]}"
    )
    stored = {r["id"]: r["content"] for r in rows}
    missing = [(i, c) for i, c in acked if i not in stored]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    wrong = [(i, c, stored[i]) for i, c in acked if stored[i] != c]
    assert not wrong, f"content differs: {wrong[:3]}"


def test_persistence_across_restart(backend, make_server):
    srv = make_server(backend)
    alice = register(srv, password="persist-me-123")
    room = create_room(srv, alice, name="Persistent Room")
    private = create_room(srv, alice, name="Hidden", is_private=True)
    sent = [post_message(srv, alice, room["id"], f"before restart {i} ✓") for i in range(5)]
    post_message(srv, alice, private["id"], "private note", client_id="note-1")

    srv.restart()

    r = login(srv, alice.email, "persist-me-123")
    assert r.status_code == 200, r.text
    token = r.json()["token"]
    assert r.json()["user"]["id"] == alice.id
    # the old token still works (same secret, user still there)
    assert srv.get("/me", token=alice.token).status_code == 200

    rooms = {x["id"]: x for x in srv.get("/rooms", token=token).json()}
    assert rooms[room["id"]]["name"] == "Persistent Room"
    assert rooms[private["id"]]["is_private"] is True

    page = srv.get(f"/rooms/{room['id']}/messages", token=token).json()
    assert [(m["id"], m["content"], m["created_at"]) for m in page["messages"]] == [
        (m["id"], m["content"], m["created_at"]) for m in sent
    ]
    # client_id dedup survives the restart too
    r = srv.post(f"/rooms/{private['id']}/messages",
                 {"content": "private note", "client_id": "note-1"}, token=token)
    assert r.status_code == 200, r.text
    # new ids continue after the old ones
    after = post_message(srv, alice, room["id"], "after restart")
    assert after["id"] > sent[-1]["id"]


def test_kill9_after_burst_loses_nothing(backend, make_server):
    srv = make_server(backend)
    users = [register(srv) for _ in range(4)]
    room = create_room(srv, users[0])
    stop = threading.Event()
    workers = [
        Collector(srv, users[i % 4], room["id"], 50, f"burst t{i}", stop_event=stop)
        for i in range(16)
    ]
    for w in workers:
        w.start()

    # kill while requests are still in flight, as soon as enough were acked
    def enough():
        total = sum(len(w.acked) for w in workers)
        return total >= 300 or all(not w.is_alive() for w in workers)

    wait_until(enough, 60, interval=0.005, what="acknowledged posts")
    srv.kill9()
    stop.set()
    for w in workers:
        w.join(30)
        assert not w.is_alive()
    acked = [a for w in workers for a in w.acked]
    assert len(acked) >= 300 or all(len(w.acked) == 50 for w in workers)

    srv.start()
    check_persisted(srv, users[0], acked)
    # and through the API
    page = srv.get(f"/rooms/{room['id']}/messages?limit=200", token=users[0].token).json()
    newest = {m["id"]: m["content"] for m in page["messages"]}
    for i, content in acked:
        if i >= min(newest):
            assert newest.get(i) == content, (i, content)


def test_kill9_after_single_ack(backend, make_server):
    srv = make_server(backend)
    user = register(srv)
    msg = post_message(srv, user, 1, "the only one")
    srv.kill9()
    srv.start()
    check_persisted(srv, user, [(msg["id"], "the only one")])
    # the user survived too
    assert login(srv, user.email, user.password).status_code == 200


def test_sigterm_with_requests_in_flight(backend, make_server):
    srv = make_server(backend)
    users = [register(srv) for _ in range(4)]
    room = create_room(srv, users[0])
    workers = [Collector(srv, users[i % 4], room["id"], 400, f"term t{i}") for i in range(8)]
    for w in workers:
        w.start()
    wait_until(lambda: sum(len(w.acked) for w in workers) >= 100, 60, interval=0.005,
               what="posts before SIGTERM")
    srv.signal(signal.SIGTERM)
    rc = srv.wait_exit(30)
    for w in workers:
        w.join(30)
    assert rc == 0, f"exit code {rc} after SIGTERM under load; log:\n{srv.log_tail()}"
    statuses = {s for w in workers for s in w.statuses}
    assert statuses <= {201, 503}, statuses
    acked = [a for w in workers for a in w.acked]
    srv.start()
    check_persisted(srv, users[0], acked)
