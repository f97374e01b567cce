"""Deep, huge and malformed JSON bodies and socket events: a clear 400 (or an
error event), nothing half-stored, and the server keeps serving."""

import pytest

from api import assert_error
from wsclient import connect, run


def message_count(server):
    return server.db.query("SELECT COUNT(*) AS n FROM messages")[0]["n"]


def raw_post(server, path, data, token):
    return server.post(path, token=token, data=data,
                       headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        b'{"content":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"content":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}",
        b'{"content":"' + b"a" * 900_000 + b'"}',
        b'{"content":"\xff\xfe"}',
        b'{"content":"a\\u0000b"}',
        b'{"content":"\\ud800"}',
        b'{"content":"ok"}garbage',
    ],
    ids=["deep-arrays", "deep-objects", "huge-string", "invalid-utf8",
         "nul-escape", "lone-surrogate", "trailing-garbage"],
)
def test_hostile_body_is_refused_cleanly(server, users, body):
    before = message_count(server)
    r = raw_post(server, "/rooms/1/messages", body, users[0].token)
    assert r.status_code == 400, r.text
    assert r.json()["code"] in ("invalid_json", "validation_failed"), r.text
    assert message_count(server) == before, "a refused body must store nothing"
    assert server.get("/health").status_code == 200


def test_hostile_socket_events_get_errors_and_the_connection_stays(server, users):
    # Deeper than the JSON parser's limit (2048) yet under MAX_MESSAGE_BYTES.
    deep = '{"type":"message","content":' + "[" * 5_000 + "]" * 5_000 + "}"
    nul = '{"type":"message","content":"a\\u0000b"}'

    async def scenario():
        client = await connect(server, 1, users[0].token)
        try:
            before = message_count(server)
            for text in (deep, nul, '{"type":"message","content":"\\udc00"}'):
                await client.send_raw(text)
                error = await client.expect("error")
                assert error["code"] in ("invalid_json", "validation_failed"), error
            assert message_count(server) == before
            await client.send_message("still here")
            echo = await client.expect("message", pred=lambda e: e["content"] == "still here")
            assert echo["sender_id"] == users[0].id
        finally:
            await client.ws.close()

    run(scenario())
