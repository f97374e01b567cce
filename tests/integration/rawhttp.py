"""HTTP over a raw socket (pipelining, timeouts, limits) and the
Prometheus text format."""

import json
import re
import socket


# --------------------------------------------------------------------------
# Raw HTTP over a socket (pipelining, timeouts, limits)


def connect(server, timeout=10):
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def raw_request(method, path, headers=None, body=b"", host="127.0.0.1"):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    hdrs = dict(headers or {})
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k in hdrs):
        hdrs["Content-Length"] = str(len(body))
    for k, v in hdrs.items():
        lines.append(f"{k}: {v}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (name lower-cased, value)
        self.body = body

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def json(self):
        return json.loads(self.body)


class RawReader:
    """Reads HTTP/1.1 responses off a socket, one after the other."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed")
        self.buf += chunk

    def _line(self):
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_only=False):
        status_line = self._line().decode("latin-1")
        parts = status_line.split(" ", 2)
        assert parts[0].startswith("HTTP/1."), status_line
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers = []
        while True:
            line = self._line()
            if not line:
                break
            k, v = line.decode("latin-1").split(":", 1)
            headers.append((k.strip().lower(), v.strip()))
        resp = RawResponse(status, reason, headers, b"")
        if head_only or status in (204, 304) or 100 <= status < 200:
            return resp
        te = resp.header("transfer-encoding")
        if te and "chunked" in te.lower():
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while self._line():
                        pass
                    break
                body += self._exact(size)
                self._exact(2)
            resp.body = body
        else:
            resp.body = self._exact(int(resp.header("content-length") or 0))
        return resp

    def wait_closed(self, timeout):
        """Reads until EOF; returns the bytes received before it. Raises
        socket.timeout when the peer keeps the connection open."""
        self.sock.settimeout(timeout)
        data = b""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return self.buf + data
                data += chunk
        except ConnectionResetError:
            return self.buf + data


def closed_within(sock, timeout):
    """True when the peer closes (EOF or reset) within timeout, False when it
    is still open; also returns what was received."""
    reader = RawReader(sock)
    try:
        data = reader.wait_closed(timeout)
        return True, data
    except socket.timeout:
        return False, b""


# --------------------------------------------------------------------------
# Prometheus text format


_SAMPLE = re.compile(
    r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(-?[0-9.eE+-]+|NaN|[+-]Inf)(\s+-?\d+)?$"
)


def parse_metrics(text):
    """Returns a list of (name, labels dict, value); asserts every line is
    valid exposition format."""
    samples = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad metrics line: {line!r}"
        labels = {}
        if m.group(2):
            for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2)):
                labels[lm.group(1)] = lm.group(2)
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_sum(samples, name, **labels):
    total = 0.0
    for n, lab, v in samples:
        if n == name and all(lab.get(k) == val for k, val in labels.items()):
            total += v
    return total


