"""The HTTP layer: errors, limits, request ids, CORS, keep-alive,
pipelining, chunked bodies, timeouts and the connection cap. The layer does
not depend on the storage backend, so these run on SQLite only."""

import http.client
import json
import socket
import threading
import time

import pytest
import requests

from api import assert_error, register
from harness import HTTP_TIMEOUT_S, unique_email, wait_until
from rawhttp import RawReader, closed_within, connect, raw_request

HEADER_TIMEOUT_MS = 1000
IDLE_TIMEOUT_MS = 1500
MARGIN_S = 4.0  # generous: sanitizer builds are slow


@pytest.fixture(scope="module")
def server(module_servers):
    return module_servers("sqlite")


@pytest.fixture(scope="module")
def limits_server(module_servers):
    return module_servers("sqlite", env={"MAX_BODY_BYTES": "4096", "MAX_HEADER_BYTES": "8192"})


@pytest.fixture(scope="module")
def timeouts_server(module_servers):
    return module_servers(
        "sqlite",
        env={"HEADER_TIMEOUT_MS": str(HEADER_TIMEOUT_MS), "IDLE_TIMEOUT_MS": str(IDLE_TIMEOUT_MS)},
    )


@pytest.fixture(scope="module")
def cors_list_server(module_servers):
    return module_servers("sqlite", env={"CORS_ORIGINS": "http://a.example,http://b.example"})


def register_body(padding=0):
    body = json.dumps(
        {"email": unique_email("lim"), "password": "password123", "username": "lim"}
    )
    return (body[:-1] + " " * padding + "}").encode()


# -------------------------------------------------------------------- errors


def test_unknown_route_404(server):
    for path in ("/nope", "/rooms/1/nope", "/auth", "/health/x"):
        body = assert_error(server.get(path), 404, "not_found")
        assert set(body) == {"error", "code"}


@pytest.mark.parametrize(
    "method,path,allowed",
    [
        ("DELETE", "/rooms", {"GET", "POST"}),
        ("PUT", "/health", {"GET"}),
        ("GET", "/auth/login", {"POST"}),
        ("PATCH", "/rooms/1/members", {"GET", "POST"}),
    ],
)
def test_wrong_method_405_with_allow(server, method, path, allowed):
    r = server.request(method, path)
    assert_error(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow, r.headers.get("Allow")
    assert method not in allow


def test_non_json_content_type_415(server, users):
    t = users[0].token
    payload = json.dumps({"content": "hi"}).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/jsonx"):
        r = server.request("POST", "/rooms/1/messages", token=t, data=payload,
                           headers={"Content-Type": ctype})
        assert_error(r, 415, "unsupported_media_type")
    # no content type at all
    r = server.request("POST", "/rooms/1/messages", token=t, data=payload)
    assert_error(r, 415, "unsupported_media_type")
    r = server.request("POST", "/auth/register", data=register_body(),
                       headers={"Content-Type": "text/plain"})
    assert_error(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8", "Application/JSON",
                                   "application/json;charset=UTF-8"])
