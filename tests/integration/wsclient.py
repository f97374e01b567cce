"""WebSocket clients for the tests: the asyncio client of python3-websockets
(what real users run) wrapped with deadlines, and a raw-socket client that
can send what no well-behaved client sends (unmasked, binary, fragmented,
oversized frames) and reports the close code it gets.

Every read has a deadline; nothing sleeps and hopes."""

import asyncio
import base64
import collections
import hashlib
import json
import os
import socket
import struct
import time
import urllib.parse

import websockets

from rawhttp import RawReader, RawResponse

DEFAULT_TIMEOUT_S = 10.0
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_url(server, room, token=None, since=None, path=None):
    query = {}
    if token is not None:
        query["token"] = token
    if since is not None:
        query["since"] = str(since)
    target = path or f"/ws/{room}"
    if query:
        target += "?" + urllib.parse.urlencode(query)
    return f"ws://127.0.0.1:{server.port}{target}"


def run(coro, timeout=60):
    """Runs a coroutine to completion in a fresh event loop, with an overall
    deadline so that a hung test fails instead of hanging the suite."""

    async def bounded():
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


# --------------------------------------------------------------------------
# The websockets (asyncio) client


class WsClient:
    """One connection. Events are decoded JSON objects; every event received
    is kept in `events`, and those passed over while looking for something
    else are kept in `skipped` for later assertions."""

    def __init__(self, ws, name=""):
        self.ws = ws
        self.name = name
        self.events = []
        self.skipped = []
        self._pending = collections.deque()
        self.close_code = None

    def __repr__(self):
        return f"WsClient({self.name})"

    async def send_json(self, obj):
        await self.ws.send(json.dumps(obj, ensure_ascii=False))

    async def send_raw(self, text):
        await self.ws.send(text)

    async def send_message(self, content, client_id=None):
        body = {"type": "message", "content": content}
        if client_id is not None:
            body["client_id"] = client_id
        await self.send_json(body)

    async def recv_json(self, timeout=DEFAULT_TIMEOUT_S):
        """The next event; raises asyncio.TimeoutError after timeout and
        websockets.ConnectionClosed when the connection closes."""
        if self._pending:
            return self._pending.popleft()
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"{self.name}: binary frame from the server: {raw!r}"
        event = json.loads(raw)
        assert isinstance(event, dict) and isinstance(event.get("type"), str), event
        self.events.append(event)
        return event

    async def expect(self, type_, timeout=DEFAULT_TIMEOUT_S, pred=None):
        """The next event of this type (and matching pred); other events on
        the way are kept in `skipped`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: no {type_!r} event within {timeout}s; "
                    f"last events: {self.events[-5:]}"
                )
            try:
                event = await self.recv_json(left)
            except asyncio.TimeoutError:
                continue
            if event["type"] == type_ and (pred is None or pred(event)):
                return event
            self.skipped.append(event)

    async def collect(self, n, type_="message", timeout=DEFAULT_TIMEOUT_S, pred=None):
        """The next n events of this type (others go to `skipped`)."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: got {len(got)} of {n} {type_!r} events within {timeout}s; "
                    f"last: {got[-3:]}"
                )
            try:
                event = await self.recv_json(left)
            except asyncio.TimeoutError:
                continue
            if event["type"] == type_ and (pred is None or pred(event)):
                got.append(event)
            else:
                self.skipped.append(event)
        return got

    async def collect_until(self, pred, timeout=DEFAULT_TIMEOUT_S):
        """Every event up to and including the first one matching pred."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"{self.name}: no matching event within {timeout}s; got {got[-5:]}"
                )
            try:
                event = await self.recv_json(left)
            except asyncio.TimeoutError:
                continue
            got.append(event)
            if pred(event):
                return got

    async def sync(self, timeout=DEFAULT_TIMEOUT_S):
        """Application ping → pong: when it returns, the server has handled
        everything this connection sent before. Returns the events that
        arrived before the pong."""
        await self.send_json({"type": "ping"})
        events = await self.collect_until(lambda e: e["type"] == "pong", timeout)
        return events[:-1]

    async def wait_closed(self, timeout=DEFAULT_TIMEOUT_S):
        """Reads (keeping events) until the connection closes; returns the
        close code the server sent (None when it sent no close frame)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: still open after {timeout}s")
            try:
                await self.recv_json(left)
            except asyncio.TimeoutError:
                continue
            except websockets.ConnectionClosed as exc:
                rcvd = getattr(exc, "rcvd", None)
                self.close_code = rcvd.code if rcvd is not None else None
                return self.close_code

    def messages(self):
        return [e for e in self.events if e["type"] == "message"]

    def of_type(self, type_):
        return [e for e in self.events if e["type"] == type_]

    async def close(self):
        await self.ws.close()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()


