"""The binary itself: --help, --version, migrate, configuration errors,
.env, the generated JWT secret, signals."""

import os
import re
import signal
import stat
import subprocess

import pytest

from api import register
from harness import REPO

# DESIGN.md's Configuration table: name -> default as printed (None: the
# default is computed, so only the name must be listed).
SETTINGS = {
    "PORT": "3000",
    "HOST": "0.0.0.0",
    "DATABASE_URL": "sqlite:./data/chat.db",
    "JWT_SECRET": None,
    "JWT_EXPIRATION_HOURS": "24",
    "CORS_ORIGINS": "*",
    "LOG_LEVEL": "info",
    "LOG_FORMAT": "json",
    "THREADS": None,
    "REDIS_URL": None,
    "DATA_DIR": "data",
    "MAX_HEADER_BYTES": "16384",
    "MAX_BODY_BYTES": "1048576",
    "MAX_MESSAGE_BYTES": "16384",
    "MAX_UPLOAD_BYTES": "10485760",
    "MAX_CONNECTIONS": "100000",
    "MAX_CONNECTIONS_PER_IP": "0",
    "HEADER_TIMEOUT_MS": "10000",
    "IDLE_TIMEOUT_MS": "60000",
    "WS_PING_INTERVAL_MS": "30000",
    "WS_PING_TIMEOUT_MS": "60000",
    "WS_OUTBOUND_LIMIT_BYTES": "4194304",
    "RATE_LIMIT_AUTH": "30",
    "RATE_LIMIT_MESSAGES": "20",
    "SHUTDOWN_TIMEOUT_MS": "10000",
    "ARGON2_MEMORY_KIB": "19456",
    "ARGON2_ITERATIONS": "2",
}


@pytest.fixture
def idle(make_server):
    """A configured but not started server, for running the binary."""
    return make_server("sqlite", start=False)


def test_help_lists_every_setting_with_default(idle):
    res = idle.run_command(["--help"], timeout=10)
    assert res.returncode == 0, res.stderr
    text = res.stdout.decode()
    lines = text.splitlines()
    for name, default in SETTINGS.items():
        hits = [ln for ln in lines if re.search(rf"(^|[^A-Z_]){name}([^A-Z_]|$)", ln)]
        assert hits, f"--help does not list {name}"
        if default is not None:
            assert any(default in ln for ln in hits), (
                f"--help does not show {name}'s default {default!r}: {hits}"
            )


def test_version(idle):
    res = idle.run_command(["--version"], timeout=10)
    assert res.returncode == 0, res.stderr
    version = (REPO / "VERSION").read_text().strip()
    assert version in res.stdout.decode()


def test_unknown_argument_fails(idle):
    res = idle.run_command(["--no-such-flag"], timeout=10)
    assert res.returncode != 0


