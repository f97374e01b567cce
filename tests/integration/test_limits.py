"""Rate limits and connection limits: RATE_LIMIT_MESSAGES (REST and
WebSocket sharing one bucket per user, burst 2x), RATE_LIMIT_AUTH (per client
address on /auth/*), 0 turning each off, MAX_CONNECTIONS_PER_IP, and running
out of file descriptors without spinning.

The rest of the suite runs with both rate limits off; the servers here turn
them on. Client addresses other than 127.0.0.1 are other loopback addresses
(127.0.0.2, ...), which Linux routes to the same interface."""

import asyncio
import base64
import os
import resource
import socket
import stat
import time

import pytest

import api
import harness
from api import assert_error, create_room
from rawhttp import RawReader, closed_within, parse_metrics, metric_sum, raw_request
from wsclient import RawWs, connect, run, ws_url

# RATE_LIMIT_MESSAGES=1: a burst of 2, then a token a second. A second is
# long enough for three posts in a row on any backend, even sanitized.
MESSAGE_ENV = {"RATE_LIMIT_MESSAGES": 1, "RATE_LIMIT_AUTH": 0}


@pytest.fixture(scope="module")
def limited(backend, module_servers):
    return module_servers(backend, env=MESSAGE_ENV)


def stored_contents(server, room_id, user):
    rows = server.db.query(
        "SELECT content FROM messages "
        f"WHERE room_id = {int(room_id)} AND sender_id = {int(user.id)} ORDER BY id"
    )
    return [r["content"] for r in rows]


def post(server, user, room_id, content):
    return server.post(f"/rooms/{room_id}/messages", {"content": content}, token=user.token)


def assert_rate_limited(resp, max_retry_after):
    assert_error(resp, 429, "rate_limited")
    retry_after = resp.headers.get("Retry-After")
    assert retry_after is not None and retry_after.isdigit(), resp.headers
    assert 1 <= int(retry_after) <= max_retry_after, retry_after
    return int(retry_after)


def metrics(server, sock=None):
    if sock is None:
        r = server.get("/metrics")
        assert r.status_code == 200
        return parse_metrics(r.text)
    sock.sendall(raw_request("GET", "/metrics"))
    resp = RawReader(sock).read_response()
    assert resp.status == 200, resp.status
    return parse_metrics(resp.body.decode())


async def echoes(ws, events, n):
    """The contents of the first n messages echoed, from events already
    read and then from the socket: an echo may trail a pong, since the hub
    brings it after the commit."""
    echoed = [e["content"] for e in events if e["type"] == "message"]
    while len(echoed) < n:
        echoed.append((await ws.expect("message"))["content"])
    return echoed


def wait_accepted(server, user, room_id, content, deadline_s=5):
    """Posts until the bucket has a token again; returns (response, seconds
    it took). Refused attempts take nothing from the bucket."""
    start = time.monotonic()

    def attempt():
        r = post(server, user, room_id, content)
        if r.status_code == 429:
            return None
        return r

    r = harness.wait_until(attempt, deadline_s, interval=0.05, what="a token again")
    return r, time.monotonic() - start


# --------------------------------------------------------------------------
# Messages


def test_rest_over_the_limit_is_refused_not_stored_not_broadcast(limited):
    alice, bob = api.register(limited), api.register(limited)
    room = create_room(limited, alice)["id"]

    async def main():
        watcher = await connect(limited, room, bob.token, name="bob")
        await watcher.sync()
        # The edge: 2 x RATE_LIMIT_MESSAGES at once, then one more.
        r1 = post(limited, alice, room, "rest-1")
        r2 = post(limited, alice, room, "rest-2")
        r3 = post(limited, alice, room, "rest-3")
        assert (r1.status_code, r2.status_code) == (201, 201), (r1.text, r2.text)
        assert_rate_limited(r3, 1)
        # Bob's bucket is his own: his marker closes what the watcher sees.
        assert post(limited, bob, room, "marker").status_code == 201
        got = await watcher.collect_until(
            lambda e: e["type"] == "message" and e["content"] == "marker"
        )
        seen = [e["content"] for e in got if e["type"] == "message" and e["sender_id"] == alice.id]
        assert seen == ["rest-1", "rest-2"], got
        await watcher.close()

    run(main())
    assert stored_contents(limited, room, alice) == ["rest-1", "rest-2"]
    # A token comes back within about a second.
    r, waited = wait_accepted(limited, alice, room, "rest-after")
    assert r.status_code == 201, r.text
    assert waited < 2.5, waited
    assert stored_contents(limited, room, alice) == ["rest-1", "rest-2", "rest-after"]
    samples = metrics(limited)
    assert metric_sum(samples, "chatd_rate_limited_total", kind="message") >= 1


