"""Soak test: chatd under steady mixed traffic for a long time, with its
memory and descriptors sampled, to show that neither grows.

Started by bench/soak.sh (which builds chatd first); docs/BENCHMARKS.md
("Soak") explains it and holds the result of a 10-minute run. The load:

- WebSocket churn: SOAK_WS_CLIENTS clients that each connect to a random
  room (some with since=), send a few messages, typing and read events,
  stay a random while reading, and go away: mostly with a close handshake,
  some by dropping the TCP connection, some in the middle of the upgrade;
  plus SOAK_WS_WATCHERS subscribers that stay the whole time;
- REST: SOAK_REST_WORKERS threads posting messages (some with client_id, a
  few repeats), reading history pages and the room list, marking messages
  read, logging in, and now and then registering a new user.

Every SOAK_SAMPLE_SECONDS chatd's VmRSS (/proc/PID/status) and open
descriptors (/proc/PID/fd) go to a CSV. When the time is up the clients
stop, and after SOAK_COOLDOWN_SECONDS without clients the descriptors must
be back at their count before the first client. RSS is flat when the mean
of the last quarter of the load is within max(SOAK_RSS_TOLERANCE_KIB,
SOAK_RSS_TOLERANCE_PCT %) of the mean of the second quarter (the first
quarter is warm-up). Exits 0 when both hold, the client saw no unexpected
answer, and chatd exits 0 on SIGTERM (under an ASan build, that includes
its leak check); 1 otherwise."""

import asyncio
import csv
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
import websockets

ROOT = Path(__file__).resolve().parents[1]


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


