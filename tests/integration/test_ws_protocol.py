"""RFC 6455 edges with a raw socket: close codes for binary frames,
invalid UTF-8, oversized messages, unmasked and malformed frames;
fragmentation and control frames; protocol ping timeout; a subscriber
that stops reading is closed while the rest of its room gets everything."""

import asyncio
import struct
import time
import uuid

import pytest
import requests

from api import create_room, register
from harness import HTTP_TIMEOUT_S
from rawhttp import parse_metrics
from wsclient import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWs,
    connect,
    encode_frame,
    run,
)

MAX_MESSAGE_BYTES = 1024
OUTBOUND_LIMIT = 65536
WS_SERVER_ENV = {
    "MAX_MESSAGE_BYTES": MAX_MESSAGE_BYTES,
    "WS_OUTBOUND_LIMIT_BYTES": OUTBOUND_LIMIT,
}


@pytest.fixture
def raw(ws_server, ws_users):
    ws = RawWs.connect(ws_server, 1, ws_users[0].token)
    yield ws
    ws.close()


def round_trip(ws, content="still works"):
    """A message over the raw socket comes back as its own echo."""
    cid = uuid.uuid4().hex
    ws.send_json({"type": "message", "content": content, "client_id": cid})
    deadline = time.monotonic() + 10
    while True:
        event = ws.read_json(max(0.0, deadline - time.monotonic()))
        if event.get("type") == "message" and event.get("client_id") == cid:
            return event
        assert event.get("type") != "error", event


def closed_with(ws, code):
    result = ws.read_until_close(timeout=10)
    assert result.saw_close_frame, f"no close frame (expected {code}): {result}"
    assert result.code == code, f"close code {result.code}, expected {code}"
    return result


# --------------------------------------------------------------------------
# close codes


def test_binary_frame_closes_1003(raw):
    raw.send_frame(OP_BINARY, b'{"type":"ping"}')
    closed_with(raw, 1003)


def test_invalid_utf8_closes_1007(raw):
    raw.send_frame(OP_TEXT, b'{"type":"message","content":"\xff\xfe"}')
    closed_with(raw, 1007)


def test_overlong_utf8_and_surrogates_close_1007(ws_server, ws_users):
    for bad in (b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"abc\xe2\x82"):
        ws = RawWs.connect(ws_server, 1, ws_users[0].token)
        with ws:
            ws.send_frame(OP_TEXT, b'{"type":"message","content":"' + bad + b'"}')
            closed_with(ws, 1007)


def test_invalid_utf8_across_fragments_closes_1007(raw):
    raw.send_frame(OP_TEXT, b'{"type":"message","content":"\xe2\x82', fin=False)
    raw.send_frame(OP_CONT, b'(x"}', fin=True)
    closed_with(raw, 1007)


def test_valid_utf8_split_across_fragments_is_fine(raw):
    cid = "split-utf8"
    body = ('{"type":"message","content":"€uro ✓","client_id":"%s"}' % cid).encode()
    cut = body.index("€".encode()) + 1  # inside the euro sign
    raw.send_frame(OP_TEXT, body[:cut], fin=False)
    raw.send_frame(OP_CONT, body[cut:], fin=True)
    while True:
        ev = raw.read_json()
        if ev.get("client_id") == cid:
            break
    assert ev["content"] == "€uro ✓"


def test_message_over_max_closes_1009(raw):
    filler = "x" * MAX_MESSAGE_BYTES
    raw.send_text('{"type":"message","content":"%s"}' % filler)
    closed_with(raw, 1009)


def test_oversize_header_alone_closes_1009(raw):
    """The length is known from the header: no need to wait for the body."""
    raw.send_bytes(encode_frame(OP_TEXT, b"", declared_len=MAX_MESSAGE_BYTES * 64))
    closed_with(raw, 1009)


def test_oversize_after_reassembly_closes_1009(raw):
    half = MAX_MESSAGE_BYTES // 2 + 50
    raw.send_frame(OP_TEXT, b'{"type":"message","content":"' + b"y" * half, fin=False)
    raw.send_frame(OP_CONT, b"y" * half + b'"}', fin=True)
    closed_with(raw, 1009)