def test_websocket_over_the_limit_gets_an_error_and_stays_open(limited):
    alice = api.register(limited)
    room = create_room(limited, alice)["id"]

    async def main():
        ws = await connect(limited, room, alice.token, name="alice")
        await ws.sync()
        for i in range(3):
            await ws.send_message(f"ws-{i}", client_id=f"ws-{i}")
        events = await ws.collect_until(lambda e: e["type"] == "error")
        error = events[-1]
        assert error["code"] == "rate_limited", error
        assert isinstance(error.get("error"), str) and error["error"], error
        # Still open, and the two accepted ones are echoed.
        events += await ws.sync()
        echoed = await echoes(ws, events, 2)
        assert echoed == ["ws-0", "ws-1"], events
        assert stored_contents(limited, room, alice) == ["ws-0", "ws-1"]

        # A token comes back: a deadline loop, one attempt at a time.
        deadline = time.monotonic() + 5
        attempt = 0
        while True:
            attempt += 1
            await ws.send_message("ws-after", client_id=f"ws-after-{attempt}")
            got = await ws.collect_until(lambda e: e["type"] in ("message", "error"))
            if got[-1]["type"] == "message":
                assert got[-1]["content"] == "ws-after"
                break
            assert got[-1]["code"] == "rate_limited", got
            assert time.monotonic() < deadline, "no token within 5 s"
            await asyncio.sleep(0.1)
        await ws.close()

    run(main())
    assert stored_contents(limited, room, alice) == ["ws-0", "ws-1", "ws-after"]


def test_rest_and_websocket_share_the_bucket(limited):
    alice, bob = api.register(limited), api.register(limited)
    room = create_room(limited, alice)["id"]

    async def main():
        ws = await connect(limited, room, alice.token, name="alice")
        watcher = await connect(limited, room, bob.token, name="bob")
        await ws.sync()
        await watcher.sync()
        assert post(limited, alice, room, "shared-rest").status_code == 201
        await ws.send_message("shared-ws", client_id="shared-ws")
        await ws.expect("message", pred=lambda e: e["content"] == "shared-ws")
        # Both tokens are gone, whichever way the next one comes.
        await ws.send_message("shared-ws-2", client_id="shared-ws-2")
        error = await ws.expect("error")
        assert error["code"] == "rate_limited", error
        assert_rate_limited(post(limited, alice, room, "shared-rest-2"), 1)
        assert post(limited, bob, room, "marker").status_code == 201
        got = await watcher.collect_until(
            lambda e: e["type"] == "message" and e["content"] == "marker"
        )
        seen = [e["content"] for e in got if e["type"] == "message" and e["sender_id"] == alice.id]
        assert seen == ["shared-rest", "shared-ws"], got
        await ws.close()
        await watcher.close()

    run(main())
    assert stored_contents(limited, room, alice) == ["shared-rest", "shared-ws"]


def test_auth_limit_off_when_zero(limited):
    # RATE_LIMIT_AUTH=0 on this server: logins are never refused.
    user = api.register(limited)
    for _ in range(8):
        r = api.login(limited, user.email, user.password)
        assert r.status_code == 200, r.text


