"""Registration, login, tokens, /me and /auth/refresh."""

import json
import re
import time

import pytest
import requests

import api
import harness
from api import assert_error, claims_for, decode_jwt, is_rfc3339_ms, login, make_jwt, register
from harness import TEST_JWT_SECRET, unique, unique_email


def reg(server, **fields):
    body = {
        "email": unique_email(),
        "password": "password123",
        "username": unique("n"),
    }
    body.update(fields)
    for k in [k for k, v in body.items() if v is _DROP]:
        del body[k]
    return server.post("/auth/register", body)


_DROP = object()


def email_of_length(n):
    """A syntactically valid address of exactly n bytes (local part 64,
    domain labels of at most 63)."""
    local = "a" * 64
    want = n - len(local) - 1
    domain = "com"
    while len(domain) < want:
        need = want - len(domain) - 1  # room left for a label before the dot
        take = min(63, need)
        if need - take == 1:  # never leave room for a lone dot
            take -= 1
        domain = "b" * take + "." + domain
    addr = f"{local}@{domain}"
    assert len(addr) == n, (len(addr), n)
    return addr


# ---------------------------------------------------------------- register


def test_register_shape_and_token_claims(server):
    email = unique_email("shape")
    r = reg(server, email=email, username="shape.user-1_x")
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    user = body["user"]
    assert set(user) >= {"id", "email", "username", "created_at"}
    assert not any("password" in k for k in user)
    assert user["email"] == email
    assert user["username"] == "shape.user-1_x"
    assert is_rfc3339_ms(user["created_at"])

    header, claims = decode_jwt(body["token"])
    assert header["alg"] == "HS256"
    assert claims["sub"] == str(user["id"])
    assert claims["email"] == email
    assert claims["username"] == "shape.user-1_x"
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert abs(claims["iat"] - time.time()) < 120


def test_email_lowercased_and_unique_case_insensitively(server):
    mixed = f"Mixed.{unique()}@Example.COM"
    r = reg(server, email=mixed)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["email"] == mixed.lower()

    rows = server.db.query(
        f"SELECT email FROM users WHERE lower(email) = '{mixed.lower()}'"
    )
    assert [row["email"] for row in rows] == [mixed.lower()]

    assert_error(reg(server, email=mixed.lower()), 409, "conflict")
    assert_error(reg(server, email=mixed.upper()), 409, "conflict")

    # login works whatever the case
    r = login(server, mixed.upper(), "password123")
    assert r.status_code == 200, r.text
    assert r.json()["user"]["email"] == mixed.lower()


def test_stored_password_is_argon2id(server):
    user = register(server, password="correct horse battery")
    rows = server.db.query(f"SELECT password_hash FROM users WHERE id = {int(user.id)}")
    assert len(rows) == 1
    phc = rows[0]["password_hash"]
    assert phc.startswith("$argon2id$"), phc
    assert "correct horse battery" not in phc
    m = re.search(r"\$m=(\d+),t=(\d+),p=(\d+)\$", phc)
    assert m, phc
    assert int(m.group(1)) >= 19456 and int(m.group(2)) >= 2, phc


@pytest.mark.parametrize(
    "field,value",
    [
        ("email", ""),
        ("email", "no-at-sign"),
        ("email", "a@"),
        ("email", "@example.com"),
        ("email", "two@@example.com"),
        ("email", "sp ace@example.com"),
        ("password", "1234567"),  # 7
        ("password", "é" * 7),  # 7 characters, 14 bytes
        ("password", "p" * 129),
        ("password", ""),
        ("username", ""),
        ("username", "x" * 33),
        ("username", "with space"),
        ("username", "slash/no"),
        ("username", "at@no"),
        ("username", "emoji🙂"),
    ],
)
def test_register_validation_names_the_field(server, field, value):
    assert_error(reg(server, **{field: value}), 400, "validation_failed", mentions=field)


def test_register_email_length_limit(server):
    ok = email_of_length(254)
    r = reg(server, email=ok)
    assert r.status_code == 201, r.text
    assert_error(reg(server, email=email_of_length(255)), 400, "validation_failed", "email")


@pytest.mark.parametrize(
    "password",
    ["p" * 8, "p" * 128, "é" * 8, "é" * 128],
    ids=["8-ascii", "128-ascii", "8-chars-16-bytes", "128-chars-256-bytes"],
)
def test_register_password_length_bounds_accepted(server, password):
    r = reg(server, password=password)
    assert r.status_code == 201, r.text
    user = r.json()["user"]
    assert login(server, user["email"], password).status_code == 200


def test_register_username_bounds_accepted(server):
    for name in ("x", "y" * 32, "A.b_c-9"):
        r = reg(server, username=name)
        assert r.status_code == 201, r.text
        assert r.json()["user"]["username"] == name


