"""deploy/nginx.conf in front of the real chatd: Debian's nginx runs on
loopback with a configuration made from the shipped file (its http-context
blocks, its TLS server block without the TLS lines, and the shipped
location blocks included as they are), then a REST post and a WebSocket
round trip go through it.

nginx must be installed (scripts/deps.sh installs it); a missing or failing
nginx fails these tests, it never skips them."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
import requests

from api import create_room, register
from harness import HTTP_TIMEOUT_S, REPO, free_port, wait_until
from wsclient import RawWs, connect, run

DEPLOY = REPO / "deploy"
MAIN_CONF = DEPLOY / "nginx.conf"
SNIPPET = DEPLOY / "nginx-chatd-locations.conf"
NGINX_START_DEADLINE_S = 15.0


# --------------------------------------------------------------------------
# Reading nginx configuration text


def strip_comments(text):
    """The text without # comments (quotes respected)."""
    out, quote, i = [], None, 0
    while i < len(text):
        c = text[i]
        if quote:
            out.append(c)
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def statements(text):
    """The top-level statements of comment-free configuration text, each as
    (head, body): body is None for a simple directive ("head;"), else the
    text between the block's braces."""
    result, quote, depth, start, open_at = [], None, 0, 0, None
    for i, c in enumerate(text):
        if quote:
            if c == quote and text[i - 1] != "\\":
                quote = None
            continue
        if c in "'\"":
            quote = c
        elif c == "{":
            if depth == 0:
                open_at = i
            depth += 1
        elif c == "}":
            depth -= 1
            assert depth >= 0, "unbalanced } in nginx configuration"
            if depth == 0:
                result.append((text[start:open_at].strip(), text[open_at + 1 : i]))
                start = i + 1
        elif c == ";" and depth == 0:
            result.append((text[start:i].strip(), None))
            start = i + 1
    assert depth == 0 and not text[start:].strip(), "unterminated nginx configuration"
    return result


def directive(stmts, name):
    """Arguments of each simple directive `name` among stmts."""
    return [head.split()[1:] for head, body in stmts if body is None and head.split()[0] == name]


def nginx_size(text):
    units = {"k": 1024, "m": 1024 * 1024, "g": 1024 ** 3}
    m = re.fullmatch(r"(\d+)([kmgKMG]?)", text)
    assert m, text
    return int(m.group(1)) * units.get(m.group(2).lower(), 1)


def nginx_seconds(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text)
    assert m, text
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def loopback_config(tmp, nginx_port, chatd_port):
    """The test configuration: deploy/nginx.conf's http-context statements
    with the upstream pointed at chatd_port, and its TLS server block
    listening in plain HTTP on nginx_port, logging into tmp."""
    top = statements(strip_comments(MAIN_CONF.read_text()))
    http = []
    tls_servers = 0
    for head, body in top:
        name = head.split()[0]
        if body is None:
            http.append(head + ";")
        elif name == "upstream" and head.split()[1] == "chatd":
            inner = re.sub(r"(?m)^(\s*)server\s+[^;]+;", rf"\1server 127.0.0.1:{chatd_port};",
                           body, count=1)
            http.append(f"{head} {{{inner}}}")
        elif name == "server":
            inner = statements(body)
            if not any(h.split()[0] == "include" and h.endswith(SNIPPET.name)
                       for h, b in inner if b is None):
                continue  # the port-80 redirect
            listens = directive(inner, "listen")
            assert any("ssl" in args for args in listens), "the chatd server block is not TLS"
            tls_servers += 1
            lines = [f"listen 127.0.0.1:{nginx_port};"]
            for h, b in inner:
                word = h.split()[0]
                if word == "listen" or word.startswith("ssl_") or word == "http2":
                    continue
                if b is not None:
                    lines.append(f"{h} {{{b}}}")
                elif word == "include" and h.endswith(SNIPPET.name):
                    lines.append(f"include {SNIPPET};")
                elif word == "access_log":
                    args = h.split()[1:]
                    lines.append(" ".join(["access_log", str(tmp / "access.log")] + args[1:]) + ";")
                elif word == "error_log":
                    continue
                else:
                    lines.append(h + ";")
            http.append("server {\n    " + "\n    ".join(lines) + "\n}")
        else:
            http.append(f"{head} {{{body}}}")
    assert tls_servers == 1, f"expected one TLS server block including {SNIPPET.name}"

    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\n"
        "worker_processes 1;\n"
        f"pid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'error.log'} info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        f"    access_log {tmp / 'access.log'};\n"
        f"{temp}\n"
        + "\n".join(http)
        + "\n}\n"
    )


# --------------------------------------------------------------------------
# nginx as a child process


def nginx_binary():
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if path is None:
        pytest.fail("nginx is not installed (scripts/deps.sh installs Debian's nginx)",
                    pytrace=False)
    return path


