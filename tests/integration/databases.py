"""A throwaway PostgreSQL 15 cluster, and direct read access to what chatd
stored (SQLite file or PostgreSQL database)."""

import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from pathlib import Path

from harness import free_port, unique

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _running_as_root():
    return os.geteuid() == 0


def _as_postgres(cmd):
    if _running_as_root():
        if not shutil.which("runuser"):
            raise RuntimeError("running as root but runuser is missing")
        return ["runuser", "-u", "postgres", "--"] + cmd
    return cmd


class PgCluster:
    """A throwaway PostgreSQL 15 cluster in a temporary directory, on a free
    loopback port, trust auth, stopped with stop()."""

    def __init__(self, base_dir=None):
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="chatd-pg-"))
        self.data = self.base / "data"
        self.port = None
        self.running = False

    def _run(self, cmd, check=True, timeout=60):
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            log = ""
            logfile = self.base / "pg.log"
            if logfile.exists():
                log = logfile.read_text(errors="replace")[-3000:]
            raise RuntimeError(
                f"PostgreSQL command failed ({res.returncode}): {' '.join(cmd)}\n"
                f"stdout: {res.stdout}\nstderr: {res.stderr}\nlog: {log}"
            )
        return res

    def start(self, port=None):
        """Starts the cluster (again, after stop(), on the same data); on
        port when given (a restart keeps its URL), else on a free one."""
        for tool in ("initdb", "pg_ctl"):
            if not (PG_BIN / tool).exists():
                raise RuntimeError(f"{PG_BIN / tool} not found (package postgresql-15)")
        self.base.mkdir(parents=True, exist_ok=True)
        if _running_as_root():
            pw = pwd.getpwnam("postgres")
            os.chown(self.base, pw.pw_uid, pw.pw_gid)
        os.chmod(self.base, 0o700)
        if not self.data.exists():
            self._run(
                _as_postgres(
                    [
                        str(PG_BIN / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                ),
                timeout=120,
            )
        self.port = port or free_port()
        # fsync off: chatd's crash tests kill chatd, never PostgreSQL.
        opts = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} "
            "-c fsync=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            _as_postgres(
                [
                    str(PG_BIN / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-w",
                    "-t",
                    "60",
                    "-l",
                    str(self.base / "pg.log"),
                    "-o",
                    opts,
                    "start",
                ]
            ),
            timeout=90,
        )
        self.running = True
        return self

    def stop(self, mode="fast"):
        if not self.running:
            return
        self.running = False
        self._run(
            _as_postgres(
                [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"]
            ),
            check=False,
            timeout=90,
        )

    def destroy(self):
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def _client_args(self, tool):
        return [tool, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def createdb(self, name=None):
        name = name or unique("chat_").lower()
        self._run(self._client_args("createdb") + [name])
        return name

    def url(self, dbname):
        return f"postgres://postgres@127.0.0.1:{self.port}/{dbname}"

    def psql(self, dbname, sql):
        res = self._run(
            self._client_args("psql")
            + ["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname, "-c", sql]
        )
        return res.stdout


# --------------------------------------------------------------------------
# Direct database access (to check what the server really stored)


class SqliteDb:
    backend = "sqlite"

    def __init__(self, path):
        self.path = Path(path)
        self.url = f"sqlite:{self.path}"

    def _connect(self):
        conn = sqlite3.connect(str(self.path), timeout=15)
        conn.row_factory = sqlite3.Row
        return conn

    def query(self, sql):
        """Rows as dicts."""
        conn = self._connect()
        try:
            return [dict(r) for r in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    def execute(self, sql):
        conn = self._connect()
        try:
            conn.execute(sql)
            conn.commit()
        finally:
            conn.close()

    def table_exists(self, name):
        rows = self.query(
            f"SELECT name FROM sqlite_master WHERE type='table' AND name='{name}'"
        )
        return bool(rows)


class PostgresDb:
    backend = "postgres"

    def __init__(self, cluster, dbname):
        self.cluster = cluster
        self.dbname = dbname
        self.url = cluster.url(dbname)

    def query(self, sql):
        """Rows as dicts (through json_agg, so text comes back exactly)."""
        out = self.cluster.psql(
            self.dbname, f"SELECT coalesce(json_agg(q__), '[]'::json) FROM ({sql}) q__"
        )
        return json.loads(out)

    def execute(self, sql):
        self.cluster.psql(self.dbname, sql)

    def table_exists(self, name):
        rows = self.query(f"SELECT to_regclass('public.{name}')::text AS reg")
        return bool(rows and rows[0]["reg"])