def test_message_of_exactly_max_bytes_is_accepted(raw):
    cid = "exact"
    head = '{"type":"message","client_id":"%s","content":"' % cid
    content = "z" * (MAX_MESSAGE_BYTES - len(head) - 2)
    text = head + content + '"}'
    assert len(text.encode()) == MAX_MESSAGE_BYTES
    raw.send_text(text)
    while True:
        ev = raw.read_json()
        assert ev.get("type") != "error", ev
        if ev.get("client_id") == cid:
            break
    assert ev["content"] == content


def test_unmasked_frame_closes_1002(raw):
    raw.send_text('{"type":"ping"}', mask=False)
    closed_with(raw, 1002)


@pytest.mark.parametrize(
    "frames",
    [
        [encode_frame(OP_TEXT, b'{"type":"ping"}', rsv=4)],
        [encode_frame(OP_CONT, b'{"type":"ping"}')],
        [encode_frame(OP_PING, b"x", fin=False)],
        [encode_frame(OP_PING, b"p" * 126)],
        [encode_frame(0x3, b"reserved")],
        [encode_frame(0xB, b"reserved control")],
        [encode_frame(OP_TEXT, b'{"type":', fin=False), encode_frame(OP_TEXT, b'"ping"}')],
        [encode_frame(OP_CLOSE, b"\x03")],
        [encode_frame(OP_CLOSE, struct.pack("!H", 999))],
        [encode_frame(OP_CLOSE, struct.pack("!H", 1005))],
    ],
    ids=[
        "rsv-bits",
        "continuation-first",
        "fragmented-control",
        "long-control",
        "reserved-opcode",
        "reserved-control-opcode",
        "text-inside-fragmented",
        "close-one-byte",
        "close-code-999",
        "close-code-1005-on-wire",
    ],
)
def test_protocol_errors_close_1002(raw, frames):
    for f in frames:
        raw.send_bytes(f)
    closed_with(raw, 1002)


# --------------------------------------------------------------------------
# what must keep working


def test_ping_gets_pong_with_payload(raw):
    raw.send_frame(OP_PING, b"are you there")
    while True:
        f = raw.read_frame()
        if f.opcode == OP_PONG:
            break
    assert f.payload == b"are you there"
    round_trip(raw)


def test_unsolicited_pong_is_ignored(raw):
    raw.send_frame(OP_PONG, b"nobody asked")
    round_trip(raw)


def test_fragmented_message_with_ping_in_between(raw):
    cid = "fragmented"
    body = ('{"type":"message","content":"in three parts","client_id":"%s"}' % cid).encode()
    raw.send_frame(OP_TEXT, body[:10], fin=False)
    raw.send_frame(OP_PING, b"mid")
    raw.send_frame(OP_CONT, body[10:20], fin=False)
    raw.send_frame(OP_CONT, body[20:], fin=True)
    got_pong = False
    while True:
        f = raw.read_frame()
        if f.opcode == OP_PONG:
            assert f.payload == b"mid"
            got_pong = True
        elif f.opcode == OP_TEXT and cid.encode() in f.payload:
            break
    assert got_pong, "the ping between fragments was not answered before the message"


def test_many_frames_in_one_write_and_one_frame_in_many(raw):
    frames = b"".join(
        encode_frame(OP_TEXT, b'{"type":"message","content":"batch %d","client_id":"b%d"}' % (i, i))
        for i in range(20)
    )
    raw.send_bytes(frames)
    got = []
    while len(got) < 20:
        ev = raw.read_json()
        if ev.get("type") == "message" and str(ev.get("client_id", "")).startswith("b"):
            got.append(ev["content"])
    assert got == [f"batch {i}" for i in range(20)]
    one = encode_frame(OP_TEXT, b'{"type":"message","content":"dribbled","client_id":"drib"}')
    for i in range(len(one)):
        raw.send_bytes(one[i : i + 1])
    assert round_trip(raw)["content"] == "still works"


