"""PostgreSQL goes away while chatd runs, and comes back.

While it is away: REST posts and reads get 503 `unavailable` at once, a
socket's message gets an `error` event (unavailable) and the socket stays
open, /ready is 503 and /health 200, nothing is half written. When it is
back chatd reconnects by itself within seconds, without a restart.

Each test has a cluster of its own, since it stops it."""

import asyncio
import signal
import threading
import time

import pytest

import databases
from api import assert_error, create_room, login, post_message, register
from harness import wait_until
from load import RestPoster, assert_all_stored, assert_received_stored, content_for
from wsclient import connect, run

# An answer while the database is away must come at once, not after some
# connect or statement timeout.
FAST_S = 2.0
RECOVERY_S = 10.0


@pytest.fixture
def own_cluster():
    cluster = databases.PgCluster()
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001
        cluster.destroy()
        pytest.fail(f"could not start a PostgreSQL cluster: {exc}", pytrace=False)
    yield cluster
    cluster.destroy()


def pg_server(make_server, cluster):
    db = databases.PostgresDb(cluster, cluster.createdb())
    return make_server("postgres", db=db, env={"THREADS": 2, "STORE_READERS": 2})


def timed(fn, *args, **kw):
    t0 = time.monotonic()
    r = fn(*args, **kw)
    elapsed = time.monotonic() - t0
    assert elapsed < FAST_S, f"{fn.__name__}{args[:1]}: {elapsed:.2f}s with the database down"
    return r


def assert_down(srv, user, room):
    """Every kind of request gets its 503 quickly, and /health stays 200."""
    for i in range(5):
        r = timed(srv.post, f"/rooms/{room}/messages",
                  {"content": f"refused {i}", "client_id": f"refused-{i}"}, token=user.token)
        assert_error(r, 503, "unavailable")
    assert_error(timed(srv.get, f"/rooms/{room}/messages", token=user.token), 503, "unavailable")
    assert_error(timed(srv.get, "/rooms", token=user.token), 503, "unavailable")
    assert_error(timed(login, srv, user.email, user.password), 503, "unavailable")
    assert_error(timed(srv.get, "/ready"), 503, "unavailable")
    r = timed(srv.get, "/health")
    assert r.status_code == 200, r.text


def wait_serving(srv, user, room, tag):
    """Polls with real posts until one is stored; returns (seconds, message)."""
    t0 = time.monotonic()
    n = iter(range(10**6))

    def try_post():
        r = srv.post(f"/rooms/{room}/messages",
                     {"content": f"{tag} {next(n)}", "client_id": f"{tag}-{next(n)}"},
                     token=user.token)
        if r.status_code == 201:
            return r.json()
        assert_error(r, 503, "unavailable")
        return None

    msg = wait_until(try_post, RECOVERY_S, interval=0.1, what="a post to succeed again")
    return time.monotonic() - t0, msg


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_outage_under_traffic(own_cluster, make_server, mode):
    cluster = own_cluster
    srv = pg_server(make_server, cluster)
    poster, sender, watcher = (register(srv) for _ in range(3))
    room = create_room(srv, poster)["id"]
    stop = threading.Event()
    # Posting straight through the outage, each post with its client_id.
    posters = [RestPoster(srv, poster, room, f"o{k}", stop, pause=0.01) for k in range(2)]

    async def main():
        snd = await connect(srv, room, sender.token, name="sender")
        sub = await connect(srv, room, watcher.token, name="watcher")
        await asyncio.gather(snd.sync(), sub.sync())
        await snd.send_message("before", client_id="ws-before")
        before = await snd.expect("message", pred=lambda e: e.get("client_id") == "ws-before")

        loop = asyncio.get_running_loop()
        for p in posters:
            p.start()
        await asyncio.sleep(0.3)
        await loop.run_in_executor(None, cluster.stop, mode)
        port = cluster.port

        # Whatever was in flight when it went has been answered by now.
        await loop.run_in_executor(None, wait_until, lambda: all(
            any(a["status"] == 503 for a in p.attempts) for p in posters), RECOVERY_S)
        await loop.run_in_executor(None, assert_down, srv, poster, room)

        # A socket's message: an error event, and the socket stays usable.
        t0 = time.monotonic()
        await snd.send_message("lost in the outage", client_id="ws-down")
        err = await snd.expect("error", timeout=FAST_S)
        assert err["code"] == "unavailable", err
        assert time.monotonic() - t0 < FAST_S
        assert not [e for e in snd.events if e.get("client_id") == "ws-down"]
        await snd.sync()
        assert srv.running(), "chatd died while the database was down"

        await loop.run_in_executor(None, lambda: cluster.start(port=port))
        took, first = await loop.run_in_executor(None, wait_serving, srv, poster, room, "back")
        await loop.run_in_executor(None, wait_until,
                                   lambda: srv.get("/ready").status_code == 200, RECOVERY_S)
        await snd.send_message("after", client_id="ws-after")
        after = await snd.expect("message", pred=lambda e: e.get("client_id") == "ws-after")
        await sub.expect("message", pred=lambda e: e.get("client_id") == "ws-after")
        stop.set()
        await loop.run_in_executor(None, lambda: [p.join(30) for p in posters])
        await snd.close()
        await sub.close()
        return snd, sub, before, after, took, first

    snd, sub, before, after, took, first = run(main(), timeout=120)
    assert srv.running()
    print(f"serving again {took:.2f}s after PostgreSQL was back")
    assert took < RECOVERY_S

    statuses = {a["status"] for p in posters for a in p.attempts}
    assert statuses <= {201, 503}, statuses
    assert 503 in statuses
    # Posts made after the outage show up for the subscriber, in order,
    # and everything it received was stored.
    seen = {e["id"] for e in sub.messages()}
    assert first["id"] in seen and after["id"] in seen and before["id"] in seen
    assert_received_stored(srv.db, [snd, sub])

    acked = {before["id"]: "before", after["id"]: "after"}
    for p in posters:
        acked.update(p.acked())
    assert_all_stored(srv.db, acked)

    # Nothing half written: a refused post is absent, every stored message's
    # sender became a member, and a 503 that was in flight when the database
    # went is either stored whole (a retry says 200) or not at all (201).
    rows = srv.db.query("SELECT client_id FROM messages WHERE client_id LIKE 'refused-%' "
                        "OR client_id = 'ws-down'")
    assert rows == [], rows
    orphans = srv.db.query(
        "SELECT m.id FROM messages m LEFT JOIN room_members rm "
        "ON rm.room_id = m.room_id AND rm.user_id = m.sender_id WHERE rm.user_id IS NULL")
    assert orphans == [], orphans
    for p in posters:
        for a in p.attempts:
            if a["status"] == 201:
                continue
            r = srv.post(f"/rooms/{room}/messages",
                         {"content": a["content"], "client_id": a["client_id"]},
                         token=poster.token)
            assert r.status_code in (200, 201), r.text
            assert r.json()["content"] == a["content"]
    dup = srv.db.query("SELECT client_id FROM messages WHERE client_id IS NOT NULL "
                       "GROUP BY sender_id, client_id HAVING count(*) > 1")
    assert dup == [], dup

    logs = srv.log_records()
    assert any(r.get("msg") == "database reconnected" for r in logs), srv.log_tail()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_postgres_restart_while_idle(own_cluster, make_server, mode):
    """PostgreSQL restarts while chatd has nothing to do: the very first
    write and the very first read afterwards succeed; the dead connections
    are replaced before they are used, not after a failed job."""
    cluster = own_cluster
    srv = pg_server(make_server, cluster)
    user = register(srv)
    room = create_room(srv, user)["id"]
    post_message(srv, user, room, "before")
    # Every reader connection has been used.
    for _ in range(4):
        assert srv.get(f"/rooms/{room}/messages", token=user.token).status_code == 200
    port = cluster.port
    cluster.stop(mode)
    cluster.start(port=port)

    content = content_for("idle", 0)
    r = srv.post(f"/rooms/{room}/messages", {"content": content, "client_id": "idle-0"},
                 token=user.token)
    assert r.status_code == 201, r.text
    for _ in range(4):
        r = srv.get(f"/rooms/{room}/messages", token=user.token)
        assert r.status_code == 200, r.text
    assert srv.get("/ready").status_code == 200
    assert_all_stored(srv.db, {r.json()["messages"][-1]["id"]: content})