async def connect(
    server,
    room,
    token,
    since=None,
    origin=None,
    name="",
    extra_headers=None,
    use_header=False,
    compression="deflate",
    timeout=DEFAULT_TIMEOUT_S,
):
    """Opens a WebSocket to /ws/room (token in the query, or in an
    Authorization header when use_header). permessage-deflate is offered,
    as websockets does by default. Raises websockets.InvalidStatusCode when
    the server refuses the upgrade."""
    headers = dict(extra_headers or {})
    if use_header:
        headers["Authorization"] = f"Bearer {token}"
        url = ws_url(server, room, since=since)
    else:
        url = ws_url(server, room, token=token, since=since)
    ws = await websockets.connect(
        url,
        origin=origin,
        extra_headers=headers,
        compression=compression,
        open_timeout=timeout,
        close_timeout=5,
        # The server's pings are answered automatically; the client sends
        # none of its own, so liveness is the server's business alone.
        ping_interval=None,
        max_size=None,
        max_queue=None,
    )
    return WsClient(ws, name or f"room{room}")


# --------------------------------------------------------------------------
# The raw-socket client

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class Frame:
    def __init__(self, fin, opcode, payload, rsv=0):
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
        self.rsv = rsv

    def close_code(self):
        if len(self.payload) >= 2:
            return struct.unpack("!H", self.payload[:2])[0]
        return None

    def __repr__(self):
        return f"Frame(fin={self.fin}, op={self.opcode}, {self.payload[:60]!r})"


