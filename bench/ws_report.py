#!/usr/bin/env python3
"""Turns the raw results of bench/run_bench.sh into the tables of the
"WebSocket fan-out" section of docs/BENCHMARKS.md and the data files of its
plots; with --splice, puts that section into the document in place of the
previous one (the other sections stay as they are)."""

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import textwrap
from datetime import datetime, timezone
from pathlib import Path

START = "<!-- ws-fanout:start: written by bench/run_bench.sh (bench/ws_report.py) -->"
END = "<!-- ws-fanout:end -->"

SCENARIO_TITLES = {
    "S1": "S1 fan-out, max rate: 1 room, 1000 subscribers, 1 publisher, window 64, 5 s",
    "S2": "S2 fan-out, fixed load: 1 room, 1000 subscribers, 1 publisher at 100 msgs/s "
    "(100k deliveries/s), 8 s",
    "S3": "S3 many rooms, max rate: 100 rooms x 10 subscribers, 100 publishers (1 per room), "
    "window 64 per room, 5 s",
    "S3PG": "S3 with PostgreSQL: S3 against a throwaway PostgreSQL 15 cluster (fsync on, not "
    "pinned), chatd only",
}


def load_lines(path):
    out = []
    if path and Path(path).exists():
        for line in Path(path).read_text().splitlines():
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, scale=1.0, digits=0):
    if v is None:
        return "-"
    v = v / scale
    return f"{v:,.{digits}f}"


class Rows:
    """Results grouped by (server, scenario): lists of result dicts."""

    def __init__(self):
        self.groups = {}

    def add(self, server, scenario, result):
        self.groups.setdefault((server, scenario), []).append(result)

    def get(self, server, scenario):
        return self.groups.get((server, scenario), [])

    def med(self, server, scenario, key):
        return median([r.get(key) for r in self.get(server, scenario)])


def per_cpu(r):
    """Deliveries per second of server CPU: what a whole core would carry,
    less sensitive than deliveries/s to other work taking the core."""
    cpu = r.get("server_cpu_pct")
    d = r.get("deliveries_per_s")
    return d / (cpu / 100) if cpu and cpu > 0 and d else None


def chatd_loss(r):
    return (r.get("missing", 0) + r.get("unexpected", 0) + r.get("duplicates_or_reordered", 0)
            + r.get("unacked", 0))


def peer_loss(r):
    exp, got = r.get("expected_deliveries"), r.get("total_deliveries")
    return max(0, exp - got) if exp is not None and got is not None else None


def collect(chatd_raw, peers_raw):
    rows = Rows()
    scaling = {}
    for line in chatd_raw:
        r = line["result"]
        if line["kind"] == "scenario":
            r["loss"] = chatd_loss(r)
            r["errors"] = r.get("error_events", 0) + r.get("closed_by_server", 0)
            rows.add("chatd", line["name"], r)
        elif line["kind"] == "wsbench":
            r["loss"] = peer_loss(r)
            rows.add("chatd (wsbench)", line["name"], r)
        else:
            scaling.setdefault(line["kind"], {})[int(line["name"])] = r
    for line in peers_raw:
        r = line["result"]
        r["loss"] = peer_loss(r)
        rows.add(line["peer"], line["scenario"], r)
    return rows, scaling


def servers_of(rows):
    order = ["chatd", "chatd (wsbench)", "c-limit", "node-ws", "socketio", "nats"]
    present = {s for s, _ in rows.groups}
    return [s for s in order if s in present] + sorted(present - set(order))