def test_burst_is_twice_the_rate(make_server):
    server = make_server("sqlite", env={"RATE_LIMIT_MESSAGES": 5, "RATE_LIMIT_AUTH": 0})
    alice = api.register(server)
    room = create_room(server, alice)["id"]

    async def main():
        ws = await connect(server, room, alice.token, name="alice")
        await ws.sync()
        # Eleven messages in one go (no round trips: far less than the
        # 200 ms a token takes to come back).
        for i in range(11):
            await ws.send_message(f"b-{i}", client_id=f"b-{i}")
        events = await ws.sync()
        errors = [e for e in events if e["type"] == "error"]
        echoed = await echoes(ws, events, 10)
        assert echoed == [f"b-{i}" for i in range(10)], events
        assert [e["code"] for e in errors] == ["rate_limited"], errors
        await ws.close()

    run(main())
    assert stored_contents(server, room, alice) == [f"b-{i}" for i in range(10)]


def test_zero_turns_both_limits_off(make_server):
    server = make_server("sqlite", env={"RATE_LIMIT_MESSAGES": 0, "RATE_LIMIT_AUTH": 0})
    alice = api.register(server)
    room = create_room(server, alice)["id"]
    for i in range(30):
        assert post(server, alice, room, f"free-{i}").status_code == 201
    for _ in range(8):
        assert api.login(server, alice.email, alice.password).status_code == 200
    samples = metrics(server)
    assert metric_sum(samples, "chatd_rate_limited_total") == 0


# --------------------------------------------------------------------------
# /auth/*


