"""Load for the crash, shutdown and outage tests: REST posters on threads and
WebSocket senders on asyncio, every post with a client_id and every answer
recorded, and the checks that compare what clients were told with what the
database holds."""

import asyncio
import json
import threading
import time
import uuid

import requests
import websockets

from harness import HTTP_TIMEOUT_S


def content_for(tag, i):
    # Non-ASCII, quotes and a backslash: "exact content" means every byte.
    return f'{tag} #{i} é✓ "q" \\ {uuid.uuid4().hex}'


class RestPoster(threading.Thread):
    """Posts to one room on its own keep-alive session until stop is set,
    recording every attempt as a dict: client_id, content, status (None when
    no answer came), code (the error code), id (when stored). A connection
    error ends the thread when stop_on_error, else it pauses and goes on."""

    def __init__(self, server, user, room_id, tag, stop, pause=0.0, stop_on_error=True):
        super().__init__(daemon=True)
        self.url = server.url
        self.user = user
        self.room_id = room_id
        self.tag = tag
        self.stop = stop
        self.pause = pause
        self.stop_on_error = stop_on_error
        self.attempts = []

    def post(self, session, client_id, content):
        rec = {"client_id": client_id, "content": content, "status": None, "code": None,
               "id": None, "t": time.monotonic()}
        self.attempts.append(rec)
        r = session.post(
            f"{self.url}/rooms/{self.room_id}/messages",
            data=json.dumps({"content": content, "client_id": client_id}).encode(),
            headers={"Authorization": f"Bearer {self.user.token}",
                     "Content-Type": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )
        rec["status"] = r.status_code
        rec["elapsed"] = time.monotonic() - rec["t"]
        body = r.json()
        if r.status_code in (200, 201):
            rec["id"] = body["id"]
            assert body["content"] == content, (rec, body)
        else:
            rec["code"] = body.get("code")
        return rec

    def run(self):
        session = requests.Session()
        i = 0
        try:
            while not self.stop.is_set():
                client_id = f"{self.tag}-{i}"
                content = content_for(self.tag, i)
                i += 1
                try:
                    self.post(session, client_id, content)
                except (requests.RequestException, ValueError):
                    if self.stop_on_error:
                        break
                    session.close()
                    session = requests.Session()
                    time.sleep(0.05)
                    continue
                if self.pause:
                    time.sleep(self.pause)
        finally:
            session.close()

    def acked(self):
        """{id: content} of the posts answered 201 (or 200, a repeat)."""
        return {a["id"]: a["content"] for a in self.attempts if a["id"] is not None}

    def unanswered(self):
        return [a for a in self.attempts if a["status"] is None]


class WsSender:
    """Sends messages with client_ids on one connection (a WsClient) without
    waiting for each echo; its own echoes, read by whoever reads the
    connection, are its acknowledgements."""

    def __init__(self, client, user, room_id, tag):
        self.client = client
        self.user = user
        self.room_id = room_id
        self.tag = tag
        self.sent = {}  # client_id -> content

    async def run(self, stop, pause=0.002):
        """Sends until stop (an asyncio.Event) is set or the connection
        closes."""
        i = 0
        try:
            while not stop.is_set():
                client_id = f"{self.tag}-{i}"
                content = content_for(self.tag, i)
                self.sent[client_id] = content
                i += 1
                await self.client.send_message(content, client_id=client_id)
                await asyncio.sleep(pause)
        except websockets.ConnectionClosed:
            pass

    def acked(self):
        """{id: content} of this sender's messages it got back."""
        out = {}
        for e in self.client.messages():
            cid = e.get("client_id")
            if e.get("sender_id") == self.user.id and cid in self.sent:
                assert e["content"] == self.sent[cid], (cid, e)
                out[e["id"]] = e["content"]
        return out

    def unacked(self):
        echoed = {e.get("client_id") for e in self.client.messages()
                  if e.get("sender_id") == self.user.id}
        return {cid: c for cid, c in self.sent.items() if cid not in echoed}


async def read_all(client, stop_after=None):
    """Reads a connection until it closes (or until stop_after, an
    asyncio.Event, is set and nothing more arrives for a moment), keeping
    its events. Returns the close code or None."""
    while True:
        try:
            await client.recv_json(timeout=0.2)
        except asyncio.TimeoutError:
            if stop_after is not None and stop_after.is_set():
                return None
        except websockets.ConnectionClosed as exc:
            rcvd = getattr(exc, "rcvd", None)
            client.close_code = rcvd.code if rcvd is not None else None
            return client.close_code


def stored_messages(db, ids=None):
    """{id: row} for the given ids (all messages when None)."""
    sql = "SELECT id, room_id, sender_id, content, client_id FROM messages"
    if ids is not None:
        ids = sorted(set(ids))
        if not ids:
            return {}
        sql += f" WHERE id >= {ids[0]} AND id <= {ids[-1]}"
    return {r["id"]: r for r in db.query(sql)}


def assert_all_stored(db, acked, what="acknowledged"):
    """Every (id -> content) of acked is in the database with exactly that
    content."""
    rows = stored_messages(db, acked.keys())
    lost = {i: c for i, c in acked.items() if i not in rows}
    assert not lost, f"{len(lost)} {what} messages are not in the database, e.g. " \
        f"{sorted(lost.items())[:3]}"
    wrong = {i: (c, rows[i]["content"]) for i, c in acked.items() if rows[i]["content"] != c}
    assert not wrong, f"{len(wrong)} {what} messages stored with other content: " \
        f"{sorted(wrong.items())[:3]}"


def assert_received_stored(db, clients):
    """Nothing any connection received as a message is missing from the
    database: whatever was broadcast was stored, with that id and content."""
    got = {}
    for c in clients:
        for e in c.messages():
            prev = got.setdefault(e["id"], e)
            assert prev["content"] == e["content"], ("two contents for one id", prev, e)
    assert got, "no connection received anything"
    rows = stored_messages(db, got.keys())
    phantom = {i: e for i, e in got.items()
               if i not in rows or rows[i]["content"] != e["content"]
               or rows[i]["room_id"] != e["room_id"]}
    assert not phantom, f"{len(phantom)} broadcast messages are not in the database, e.g. " \
        f"{list(phantom.values())[:3]}"
    for c in clients:
        ids = [e["id"] for e in c.messages()]
        assert ids == sorted(ids) and len(ids) == len(set(ids)), f"{c.name}: out of order"
