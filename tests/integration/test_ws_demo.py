"""The clients users already have: scripts/demo_api.sh (curl) and
scripts/demo_ws.py (python3-websockets), run as users run them."""

import os
import queue
import re
import signal
import subprocess
import threading
import time

from api import create_room, post_message, register
from harness import REPO

DEMO_API = REPO / "scripts" / "demo_api.sh"
DEMO_WS = REPO / "scripts" / "demo_ws.py"
PYTHON = "/usr/bin/python3"


def script_env(**extra):
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TZ") if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Lines:
    """A process's stdout, line by line, read with deadlines."""

    def __init__(self, proc):
        self.proc = proc
        self.lines = []
        self._q = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for raw in self.proc.stdout:
            self._q.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._q.put(None)

    def wait_for(self, pattern, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} in {timeout}s: {self.lines}")
            try:
                line = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                for line in self.lines:
                    if re.search(pattern, line):
                        return line
                raise AssertionError(f"output ended without {pattern!r}: {self.lines}")
            self.lines.append(line)

    def rest(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"output did not end: {self.lines}") from None
            if line is None:
                return self.lines
            self.lines.append(line)


def start_demo_ws(args, env):
    proc = subprocess.Popen(
        [PYTHON, str(DEMO_WS)] + [str(a) for a in args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    return proc, Lines(proc)


# --------------------------------------------------------------------------
# demo_api.sh


def test_demo_api_sh_walks_through_the_api(server):
    for _ in range(2):  # a unique email each run
        res = subprocess.run(
            ["sh", str(DEMO_API)],
            env=script_env(BASE_URL=server.url),
            capture_output=True,
            timeout=60,
        )
        out = res.stdout.decode()
        assert res.returncode == 0, out + res.stderr.decode()
        for step in ("== Register", "== Log in", "== List rooms", "== Post to room 1",
                     "== Read room 1 history"):
            assert step in out, f"{step!r} not printed:\n{out}"
        assert "-> 201" in out and "-> 200" in out
        assert "General" in out
        assert "Hello from demo_api.sh" in out
    r = server.get("/rooms/1/messages?limit=10", token=register(server).token)
    contents = [m["content"] for m in r.json()["messages"]]
    assert sum("Hello from demo_api.sh" in c for c in contents) >= 2


def test_demo_api_sh_fails_loudly(server):
    from harness import free_port

    res = subprocess.run(
        ["sh", str(DEMO_API)],
        env=script_env(BASE_URL=f"http://127.0.0.1:{free_port()}"),
        capture_output=True,
        timeout=60,
    )
    assert res.returncode != 0
    assert "FAILED" in res.stderr.decode()


# --------------------------------------------------------------------------
# demo_ws.py


def test_demo_ws_joins_prints_and_sends(server):
    alice, bob = register(server), register(server)
    room = create_room(server, alice)["id"]
    proc, out = start_demo_ws(
        [alice.token, room, "--url", f"ws://127.0.0.1:{server.port}"], script_env()
    )
    try:
        out.wait_for(r"connected")
        proc.stdin.write("hello from the demo ✓\n".encode())
        proc.stdin.flush()
        out.wait_for(re.escape(f"[{alice.username}] hello from the demo ✓"))
        post_message(server, bob, room, "hi alice")
        out.wait_for(re.escape(f"[{bob.username}] hi alice"))
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0
        lines = out.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert alice.token not in "\n".join(lines), "the token was printed"
    r = server.get(f"/rooms/{room}/messages", token=alice.token)
    assert [m["content"] for m in r.json()["messages"]] == ["hello from the demo ✓", "hi alice"]


def test_demo_ws_base_url_and_immediate_eof(server):
    alice = register(server)
    room = create_room(server, alice)["id"]
    res = subprocess.run(
        [PYTHON, str(DEMO_WS), alice.token, str(room)],
        input="one line then EOF\n".encode(),
        env=script_env(BASE_URL=server.url),
        capture_output=True,
        timeout=20,
    )
    assert res.returncode == 0, res.stdout.decode() + res.stderr.decode()
    r = server.get(f"/rooms/{room}/messages", token=alice.token)
    assert [m["content"] for m in r.json()["messages"]] == ["one line then EOF"]


def test_demo_ws_ctrl_c_ends_cleanly(server):
    alice = register(server)
    proc, out = start_demo_ws([alice.token, 1], script_env(WS_URL=f"ws://127.0.0.1:{server.port}"))
    try:
        out.wait_for(r"connected")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        lines = out.rest()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not any("Traceback" in line for line in lines), lines


def test_demo_ws_refused(server):
    res = subprocess.run(
        [PYTHON, str(DEMO_WS), "not-a-token", "1", "--url", server.url],
        stdin=subprocess.DEVNULL,
        env=script_env(),
        capture_output=True,
        timeout=20,
    )
    assert res.returncode == 1
    assert "401" in res.stdout.decode(), res.stdout.decode()
