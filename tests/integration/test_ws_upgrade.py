"""Before and at the upgrade: authentication, room access, the Origin
check, extensions declined, and what /metrics and the member list say
about open sockets."""

import asyncio
import base64
import os
import socket

import pytest
import websockets

from api import claims_for, create_room, make_jwt, register
from harness import wait_until
from rawhttp import RawReader, metric_sum, parse_metrics
from wsclient import OP_TEXT, RawWs, assert_raw_error, connect, run

ALLOWED = "http://allowed.example"
WS_SERVER_ENV = {"CORS_ORIGINS": f"{ALLOWED},https://app.example:8443"}


def test_no_token_is_401_before_upgrade(ws_server):
    ws, resp = RawWs.handshake(ws_server, 1, token=None)
    assert ws is None
    assert_raw_error(resp, 401, "missing_token")
    assert resp.header("x-request-id")


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA"],
    ids=["garbage", "three-parts", "bad-signature"],
)
def test_invalid_token_is_401(ws_server, token):
    ws, resp = RawWs.handshake(ws_server, 1, token=token)
    assert ws is None
    assert_raw_error(resp, 401, "invalid_token")


def test_token_signed_with_another_secret_is_401(ws_server, ws_users):
    token = make_jwt(claims_for(ws_users[0]), secret="another-secret-0123456789abcdefghij")
    ws, resp = RawWs.handshake(ws_server, 1, token=token)
    assert ws is None
    assert_raw_error(resp, 401, "invalid_token")


def test_alg_none_is_401(ws_server, ws_users):
    token = make_jwt(claims_for(ws_users[0]), alg="none")
    ws, resp = RawWs.handshake(ws_server, 1, token=token)
    assert ws is None
    assert_raw_error(resp, 401, "invalid_token")


def test_expired_token_is_401_token_expired(ws_server, ws_users):
    token = make_jwt(claims_for(ws_users[0], lifetime_s=-120))
    ws, resp = RawWs.handshake(ws_server, 1, token=token)
    assert ws is None
    assert_raw_error(resp, 401, "token_expired")


def test_websockets_client_sees_the_refusal(ws_server):
    async def main():
        with pytest.raises(websockets.InvalidStatusCode) as info:
            await connect(ws_server, 1, "garbage")
        return info.value.status_code

    assert run(main()) == 401


def test_bearer_header_is_accepted(ws_server, ws_users):
    async def main():
        async with await connect(ws_server, 1, ws_users[0].token, use_header=True) as c:
            await c.sync()

    run(main())


def test_raw_client_upgrade_and_ping(ws_server, ws_users):
    ws = RawWs.connect(ws_server, 1, ws_users[0].token)
    with ws:
        ws.send_json({"type": "ping"})
        assert ws.expect("pong")["type"] == "pong"


@pytest.mark.parametrize("room", ["999999", "0", "abc", "-1"])
def test_unknown_room_is_404(ws_server, ws_users, room):
    ws, resp = RawWs.handshake(ws_server, room, token=ws_users[0].token)
    assert ws is None
    assert_raw_error(resp, 404, "not_found")


def test_private_room_needs_membership(ws_server, ws_users):
    owner, outsider = ws_users[0], ws_users[1]
    room = create_room(ws_server, owner, is_private=True)
    ws, resp = RawWs.handshake(ws_server, room["id"], token=outsider.token)
    assert ws is None
    assert_raw_error(resp, 403, "forbidden")
    ws = RawWs.connect(ws_server, room["id"], owner.token)
    ws.close()
    r = ws_server.post(f"/rooms/{room['id']}/members", {"user_id": outsider.id}, token=owner.token)
    assert r.status_code == 200, r.text
    ws = RawWs.connect(ws_server, room["id"], outsider.token)
    ws.close()


def test_origin_not_listed_is_403(ws_server, ws_users):
    for origin in ("http://evil.example", "http://allowed.example:81", "null",
                   "https://allowed.example"):
        ws, resp = RawWs.handshake(ws_server, 1, token=ws_users[0].token, origin=origin)
        assert ws is None, origin
        assert_raw_error(resp, 403)


def test_listed_origin_and_no_origin_upgrade(ws_server, ws_users):
    for origin in (ALLOWED, "https://app.example:8443", None):
        ws, resp = RawWs.handshake(ws_server, 1, token=ws_users[0].token, origin=origin)
        assert ws is not None, (origin, resp.status, resp.body)
        assert resp.status == 101
        ws.close()

    async def main():
        async with await connect(ws_server, 1, ws_users[0].token, origin=ALLOWED) as c:
            await c.sync()
        with pytest.raises(websockets.InvalidStatusCode) as info:
            await connect(ws_server, 1, ws_users[0].token, origin="http://evil.example")
        assert info.value.status_code == 403

    run(main())


