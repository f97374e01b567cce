"""What the fuzz targets found (fuzz/README.md), replayed against the real
binary. SQLite only: none of it depends on the storage backend."""

import json

import pytest
import requests

from harness import HTTP_TIMEOUT_S


@pytest.fixture(scope="module")
def server(module_servers):
    return module_servers("sqlite")


# http_request, found_invalid_utf8_in_error: jansson's error text quotes the
# token it stopped in, cut after the first byte of the character that broke
# an escape; the 400 carried that byte as it was, so its body was not UTF-8
# and not JSON.
@pytest.mark.parametrize(
    "body",
    [
        b'{"content": "h\\u0\xc6\x9alo"}',  # the input found (U+019A after "\u0")
        b'{"a":"\\u0\xe2\x82\xac"}',  # a three-byte character
        b'{"a":"\\u0\xf0\x9f\x98\x80"}',  # a four-byte character
        b'{"a":"\\u12\xc3\xa9"}',
        b'{"h":"h\\u0\xc6',  # a lone lead byte: jansson names it instead
    ],
)
def test_invalid_json_error_is_valid_json(server, body):
    r = requests.post(
        server.url + "/auth/register",
        data=body,
        headers={"Content-Type": "application/json"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert r.status_code == 400
    doc = json.loads(r.content.decode("utf-8"))  # strict: invalid UTF-8 raises
    assert doc["code"] == "invalid_json"
    assert doc["error"].startswith("invalid JSON body")