def test_postgres_down_for_a_while(own_cluster, make_server):
    """Many requests during a longer outage: each is answered 503 quickly
    (reconnects are attempted at most every 500 ms, not once per job), the
    log does not flood, and chatd recovers."""
    cluster = own_cluster
    srv = pg_server(make_server, cluster)
    user = register(srv)
    room = create_room(srv, user)["id"]
    port = cluster.port
    cluster.stop("immediate")

    t_end = time.monotonic() + 3.0
    answers = 0
    while time.monotonic() < t_end:
        r = timed(srv.post, f"/rooms/{room}/messages", {"content": "x"}, token=user.token)
        assert_error(r, 503, "unavailable")
        r = timed(srv.get, f"/rooms/{room}/messages", token=user.token)
        assert_error(r, 503, "unavailable")
        answers += 2
    assert answers > 20
    attempts = [r for r in srv.log_records() if r.get("msg") == "database unavailable"]
    # Writer and two readers, each at most every 500 ms, over ~3 s.
    assert len(attempts) <= 3 * (3.0 / 0.5 + 2), len(attempts)

    cluster.start(port=port)
    took, _ = wait_serving(srv, user, room, "late")
    assert took < RECOVERY_S
    wait_until(lambda: srv.get("/ready").status_code == 200, RECOVERY_S, what="/ready 200")


def test_sigterm_while_postgres_down(own_cluster, make_server):
    """Shutting down while the database is away is an ordinary shutdown:
    exit 0 within SHUTDOWN_TIMEOUT_MS, open sockets closed with 1001."""
    cluster = own_cluster
    srv = pg_server(make_server, cluster)
    user = register(srv)
    room = create_room(srv, user)["id"]

    async def main():
        c = await connect(srv, room, user.token)
        await c.sync()
        await asyncio.get_running_loop().run_in_executor(None, cluster.stop, "immediate")
        await c.send_message("into the void", client_id="void-1")
        err = await c.expect("error", timeout=FAST_S)
        assert err["code"] == "unavailable", err
        t0 = time.monotonic()
        srv.signal(signal.SIGTERM)
        code = await c.wait_closed(timeout=10)
        rc = await asyncio.get_running_loop().run_in_executor(None, srv.wait_exit, 15)
        return code, rc, time.monotonic() - t0

    code, rc, took = run(main(), timeout=60)
    assert rc == 0, f"exit code {rc} with the database down; log:\n{srv.log_tail()}"
    assert code == 1001
    assert took < 5.0 + 2.5, took