def test_json_content_type_variants_accepted(server, users, ctype):
    r = server.request("POST", "/rooms/1/messages", token=users[0].token,
                       data=json.dumps({"content": "ctype ok"}).encode(),
                       headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text


def test_json_responses_have_json_content_type(server, users):
    for r in (server.get("/health"), server.get("/rooms", token=users[0].token),
              server.get("/nope")):
        assert r.headers["Content-Type"].startswith("application/json"), r.headers


# -------------------------------------------------------------- body limit


def test_body_at_limit_accepted(limits_server):
    body = register_body()
    body = register_body(4096 - len(body))
    assert len(body) == 4096
    r = limits_server.request("POST", "/auth/register", data=body,
                              headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


def test_body_over_limit_413(limits_server):
    body = register_body()
    body = register_body(4097 - len(body))
    assert len(body) == 4097
    s = connect(limits_server)
    try:
        s.sendall(raw_request("POST", "/auth/register",
                              {"Content-Type": "application/json", "X-Request-Id": "big-1"},
                              body))
        resp = RawReader(s).read_response()
    finally:
        s.close()
    assert resp.status == 413, resp.body
    assert resp.json()["code"] == "payload_too_large"
    assert resp.header("x-request-id") == "big-1"


def test_declared_length_over_limit_answered_without_body(limits_server):
    # The server must not wait for 100 kB it will refuse anyway.
    s = connect(limits_server)
    try:
        s.sendall(raw_request("POST", "/auth/register",
                              {"Content-Type": "application/json",
                               "Content-Length": "100000"}))
        s.settimeout(5)
        resp = RawReader(s).read_response()
    finally:
        s.close()
    assert resp.status == 413
    assert resp.json()["code"] == "payload_too_large"


def test_chunked_body_over_limit_413(limits_server):
    def gen():
        for _ in range(10):
            yield b" " * 1000
        yield b"{}"

    try:
        r = requests.post(limits_server.url + "/auth/register", data=gen(),
                          headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT_S)
    except requests.ConnectionError:
        pytest.fail("connection dropped instead of a 413 answer")
    assert_error(r, 413, "payload_too_large")


# ------------------------------------------------------------ header limit


def test_headers_under_limit_accepted(limits_server):
    r = limits_server.get("/health", headers={"X-Filler": "f" * 6000})
    assert r.status_code == 200


def test_headers_over_limit_431(limits_server, server):
    for srv, size in ((limits_server, 9000), (server, 20000)):
        s = connect(srv)
        try:
            s.sendall(raw_request("GET", "/health", {"X-Filler": "f" * size}))
            resp = RawReader(s).read_response()
        finally:
            s.close()
        assert resp.status == 431, (srv.env, resp.status)
        assert resp.json()["code"] == "headers_too_large"
        assert resp.header("x-request-id")


def test_many_headers_over_limit_431(limits_server):
    headers = {f"X-H{i}": "v" * 40 for i in range(300)}
    s = connect(limits_server)
    try:
        s.sendall(raw_request("GET", "/health", headers))
        resp = RawReader(s).read_response()
    finally:
        s.close()
    assert resp.status == 431


def test_server_still_serves_after_limit_errors(limits_server):
    assert limits_server.get("/health").status_code == 200


# -------------------------------------------------------------- request id


def test_request_id_echoed(server):
    r = server.get("/health", headers={"X-Request-Id": "abc-123_XYZ.7"})
    assert r.headers.get("X-Request-Id") == "abc-123_XYZ.7"
    r = server.get("/nope", headers={"X-Request-Id": "err-42"})
    assert r.status_code == 404 and r.headers.get("X-Request-Id") == "err-42"


def test_request_id_generated(server):
    ids = {server.get("/health").headers.get("X-Request-Id") for _ in range(3)}
    assert None not in ids and "" not in ids
    assert len(ids) == 3


@pytest.mark.parametrize("bad", ["x" * 200, "has space", "quote\"d", "<script>"])
def test_insane_request_id_replaced(server, bad):
    r = server.get("/health", headers={"X-Request-Id": bad})
    rid = r.headers.get("X-Request-Id")
    assert rid and rid != bad


def test_request_id_on_errors(server):
    for r in (server.get("/rooms"), server.get("/nope"), server.request("PUT", "/health")):
        assert r.status_code >= 400
        assert r.headers.get("X-Request-Id")


# --------------------------------------------------------------------- CORS


def test_cors_star(server):
    r = server.get("/health", headers={"Origin": "http://anything.example"})
    assert r.headers.get("Access-Control-Allow-Origin") == "*"
    # error responses too, so browsers can read them
    r = server.get("/rooms", headers={"Origin": "http://anything.example"})
    assert r.status_code == 401
    assert r.headers.get("Access-Control-Allow-Origin") == "*"


def check_preflight(r, origin):
    assert r.status_code == 204, r.text
    assert r.content == b""
    assert r.headers.get("Access-Control-Allow-Origin") == origin
    allow_methods = r.headers.get("Access-Control-Allow-Methods", "")
    methods = {m.strip().upper() for m in allow_methods.split(",")}
    assert {"GET", "POST"} <= methods, r.headers
    hdrs = {h.strip().lower() for h in r.headers.get("Access-Control-Allow-Headers", "").split(",")}
    assert {"authorization", "content-type"} <= hdrs, r.headers
    assert int(r.headers.get("Access-Control-Max-Age", "0")) > 0, r.headers


def test_cors_preflight_star(server):
    r = server.request("OPTIONS", "/rooms/1/messages", headers={
        "Origin": "http://anything.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    })
    check_preflight(r, "*")


def test_cors_list_allowed_origin(cors_list_server):
    for origin in ("http://a.example", "http://b.example"):
        r = cors_list_server.get("/health", headers={"Origin": origin})
        assert r.status_code == 200
        assert r.headers.get("Access-Control-Allow-Origin") == origin
        assert "origin" in r.headers.get("Vary", "").lower()


def test_cors_list_other_origin(cors_list_server):
    r = cors_list_server.get("/health", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200
    assert "Access-Control-Allow-Origin" not in r.headers
    r = cors_list_server.get("/health", headers={"Origin": "http://a.example.evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_cors_list_preflight(cors_list_server):
    r = cors_list_server.request("OPTIONS", "/rooms", headers={
        "Origin": "http://b.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "Authorization, Content-Type",
    })
    check_preflight(r, "http://b.example")
    assert "origin" in r.headers.get("Vary", "").lower()
    r = cors_list_server.request("OPTIONS", "/rooms", headers={
        "Origin": "http://evil.example",
        "Access-Control-Request-Method": "POST",
    })
    assert "Access-Control-Allow-Origin" not in r.headers


# --------------------------------------------- keep-alive, pipelining, chunked


def test_keep_alive_one_connection(server, users):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=HTTP_TIMEOUT_S)
    try:
        local = None
        for path in ("/health", "/rooms", "/nope", "/health", "/rooms/1"):
            conn.request("GET", path, headers={"Authorization": f"Bearer {users[0].token}"})
            resp = conn.getresponse()
            resp.read()
            assert resp.status in (200, 404)
            assert (resp.getheader("Connection") or "").lower() != "close"
            name = conn.sock.getsockname()
            assert local in (None, name), "the server closed a keep-alive connection"
            local = name
    finally:
        conn.close()


def test_keep_alive_requests_session(server, users):
    s = requests.Session()
    try:
        for i in range(5):
            r = s.post(server.url + "/rooms/1/messages",
                       data=json.dumps({"content": f"ka {i}"}),
                       headers={"Authorization": f"Bearer {users[0].token}",
                                "Content-Type": "application/json"}, timeout=HTTP_TIMEOUT_S)
            assert r.status_code == 201, r.text
    finally:
        s.close()


def test_pipelining_answers_in_order(server, users):
    u = users[1]
    login_body = json.dumps({"email": u.email, "password": u.password}).encode()
    post_body = json.dumps({"content": "pipelined"}).encode()
    batch = (
        # slow first (Argon2 on the worker pool), fast after: order must hold
        raw_request("POST", "/auth/login",
                    {"Content-Type": "application/json", "X-Request-Id": "p1"}, login_body)
        + raw_request("GET", "/health", {"X-Request-Id": "p2"})
        + raw_request("GET", "/nope", {"X-Request-Id": "p3"})
        + raw_request("POST", "/rooms/1/messages",
                      {"Content-Type": "application/json", "X-Request-Id": "p4",
                       "Authorization": f"Bearer {u.token}"}, post_body)
        + raw_request("GET", "/rooms/1", {"X-Request-Id": "p5",
                                          "Authorization": f"Bearer {u.token}"})
    )
    s = connect(server)
    try:
        s.sendall(batch)
        reader = RawReader(s)
        got = [reader.read_response() for _ in range(5)]
    finally:
        s.close()
    assert [r.header("x-request-id") for r in got] == ["p1", "p2", "p3", "p4", "p5"]
    assert [r.status for r in got] == [200, 200, 404, 201, 200]
    assert got[0].json()["user"]["id"] == u.id
    assert got[3].json()["content"] == "pipelined"


def test_chunked_request_body(server):
    email = unique_email("chunk")
    payload = json.dumps({"email": email, "password": "password123", "username": "chunky"})

    def gen():
        for i in range(0, len(payload), 7):
            yield payload[i:i + 7].encode()

    r = requests.post(server.url + "/auth/register", data=gen(),
                      headers={"Content-Type": "application/json"}, timeout=HTTP_TIMEOUT_S)
    assert r.request.headers.get("Transfer-Encoding") == "chunked"
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == email


def test_chunked_raw_with_extensions_and_trailer(server, users):
    body = json.dumps({"content": "chunked raw"}).encode()
    a, b = body[:5], body[5:]
    chunked = (f"{len(a):x};ext=1\r\n".encode() + a + b"\r\n"
               + f"{len(b):X}\r\n".encode() + b + b"\r\n0\r\nX-Trailer: t\r\n\r\n")
    s = connect(server)
    try:
        s.sendall(raw_request("POST", "/rooms/1/messages",
                              {"Content-Type": "application/json",
                               "Transfer-Encoding": "chunked",
                               "Authorization": f"Bearer {users[0].token}"}, chunked))
        resp = RawReader(s).read_response()
    finally:
        s.close()
    assert resp.status == 201, resp.body
    assert resp.json()["content"] == "chunked raw"


def test_malformed_request_line_400(server):
    s = connect(server)
    try:
        s.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        data = RawReader(s).wait_closed(10)
    finally:
        s.close()
    # Either a 400 and a close, or just a close; never a hang or a 2xx.
    assert not data.startswith(b"HTTP/1.1 2")
    if data:
        assert data.startswith(b"HTTP/1.1 400"), data[:100]
    assert server.get("/health").status_code == 200


# ------------------------------------------------------------------ timeouts


def test_header_timeout_closes_slow_client(timeouts_server):
    slow = connect(timeouts_server)
    try:
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        # a normal client is served meanwhile
        r = requests.get(timeouts_server.url + "/health", timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200
        closed, data = closed_within(slow, HEADER_TIMEOUT_MS / 1000 + MARGIN_S)
        assert closed, "a half-sent request head was never closed"
        elapsed = time.monotonic() - started
        assert elapsed < HEADER_TIMEOUT_MS / 1000 + MARGIN_S
        assert not data.startswith(b"HTTP/1.1 2")
    finally:
        slow.close()


def test_header_timeout_dribbling_client(timeouts_server):
    # Slowloris: one byte at a time must not keep the timer from firing.
    s = connect(timeouts_server)
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    stop = threading.Event()

    def dribble():
        for i in range(len(head)):
            if stop.is_set():
                return
            try:
                s.send(head[i:i + 1])
            except OSError:
                return
            stop.wait(0.1)

    t = threading.Thread(target=dribble, daemon=True)
    started = time.monotonic()
    t.start()
    try:
        closed, _ = closed_within(s, HEADER_TIMEOUT_MS / 1000 + MARGIN_S)
        assert closed, "a dribbling client kept its connection past HEADER_TIMEOUT_MS"
        assert time.monotonic() - started < HEADER_TIMEOUT_MS / 1000 + MARGIN_S
    finally:
        stop.set()
        t.join(5)
        s.close()


def test_silent_connection_closed(timeouts_server):
    s = connect(timeouts_server)
    try:
        closed, _ = closed_within(s, max(HEADER_TIMEOUT_MS, IDLE_TIMEOUT_MS) / 1000 + MARGIN_S)
        assert closed, "a connection that never sent anything stayed open"
    finally:
        s.close()


def test_idle_timeout_closes_keep_alive(timeouts_server):
    s = connect(timeouts_server)
    try:
        s.sendall(raw_request("GET", "/health"))
        reader = RawReader(s)
        assert reader.read_response().status == 200
        started = time.monotonic()
        closed, data = closed_within(s, IDLE_TIMEOUT_MS / 1000 + MARGIN_S)
        assert closed, "an idle keep-alive connection stayed open"
        assert data == b""
        assert time.monotonic() - started < IDLE_TIMEOUT_MS / 1000 + MARGIN_S
    finally:
        s.close()


def test_active_keep_alive_not_closed_by_header_timeout(timeouts_server):
    # Requests spread over more than HEADER_TIMEOUT_MS on one connection,
    # each head sent at once: the connection stays usable.
    s = connect(timeouts_server)
    try:
        reader = RawReader(s)
        deadline = time.monotonic() + HEADER_TIMEOUT_MS / 1000 * 1.6
        n = 0
        while time.monotonic() < deadline:
            s.sendall(raw_request("GET", "/health"))
            assert reader.read_response().status == 200
            n += 1
            time.sleep(0.25)  # pacing between requests, shorter than both timeouts
        assert n >= 5
    finally:
        s.close()


# ----------------------------------------------------------- connection cap


def _served(srv, timeout=5):
    """Opens a connection and completes one request on it; returns the socket
    (kept open) or None when the server refused it."""
    s = connect(srv, timeout=timeout)
    try:
        s.sendall(raw_request("GET", "/health"))
        resp = RawReader(s).read_response()
        if resp.status == 200:
            return s
    except (EOFError, ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    s.close()
    return None


def test_max_connections(make_server):
    n = 4
    srv = make_server("sqlite", env={"MAX_CONNECTIONS": str(n)})
    held = []
    try:
        # the readiness probe's connection may still be closing: retry until
        # N connections are held
        for _ in range(n):
            held.append(wait_until(lambda: _served(srv), 10, interval=0.05,
                                   what="a connection under the cap"))

        extra = connect(srv)
        try:
            try:
                extra.sendall(raw_request("GET", "/health"))
            except (BrokenPipeError, ConnectionResetError):
                pass
            closed, data = closed_within(extra, 5)
            assert closed, "connection N+1 was kept open"
            assert not data.startswith(b"HTTP/1.1 2"), data[:80]
        finally:
            extra.close()

        # the held ones still work
        for s in held:
            s.sendall(raw_request("GET", "/health"))
            assert RawReader(s).read_response().status == 200

        # closing one makes room again
        held.pop().close()
        held.append(wait_until(lambda: _served(srv), 10, interval=0.05,
                               what="a connection after one closed"))
    finally:
        for s in held:
            s.close()


def test_register_then_use_from_many_connections(server):
    # A token works from any connection (and any I/O thread).
    user = register(server)
    for _ in range(6):
        r = requests.get(server.url + "/me", headers={"Authorization": f"Bearer {user.token}"},
                         timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 200 and r.json()["id"] == user.id


# ------------------------------------------------------- connection handling


def test_http10_request_answered_and_closed(server):
    s = connect(server)
    try:
        s.sendall(b"GET /health HTTP/1.0\r\n\r\n")
        data = RawReader(s).wait_closed(10)
    finally:
        s.close()
    assert data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0], data[:80]
    assert data.endswith(b'{"status":"ok"}')


def test_connection_close_honoured(server):
    s = connect(server)
    try:
        s.sendall(raw_request("GET", "/health", {"Connection": "close"}))
        reader = RawReader(s)
        resp = reader.read_response()
        assert resp.status == 200
        assert reader.wait_closed(10) == b""
    finally:
        s.close()


def test_content_length_with_chunked_rejected(server):
    # Both framings at once is the classic request-smuggling shape: refuse it.
    s = connect(server)
    try:
        s.sendall(b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
        resp = RawReader(s).read_response()
    finally:
        s.close()
    assert resp.status == 400
    assert resp.json()["code"]


def test_expect_100_continue(server, users):
    # curl sends "Expect: 100-continue" for bodies over 1 KiB and waits a
    # second for the interim answer before sending the body.
    body = json.dumps({"content": "e" * 2000}).encode()
    s = connect(server)
    try:
        s.sendall(raw_request("POST", "/rooms/1/messages",
                              {"Content-Type": "application/json",
                               "Authorization": f"Bearer {users[0].token}",
                               "Expect": "100-continue",
                               "Content-Length": str(len(body))}))
        reader = RawReader(s)
        s.settimeout(5)
        interim = reader.read_response()
        assert interim.status == 100, interim.status
        s.sendall(body)
        final = reader.read_response()
        assert final.status == 201, final.body
    finally:
        s.close()


def test_many_connections_at_once(server):
    socks = [connect(server) for _ in range(150)]
    try:
        for i, s in enumerate(socks):
            s.sendall(raw_request("GET", "/health", {"X-Request-Id": f"many-{i}"}))
        for i, s in enumerate(socks):
            resp = RawReader(s).read_response()
            assert resp.status == 200
            assert resp.header("x-request-id") == f"many-{i}"
    finally:
        for s in socks:
            s.close()
    assert server.get("/health").status_code == 200


def test_pipelined_burst_of_posts(server, users):
    n = 100
    batch = b"".join(
        raw_request("POST", "/rooms/2/messages",
                    {"Content-Type": "application/json", "X-Request-Id": f"burst-{i}",
                     "Authorization": f"Bearer {users[2].token}"},
                    json.dumps({"content": f"burst {i}"}).encode())
        for i in range(n)
    )
    s = connect(server)
    try:
        s.sendall(batch)
        reader = RawReader(s)
        got = [reader.read_response() for _ in range(n)]
    finally:
        s.close()
    assert [r.header("x-request-id") for r in got] == [f"burst-{i}" for i in range(n)]
    assert [r.status for r in got] == [201] * n
    bodies = [r.json() for r in got]
    assert [b["content"] for b in bodies] == [f"burst {i}" for i in range(n)]
    ids = [b["id"] for b in bodies]
    assert ids == sorted(ids) and len(set(ids)) == n