def socket_from(server, source_ip, timeout=10):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source_ip, 0))
    s.connect(("127.0.0.1", server.port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_login(server, source_ip, email, password):
    body = f'{{"email":"{email}","password":"{password}"}}'.encode()
    with socket_from(server, source_ip) as s:
        s.sendall(
            raw_request(
                "POST",
                "/auth/login",
                {"Content-Type": "application/json", "Connection": "close"},
                body,
            )
        )
        return RawReader(s).read_response()


def test_auth_limit_per_address(make_server):
    # RATE_LIMIT_AUTH=3: three /auth requests a minute from one address,
    # burst 3, a token every 20 s. Argon2 runs with its minimum (default)
    # parameters.
    server = make_server("sqlite", env={"RATE_LIMIT_AUTH": 3, "RATE_LIMIT_MESSAGES": 0})
    alice = api.register(server)  # 1
    assert api.login(server, alice.email, alice.password).status_code == 200  # 2
    assert_error(api.login(server, alice.email, "wrong-password"), 401)  # 3
    retry = assert_rate_limited(api.login(server, alice.email, alice.password), 20)
    assert retry >= 15, retry
    # Every /auth route counts, refresh before its token is looked at.
    assert_rate_limited(
        server.post(
            "/auth/register",
            {"email": harness.unique_email(), "password": "password-123", "username": "late"},
        ),
        20,
    )
    assert_rate_limited(server.post("/auth/refresh", token=alice.token), 20)
    assert_rate_limited(server.post("/auth/refresh", token="not-a-token"), 20)
    # Nothing else is limited: messages are off on this server.
    assert server.get("/me", token=alice.token).status_code == 200
    room = create_room(server, alice)["id"]
    for i in range(25):
        assert post(server, alice, room, f"m-{i}").status_code == 201
    # Another address has a bucket of its own.
    resp = raw_login(server, "127.0.0.2", alice.email, alice.password)
    assert resp.status == 200, resp.body
    samples = metrics(server)
    assert metric_sum(samples, "chatd_rate_limited_total", kind="auth") == 4
    assert metric_sum(samples, "chatd_rate_limited_total", kind="message") == 0


# --------------------------------------------------------------------------
# MAX_CONNECTIONS_PER_IP


def served(sock):
    sock.sendall(raw_request("GET", "/health"))
    return RawReader(sock).read_response().status == 200


def ws_from(server, source_ip, room, token):
    sock = socket_from(server, source_ip)
    key = base64.b64encode(os.urandom(16)).decode()
    target = ws_url(server, room, token=token).split(f":{server.port}", 1)[1]
    sock.sendall(RawWs.request_bytes(target, f"127.0.0.1:{server.port}", key))
    reader = RawReader(sock)
    resp = reader.read_response(head_only=True)
    assert resp.status == 101, resp.status
    return RawWs(sock, reader.buf, resp)


def wait_accepted_from(server, source_ip, deadline_s=5):
    def attempt():
        s = socket_from(server, source_ip, timeout=2)
        try:
            if served(s):
                return s
        except (EOFError, OSError):
            pass
        s.close()
        return None

    return harness.wait_until(attempt, deadline_s, interval=0.05, what="a connection accepted")


def test_connections_per_address(make_server):
    server = make_server("sqlite", env={"MAX_CONNECTIONS_PER_IP": 3})
    user = api.register(server)
    # Three from 127.0.0.2, each served, kept open (keep-alive).
    kept = [socket_from(server, "127.0.0.2") for _ in range(3)]
    for s in kept:
        assert served(s)
    # The fourth is closed at once.
    extra = socket_from(server, "127.0.0.2")
    closed, _ = closed_within(extra, 5)
    assert closed, "a fourth connection from one address was kept"
    extra.close()
    # The others are still served, and other addresses are not affected.
    assert served(kept[0])
    other = socket_from(server, "127.0.0.3")
    assert served(other)
    other.close()
    # One goes: a new one is accepted again.
    kept.pop().close()
    kept.append(wait_accepted_from(server, "127.0.0.2"))
    for s in kept:
        s.close()

    # WebSockets count until they close, too.
    room = create_room(server, user)["id"]
    sockets = [ws_from(server, "127.0.0.4", room, user.token) for _ in range(3)]
    extra = socket_from(server, "127.0.0.4")
    closed, _ = closed_within(extra, 5)
    assert closed, "a fourth connection next to three WebSockets was kept"
    extra.close()
    sockets[0].send_close(1000)
    sockets[0].read_until_close()
    sockets[0].close()
    wait_accepted_from(server, "127.0.0.4").close()
    for ws in sockets[1:]:
        ws.close()
    samples = metrics(server)
    assert metric_sum(samples, "chatd_connections_rejected_total", reason="per_ip") >= 2


# --------------------------------------------------------------------------
# Out of file descriptors


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_over(pid, seconds=1.0):
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return cpu_seconds(pid) - before


def open_many(server, count):
    socks = []
    for _ in range(count):
        try:
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        except OSError:
            continue  # a full backlog, or a loop pausing its listener
        socks.append(s)
    return socks


def assert_survives_flood(server, keeper):
    """Floods the server with connections it cannot all take: it does not
    spin, the connection it already had is served, and once the flood is
    gone it accepts again."""
    flood = open_many(server, 250)
    try:
        # Give the loops time to see every connection, then measure.
        time.sleep(0.3)
        cpu = cpu_over(server.proc.pid)
        assert cpu < 0.3, f"chatd used {cpu:.2f} s of CPU in 1 s with descriptors exhausted"
        assert served(keeper)
        assert server.running()
    finally:
        for s in flood:
            s.close()
    wait_accepted_from(server, "127.0.0.1", deadline_s=10).close()
    assert served(keeper)


def test_out_of_descriptors_at_start(make_server, tmp_path):
    # A low `ulimit -n` from the start: connections that would leave less
    # than a headroom of descriptors free are closed at accept.
    wrapper = tmp_path / "chatd-lowfd"
    wrapper.write_text(f'#!/bin/sh\nulimit -n 128\nexec "{harness.chatd_bin()}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    server = make_server("sqlite", start=False)
    server.binary = str(wrapper)
    server.start()
    keeper = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert served(keeper)
    assert_survives_flood(server, keeper)
    samples = metrics(server, keeper)
    assert metric_sum(samples, "chatd_connections_rejected_total", reason="fd_limit") > 0
    refusals = [
        r
        for r in server.log_records()
        if r.get("reason") == "fd_limit" and "refused" in r.get("msg", "")
    ]
    # Logged, but not once per connection.
    assert 1 <= len(refusals) <= 4, refusals
    keeper.close()


def test_out_of_descriptors_while_running(make_server):
    # The limit drops under a running server (as when the system runs out):
    # accept itself fails with EMFILE.
    server = make_server("sqlite")
    keeper = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    assert served(keeper)
    pid = server.proc.pid
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 8, in_use + 8))
    assert_survives_flood(server, keeper)
    keeper.close()
