"""chatd-bench, the operators' load generator, against the real server: its
self-test, a short load run whose loss check must come out clean, the open
loop rate, the idle-connection mode, and its refusals."""

import json
import os
import subprocess

import pytest

from api import post_message, register
from harness import REPO

RUN_TIMEOUT_S = 90


def bench_bin():
    path = os.environ.get("CHATD_BENCH_BIN") or str(REPO / "build" / "chatd-bench")
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not built (make build/chatd-bench)")
    return path


def bench(*args, check=True):
    proc = subprocess.run(
        [bench_bin(), *map(str, args)], capture_output=True, text=True, timeout=RUN_TIMEOUT_S
    )
    if check:
        assert proc.returncode == 0, f"chatd-bench failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def bench_json(server, *args):
    proc = bench("--port", server.port, "--json", "--quiet", *args)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def assert_nothing_lost(r):
    assert r["stored_read_back"] is True
    assert r["stored"] == r["total_sent"] > 0
    for key in ("missing", "unexpected", "duplicates_or_reordered", "incomplete_subs", "unacked",
                "ack_gaps", "error_events", "closed_by_server", "protocol_errors",
                "connect_failures", "echo_mismatch_rooms", "stalls"):
        assert r[key] == 0, f"{key} = {r[key]} in {r}"
    assert r["total_deliveries"] == r["expected_deliveries"] > 0


def test_selftest():
    proc = bench("--selftest")
    assert "selftest: ok" in proc.stdout


def test_help_lists_every_option():
    text = bench("--help").stdout
    for option in ("--host", "--port", "--subs", "--pubs", "--rooms", "--room-ids", "--users",
                   "--token", "--rate", "--window", "--size", "--warmup", "--duration",
                   "--drain", "--connect-timeout", "--stall-timeout", "--connect-rate",
                   "--max-pending", "--source-ips", "--pid", "--hold", "--json", "--quiet",
                   "--allow-remote", "--no-verify-api", "--selftest", "--help"):
        assert option in text, option


def test_refuses_a_remote_target_without_allow_remote():
    proc = bench("--host", "192.0.2.1", "--subs", "1", check=False)
    assert proc.returncode == 2
    assert "--allow-remote" in proc.stderr


def test_max_rate_run_delivers_every_stored_message(server):
    r = bench_json(server, "--subs", 20, "--pubs", 2, "--rooms", 2, "--users", 3, "--window", 16,
                   "--warmup", 0.3, "--duration", 1, "--drain", 10)
    assert_nothing_lost(r)
    assert r["conns"] == 22 and r["users"] == 3
    assert r["deliveries_per_s"] > 0 and r["latency_samples"] > 0
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["p999_us"] <= r["max_us"] * 1.02
    # The server runs on this host: found by its port.
    assert r["server_pid"] > 0 and r["server_rss_end_kb"] > 0


def test_open_loop_rate_is_kept(server):
    r = bench_json(server, "--subs", 5, "--pubs", 1, "--rate", 200, "--warmup", 0.2,
                   "--duration", 2, "--drain", 10)
    assert_nothing_lost(r)
    assert 170 <= r["sent_per_s"] <= 230
    assert r["send_drops"] == 0


def test_existing_room_with_other_messages(server):
    """Messages that are not the run's own (posted by someone else) are
    neither deliveries nor losses."""
    user = register(server)
    for i in range(3):
        post_message(server, user, 2, f"before the run {i}")
    r = bench_json(server, "--room-ids", 2, "--subs", 4, "--pubs", 1, "--users", 2,
                   "--window", 4, "--warmup", 0.2, "--duration", 0.5, "--drain", 10)
    assert_nothing_lost(r)
    assert r["rooms"] == 1


def test_one_shared_token(server):
    user = register(server)
    r = bench_json(server, "--token", user.token, "--subs", 6, "--pubs", 2, "--window", 8,
                   "--warmup", 0.2, "--duration", 0.5, "--drain", 10)
    assert_nothing_lost(r)
    assert r["users"] == 1


def test_hold_reports_server_memory(server):
    r = bench_json(server, "--hold", "--subs", 200, "--duration", 0.5)
    assert r["mode"] == "hold"
    assert r["conns"] == 200 and r["connect_failures"] == 0 and r["closed_by_server"] == 0
    assert r["server_rss_before_kb"] > 0 and r["server_rss_after_kb"] > 0


def test_login_storm_during_load(server):
    r = bench_json(server, "--subs", 5, "--pubs", 1, "--rate", 50, "--warmup", 0.2,
                   "--duration", 1.5, "--drain", 10, "--login-storm", 4, "--login-at", 0.2)
    assert_nothing_lost(r)
    assert r["login_storm"] == 4 and r["logins_ok"] == 4 and r["logins_failed"] == 0
    assert r["login_statuses"] == {"200": 4}
    assert 0 < r["login_p50_us"] <= r["login_max_us"]


def test_login_storm_needs_own_users():
    proc = bench("--token", "x", "--login-storm", 2, check=False)
    assert proc.returncode == 2 and "--login-storm" in proc.stderr