def test_client_close_is_answered(raw):
    raw.send_close(1000, b"bye")
    result = raw.read_until_close(timeout=10, reply=False)
    assert result.saw_close_frame and result.code == 1000, result


def test_close_with_empty_payload_is_answered(raw):
    raw.send_frame(OP_CLOSE, b"")
    result = raw.read_until_close(timeout=10, reply=False)
    assert result.saw_close_frame and result.code in (None, 1000), result


# --------------------------------------------------------------------------
# liveness


def test_ping_timeout(backend, threads, make_server):
    srv = make_server(
        backend,
        env={"THREADS": threads, "WS_PING_INTERVAL_MS": 200, "WS_PING_TIMEOUT_MS": 600},
    )
    user = register(srv)

    async def main():
        alive = await connect(srv, 1, user.token, name="answers-pings")
        await alive.sync()
        silent = RawWs.connect(srv, 1, user.token)
        silent.answer_pings = False
        start = time.monotonic()
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(
            None, lambda: silent.read_until_close(timeout=10, reply=False)
        )
        took = time.monotonic() - start
        silent.close()
        assert result.pings >= 1, "no protocol ping before the timeout"
        # It reads everything, so the close frame can still be written.
        assert result.saw_close_frame and result.code == 1001, result
        assert took >= 0.5, f"closed after {took:.2f}s, before the 600 ms timeout"
        # The client that answers pings outlives two more timeouts.
        await asyncio.sleep(1.2)
        assert alive.ws.open, "a client answering pings was closed"
        await alive.sync()
        await alive.close()

    run(main())


# --------------------------------------------------------------------------
# slow consumer


def test_subscriber_that_stops_reading_is_closed_1013(ws_server, ws_users):
    alice, bob, carol = ws_users[:3]
    room = create_room(ws_server, alice)["id"]
    # The kernel takes a lot before chatd's own backlog grows: loopback
    # send buffers autotune up to tcp_wmem's maximum (4 MiB here) even when
    # the peer's window is tiny. So the room gets 400 messages of 4000
    # four-byte characters (~6.4 MB), well past that and the 64 KiB limit.
    count, chars = 400, 4000

    stuck = RawWs.connect(ws_server, room, carol.token, rcvbuf=4096)
    stuck.send_json({"type": "ping"})
    stuck.expect("pong")

    session = requests.Session()
    hdrs = {"Authorization": f"Bearer {alice.token}", "Content-Type": "application/json"}

    def post(i):
        content = f"{i:04d} " + "😀" * (chars - 5)
        r = session.post(f"{ws_server.url}/rooms/{room}/messages", json={"content": content},
                         headers=hdrs, timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    async def main():
        reader = await connect(ws_server, room, bob.token, name="reader")
        await reader.sync()
        loop = asyncio.get_running_loop()
        acked, got = [], []
        # The reader is never more than two messages (~32 KB) behind, so
        # it stays under the limit however slowly this machine runs it;
        # the stuck client falls further behind with every message.
        for i in range(count):
            acked.append(await loop.run_in_executor(None, post, i))
            if i >= 1:
                got.extend(await reader.collect(1, timeout=30))
        got.extend(await reader.collect(count - len(got), timeout=30))
        await reader.close()
        return got, acked

    try:
        got, acked = run(main(), timeout=120)
    finally:
        session.close()
    ids = [e["id"] for e in got]
    assert ids == acked, "the reader missed or reordered messages"
    assert all(len(e["content"]) == chars for e in got)

    # Now the stuck client reads: some messages, then 1013 (or the server
    # gave up on the TCP connection altogether).
    result = stuck.read_until_close(timeout=15)
    stuck.close()
    delivered = sum('"type":"message"' in t.replace(" ", "") for t in result.texts)
    assert delivered < count, "the stuck client was never closed"
    if result.saw_close_frame:
        assert result.code == 1013, result

    samples = parse_metrics(ws_server.get("/metrics").text)
    slow = [(n, v) for n, _, v in samples if "slow" in n]
    assert slow and sum(v for _, v in slow) >= 1, f"no slow-consumer metric: {slow}"