def encode_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, declared_len=None):
    """One frame; declared_len announces a length other than the payload's
    (to send only a header, or a lie)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if declared_len is None else declared_len
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if mask:
        key = os.urandom(4)
        body = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return head + key + body
    return head + payload


class CloseResult:
    def __init__(self, code, reason, texts, saw_close_frame, pings):
        self.code = code  # None when no close frame arrived
        self.reason = reason
        self.texts = texts  # text messages received before the close
        self.saw_close_frame = saw_close_frame
        self.pings = pings  # protocol pings received

    def __repr__(self):
        return f"CloseResult(code={self.code}, texts={len(self.texts)}, pings={self.pings})"


class RawWs:
    """A WebSocket over a plain socket, for protocol edges. Text messages
    are reassembled; protocol pings are answered unless answer_pings is
    False."""

    def __init__(self, sock, leftover=b"", response=None):
        self.sock = sock
        self.buf = leftover
        self.response = response
        self.answer_pings = True
        self.pings = 0
        self._frag = None

    # ---- handshake

    @staticmethod
    def request_bytes(path, host, key, origin=None, headers=None):
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @classmethod
    def handshake(
        cls,
        server,
        room=None,
        token=None,
        since=None,
        origin=None,
        headers=None,
        path=None,
        rcvbuf=None,
        timeout=DEFAULT_TIMEOUT_S,
    ):
        """Sends the upgrade request; returns (RawWs or None, RawResponse).
        The RawWs is None when the answer is not 101 (the response then
        carries its body)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            # Before connect, so that the advertised window stays small.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", server.port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = base64.b64encode(os.urandom(16)).decode()
        url = ws_url(server, room, token=token, since=since, path=path)
        target = url.split(f":{server.port}", 1)[1]
        sock.sendall(
            cls.request_bytes(target, f"127.0.0.1:{server.port}", key, origin, headers)
        )
        reader = RawReader(sock)
        resp = reader.read_response(head_only=True)
        if resp.status != 101:
            body = b""
            length = resp.header("content-length")
            if length is not None:
                body = reader._exact(int(length))
            resp = RawResponse(resp.status, resp.reason, resp.headers, body)
            sock.close()
            return None, resp
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert resp.header("sec-websocket-accept") == accept, resp.headers
        return cls(sock, reader.buf, resp), resp

    @classmethod
    def connect(cls, server, room, token, **kw):
        ws, resp = cls.handshake(server, room, token, **kw)
        assert ws is not None, f"upgrade refused: {resp.status} {resp.body!r}"
        return ws

    # ---- sending

    def send_bytes(self, data):
        self.sock.sendall(data)

    def send_frame(self, opcode, payload=b"", **kw):
        self.sock.sendall(encode_frame(opcode, payload, **kw))

    def send_text(self, text, mask=True):
        self.send_frame(OP_TEXT, text.encode("utf-8"), mask=mask)

    def send_json(self, obj):
        self.send_text(json.dumps(obj, ensure_ascii=False))

    def send_close(self, code=1000, reason=b""):
        try:
            self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason)
        except OSError:
            pass

    # ---- receiving

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(left)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _need(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)

    def read_frame(self, timeout=DEFAULT_TIMEOUT_S):
        """The next frame. Raises EOFError at EOF, ConnectionResetError on
        a reset, socket.timeout after timeout."""
        deadline = time.monotonic() + timeout
        self._need(2, deadline)
        b0, b1 = self.buf[0], self.buf[1]
        assert not (b1 & 0x80), "the server masked a frame"
        n = b1 & 0x7F
        pos = 2
        if n == 126:
            self._need(4, deadline)
            n = struct.unpack("!H", self.buf[2:4])[0]
            pos = 4
        elif n == 127:
            self._need(10, deadline)
            n = struct.unpack("!Q", self.buf[2:10])[0]
            pos = 10
        self._need(pos + n, deadline)
        payload = self.buf[pos : pos + n]
        self.buf = self.buf[pos + n :]
        return Frame(bool(b0 & 0x80), b0 & 0x0F, payload, (b0 >> 4) & 0x7)

    def read_message(self, timeout=DEFAULT_TIMEOUT_S):
        """The next complete text message (str), answering pings on the way.
        A close frame raises AssertionError naming its code."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            if frame.opcode == OP_PING:
                self.pings += 1
                if self.answer_pings:
                    self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                raise AssertionError(
                    f"closed by the server: {frame.close_code()} {frame.payload[2:]!r}"
                )
            if frame.opcode in (OP_TEXT, OP_BINARY):
                assert frame.opcode == OP_TEXT, "binary frame from the server"
                if frame.fin:
                    return frame.payload.decode("utf-8")
                self._frag = frame.payload
                continue
            assert frame.opcode == OP_CONT and self._frag is not None, frame
            self._frag += frame.payload
            if frame.fin:
                data, self._frag = self._frag, None
                return data.decode("utf-8")

    def read_json(self, timeout=DEFAULT_TIMEOUT_S):
        return json.loads(self.read_message(timeout))

    def expect(self, type_, timeout=DEFAULT_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        while True:
            event = self.read_json(max(0.0, deadline - time.monotonic()))
            if event.get("type") == type_:
                return event

    def read_until_close(self, timeout=DEFAULT_TIMEOUT_S, reply=True):
        """Reads until the server's close frame (answered with a close
        unless reply is False) and then EOF, or until EOF/reset without
        one. Raises AssertionError when neither happens in time."""
        deadline = time.monotonic() + timeout
        texts = []
        code = reason = None
        saw_close = False
        frag = None
        try:
            while True:
                frame = self.read_frame(max(0.0, deadline - time.monotonic()))
                if frame.opcode == OP_CLOSE:
                    saw_close = True
                    code = frame.close_code()
                    reason = frame.payload[2:]
                    if reply:
                        self.send_close(code if code is not None else 1000)
                    break
                if frame.opcode == OP_PING:
                    self.pings += 1
                    if self.answer_pings:
                        try:
                            self.send_frame(OP_PONG, frame.payload)
                        except OSError:
                            pass
                elif frame.opcode == OP_TEXT:
                    if frame.fin:
                        texts.append(frame.payload.decode("utf-8", "replace"))
                    else:
                        frag = frame.payload
                elif frame.opcode == OP_CONT and frag is not None:
                    frag += frame.payload
                    if frame.fin:
                        texts.append(frag.decode("utf-8", "replace"))
                        frag = None
            # After the close frame the server closes the TCP connection.
            while True:
                self._fill(deadline)
                self.buf = b""
        except (EOFError, ConnectionResetError, BrokenPipeError):
            pass
        except socket.timeout:
            raise AssertionError(
                f"not closed within {timeout}s (close frame: {saw_close}, code {code}); "
                f"{len(texts)} text messages and {self.pings} pings received"
            ) from None
        return CloseResult(code, reason, texts, saw_close, self.pings)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def assert_raw_error(resp, status, code=None):
    """A refused upgrade: API.md's JSON error shape, and no upgrade."""
    assert resp.status == status, f"expected {status}, got {resp.status}: {resp.body!r}"
    assert resp.header("upgrade") is None, "an error response must not upgrade"
    assert resp.header("sec-websocket-accept") is None
    ctype = resp.header("content-type") or ""
    assert ctype.startswith("application/json"), f"error content type {ctype!r}"
    body = json.loads(resp.body)
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    if code is not None:
        assert body["code"] == code, body
    return body