def test_permessage_deflate_is_declined(ws_server, ws_users):
    async def main():
        # websockets offers permessage-deflate by default.
        async with await connect(ws_server, 1, ws_users[0].token) as c:
            assert c.ws.extensions == []
            assert "Sec-WebSocket-Extensions" not in c.ws.response_headers
            await c.send_message("deflate declined ✓", client_id="deflate-1")
            echo = await c.expect("message", pred=lambda e: e.get("client_id") == "deflate-1")
            assert echo["content"] == "deflate declined ✓"

    run(main())


def test_raw_extension_offer_gets_plain_frames(ws_server, ws_users):
    ws, resp = RawWs.handshake(
        ws_server,
        1,
        token=ws_users[0].token,
        headers={
            "Sec-WebSocket-Extensions": (
                "permessage-deflate; client_max_window_bits, x-webkit-deflate-frame"
            )
        },
    )
    assert ws is not None and resp.status == 101
    assert resp.header("sec-websocket-extensions") is None
    with ws:
        ws.send_json({"type": "message", "content": "plain", "client_id": "raw-ext-1"})
        while True:
            frame = ws.read_frame()
            if frame.opcode == OP_TEXT and b"raw-ext-1" in frame.payload:
                break
        assert frame.rsv == 0, "a compressed frame although nothing was negotiated"


def test_wrong_version_and_bad_key(ws_server, ws_users):
    sock_ws, resp = _handshake_with(ws_server, ws_users[0].token, version="8")
    assert sock_ws is None and resp.status == 426, (resp.status, resp.body)
    assert "13" in (resp.header("sec-websocket-version") or "")
    sock_ws, resp = _handshake_with(ws_server, ws_users[0].token, key="not-base64-16-bytes")
    assert sock_ws is None and resp.status == 400, (resp.status, resp.body)


def _handshake_with(server, token, version="13", key=None):
    key = key or base64.b64encode(os.urandom(16)).decode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    req = (
        f"GET /ws/1?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()
    sock.sendall(req)
    try:
        resp = RawReader(sock).read_response()
    finally:
        sock.close()
    return (sock if resp.status == 101 else None), resp


def test_invalid_since_is_400(ws_server, ws_users):
    for since in ("abc", "-5", "1.5"):
        ws, resp = RawWs.handshake(ws_server, 1, token=ws_users[0].token, since=since)
        assert ws is None, since
        assert_raw_error(resp, 400, "validation_failed")


def test_connect_joins_a_public_room_and_shows_online(ws_server, ws_users):
    owner = ws_users[0]
    newcomer = register(ws_server)
    room = create_room(ws_server, owner)

    def member(user):
        r = ws_server.get(f"/rooms/{room['id']}/members", token=owner.token)
        assert r.status_code == 200, r.text
        return next((m for m in r.json() if m["id"] == user.id), None)

    assert member(newcomer) is None

    async def main():
        async with await connect(ws_server, room["id"], newcomer.token) as c:
            await c.sync()
            m = wait_until(lambda: member(newcomer), 5, what="membership")
            assert m["online"] is True, m
        wait_until(lambda: member(newcomer)["online"] is False, 5, what="offline")

    run(main())


def test_metrics_count_websocket_connections(ws_server, ws_users):
    def gauge():
        r = ws_server.get("/metrics")
        assert r.status_code == 200
        samples = parse_metrics(r.text)
        assert any(n == "chatd_websocket_connections" for n, _, _ in samples), (
            "chatd_websocket_connections missing from /metrics"
        )
        return metric_sum(samples, "chatd_websocket_connections")

    # Sockets closed by the module's earlier tests are gone soon.
    wait_until(lambda: gauge() == 0, 5, what="no open sockets")
    base = 0

    async def main():
        clients = [await connect(ws_server, 1, u.token) for u in ws_users[:3]]
        for c in clients:
            await c.sync()
        wait_until(lambda: gauge() >= base + 3, 5, what="gauge up by 3")
        await asyncio.gather(*(c.close() for c in clients))
        wait_until(lambda: gauge() <= base, 5, what="gauge back down")

    run(main())
    text = ws_server.get("/metrics").text
    assert "# TYPE chatd_websocket_connections gauge" in text.splitlines()