def test_migrate(backend, make_server):
    srv = make_server(backend, start=False)
    res = srv.run_command(["migrate"], timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    assert srv.db.table_exists("schema_migrations")
    applied = srv.db.query("SELECT * FROM schema_migrations")
    assert len(applied) >= 1
    rooms = srv.db.query("SELECT id, name FROM rooms ORDER BY id")
    assert [(r["id"], r["name"]) for r in rooms] == [(1, "General"), (2, "Random"),
                                                    (3, "Tech Talk")]
    # idempotent
    res = srv.run_command(["migrate"], timeout=30)
    assert res.returncode == 0, res.stderr.decode()
    assert len(srv.db.query("SELECT * FROM schema_migrations")) == len(applied)
    assert len(srv.db.query("SELECT id FROM rooms")) == 3
    # and the server starts on the migrated database
    srv.start()
    user = register(srv)
    assert srv.get("/rooms", token=user.token).status_code == 200


@pytest.mark.parametrize(
    "name,value",
    [
        ("PORT", "abc"),
        ("PORT", "70000"),
        ("PORT", "-1"),
        ("JWT_SECRET", "short"),
        ("JWT_SECRET", "x" * 31),
        ("JWT_EXPIRATION_HOURS", "abc"),
        ("MAX_BODY_BYTES", "abc"),
        ("MAX_BODY_BYTES", "-5"),
        ("MAX_HEADER_BYTES", "12kb"),
        ("HEADER_TIMEOUT_MS", "soon"),
        ("MAX_CONNECTIONS", "many"),
        ("THREADS", "abc"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("ARGON2_MEMORY_KIB", "1024"),
        ("ARGON2_ITERATIONS", "1"),
        ("DATABASE_URL", "mysql://localhost/chat"),
    ],
)
def test_bad_setting_stops_startup(idle, name, value):
    try:
        res = idle.run_command([], extra_env={name: value}, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}={value!r} was accepted (the server kept running)")
    assert res.returncode != 0
    err = [ln for ln in res.stderr.decode(errors="replace").splitlines() if ln.strip()]
    assert len(err) == 1, f"expected one line on stderr, got: {err}"
    assert name in err[0], err[0]


def test_secret_of_32_bytes_accepted(make_server):
    srv = make_server("sqlite", env={"JWT_SECRET": "k" * 32})
    user = register(srv)
    assert srv.get("/me", token=user.token).status_code == 200


def test_env_file_is_read_and_environment_wins(make_server):
    srv = make_server("sqlite", start=False)
    (srv.workdir / ".env").write_text(
        "# settings for this test\n"
        "\n"
        "CORS_ORIGINS=http://envfile.example\n"
        "PORT=abc\n"  # the real environment sets PORT: it must win
    )
    srv.start()
    r = srv.get("/health", headers={"Origin": "http://envfile.example"})
    assert r.headers.get("Access-Control-Allow-Origin") == "http://envfile.example"
    r = srv.get("/health", headers={"Origin": "http://other.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


def test_bad_value_in_env_file(idle):
    (idle.workdir / ".env").write_text("MAX_BODY_BYTES=lots\n")
    try:
        res = idle.run_command([], timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("a bad value in .env was accepted")
    assert res.returncode != 0
    err = [ln for ln in res.stderr.decode(errors="replace").splitlines() if ln.strip()]
    assert len(err) == 1 and "MAX_BODY_BYTES" in err[0], err


def test_generated_jwt_secret(make_server):
    srv = make_server("sqlite", env={"JWT_SECRET": None})
    path = srv.data_dir / "jwt_secret"
    assert path.exists(), "DATA_DIR/jwt_secret was not created"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600, oct(mode)
    secret = path.read_bytes()
    assert len(secret.strip()) >= 32
    warnings = [rec for rec in srv.log_records()
                if rec.get("level") in ("warn", "warning") and "jwt" in str(rec).lower()]
    assert warnings, f"no warning about the generated secret:\n{srv.log_tail()}"

    user = register(srv)
    srv.restart()
    assert path.read_bytes() == secret
    r = srv.get("/me", token=user.token)
    assert r.status_code == 200, r.text
    assert r.json()["id"] == user.id


def test_data_dir_created_when_missing(make_server):
    srv = make_server("sqlite", start=False)
    target = srv.workdir / "fresh"
    srv.env["DATA_DIR"] = str(target)
    srv.env.pop("JWT_SECRET")
    srv.data_dir = target
    srv.start()
    assert (target / "jwt_secret").exists()


def test_port_in_use_fails(make_server):
    first = make_server("sqlite")
    second = make_server("sqlite", start=False)
    try:
        res = second.run_command([], extra_env={"PORT": str(first.port)}, timeout=15)
    except subprocess.TimeoutExpired:
        pytest.fail("a second server started on a port that is in use")
    assert res.returncode != 0
    assert first.get("/health").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_graceful_exit(make_server, sig):
    srv = make_server("sqlite")
    user = register(srv)
    assert srv.get("/me", token=user.token).status_code == 200
    srv.signal(sig)
    rc = srv.wait_exit(15)
    assert rc == 0, f"exit code {rc}; log:\n{srv.log_tail()}"


def test_sqlite_file_in_wal_mode(make_server):
    srv = make_server("sqlite")
    register(srv)
    rows = srv.db.query("PRAGMA journal_mode")
    assert rows[0]["journal_mode"] == "wal"


def test_idle_connections_do_not_delay_shutdown(make_server):
    from rawhttp import RawReader, connect, raw_request

    srv = make_server("sqlite", env={"SHUTDOWN_TIMEOUT_MS": "20000"})
    socks = []
    try:
        for _ in range(3):
            s = connect(srv)
            s.sendall(raw_request("GET", "/health"))
            assert RawReader(s).read_response().status == 200
            socks.append(s)
        srv.signal(signal.SIGTERM)
        # nothing is in flight: no reason to wait for SHUTDOWN_TIMEOUT_MS
        rc = srv.wait_exit(5)
        assert rc == 0, f"exit code {rc} (None: still running); log:\n{srv.log_tail()}"
    finally:
        for s in socks:
            s.close()


def test_shutdown_bounded_by_timeout_with_slow_client(make_server):
    from rawhttp import connect

    srv = make_server("sqlite", env={"SHUTDOWN_TIMEOUT_MS": "2000", "HEADER_TIMEOUT_MS": "30000"})
    half = connect(srv)
    try:
        half.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # head never finished
        srv.wait_log(lambda rec: rec.get("msg") == "request", 5)  # the readiness probe's line
        srv.signal(signal.SIGTERM)
        rc = srv.wait_exit(2 + 5)
        assert rc == 0, f"exit code {rc} (None: still running); log:\n{srv.log_tail()}"
    finally:
        half.close()
