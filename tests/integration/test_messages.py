"""Posting messages (validation, exact storage, idempotency) and history
pagination."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from api import assert_error, assert_message_shape, create_room, post_message, register
from harness import HTTP_TIMEOUT_S


def history(server, user, room_id, **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    r = server.get(f"/rooms/{room_id}/messages" + (f"?{query}" if query else ""),
                   token=user.token)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"messages", "has_more"}, body
    assert isinstance(body["has_more"], bool)
    ids = [m["id"] for m in body["messages"]]
    assert ids == sorted(ids), "messages must be ascending by id"
    return body


def stored_content(server, message_id):
    rows = server.db.query(f"SELECT content FROM messages WHERE id = {int(message_id)}")
    assert len(rows) == 1, rows
    return rows[0]["content"]


@pytest.fixture(scope="module")
def room(server, users):
    return create_room(server, users[0])


# ------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "body",
    [
        {"content": ""},
        {"content": "   "},
        {"content": " \n\t\r "},
        {"content": "a" * 4001},
        {"content": "é" * 4001},
        {"content": "🙂" * 4001},
        {"content": 42},
        {"content": None},
        {"content": ["x"]},
        {},
    ],
    ids=["empty", "spaces", "whitespace", "4001-ascii", "4001-e-acute", "4001-emoji",
         "number", "null", "array", "missing"],
)
def test_content_validation(server, users, room, body):
    r = server.post(f"/rooms/{room['id']}/messages", body, token=users[0].token)
    assert_error(r, 400, "validation_failed", mentions="content")


@pytest.mark.parametrize("content", ["a" * 4000, "é" * 4000, "🙂" * 4000, "x"],
                         ids=["4000-ascii", "4000-e-acute", "4000-emoji", "1"])
def test_content_length_bounds_accepted(server, users, room, content):
    msg = post_message(server, users[0], room["id"], content)
    assert msg["content"] == content
    assert stored_content(server, msg["id"]) == content


def test_content_as_escaped_json_surrogates(server, users, room):
    # Non-BMP characters sent as \ud83d\ude42 escapes count as one character each.
    raw = json.dumps({"content": "🙂" * 4000}, ensure_ascii=True).encode()
    r = server.request("POST", f"/rooms/{room['id']}/messages", token=users[0].token,
                       data=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["content"] == "🙂" * 4000


def test_content_invalid_utf8(server, users, room):
    raw = b'{"content": "bad \xc3\x28 bytes"}'
    r = server.request("POST", f"/rooms/{room['id']}/messages", token=users[0].token,
                       data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("raw", [b'{"content": "a\\u0000b"}', b'{"content": "\\u0000"}'],
                         ids=["embedded", "only"])
def test_content_with_nul_rejected(server, users, room, raw):
    # PostgreSQL text cannot hold NUL; both backends refuse it the same way.
    r = server.request("POST", f"/rooms/{room['id']}/messages", token=users[0].token,
                       data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, ("invalid_json", "validation_failed"))


def test_post_invalid_json(server, users, room):
    r = server.request("POST", f"/rooms/{room['id']}/messages", token=users[0].token,
                       data=b'{"content": "x"', headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize(
    "content",
    [
        "  leading and trailing spaces  ",
        "\ttab\nnewline\r\nwindows\n",
        "héllo wörld — 世界 🎉👩‍👩‍👧",
        "'; DROP TABLE messages; --",
        "Robert'); DELETE FROM users WHERE ('1'='1",
        '{"type":"message","content":"nested"} \\ "quotes" \\u0041',
        "<script>alert(1)</script> &amp; %s %d %n",
        "\u200b zero width \ufeff bom",
    ],
)
def test_content_stored_exactly(server, users, room, content):
    msg = post_message(server, users[0], room["id"], content)
    assert_message_shape(msg, user=users[0], room_id=room["id"], content=content)
    assert stored_content(server, msg["id"]) == content
    page = history(server, users[0], room["id"], before=msg["id"] + 1, limit=1)
    assert page["messages"][0]["content"] == content


# -------------------------------------------------------------- client_id


def test_client_id_idempotency(server, users, room):
    alice, bob = users[0], users[1]
    rid = room["id"]
    r1 = server.post(f"/rooms/{rid}/messages", {"content": "once", "client_id": "cid-1"},
                     token=alice.token)
    assert r1.status_code == 201, r1.text
    first = r1.json()
    assert first["client_id"] == "cid-1"

    r2 = server.post(f"/rooms/{rid}/messages", {"content": "once", "client_id": "cid-1"},
                     token=alice.token)
    assert r2.status_code == 200, r2.text
    assert r2.json()["id"] == first["id"]
    assert r2.json()["content"] == "once"
    assert r2.json()["client_id"] == "cid-1"

    page = history(server, alice, rid, before=first["id"] + 1, limit=1)
    assert page["messages"][0]["client_id"] == "cid-1"

    # a repeat with other content still returns the stored message
    r3 = server.post(f"/rooms/{rid}/messages", {"content": "changed", "client_id": "cid-1"},
                     token=alice.token)
    assert r3.status_code == 200, r3.text
    assert r3.json()["id"] == first["id"] and r3.json()["content"] == "once"

    rows = server.db.query(
        f"SELECT id FROM messages WHERE client_id = 'cid-1' AND sender_id = {int(alice.id)}"
    )
    assert [row["id"] for row in rows] == [first["id"]]

    # client ids are per sender
    r4 = server.post(f"/rooms/{rid}/messages", {"content": "bob's", "client_id": "cid-1"},
                     token=bob.token)
    assert r4.status_code == 201, r4.text
    assert r4.json()["id"] != first["id"]


def test_client_id_concurrent_repeats_store_once(server, users, room):
    rid = room["id"]
    token = users[0].token
    url = f"{server.url}/rooms/{rid}/messages"

    def send(_):
        return requests.post(
            url,
            data=json.dumps({"content": "race", "client_id": "cid-race"}),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=HTTP_TIMEOUT_S,
        )

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] * 7 + [201], statuses
    assert len({r.json()["id"] for r in results}) == 1


def test_client_id_limits(server, users, room):
    rid = room["id"]
    t = users[0].token
    ok = "k" * 64
    r = server.post(f"/rooms/{rid}/messages", {"content": "x", "client_id": ok}, token=t)
    assert r.status_code == 201, r.text
    assert r.json()["client_id"] == ok
    r = server.post(f"/rooms/{rid}/messages", {"content": "x", "client_id": "k" * 65}, token=t)
    assert_error(r, 400, "validation_failed", "client_id")
    r = server.post(f"/rooms/{rid}/messages", {"content": "x", "client_id": 7}, token=t)
    assert_error(r, 400, "validation_failed", "client_id")


def test_unknown_fields_ignored(server, users, room):
    r = server.post(f"/rooms/{room['id']}/messages",
                    {"content": "extra", "sender_id": 999, "room_id": 999, "x": [1]},
                    token=users[0].token)
    assert r.status_code == 201, r.text
    assert_message_shape(r.json(), user=users[0], room_id=room["id"], content="extra")


def test_without_client_id_no_dedup(server, users, room):
    a = post_message(server, users[0], room["id"], "same")
    b = post_message(server, users[0], room["id"], "same")
    assert b["id"] > a["id"]
    assert a.get("client_id") is None


# --------------------------------------------------------------- membership


def test_first_post_in_public_room_makes_a_member(server, users):
    owner = users[0]
    newcomer = register(server)
    rid = create_room(server, owner)["id"]
    ids = [m["id"] for m in server.get(f"/rooms/{rid}/members", token=owner.token).json()]
    assert newcomer.id not in ids
    # reading does not join
    history(server, newcomer, rid)
    msg = post_message(server, newcomer, rid, "hi, I'm new")
    assert_message_shape(msg, user=newcomer, room_id=rid)
    ids = [m["id"] for m in server.get(f"/rooms/{rid}/members", token=owner.token).json()]
    assert newcomer.id in ids
    r = server.get(f"/rooms/{rid}", token=owner.token)
    assert r.json()["member_count"] == 2


# --------------------------------------------------------------- pagination


@pytest.fixture(scope="module")
def twelve(server, users):
    rid = create_room(server, users[1])["id"]
    ids = [post_message(server, users[1], rid, f"m{i}")["id"] for i in range(12)]
    assert ids == sorted(ids)
    return rid, ids


def test_newest_page(server, users, twelve):
    rid, ids = twelve
    page = history(server, users[0], rid, limit=5)
    assert [m["id"] for m in page["messages"]] == ids[-5:]
    assert page["has_more"] is True
    assert [m["content"] for m in page["messages"]] == [f"m{i}" for i in range(7, 12)]
    for m in page["messages"]:
        assert_message_shape(m, user=users[1], room_id=rid)

    page = history(server, users[0], rid)
    assert [m["id"] for m in page["messages"]] == ids
    assert page["has_more"] is False
    page = history(server, users[0], rid, limit=12)
    assert page["has_more"] is False
    page = history(server, users[0], rid, limit=11)
    assert page["has_more"] is True
    assert [m["id"] for m in page["messages"]] == ids[1:]


def test_walk_back_with_before(server, users, twelve):
    rid, ids = twelve
    seen = []
    page = history(server, users[0], rid, limit=5)
    seen = [m["id"] for m in page["messages"]] + seen
    while page["has_more"]:
        page = history(server, users[0], rid, before=seen[0], limit=5)
        assert page["messages"], "has_more promised more"
        seen = [m["id"] for m in page["messages"]] + seen
    assert seen == ids  # no gap, no duplicate
    assert len(history(server, users[0], rid, before=ids[2], limit=5)["messages"]) == 2
    assert history(server, users[0], rid, before=ids[0])["messages"] == []


def test_after_zero_starts_at_the_oldest(server, users, twelve):
    rid, ids = twelve
    page = history(server, users[0], rid, after=0, limit=5)
    assert [m["id"] for m in page["messages"]] == ids[:5]
    assert page["has_more"] is True


def test_walk_forward_with_after(server, users, twelve):
    rid, ids = twelve
    seen = [ids[0]]
    cursor = ids[0]
    while True:
        page = history(server, users[0], rid, after=cursor, limit=5)
        got = [m["id"] for m in page["messages"]]
        assert got, "empty page while walking forward"
        seen += got
        cursor = got[-1]
        if not page["has_more"]:
            break
    assert seen == ids
    page = history(server, users[0], rid, after=ids[1], limit=5)
    assert [m["id"] for m in page["messages"]] == ids[2:7]
    assert page["has_more"] is True
    page = history(server, users[0], rid, after=ids[-1])
    assert page["messages"] == [] and page["has_more"] is False


def test_default_limit_is_50(server, users):
    rid = create_room(server, users[2])["id"]
    token = users[2].token
    url = f"{server.url}/rooms/{rid}/messages"

    def send(i):
        r = requests.post(url, data=json.dumps({"content": f"bulk {i}"}),
                          headers={"Authorization": f"Bearer {token}",
                                   "Content-Type": "application/json"},
                          timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    with ThreadPoolExecutor(4) as pool:
        ids = sorted(pool.map(send, range(55)))
    page = history(server, users[2], rid)
    assert [m["id"] for m in page["messages"]] == ids[-50:]
    assert page["has_more"] is True
    page = history(server, users[2], rid, limit=200)
    assert [m["id"] for m in page["messages"]] == ids
    assert page["has_more"] is False


@pytest.mark.parametrize(
    "query,field",
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=-1", "limit"),
        ("limit=abc", "limit"),
        ("limit=", "limit"),
        ("before=abc", "before"),
        ("before=-5", "before"),
        ("after=1x", "after"),
        ("after=99999999999999999999999", "after"),
    ],
)
def test_bad_page_parameters(server, users, twelve, query, field):
    rid, _ = twelve
    r = server.get(f"/rooms/{rid}/messages?{query}", token=users[0].token)
    assert_error(r, 400, "validation_failed", mentions=field)


def test_limit_bounds_accepted(server, users, twelve):
    rid, ids = twelve
    assert len(history(server, users[0], rid, limit=1)["messages"]) == 1
    assert len(history(server, users[0], rid, limit=200)["messages"]) == 12