@pytest.mark.parametrize("field", ["email", "password", "username"])
def test_register_missing_field(server, field):
    assert_error(reg(server, **{field: _DROP}), 400, "validation_failed", mentions=field)


@pytest.mark.parametrize(
    "field,value",
    [("email", 123), ("password", 12345678), ("username", ["a"]), ("email", None),
     ("password", {"x": 1}), ("username", True)],
)
def test_register_wrong_types(server, field, value):
    assert_error(reg(server, **{field: value}), 400, "validation_failed", mentions=field)


@pytest.mark.parametrize(
    "raw",
    [b'{"email":', b"", b"not json", b'{"email":"a@b.c",}', b"{} trailing", b"\xff\xfe{}"],
    ids=["truncated", "empty", "text", "trailing-comma", "trailing-garbage", "bad-utf8"],
)
def test_register_invalid_json(server, raw):
    r = server.request(
        "POST", "/auth/register", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, "invalid_json")


@pytest.mark.parametrize("raw", [b"[]", b'"str"', b"42", b"null"])
def test_register_body_not_an_object(server, raw):
    r = server.request(
        "POST", "/auth/register", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(r, 400, ("invalid_json", "validation_failed"))


def test_register_same_email_concurrently(server):
    from concurrent.futures import ThreadPoolExecutor

    email = unique_email("race")
    body = json.dumps({"email": email, "password": "password123", "username": "racer"})

    def attempt(_):
        return requests.post(server.url + "/auth/register", data=body,
                                     headers={"Content-Type": "application/json"},
                                     timeout=harness.HTTP_TIMEOUT_S)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    statuses = sorted(r.status_code for r in results)
    assert statuses == [201] + [409] * 5, statuses
    for r in results:
        if r.status_code == 409:
            assert r.json()["code"] == "conflict"
    rows = server.db.query(f"SELECT id FROM users WHERE email = '{email}'")
    assert len(rows) == 1


def test_register_ignores_unknown_fields(server):
    r = reg(server, admin=True, id=1, extra={"nested": [1, 2]})
    assert r.status_code == 201, r.text
    assert "admin" not in r.json()["user"] and "extra" not in r.json()["user"]


# ------------------------------------------------------------------- login


def test_login_success_shape(server):
    user = register(server)
    r = login(server, user.email, user.password)
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"token", "user"}
    assert body["user"]["id"] == user.id
    assert body["user"]["email"] == user.email
    assert body["user"]["username"] == user.username
    assert is_rfc3339_ms(body["user"]["created_at"])
    r = server.get("/me", token=body["token"])
    assert r.status_code == 200 and r.json()["id"] == user.id


def test_login_unknown_email_and_wrong_password_are_identical(server):
    user = register(server)
    wrong = login(server, user.email, user.password + "x")
    unknown = login(server, unique_email("ghost"), user.password)
    b1 = assert_error(wrong, 401, "invalid_credentials")
    b2 = assert_error(unknown, 401, "invalid_credentials")
    assert b1 == b2
    assert wrong.content == unknown.content


def test_login_storm_does_not_block_the_loop(server):
    # Argon2 runs off the I/O loop: while a dozen logins are being hashed,
    # a /health request is answered before the last of them.
    import threading

    user = register(server)
    done = []
    lock = threading.Lock()

    def one():
        r = requests.post(server.url + "/auth/login",
                          data=json.dumps({"email": user.email, "password": user.password}),
                          headers={"Content-Type": "application/json"},
                          timeout=harness.HTTP_TIMEOUT_S)
        with lock:
            done.append(r.status_code)

    threads = [threading.Thread(target=one) for _ in range(12)]
    for t in threads:
        t.start()
    harness.wait_until(lambda: len(done) >= 1, 30, interval=0.001, what="a first login")
    r = requests.get(server.url + "/health", timeout=harness.HTTP_TIMEOUT_S)
    with lock:
        finished = len(done)
    for t in threads:
        t.join(30)
    assert r.status_code == 200
    assert done == [200] * 12
    assert finished < 12, "/health waited for every login to finish"


def test_login_validation(server):
    assert_error(server.post("/auth/login", {"email": "a@example.com"}), 400,
                 "validation_failed", "password")
    assert_error(server.post("/auth/login", {"password": "password123"}), 400,
                 "validation_failed", "email")
    assert_error(server.post("/auth/login", {"email": 5, "password": "password123"}), 400,
                 "validation_failed", "email")
    r = server.request("POST", "/auth/login", data=b"{nope",
                       headers={"Content-Type": "application/json"})
    assert_error(r, 400, "invalid_json")


