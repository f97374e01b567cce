"""Test harness: starts the real chatd binary in a temporary directory and
talks to it over HTTP. Everything waits for events with a deadline; nothing
sleeps and hopes."""

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]

# A fixed secret lets the tests craft their own tokens (expired, other algs).
TEST_JWT_SECRET = "integration-test-secret-0123456789abcdef"

START_DEADLINE_S = float(os.environ.get("CHATD_TEST_START_DEADLINE", "15"))
STOP_DEADLINE_S = 20.0
HTTP_TIMEOUT_S = 20.0

RFC3339_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")

# Variables passed through to chatd from the test runner's environment
# (sanitizer settings for `make asan`); everything else is set explicitly.
PASSTHROUGH_ENV = ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ")

_counter = itertools.count(1)


def chatd_bin():
    path = os.environ.get("CHATD_BIN") or str(REPO / "build" / "chatd")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    """Polls predicate until it returns a truthy value; returns that value.
    Raises AssertionError when the deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported on timeout
            last_exc = exc
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


def unique(prefix="u"):
    return f"{prefix}{next(_counter)}x{uuid.uuid4().hex[:8]}"


def unique_email(prefix="user"):
    return f"{unique(prefix)}@example.com"


# --------------------------------------------------------------------------
# Sanitizers (`make asan`): a report fails the test whose server logged it.

_SANITIZER_LINE = re.compile(
    r"^==\d+==ERROR: (?:Address|Leak|Thread|Memory)Sanitizer"
    r"|^==\d+==\w+Sanitizer has encountered a fatal error"  # e.g. LSan without ptrace
    r"|^\S+:\d+:\d+: runtime error: "
    r"|^SUMMARY: \w+Sanitizer"
)


def sanitizer_report(text, context=40):
    """The first sanitizer report in text (with the lines after it), or ""."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if _SANITIZER_LINE.search(line):
            return "\n".join(lines[i : i + context])
    return ""


# --------------------------------------------------------------------------
# The server


def base_env():
    env = {
        "HOST": "127.0.0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "info",
        "THREADS": "2",
        "RATE_LIMIT_AUTH": "0",
        "RATE_LIMIT_MESSAGES": "0",
        "SHUTDOWN_TIMEOUT_MS": "5000",
        "JWT_SECRET": TEST_JWT_SECRET,
    }
    return env


