"""API helpers: users, rooms, messages, response shape checks, JWT
crafting (no PyJWT needed), and a concurrent poster."""

import base64
import datetime
import hashlib
import hmac
import json
import threading
import time
import uuid

import requests

from harness import HTTP_TIMEOUT_S, RFC3339_MS, TEST_JWT_SECRET, unique, unique_email


def is_rfc3339_ms(value):
    return isinstance(value, str) and bool(RFC3339_MS.match(value))


def parse_rfc3339_ms(value):
    return datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc
    )


# --------------------------------------------------------------------------
# JWT crafting (no PyJWT needed)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def make_jwt(claims, secret=TEST_JWT_SECRET, alg="HS256", header=None):
    header = header if header is not None else {"alg": alg, "typ": "JWT"}
    signing_input = (
        b64url(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + b64url(json.dumps(claims, separators=(",", ":")).encode())
    )
    if alg == "none":
        return signing_input + "."
    key = secret.encode() if isinstance(secret, str) else secret
    sig = hmac.new(key, signing_input.encode(), _HASHES[alg]).digest()
    return signing_input + "." + b64url(sig)


def decode_jwt(token):
    head, payload, _sig = token.split(".")
    return json.loads(b64url_decode(head)), json.loads(b64url_decode(payload))


def claims_for(user, lifetime_s=3600, **overrides):
    now = int(time.time())
    claims = {
        "sub": str(user.id),
        "email": user.email,
        "username": user.username,
        "iat": now,
        "exp": now + lifetime_s,
    }
    claims.update(overrides)
    return claims


# --------------------------------------------------------------------------
# API helpers


class User:
    def __init__(self, email, password, username, id_, token):
        self.email = email
        self.password = password
        self.username = username
        self.id = id_
        self.token = token

    def __repr__(self):
        return f"User({self.id}, {self.email})"


def register(server, email=None, password=None, username=None):
    email = email or unique_email()
    password = password or "pw-" + uuid.uuid4().hex[:12]
    username = username or unique("user")
    r = server.post(
        "/auth/register", {"email": email, "password": password, "username": username}
    )
    assert r.status_code == 201, f"register: {r.status_code} {r.text}"
    body = r.json()
    return User(body["user"]["email"], password, username, body["user"]["id"], body["token"])


def login(server, email, password):
    return server.post("/auth/login", {"email": email, "password": password})


def create_room(server, user, name=None, is_private=False):
    r = server.post(
        "/rooms", {"name": name or unique("room"), "is_private": is_private}, token=user.token
    )
    assert r.status_code == 201, f"create room: {r.status_code} {r.text}"
    return r.json()


def post_message(server, user, room_id, content, client_id=None, expect=201):
    body = {"content": content}
    if client_id is not None:
        body["client_id"] = client_id
    r = server.post(f"/rooms/{room_id}/messages", body, token=user.token)
    assert r.status_code == expect, f"post message: {r.status_code} {r.text}"
    return r.json()


def assert_error(resp, status, code=None, mentions=None):
    """The response is API.md's error shape with this status (and code, and a
    message naming the field when mentions is given)."""
    assert resp.status_code == status, f"expected {status}, got {resp.status_code}: {resp.text}"
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/json"), f"error content type {ctype!r}"
    body = resp.json()
    assert isinstance(body, dict), body
    assert isinstance(body.get("error"), str) and body["error"], body
    assert isinstance(body.get("code"), str) and body["code"], body
    if code is not None:
        if isinstance(code, (tuple, list, set)):
            assert body["code"] in code, body
        else:
            assert body["code"] == code, body
    if mentions is not None:
        assert mentions.lower() in body["error"].lower(), (
            f"error message should name {mentions!r}: {body}"
        )
    assert resp.headers.get("X-Request-Id"), "error response without X-Request-Id"
    return body


def assert_room_shape(room):
    for key in (
        "id",
        "name",
        "created_at",
        "is_private",
        "member_count",
        "unread_count",
        "last_read_message_id",
    ):
        assert key in room, f"room without {key}: {room}"
    assert isinstance(room["id"], int) and room["id"] > 0
    assert isinstance(room["name"], str)
    assert is_rfc3339_ms(room["created_at"]), room
    assert isinstance(room["is_private"], bool), room
    assert isinstance(room["member_count"], int) and room["member_count"] >= 0, room
    assert isinstance(room["unread_count"], int) and room["unread_count"] >= 0, room
    # null until the caller has a read marker in the room
    lr = room["last_read_message_id"]
    assert lr is None or (isinstance(lr, int) and lr > 0), room


def assert_message_shape(msg, user=None, room_id=None, content=None):
    for key in ("id", "sender_id", "room_id", "content", "created_at", "sender", "username"):
        assert key in msg, f"message without {key}: {msg}"
    assert "edited_at" in msg and msg["edited_at"] is None, msg
    assert isinstance(msg["id"], int) and msg["id"] > 0, msg
    assert is_rfc3339_ms(msg["created_at"]), msg
    if user is not None:
        assert msg["sender_id"] == user.id, msg
        assert msg["sender"] == user.email, msg
        assert msg["username"] == user.username, msg
    if room_id is not None:
        assert msg["room_id"] == room_id, msg
    if content is not None:
        assert msg["content"] == content, msg


class Collector(threading.Thread):
    """Posts messages in a loop on its own keep-alive session, recording
    every acknowledged (201) message until stopped or the count is done."""

    def __init__(self, server, user, room_id, count, tag, stop_event=None):
        super().__init__(daemon=True)
        self.server = server
        self.url = server.url
        self.user = user
        self.room_id = room_id
        self.count = count
        self.tag = tag
        self.stop_event = stop_event
        self.acked = []  # (id, content)
        self.statuses = []
        self.errors = 0

    def run(self):
        s = requests.Session()
        hdrs = {
            "Authorization": f"Bearer {self.user.token}",
            "Content-Type": "application/json",
        }
        try:
            for i in range(self.count):
                if self.stop_event is not None and self.stop_event.is_set():
                    break
                content = f"{self.tag} #{i} é✓ {uuid.uuid4().hex}"
                try:
                    r = s.post(
                        f"{self.url}/rooms/{self.room_id}/messages",
                        data=json.dumps({"content": content}).encode(),
                        headers=hdrs,
                        timeout=HTTP_TIMEOUT_S,
                    )
                except requests.RequestException:
                    self.errors += 1
                    break
                self.statuses.append(r.status_code)
                if r.status_code == 201:
                    body = r.json()
                    self.acked.append((body["id"], content))
                else:
                    break
        finally:
            s.close()