SECONDS = env_int("SOAK_SECONDS", 600)
SAMPLE_S = env_float("SOAK_SAMPLE_SECONDS", 5)
COOLDOWN_S = env_float("SOAK_COOLDOWN_SECONDS", 10)
WS_CLIENTS = env_int("SOAK_WS_CLIENTS", 40)
WS_WATCHERS = env_int("SOAK_WS_WATCHERS", 5)
REST_WORKERS = env_int("SOAK_REST_WORKERS", 3)
USERS = env_int("SOAK_USERS", 24)
ROOMS = env_int("SOAK_ROOMS", 6)
RSS_TOL_KIB = env_int("SOAK_RSS_TOLERANCE_KIB", 4096)
RSS_TOL_PCT = env_float("SOAK_RSS_TOLERANCE_PCT", 5)
# Off under ASan, whose quarantine holds freed memory on purpose.
CHECK_RSS = env_int("SOAK_CHECK_RSS", 1) != 0
CHATD = os.environ.get("CHATD_BIN") or str(ROOT / "build" / "chatd")
THREADS = env_int("SOAK_THREADS", 2)
RESULTS = Path(os.environ.get("RESULTS_DIR")
               or ROOT / "bench" / "results" / time.strftime("soak-%Y%m%d-%H%M%S"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Counters:
    def __init__(self):
        self.lock = threading.Lock()
        self.n = {}

    def add(self, key, k=1):
        with self.lock:
            self.n[key] = self.n.get(key, 0) + k

    def snapshot(self):
        with self.lock:
            return dict(self.n)


COUNT = Counters()


# ---------------------------------------------------------------- chatd


class Chatd:
    def __init__(self, workdir):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workdir / "chatd.log", "wb")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "DATABASE_URL": f"sqlite:{workdir / 'chat.db'}",
            "DATA_DIR": str(workdir),
            "JWT_SECRET": uuid.uuid4().hex + uuid.uuid4().hex,
            "THREADS": str(THREADS),
            "LOG_LEVEL": "warn",
            "LOG_FORMAT": "json",
            # The limiters run, but this one client must not hit them.
            "RATE_LIMIT_AUTH": "1000000",
            "RATE_LIMIT_MESSAGES": "1000000",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                env[k] = os.environ[k]
        self.proc = subprocess.Popen([CHATD], cwd=workdir, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"soak: chatd exited with {self.proc.returncode} at start-up")
            try:
                if requests.get(self.url + "/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("soak: chatd did not become healthy")
            time.sleep(0.05)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def fds(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def threads(self):
        return len(os.listdir(f"/proc/{self.proc.pid}/task"))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None
        finally:
            self.log.close()


# ------------------------------------------------------------------ REST


class Api:
    def __init__(self, url):
        self.url = url
        self.s = requests.Session()

    def call(self, method, path, token=None, body=None, ok=(200, 201, 204)):
        headers = {}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        r = self.s.request(method, self.url + path, data=data, headers=headers, timeout=30)
        if r.status_code not in ok:
            COUNT.add(f"unexpected {method} {path.split('?')[0].rstrip('0123456789')} "
                      f"{r.status_code}")
            return None
        return r.json() if r.content else {}

    def close(self):
        self.s.close()


def register(api):
    email = f"soak-{uuid.uuid4().hex[:12]}@example.com"
    password = "pw-" + uuid.uuid4().hex[:16]
    body = api.call("POST", "/auth/register",
                    body={"email": email, "password": password,
                          "username": "s" + uuid.uuid4().hex[:10]})
    COUNT.add("registers")
    if body is None:
        raise SystemExit("soak: register failed")
    return {"email": email, "password": password, "id": body["user"]["id"],
            "token": body["token"]}


def rest_worker(url, users, rooms, stop, seed):
    rnd = random.Random(seed)
    api = Api(url)
    last_ids = {}
    try:
        while not stop.is_set():
            user = rnd.choice(users)
            room = rnd.choice(rooms)
            tok = user["token"]
            x = rnd.random()
            if x < 0.55:
                body = {"content": f"rest {uuid.uuid4().hex} é✓"}
                if rnd.random() < 0.3:
                    body["client_id"] = uuid.uuid4().hex
                m = api.call("POST", f"/rooms/{room}/messages", tok, body)
                COUNT.add("rest posts")
                if m is not None:
                    last_ids[room] = m["id"]
                    if "client_id" in body and rnd.random() < 0.2:
                        api.call("POST", f"/rooms/{room}/messages", tok, body)  # a repeat: 200
                        COUNT.add("rest repeats")
            elif x < 0.80:
                q = f"?limit={rnd.choice([10, 50, 100])}"
                if room in last_ids and rnd.random() < 0.5:
                    q += f"&before={max(1, last_ids[room] - rnd.randint(0, 500))}"
                api.call("GET", f"/rooms/{room}/messages{q}", tok)
                COUNT.add("history reads")
            elif x < 0.90:
                api.call("GET", "/rooms", tok)
                COUNT.add("room lists")
            elif x < 0.995:
                if room in last_ids:
                    api.call("POST", f"/rooms/{room}/read", tok, {"message_id": last_ids[room]})
                    COUNT.add("read marks")
            elif x < 0.999:
                body = api.call("POST", "/auth/login",
                                body={"email": user["email"], "password": user["password"]})
                COUNT.add("logins")
                if body is not None:
                    user["token"] = body["token"]
            else:
                users.append(register(api))
            time.sleep(rnd.uniform(0, 0.01))
    except requests.RequestException as exc:
        COUNT.add(f"rest error {type(exc).__name__}")
    finally:
        api.close()


# ------------------------------------------------------------ WebSockets


def ws_url(port, room, token, since=None):
    q = f"?token={token}"
    if since:
        q += f"&since={since}"
    return f"ws://127.0.0.1:{port}/ws/{room}{q}"


async def ws_session(port, users, rooms, rnd, last_seen):
    user = rnd.choice(users)
    room = rnd.choice(rooms)
    since = last_seen.get(room) if rnd.random() < 0.3 else None
    how = rnd.random()
    if how < 0.05:
        # Gone in the middle of the upgrade.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET /ws/{room}?token={user['token']} HTTP/1.1\r\nHost: x\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade\r\n".encode())
        await writer.drain()
        await asyncio.sleep(rnd.uniform(0, 0.5))
        writer.close()
        COUNT.add("ws half upgrades")
        return
    ws = await websockets.connect(ws_url(port, room, user["token"], since), open_timeout=30,
                                  close_timeout=5, ping_interval=None, max_size=None,
                                  max_queue=None)
    COUNT.add("ws connects")
    try:
        stay = time.monotonic() + rnd.uniform(0.2, 6)
        sends = rnd.randint(0, 4)
        while time.monotonic() < stay:
            if sends > 0 and rnd.random() < 0.3:
                sends -= 1
                await ws.send(json.dumps({"type": "message", "client_id": uuid.uuid4().hex,
                                          "content": f"ws {uuid.uuid4().hex} ✓"}))
                COUNT.add("ws messages sent")
            elif rnd.random() < 0.1:
                await ws.send(json.dumps({"type": "typing"}))
            elif rnd.random() < 0.05 and room in last_seen:
                await ws.send(json.dumps({"type": "read", "message_id": last_seen[room]}))
            try:
                raw = await asyncio.wait_for(ws.recv(), timeout=0.2)
            except asyncio.TimeoutError:
                continue
            event = json.loads(raw)
            if event.get("type") == "message":
                last_seen[room] = max(last_seen.get(room, 0), event["id"])
                COUNT.add("ws messages received")
            elif event.get("type") == "error":
                COUNT.add(f"unexpected ws error {event.get('code')}")
        if rnd.random() < 0.15:
            ws.transport.abort()  # no close handshake, no FIN courtesy
            COUNT.add("ws dropped")
        else:
            await ws.close()
    except websockets.ConnectionClosed as exc:
        COUNT.add(f"unexpected ws close {exc.code}")


async def ws_churner(port, users, rooms, stop, seed, last_seen):
    rnd = random.Random(seed)
    while not stop.is_set():
        try:
            await ws_session(port, users, rooms, rnd, last_seen)
        except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as exc:
            COUNT.add(f"ws error {type(exc).__name__}")
            await asyncio.sleep(0.5)


async def ws_watcher(port, user, room, stop):
    async with websockets.connect(ws_url(port, room, user["token"]), ping_interval=None,
                                  max_size=None, max_queue=None) as ws:
        while not stop.is_set():
            try:
                await asyncio.wait_for(ws.recv(), timeout=0.5)
                COUNT.add("watcher events")
            except asyncio.TimeoutError:
                pass


def ws_main(port, users, rooms, stop):
    async def main():
        last_seen = {}
        tasks = [asyncio.create_task(ws_churner(port, users, rooms, stop, 1000 + i, last_seen))
                 for i in range(WS_CLIENTS)]
        tasks += [asyncio.create_task(ws_watcher(port, users[i % len(users)],
                                                 rooms[i % len(rooms)], stop))
                  for i in range(WS_WATCHERS)]
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if isinstance(r, Exception):
                COUNT.add(f"ws task failed {type(r).__name__}")

    asyncio.run(main())


# ---------------------------------------------------------------- report


def mean(rows, key):
    return statistics.fmean(r[key] for r in rows) if rows else 0.0


def analyse(samples, baseline_fds, final_fds):
    load = [s for s in samples if s["phase"] == "load"]
    q = len(load) // 4
    if q < 1:
        return False, ["too few samples for a verdict (run longer)"]
    q2, q4 = load[q:2 * q], load[-q:]
    rss2, rss4 = mean(q2, "rss_kib"), mean(q4, "rss_kib")
    low2, low4 = min(s["rss_kib"] for s in q2), min(s["rss_kib"] for s in q4)
    fd2, fd4 = mean(q2, "fds"), mean(q4, "fds")
    tol = max(RSS_TOL_KIB, rss2 * RSS_TOL_PCT / 100)
    rss_flat = rss4 - rss2 <= tol or not CHECK_RSS
    fds_back = final_fds == baseline_fds
    lines = [
        f"RSS  mean of the second quarter {rss2 / 1024:.1f} MiB, of the last quarter "
        f"{rss4 / 1024:.1f} MiB (change {(rss4 - rss2) / 1024:+.1f} MiB, allowed "
        f"+{tol / 1024:.1f}); lowest {low2 / 1024:.1f} and {low4 / 1024:.1f} MiB: "
        + ("flat" if rss4 - rss2 <= tol else "GROWING")
        + ("" if CHECK_RSS else " (not checked: SOAK_CHECK_RSS=0)"),
        f"fds  mean of the second quarter {fd2:.1f}, of the last quarter {fd4:.1f}; before "
        f"any client {baseline_fds}, {COOLDOWN_S:g} s after the last {final_fds}: "
        + ("back at baseline" if fds_back else "NOT back at baseline"),
    ]
    return rss_flat and fds_back, lines


def table(samples, t_load, rows=10):
    """Markdown table: the load phase in `rows` equal slices of time, then
    the last sample without clients."""
    load = [s for s in samples if s["phase"] == "load"]
    out = ["| minutes | RSS MiB mean | min | max | fds mean | max |",
           "|---|---|---|---|---|---|"]
    width = max(SECONDS / rows, SAMPLE_S)
    slices = {}
    for s in load:
        slices.setdefault(min(rows - 1, int((s["t"] - t_load) / width)), []).append(s)
    for i in sorted(slices):
        part = slices[i]
        rss = [p["rss_kib"] / 1024 for p in part]
        out.append(f"| {i * width / 60:.1f}–{(i + 1) * width / 60:.1f} "
                   f"| {statistics.fmean(rss):.1f} | {min(rss):.1f} | {max(rss):.1f} "
                   f"| {mean(part, 'fds'):.0f} | {max(p['fds'] for p in part)} |")
    cool = [s for s in samples if s["phase"] == "cooldown"]
    if cool:
        out.append(f"| after, no clients | {cool[-1]['rss_kib'] / 1024:.1f} | | "
                   f"| {cool[-1]['fds']} | |")
    return out


# ------------------------------------------------------------------ main


def main():
    if not os.access(CHATD, os.X_OK):
        raise SystemExit(f"soak: {CHATD} not found (run bench/soak.sh, which builds it)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="chatd-soak-"))
    chatd = Chatd(workdir)
    print(f"soak: chatd pid {chatd.proc.pid} on :{chatd.port}, {SECONDS} s, "
          f"results in {RESULTS}", flush=True)
    samples = []
    t0 = time.monotonic()
    phase = ["setup"]
    sampling = threading.Event()

    def sample():
        s = {"t": round(time.monotonic() - t0, 1), "phase": phase[0],
             "rss_kib": chatd.rss_kib(), "fds": chatd.fds(), "threads": chatd.threads()}
        s.update(COUNT.snapshot())
        samples.append(s)
        return s

    def sampler():
        next_t = time.monotonic()
        while not sampling.is_set():
            try:
                s = sample()
            except OSError:
                return  # chatd is gone
            if len(samples) % 12 == 1:
                print(f"  t={s['t']:6.0f}s {s['phase']:8s} rss={s['rss_kib'] / 1024:6.1f} MiB "
                      f"fds={s['fds']:4d}", flush=True)
            next_t += SAMPLE_S
            sampling.wait(max(0.0, next_t - time.monotonic()))

    sample()
    setup_api = Api(chatd.url)
    users = [register(setup_api) for _ in range(USERS)]
    rooms = []
    for i in range(ROOMS):
        body = setup_api.call("POST", "/rooms", users[0]["token"],
                              {"name": f"soak {i}", "is_private": False})
        rooms.append(body["id"])
    setup_api.close()
    # The closed set-up connections are gone once chatd has read their EOF.
    time.sleep(1)
    baseline_fds = chatd.fds()

    stop = threading.Event()
    phase[0] = "load"
    t_load = time.monotonic()
    sampler_thread = threading.Thread(target=sampler, daemon=True)
    sampler_thread.start()
    workers = [threading.Thread(target=rest_worker, args=(chatd.url, users, rooms, stop, i))
               for i in range(REST_WORKERS)]
    workers.append(threading.Thread(target=ws_main, args=(chatd.port, users, rooms, stop)))
    for w in workers:
        w.start()
    try:
        while time.monotonic() - t_load < SECONDS:
            if chatd.proc.poll() is not None:
                break
            time.sleep(0.5)
    finally:
        phase[0] = "stopping"
        stop.set()
        for w in workers:
            w.join(60)
    phase[0] = "cooldown"
    time.sleep(COOLDOWN_S)
    sampling.set()
    sampler_thread.join(10)
    alive = chatd.proc.poll() is None
    final = sample() if alive else None
    rc = chatd.stop() if alive else chatd.proc.returncode

    keys = ["t", "phase", "rss_kib", "fds", "threads"]
    extra = sorted({k for s in samples for k in s} - set(keys))
    with open(RESULTS / "samples.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys + extra, restval=0)
        w.writeheader()
        w.writerows(samples)

    counts = COUNT.snapshot()
    unexpected = {k: v for k, v in counts.items()
                  if k.startswith(("unexpected", "rest error", "ws error", "ws task"))}
    ok, verdict = analyse(samples, baseline_fds, final["fds"] if final else -1)
    report = [f"soak: {SECONDS} s, THREADS={THREADS}, {WS_CLIENTS} churning sockets, "
              f"{WS_WATCHERS} watchers, {REST_WORKERS} REST workers, SQLite",
              "totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())
                                      if k not in unexpected)]
    report += table(samples, t_load - t0)
    report += verdict
    if unexpected:
        report.append(f"unexpected: {unexpected}")
    report.append(f"chatd exit code on SIGTERM: {rc}")
    good = ok and not unexpected and rc == 0 and alive
    report.append("verdict: " + ("PASS: flat" if good else "FAIL"))
    text = "\n".join(report)
    print(text)
    (RESULTS / "summary.md").write_text(text + "\n")
    os.replace(workdir / "chatd.log", RESULTS / "chatd.log")
    for p in workdir.iterdir():
        p.unlink()
    workdir.rmdir()
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