class Nginx:
    def __init__(self, chatd_port):
        self.binary = nginx_binary()
        self.tmp = Path(tempfile.mkdtemp(prefix="chatd-nginx-"))
        if os.geteuid() == 0:
            os.chmod(self.tmp, 0o755)  # workers run as nobody
        self.port = free_port()
        self.conf = self.tmp / "nginx.conf"
        self.conf.write_text(loopback_config(self.tmp, self.port, chatd_port))
        self.proc = None
        self._out = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _cmd(self, *extra):
        return [self.binary, "-p", str(self.tmp), "-e", str(self.tmp / "error.log"),
                "-c", str(self.conf), *extra]

    def error_log(self):
        parts = []
        for name in ("error.log", "stderr.log"):
            p = self.tmp / name
            if p.exists():
                parts.append(p.read_text(errors="replace"))
        return "\n".join(parts)[-4000:]

    def start(self):
        check = subprocess.run(self._cmd("-t"), capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            pytest.fail(f"nginx rejects the configuration made from {MAIN_CONF}:\n"
                        f"{check.stderr}\n--- configuration ---\n{self.conf.read_text()}",
                        pytrace=False)
        self._out = open(self.tmp / "stderr.log", "wb")
        self.proc = subprocess.Popen(self._cmd(), stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + NGINX_START_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"nginx exited with {self.proc.returncode} at start-up:\n"
                            f"{self.error_log()}", pytrace=False)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return self
            except OSError:
                pass
            if time.monotonic() >= deadline:
                self.stop()
                pytest.fail(f"nginx not listening after {NGINX_START_DEADLINE_S}s:\n"
                            f"{self.error_log()}", pytrace=False)
            time.sleep(0.02)

    def stop(self):
        """Fast shutdown (SIGTERM), killed after a deadline; returns the
        exit code."""
        rc = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        elif self.proc is not None:
            rc = self.proc.returncode
        if self._out is not None:
            self._out.close()
            self._out = None
        return rc

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def request(self, method, path, token=None, **kw):
        headers = dict(kw.pop("headers", None) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return requests.request(method, self.url + path, headers=headers, **kw)


@pytest.fixture(scope="module")
def chatd(module_servers):
    return module_servers("sqlite")


@pytest.fixture(scope="module")
def nginx(chatd):
    proxy = Nginx(chatd.port)
    proxy.start()
    yield proxy
    rc = proxy.stop()
    log = proxy.error_log()
    proxy.cleanup()
    assert rc == 0, f"nginx exited with {rc} on SIGTERM:\n{log}"


def help_default(server, name):
    """The default of a numeric setting as `chatd --help` prints it (a
    NAME DEFAULT MEANING table)."""
    res = server.run_command(["--help"], timeout=10)
    assert res.returncode == 0
    for line in res.stdout.decode().splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == name and words[1].isdigit():
            return int(words[1])
    raise AssertionError(f"--help does not show a numeric default for {name}")


# --------------------------------------------------------------------------
# The shipped file agrees with chatd's defaults


def test_shipped_limits_match_chatd_defaults(chatd):
    snippet = statements(strip_comments(SNIPPET.read_text()))
    (body_limit,) = directive(snippet, "client_max_body_size")
    assert nginx_size(body_limit[0]) == help_default(chatd, "MAX_BODY_BYTES")

    ws = [body for head, body in snippet if head.split()[:2] == ["location", "/ws/"]]
    assert len(ws) == 1, "no location /ws/"
    ws_stmts = statements(ws[0])
    ping_s = help_default(chatd, "WS_PING_INTERVAL_MS") / 1000
    timeout_s = help_default(chatd, "WS_PING_TIMEOUT_MS") / 1000
    for name in ("proxy_read_timeout", "proxy_send_timeout"):
        (args,) = directive(ws_stmts, name)
        assert nginx_seconds(args[0]) > max(ping_s, timeout_s), (name, args)
    assert directive(ws_stmts, "proxy_http_version") == [["1.1"]]
    assert directive(ws_stmts, "proxy_buffering") == [["off"]]
    headers = {args[0].lower(): " ".join(args[1:]) for args in directive(ws_stmts,
                                                                         "proxy_set_header")}
    assert headers.get("upgrade") == "$http_upgrade"
    assert headers.get("connection") == "$connection_upgrade"
    assert "x-forwarded-for" in headers and "x-forwarded-proto" in headers

    main = statements(strip_comments(MAIN_CONF.read_text()))
    assert any(h.split()[:3] == ["map", "$http_upgrade", "$connection_upgrade"] for h, _ in main)


# --------------------------------------------------------------------------
# Through nginx


def test_rest_post_through_nginx(nginx, chatd):
    user = register(chatd)
    content = f"through nginx ✓ {uuid.uuid4().hex}"
    r = nginx.request("POST", "/rooms/1/messages", token=user.token,
                      json={"content": content, "client_id": "nginx-rest-1"})
    assert r.status_code == 201, (r.status_code, r.text)
    msg = r.json()
    assert msg["content"] == content and msg["sender_id"] == user.id
    assert r.headers.get("X-Request-Id")
    assert r.headers.get("Server") == "nginx", "server_tokens off: no version"

    r = nginx.request("GET", "/rooms/1/messages?limit=5", token=user.token)
    assert r.status_code == 200, r.text
    assert any(m["id"] == msg["id"] and m["content"] == content for m in r.json()["messages"])

    # register and log in through the /auth/ location too
    email = f"nginx-{uuid.uuid4().hex[:10]}@example.com"
    r = nginx.request("POST", "/auth/register",
                      json={"email": email, "password": "password123", "username": "viaproxy"})
    assert r.status_code == 201, r.text
    r = nginx.request("POST", "/auth/login", json={"email": email, "password": "password123"})
    assert r.status_code == 200, r.text
    assert nginx.request("GET", "/me", token=r.json()["token"]).json()["email"] == email

    # chatd's own errors come through unchanged, with its request id
    r = nginx.request("GET", "/me", headers={"X-Request-Id": "via-nginx-401"})
    assert r.status_code == 401 and r.json()["code"] == "missing_token"
    assert r.headers.get("X-Request-Id") == "via-nginx-401"


def test_websocket_round_trip_through_nginx(nginx, chatd):
    alice, bob = register(chatd), register(chatd)
    room = create_room(chatd, alice)

    async def main():
        async with await connect(nginx, room["id"], alice.token, name="alice") as a, \
                await connect(nginx, room["id"], bob.token, name="bob") as b:
            await a.sync()
            await b.sync()
            await a.send_message("hello through nginx ✓", client_id="nginx-ws-1")
            echo = await a.expect("message", pred=lambda e: e.get("client_id") == "nginx-ws-1")
            assert echo["content"] == "hello through nginx ✓"
            assert echo["sender_id"] == alice.id and echo["room_id"] == room["id"]
            got = await b.expect("message", pred=lambda e: e["id"] == echo["id"])
            assert got["content"] == echo["content"]

            # a REST post through nginx reaches both sockets through nginx
            r = nginx.request("POST", f"/rooms/{room['id']}/messages", token=bob.token,
                              json={"content": "and back over REST"})
            assert r.status_code == 201, r.text
            mid = r.json()["id"]
            for c in (a, b):
                e = await c.expect("message", pred=lambda e: e["id"] == mid)
                assert e["content"] == "and back over REST"

    run(main())


def test_upgrade_refusals_come_through_nginx(nginx, chatd):
    ws, resp = RawWs.handshake(nginx, 1, token="garbage")
    assert ws is None and resp.status == 401, (resp.status, resp.body)
    assert b"invalid_token" in resp.body
    user = register(chatd)
    ws, resp = RawWs.handshake(nginx, 1, token=user.token)
    assert ws is not None and resp.status == 101
    with ws:
        ws.send_json({"type": "ping"})
        assert ws.expect("pong")["type"] == "pong"


def test_nginx_body_limit_is_a_json_413(nginx, chatd):
    user = register(chatd)
    body = b'{"content":"' + b"x" * (1024 * 1024 + 16) + b'"}'
    r = nginx.request("POST", "/rooms/1/messages", token=user.token, data=body,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.status_code
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json()["code"] == "payload_too_large"
    assert r.headers.get("X-Request-Id")


def test_access_log_has_no_token(nginx, chatd):
    user = register(chatd)
    marker = f"/ws/1?marker={uuid.uuid4().hex}"
    ws = RawWs.connect(nginx, 1, user.token)
    ws.close()
    r = nginx.request("GET", "/me?token=" + user.token, token=user.token)
    assert r.status_code == 200
    nginx.request("GET", marker)

    access = nginx.tmp / "access.log"
    # A WebSocket's line is written when it closes.
    wait_until(lambda: access.exists() and access.read_text().count('"GET /ws/1 ') >= 2, 10,
               what="the access log lines of both /ws/1 requests")
    text = access.read_text()
    assert "/me " in text, text[-2000:]
    assert user.token not in text
    for part in user.token.split("."):
        assert part not in text
    assert "Bearer" not in text
    assert "marker=" not in text, "the query string is logged"


def test_chatd_down_is_a_json_503(make_server):
    # A chatd of its own, stopped while nginx stays up.
    srv = make_server("sqlite")
    proxy = Nginx(srv.port)
    try:
        proxy.start()
        assert proxy.request("GET", "/health").status_code == 200
        assert srv.stop() == 0
        r = proxy.request("GET", "/health")
        assert r.status_code == 503, (r.status_code, r.text)
        assert r.json()["code"] == "unavailable"
        ws, resp = RawWs.handshake(proxy, 1, token="x")
        assert ws is None and resp.status == 503
    finally:
        rc = proxy.stop()
        proxy.cleanup()
    assert rc == 0