def load_table(rows, sc, fixed):
    lines = [f"#### {SCENARIO_TITLES[sc]}", ""]
    if fixed:
        lines.append("| server | client | runs | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms "
                     "| server CPU % | client CPU % | lost | errors |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    else:
        lines.append("| server | client | runs | deliveries/s | per server CPU-s | p50 ms | p99 ms "
                     "| server CPU % | client CPU % | lost | errors |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in servers_of(rows):
        rs = rows.get(s, sc)
        if not rs:
            continue
        client = "chatd-bench" if s == "chatd" else "wsbench"
        name = "**chatd**" if s == "chatd" else ("chatd" if s.startswith("chatd") else s)
        m = lambda k: rows.med(s, sc, k)  # noqa: E731
        cells = [name, client, str(len(rs)), fmt(m("deliveries_per_s"))]
        if not fixed:
            cells.append(fmt(median([per_cpu(r) for r in rs])))
        cells += [fmt(m("p50_us"), 1000, 2), fmt(m("p99_us"), 1000, 2)]
        if fixed:
            cells += [fmt(m("p999_us"), 1000, 2), fmt(m("max_us"), 1000, 2)]
        cells += [fmt(m("server_cpu_pct")), fmt(m("client_cpu_pct")), fmt(m("loss")),
                  fmt(m("errors"))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def login_table(rows):
    rs = rows.get("chatd", "S2L")
    if not rs:
        return []
    m = lambda k: rows.med("chatd", "S2L", k)  # noqa: E731
    return [
        "#### S2 with a login storm: 200 concurrent `POST /auth/login` 2 s into the "
        "measured window (chatd only: the peers have no accounts)", "",
        "| server | runs | deliveries/s | p50 ms | p99 ms | p99.9 ms | max ms | logins ok "
        "| failed | login p50 ms | login p99 ms | server CPU % | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        "| " + " | ".join([
            "**chatd**", str(len(rs)), fmt(m("deliveries_per_s")), fmt(m("p50_us"), 1000, 2),
            fmt(m("p99_us"), 1000, 2), fmt(m("p999_us"), 1000, 2), fmt(m("max_us"), 1000, 2),
            fmt(m("logins_ok")), fmt(m("logins_failed")), fmt(m("login_p50_us"), 1000, 0),
            fmt(m("login_p99_us"), 1000, 0), fmt(m("server_cpu_pct")), fmt(m("loss"))]) + " |",
        ""]


def hold_table(rows, s4_conns):
    lines = [f"#### S4 idle connections: {s4_conns:,} held 3 s (4 source addresses), server RSS",
             "",
             "| server | client | runs | connections | failed | connect s | RSS before MiB "
             "| RSS held MiB | bytes/connection |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in servers_of(rows):
        rs = rows.get(s, "S4")
        if not rs:
            continue
        client = "chatd-bench" if s == "chatd" else "wsbench"
        name = "**chatd**" if s == "chatd" else ("chatd" if s.startswith("chatd") else s)
        m = lambda k: rows.med(s, "S4", k)  # noqa: E731
        lines.append("| " + " | ".join([
            name, client, str(len(rs)), fmt(m("conns")), fmt(m("connect_failures")),
            fmt(m("connect_s"), 1, 2), fmt(m("server_rss_before_kb"), 1024, 1),
            fmt(m("server_rss_after_kb"), 1024, 1), fmt(m("bytes_per_conn"))]) + " |")
    return lines + [""]


def targets_table(rows):
    """The targets of the performance work, against this run's chatd rows."""
    def m(sc, k):
        return rows.med("chatd", sc, k)

    def line(what, target, value, ok):
        status = "-" if ok is None else ("met" if ok else "**missed**")
        return f"| {what} | {target} | {value} | {status} |"

    out = ["| target | wanted | measured (chatd-bench) | |", "|---|---|---:|---|"]
    v = m("S1", "deliveries_per_s")
    out.append(line("S1 deliveries/s", "≥ 4,000,000", fmt(v), None if v is None else v >= 4e6))
    p99, p999, loss = m("S2", "p99_us"), m("S2", "p999_us"), m("S2", "loss")
    out.append(line("S2 p99", "≤ 10 ms", fmt(p99, 1000, 2) + " ms" if p99 else "-",
                    None if p99 is None else p99 <= 10000))
    out.append(line("S2 p99.9", "≤ 20 ms", fmt(p999, 1000, 2) + " ms" if p999 else "-",
                    None if p999 is None else p999 <= 20000))
    out.append(line("S2 loss", "0", fmt(loss), None if loss is None else loss == 0))
    p99 = m("S2L", "p99_us")
    out.append(line("S2 p99 during 200 concurrent logins", "≤ 20 ms",
                    fmt(p99, 1000, 2) + " ms" if p99 else "-", None if p99 is None else p99 <= 20000))
    v = m("S3", "deliveries_per_s")
    out.append(line("S3 deliveries/s", "≥ 1,000,000", fmt(v), None if v is None else v >= 1e6))
    v = m("S3PG", "deliveries_per_s")
    out.append(line("S3 with PostgreSQL, deliveries/s", "≥ 300,000", fmt(v),
                    None if v is None else v >= 3e5))
    v = m("S4", "bytes_per_conn")
    out.append(line("S4 bytes per idle connection", "≤ 1,024", fmt(v),
                    None if v is None else v <= 1024))
    if v is not None:
        out.append("")
        out.append(f"At {fmt(v)} bytes each, 1,000,000 idle connections would take about "
                   f"{v * 1e6 / 2**30:,.2f} GiB of chatd's user-space memory (kernel socket "
                   "buffers not included).")
    return out + [""]


def scaling_tables(scaling, out_dir):
    lines = []
    maxr, fixed, hold = scaling.get("subs-max", {}), scaling.get("subs-fixed", {}), scaling.get("hold", {})
    if maxr or fixed:
        lines += ["#### Subscribers per room (1 room, 1 publisher)", "",
                  "Max rate: window 64, 5 s. Fixed load: 100,000 deliveries/s "
                  "(100000 / subscribers msgs/s), 8 s.", "",
                  "| subscribers | max rate: deliveries/s | msgs/s stored | p99 ms (queueing) "
                  "| fixed load: p50 ms | p99 ms | p99.9 ms | server CPU % | lost |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        with open(out_dir / "scaling-subs.dat", "w") as f:
            f.write("# subs max_deliveries_per_s fixed_p50_ms fixed_p99_ms fixed_p999_ms\n")
            for n in sorted(set(maxr) | set(fixed)):
                a, b = maxr.get(n, {}), fixed.get(n, {})
                lost = sum(chatd_loss(r) for r in (a, b) if r)
                lines.append("| " + " | ".join([
                    f"{n:,}", fmt(a.get("deliveries_per_s")), fmt(a.get("sent_per_s")),
                    fmt(a.get("p99_us"), 1000, 2), fmt(b.get("p50_us"), 1000, 2),
                    fmt(b.get("p99_us"), 1000, 2), fmt(b.get("p999_us"), 1000, 2),
                    fmt(b.get("server_cpu_pct")), fmt(lost)]) + " |")
                f.write(f"{n} {a.get('deliveries_per_s', 'NaN')} "
                        f"{(b.get('p50_us') or float('nan')) / 1000} "
                        f"{(b.get('p99_us') or float('nan')) / 1000} "
                        f"{(b.get('p999_us') or float('nan')) / 1000}\n")
        lines += ["", "![throughput and p99 against subscribers per room](bench-throughput.svg)", ""]
    if hold:
        lines += ["#### Idle connections and server memory", "",
                  "| connections | failed | connect s | RSS before MiB | RSS held MiB | bytes/connection |",
                  "|---:|---:|---:|---:|---:|---:|"]
        with open(out_dir / "scaling-rss.dat", "w") as f:
            f.write("# conns rss_before_mib rss_after_mib bytes_per_conn\n")
            for n in sorted(hold):
                r = hold[n]
                lines.append("| " + " | ".join([
                    f"{r.get('conns', 0):,}", fmt(r.get("connect_failures")),
                    fmt(r.get("connect_s"), 1, 2), fmt(r.get("server_rss_before_kb"), 1024, 1),
                    fmt(r.get("server_rss_after_kb"), 1024, 1), fmt(r.get("bytes_per_conn"))]) + " |")
                f.write(f"{r.get('conns', n)} {r.get('server_rss_before_kb', 0) / 1024} "
                        f"{r.get('server_rss_after_kb', 0) / 1024} {r.get('bytes_per_conn', 0)}\n")
        lines += ["", "![server RSS against idle connections](bench-rss.svg)", ""]
    return lines


def machine(args):
    def cmd(*c):
        try:
            return subprocess.run(c, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            mem = int(line.split()[1]) / 2**20
    try:
        debian = Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "?"
    rev = args.tree
    if not rev:
        root = Path(__file__).resolve().parents[1]
        rev = cmd("git", "-C", str(root), "rev-parse", "--short", "HEAD") or "unknown"
        if cmd("git", "-C", str(root), "status", "--porcelain"):
            rev += " plus uncommitted changes"
    version = cmd(args.chatd, "--version").splitlines()
    node = cmd("node", "--version")
    nats = cmd("nats-server", "--version")
    lines = [f"- {os.cpu_count()} cores, {model or 'unknown CPU'}, {mem:.1f} GiB RAM",
             f"- Debian {debian}, Linux {platform.release()}",
             f"- {version[0] if version else 'chatd ?'} (tree {rev}), built with -O2 by make",
             "- pinning: the server on CPU 0 (`taskset -c 0`), the load generator on CPU 1 "
             "(`taskset -c 1`); traffic on 127.0.0.1"]
    if node or nats:
        lines.append(f"- peers: Node {node or '-'}, {nats or 'nats-server -'}")
    lb, ls, le = (x.split()[:3] for x in (args.load_before, args.load_start, args.load_end))
    phases = [p.split("=", 1) for p in args.phase_load]
    lines.append(f"- load average (1, 5, 15 min): {' '.join(lb)} when the script started, "
                 f"{' '.join(ls)} when the first run started, {' '.join(le)} after the last"
                 + ("; 1-minute load at the end of each phase: "
                    + ", ".join(f"{name} {load}" for name, load in phases) if phases else "")
                 + ".")
    # The runs themselves load the machine a little (about 1 when busy for a
    # minute): a phase whose load stayed under 1.2 had little else running.
    noisy = [name for name, load in phases if float(load) >= 1.2]
    if float(ls[0]) >= args.quiet_load:
        verdict = ("**The machine was not quiet**: other work was running when the runs "
                   "began, so absolute figures are low and noisy; compare the rows of one "
                   "run with each other.")
    elif noisy:
        verdict = (f"**The machine was quiet when the runs began** (load under "
                   f"{args.quiet_load}), **but other work started during: "
                   f"{', '.join(noisy)}**; read those rows as noisy.")
    else:
        verdict = f"**The machine was quiet** (load under {args.quiet_load} at the start)."
    lines.append(f"- {verdict}")
    return lines


def section(args, rows, scaling, out_dir):
    when = args.when or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    runs = f"RUNS={args.runs} " if args.runs != 1 else ""
    L = [START, "## WebSocket fan-out", "",
         "Deliveries per second through chatd's WebSocket fan-out, their latency, and what an "
         "idle connection costs, beside the servers people deploy instead, all measured in the "
         "same run. A delivery is one message event received by one subscriber. chatd keeps "
         "every guarantee while it is measured: every message is committed to SQLite before it "
         "is broadcast, every connection is authenticated, every event is chatd's full JSON "
         "envelope.", "",
         "### Command", "",
         "```sh",
         f"{runs}make bench          # builds chatd and chatd-bench, then bench/run_bench.sh",
         "```", "",
         "`bench/run_bench.sh` reads `RUNS` (runs per scenario, default 1; tables show "
         "medians), `SCENARIOS`, `PEERS` (empty: no peers), `SHARED_BENCH` (the external "
         "yardstick with wsbench and the peers, default `../shared/bench`; skipped when "
         "absent), `SCALING=0` (no scaling runs or plots), `QUIET_LOAD`/`QUIET_WAIT` (it "
         "waits up to 20 minutes for a load average under 0.5) and `UPDATE_DOC=0` (write "
         "only `bench/results/ws-<time>/`). It fails when a chatd run lost, duplicated or "
         "reordered a delivery, got an error event, could not connect, or when chatd logged "
         "an error or did not exit cleanly.", "",
         "Any row can be rerun by hand against a running chatd, e.g. S1:", "",
         "```sh",
         "THREADS=1 RATE_LIMIT_MESSAGES=0 RATE_LIMIT_AUTH=0 LOG_LEVEL=warn taskset -c 0 build/chatd &",
         "taskset -c 1 build/chatd-bench --port 3000 --subs 1000 --pubs 1 --rooms 1 --rate 0 "
         "--window 64 --warmup 2 --duration 5",
         "```", "",
         "### What a run does", "",
         "- **chatd**: a fresh SQLite database per run, `THREADS=1`, `RATE_LIMIT_MESSAGES=0`, "
         "`RATE_LIMIT_AUTH=0`, `LOG_LEVEL=warn`, pinned to CPU 0 with all its threads (the "
         "store writer included); stopped with SIGTERM after each run.",
         "- **chatd-bench** (`build/chatd-bench --help`), pinned to CPU 1: registers one user "
         "per publisher and up to four shared by the subscribers (each registration costs an "
         "Argon2id hash), creates the rooms with `POST /rooms`, opens the WebSockets with "
         "their tokens, and posts `{\"type\":\"message\",\"content\":\"#T<ns>#<run>:<pub>:<seq># …\"}` "
         "(64 content bytes). Subscribers find the send time in each event without a JSON "
         "parse and put `now − sent` in a log-linear histogram (±1.6%). Deliveries/s count "
         "what arrived in the measured window; latencies are those of the messages sent in it. "
         "`--rate R` is open loop (a slow server shows as latency, not as fewer sends); "
         "`--rate 0` keeps at most 64 messages per room in flight (sent − deliveries ÷ "
         "subscribers), so the latency of S1 and S3 is queueing by construction (Little's "
         "law): read throughput there and latency in S2.",
         "- **Loss check**: after the run chatd-bench reads every message of the run back "
         "with `GET /rooms/:id/messages`; every subscriber must have received exactly the "
         "stored ids of its room (same count, same sums of ids and of hashed ids, each id "
         "above the previous one), and each publisher the echo of every message it sent. "
         "\"lost\" counts missing, unexpected, duplicated or reordered deliveries and posts "
         "never acknowledged.",
         "- **Peers**: the yardstick's own driver (`run-peers.sh`, wsbench pinned to CPU 1, "
         "each peer pinned to CPU 0) runs the same scenarios against Node `ws`, Socket.IO, "
         "nats-server and the bare C broadcaster c-limit (no auth, no storage). The row "
         "\"chatd / wsbench\" is chatd driven by wsbench with one shared token, so that chatd "
         "and the peers are also compared with the same client.",
         "- **Scaling**: 1 room with 100, 1,000 and 10,000 subscribers, at max rate and at a "
         "fixed 100,000 deliveries/s; idle connections held 3 s at several counts, one fresh "
         "chatd per point (server RSS = VmRSS, user-space memory only).", "",
         "### Machine", ""] + machine(args) + [
         "", f"### Results ({when})", ""]
    if args.peers_note:
        L += [f"Peers: {args.peers_note}.", ""]
    for sc in ("S1", "S2", "S3", "S3PG"):
        if any(rows.get(s, sc) for s in servers_of(rows)):
            L += load_table(rows, sc, fixed=(sc == "S2"))
        if sc == "S2":
            L += login_table(rows)
    if any(rows.get(s, "S4") for s in servers_of(rows)):
        L += hold_table(rows, args.s4_conns)
    L += ["Server CPU is the share of one core over the measured window (chatd's writer "
          "thread included); client CPU that of the load generator: above ~90% the client, not "
          "the server, may be the limit. \"Per server CPU-s\" is deliveries/s ÷ server CPU "
          "share: what one whole core would carry at that cost, the fairer figure when other "
          "work took part of the server's core. \"lost\" for wsbench rows is expected − received "
          "deliveries after its drain; wsbench cannot check ids.", "",
          "#### Targets", ""] + targets_table(rows)
    L += ["### Scaling", ""] + scaling_tables(scaling, out_dir)
    L += [END, ""]
    return wrap("\n".join(L))


def wrap(text, width=76):
    """Wraps prose and list items like the rest of the document; tables,
    code blocks, headings and images stay as they are."""
    out, in_code = [], False
    for line in text.split("\n"):
        if line.startswith("```"):
            in_code = not in_code
            out.append(line)
        elif in_code or line.startswith(("|", "#", "!", "<!--")) or len(line) <= width:
            out.append(line)
        elif line.startswith("- "):
            out.append(textwrap.fill(line[2:], width, initial_indent="- ",
                                     subsequent_indent="  ", break_on_hyphens=False))
        else:
            out.append(textwrap.fill(line, width, break_on_hyphens=False))
    return "\n".join(out)


def splice(section_path, doc_path):
    text = Path(section_path).read_text()
    doc = Path(doc_path).read_text() if Path(doc_path).exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(START.split(":")[0]) + r".*?" + re.escape(END) + r"\n?", re.S)
    if pattern.search(doc):
        doc = pattern.sub(lambda _: text, doc, count=1)
    else:
        doc = doc.rstrip("\n") + "\n\n" + text
    Path(doc_path).write_text(doc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--splice", nargs=2, metavar=("SECTION", "DOC"))
    ap.add_argument("--raw")
    ap.add_argument("--peers-raw")
    ap.add_argument("--out")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--s4-conns", type=int, default=19500)
    ap.add_argument("--load-before", default="0 0 0")
    ap.add_argument("--load-start", default="0 0 0")
    ap.add_argument("--load-end", default="0 0 0")
    ap.add_argument("--quiet-load", type=float, default=0.5)
    ap.add_argument("--chatd", default="build/chatd")
    ap.add_argument("--peers-note", default="")
    ap.add_argument("--tree", default="", help="the git tree the binaries were built from")
    ap.add_argument("--when", default="", help="when the runs ended (default: now)")
    ap.add_argument("--phase-load", action="append", default=[], metavar="PHASE=LOAD1",
                    help="the 1-minute load average at the end of a phase")
    args = ap.parse_args()
    if args.splice:
        splice(*args.splice)
        return
    out_dir = Path(args.out)
    rows, scaling = collect(load_lines(args.raw), load_lines(args.peers_raw))
    text = section(args, rows, scaling, out_dir)
    (out_dir / "section.md").write_text(text)
    tables = text.split("### Results", 1)[-1].split(END)[0]
    (out_dir / "tables.md").write_text("### Results" + tables)


if __name__ == "__main__":
    main()