# ------------------------------------------------------------- me, refresh


def test_me(server, users):
    alice = users[0]
    r = server.get("/me", token=alice.token)
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["id"] == alice.id
    assert me["email"] == alice.email
    assert me["username"] == alice.username
    assert is_rfc3339_ms(me["created_at"])
    assert not any("password" in k for k in me)


def test_refresh_gives_a_new_valid_token(server, users):
    alice = users[0]
    _, old = decode_jwt(alice.token)
    r = server.post("/auth/refresh", token=alice.token)
    assert r.status_code == 200, r.text
    body = r.json()
    token = body["token"]
    header, claims = decode_jwt(token)
    assert header["alg"] == "HS256"
    assert claims["sub"] == str(alice.id)
    assert claims["exp"] >= old["exp"]
    if "user" in body:
        assert body["user"]["id"] == alice.id
    r = server.get("/me", token=token)
    assert r.status_code == 200 and r.json()["id"] == alice.id


def test_refresh_requires_token(server):
    assert_error(server.post("/auth/refresh"), 401, "missing_token")


# ----------------------------------------------------------- bad tokens


def test_missing_token(server):
    assert_error(server.get("/me"), 401, "missing_token")
    assert_error(server.get("/rooms"), 401, "missing_token")
    assert_error(server.post("/rooms/1/messages", {"content": "x"}), 401, "missing_token")


@pytest.mark.parametrize(
    "authorization",
    ["Bearer garbage", "Bearer a.b.c", "Bearer ", "Bearer eyJhbGciOiJIUzI1NiJ9..",
     "Basic dXNlcjpwYXNz"],
)
def test_garbage_token(server, authorization):
    r = server.get("/me", headers={"Authorization": authorization})
    assert_error(r, 401, ("invalid_token", "missing_token"))


def test_crafted_token_with_the_right_secret_is_accepted(server, users):
    # Positive control for the negative cases below: the crafting is right.
    alice = users[0]
    r = server.get("/me", token=make_jwt(claims_for(alice)))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == alice.id


def test_token_signed_with_another_secret(server, users):
    token = make_jwt(claims_for(users[0]), secret="another-secret-another-secret-0123456789")
    assert_error(server.get("/me", token=token), 401, "invalid_token")


def test_token_alg_none(server, users):
    claims = claims_for(users[0])
    assert_error(server.get("/me", token=make_jwt(claims, alg="none")), 401, "invalid_token")
    # "none" with the right signature attached anyway
    good = make_jwt(claims)
    forged = make_jwt(claims, alg="none", header={"alg": "none", "typ": "JWT"})
    forged = forged + good.split(".")[2]
    assert_error(server.get("/me", token=forged), 401, "invalid_token")


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_token_other_hmac_algs_rejected(server, users, alg):
    token = make_jwt(claims_for(users[0]), secret=TEST_JWT_SECRET, alg=alg)
    assert_error(server.get("/me", token=token), 401, "invalid_token")


def test_token_tampered_payload(server, users):
    alice, bob = users[0], users[1]
    good = make_jwt(claims_for(alice))
    head, _payload, sig = good.split(".")
    other = api.b64url(json.dumps(claims_for(bob)).encode())
    assert_error(server.get("/me", token=f"{head}.{other}.{sig}"), 401, "invalid_token")


def test_token_expired(server, users):
    token = make_jwt(claims_for(users[0], lifetime_s=-10, iat=int(time.time()) - 3600))
    assert_error(server.get("/me", token=token), 401, "token_expired")


@pytest.mark.parametrize("drop", ["sub", "exp"])
def test_token_missing_claim(server, users, drop):
    claims = claims_for(users[0])
    del claims[drop]
    assert_error(server.get("/me", token=make_jwt(claims)), 401, "invalid_token")


def test_token_of_unknown_user(server, users):
    token = make_jwt(claims_for(users[0], sub="987654321"))
    assert_error(server.get("/me", token=token), 401, "invalid_token")


def test_token_of_deleted_user(server):
    victim = register(server)
    assert server.get("/me", token=victim.token).status_code == 200
    server.db.execute(f"DELETE FROM users WHERE id = {int(victim.id)}")
    assert_error(server.get("/me", token=victim.token), 401, "invalid_token")
    assert_error(server.get("/rooms", token=victim.token), 401, "invalid_token")
    assert_error(server.post("/auth/refresh", token=victim.token), 401, "invalid_token")


def test_expiration_hours_setting(make_server):
    srv = make_server("sqlite", env={"JWT_EXPIRATION_HOURS": "2"})
    user = register(srv)
    _, claims = decode_jwt(user.token)
    assert claims["exp"] - claims["iat"] == 2 * 3600

