#!/usr/bin/python3
"""Joins a chatd room over WebSocket, prints what arrives and sends each
line typed on stdin as a message. Ends on EOF (Ctrl-D) or Ctrl-C.

    scripts/demo_ws.py TOKEN ROOM_ID
    scripts/demo_ws.py --url ws://chat.example:3000 TOKEN ROOM_ID

The server is ws://localhost:3000 unless --url, WS_URL or BASE_URL (an
http:// or https:// URL is turned into ws:// or wss://) says otherwise.
Needs python3-websockets (Debian) or `pip install websockets`."""

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import urllib.parse

import websockets


def server_url(arg):
    url = arg or os.environ.get("WS_URL") or os.environ.get("BASE_URL") or "ws://localhost:3000"
    url = url.rstrip("/")
    if url.startswith("http://"):
        url = "ws://" + url[len("http://") :]
    elif url.startswith("https://"):
        url = "wss://" + url[len("https://") :]
    return url


def room_url(base, room_id, token, since):
    """base may already name the room (…/ws/1); the token is always added."""
    if "/ws/" not in base:
        base = f"{base}/ws/{room_id}"
    query = {"token": token}
    if since is not None:
        query["since"] = since
    sep = "&" if "?" in base else "?"
    return base + sep + urllib.parse.urlencode(query)


def describe(event):
    """One line for an event from the server."""
    kind = event.get("type")
    if kind == "message":
        return f"[{event.get('username') or event.get('sender')}] {event.get('content')}"
    if kind == "presence":
        return f"* {event.get('username')} is {event.get('status')}"
    if kind == "typing":
        return f"* {event.get('username')} is typing…"
    if kind == "read":
        return f"* user {event.get('user_id')} read up to message {event.get('message_id')}"
    if kind == "recovery":
        if event.get("recovered"):
            return f"* {event.get('count')} missed messages replayed"
        return f"* too many missed messages: page with ?after={event.get('since')}"
    if kind == "error":
        return f"! {event.get('code')}: {event.get('error')}"
    if kind in ("message_updated", "message_deleted"):
        return f"* {kind} #{event.get('id')}: {event.get('content')}"
    if kind == "pong":
        return "* pong"
    return "* " + json.dumps(event, ensure_ascii=False, separators=(",", ":"))


def say(line):
    print(line, flush=True)


async def receive(ws):
    async for raw in ws:
        try:
            event = json.loads(raw)
        except ValueError:
            say(f"? {raw!r}")
            continue
        say(describe(event) if isinstance(event, dict) else f"? {raw}")


async def stdin_lines():
    """Lines from stdin, read by a daemon thread so that the terminal is
    left as it is and an exit never waits for a pending read."""
    loop = asyncio.get_running_loop()
    lines = asyncio.Queue()

    def deliver(item):
        try:
            loop.call_soon_threadsafe(lines.put_nowait, item)
        except RuntimeError:  # the loop has finished
            pass

    def pump():
        # os.read, not sys.stdin: a buffered reader's lock held by this
        # thread would abort the interpreter's exit.
        pending = b""
        try:
            while True:
                chunk = os.read(sys.stdin.fileno(), 4096)
                if not chunk:
                    break
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    deliver(line + b"\n")
        except OSError:
            pass
        finally:
            if pending:
                deliver(pending)
            deliver(None)

    threading.Thread(target=pump, daemon=True).start()
    while True:
        line = await lines.get()
        if line is None:
            return
        yield line


async def send_stdin(ws):
    async for line in stdin_lines():
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if text.strip():
            await ws.send(json.dumps({"type": "message", "content": text}, ensure_ascii=False))


async def chat(url, shown_url):
    try:
        ws = await websockets.connect(url, open_timeout=10, close_timeout=5)
    except websockets.InvalidStatusCode as exc:
        say(f"! the server refused the connection: HTTP {exc.status_code}")
        return 1
    except (OSError, asyncio.TimeoutError, websockets.InvalidHandshake) as exc:
        say(f"! cannot connect to {shown_url}: {exc}")
        return 1
    loop = asyncio.get_running_loop()
    interrupted = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted.set)
    say(f"* connected to {shown_url}; type a message and press Enter (Ctrl-D to quit)")
    tasks = {
        asyncio.create_task(receive(ws)): "server",
        asyncio.create_task(send_stdin(ws)): "stdin",
        asyncio.create_task(interrupted.wait()): "signal",
    }
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    status = 0
    for task in done:
        if tasks[task] == "server":
            exc = task.exception()
            if isinstance(exc, websockets.ConnectionClosed) or exc is None:
                code = ws.close_code
                say(f"* the server closed the connection ({code} {ws.close_reason or ''})".rstrip())
                status = 0 if code in (1000, 1001) else 1
            else:
                say(f"! {exc}")
                status = 1
        elif task.exception() is not None and not isinstance(
            task.exception(), websockets.ConnectionClosed
        ):
            say(f"! {task.exception()}")
            status = 1
    await ws.close()
    say("* bye")
    return status


def main():
    parser = argparse.ArgumentParser(description="Chat in a chatd room from the terminal.")
    parser.add_argument("token", help="a JWT from /auth/login or /auth/register")
    parser.add_argument("room_id", type=int, help="the room to join, e.g. 1")
    parser.add_argument(
        "--url", help="server URL (default: $WS_URL, $BASE_URL or ws://localhost:3000)"
    )
    parser.add_argument("--since", type=int, help="replay messages after this id first")
    args = parser.parse_args()
    base = server_url(args.url)
    url = room_url(base, args.room_id, args.token, args.since)
    shown = url.split("?", 1)[0]  # never print the token
    try:
        return asyncio.run(chat(url, shown))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