class ChatdServer:
    """One chatd process in its own temporary directory (its cwd), with its
    stderr log captured to a file per start."""

    def __init__(self, db, env=None, workdir=None, binary=None):
        self.binary = binary or chatd_bin()
        self.db = db
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="chatd-srv-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.workdir / "data"
        self.data_dir.mkdir(exist_ok=True)
        self.env = base_env()
        self.env["DATABASE_URL"] = db.url
        self.env["DATA_DIR"] = str(self.data_dir)
        for k, v in (env or {}).items():
            if v is None:
                self.env.pop(k, None)
            else:
                self.env[k] = str(v)
        self.proc = None
        self.port = None
        self.starts = 0
        self.log_files = []
        self.session = None
        self.expect_clean_exit = True
        self.killed = False  # the running process was ended by kill9()

    # ---- lifecycle

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def _full_env(self):
        env = {k: os.environ[k] for k in PASSTHROUGH_ENV if k in os.environ}
        env.update(self.env)
        env["PORT"] = str(self.port)
        return env

    def run_command(self, args, extra_env=None, timeout=30):
        """Runs the binary with args (e.g. ["migrate"]) in this server's
        directory and environment; returns the CompletedProcess."""
        if self.port is None:
            self.port = free_port()
        env = self._full_env()
        for k, v in (extra_env or {}).items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = str(v)
        res = subprocess.run(
            [self.binary] + list(args),
            cwd=str(self.workdir),
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        # A command expected to fail must not hide a sanitizer's report.
        report = sanitizer_report(res.stderr.decode("utf-8", "replace"))
        if report:
            raise AssertionError(f"chatd {' '.join(args)}: sanitizer report:\n{report}")
        return res

    def start(self, wait=True):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        if not os.path.exists(self.binary):
            raise AssertionError(
                f"chatd binary not found at {self.binary} (set CHATD_BIN or run make build/chatd)"
            )
        self.port = free_port()
        self.starts += 1
        self.killed = False
        log_path = self.workdir / f"stderr-{self.starts}.log"
        out_path = self.workdir / f"stdout-{self.starts}.log"
        self.log_files.append(log_path)
        self._stderr = open(log_path, "wb")
        self._stdout = open(out_path, "wb")
        self.proc = subprocess.Popen(
            [self.binary],
            cwd=str(self.workdir),
            env=self._full_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
        )
        self.session = requests.Session()
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=START_DEADLINE_S):
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise AssertionError(
                    f"chatd exited with {rc} during start-up; log:\n{self.log_tail()}"
                )
            try:
                r = requests.get(self.url + "/health", timeout=2)
                if r.status_code == 200:
                    return
            except requests.RequestException:
                pass
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"chatd not healthy after {timeout}s; log:\n{self.log_tail()}"
                )
            time.sleep(0.02)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout=STOP_DEADLINE_S):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def _close_files(self):
        if self.session is not None:
            self.session.close()
        for f in (getattr(self, "_stderr", None), getattr(self, "_stdout", None)):
            if f is not None and not f.closed:
                f.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=STOP_DEADLINE_S):
        """SIGTERM, wait with a deadline; returns the exit code (None if it
        had to be killed)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.proc.kill()
                self.proc.wait()
                self._close_files()
                return None
        self._close_files()
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            self.proc.wait()
        self._close_files()

    def restart(self, graceful=True):
        """Stops (SIGTERM unless graceful=False: then it must already be
        dead or is killed) and starts again on the same database."""
        if graceful:
            rc = self.stop()
            assert rc == 0, f"chatd exit code {rc} on SIGTERM; log:\n{self.log_tail()}"
        else:
            self.kill9()
        return self.start()

    def teardown(self):
        """Stops the server; returns an error string when it did not exit
        cleanly (and a clean exit was expected), when it had died on its
        own, or when any of its runs logged a sanitizer report (a leak
        found at exit, even where the test ignored the exit code)."""
        if self.proc is None:
            return None
        was_running = self.proc.poll() is None
        rc = self.stop()
        report = sanitizer_report(self.log_text())
        if report:
            return f"chatd logged a sanitizer report:\n{report}"
        if self.expect_clean_exit and rc != 0:
            if was_running:
                return f"chatd exited with {rc} on SIGTERM; log tail:\n{self.log_tail()}"
            if not self.killed:
                return f"chatd died with exit code {rc}; log tail:\n{self.log_tail()}"
        return None

    # ---- logs

    def log_text(self):
        parts = []
        for p in self.log_files:
            try:
                parts.append(p.read_text(errors="replace"))
            except FileNotFoundError:
                pass
        return "".join(parts)

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def log_records(self):
        """Every stderr line parsed as JSON (lines that are not JSON are
        returned as {"_raw": line})."""
        out = []
        for line in self.log_text().splitlines():
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"_raw": line})
        return out

    def wait_log(self, predicate, timeout=10, what="log record"):
        def find():
            for rec in self.log_records():
                if predicate(rec):
                    return rec
            return None

        return wait_until(find, timeout, what=what)

    # ---- HTTP

    def request(self, method, path, token=None, json_body=None, headers=None, **kw):
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        if json_body is not None:
            kw["data"] = json.dumps(json_body, ensure_ascii=False).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json")
        kw.setdefault("timeout", HTTP_TIMEOUT_S)
        return self.session.request(method, self.url + path, headers=hdrs, **kw)

    def get(self, path, token=None, **kw):
        return self.request("GET", path, token=token, **kw)

    def post(self, path, body=None, token=None, **kw):
        return self.request("POST", path, token=token, json_body=body, **kw)


