"""Fixtures: the chatd binary, a throwaway PostgreSQL cluster for the whole
session, one server per test module and backend, and a factory for servers
with special configuration."""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest

import api
import databases
import harness

BACKENDS = ("sqlite", "postgres")


@pytest.fixture(scope="session")
def pg_cluster():
    """Started on first use; a failure to start fails the tests loudly."""
    cluster = databases.PgCluster()
    atexit.register(cluster.destroy)
    try:
        cluster.start()
    except Exception as exc:  # noqa: BLE001
        cluster.destroy()
        pytest.fail(f"could not start the throwaway PostgreSQL cluster: {exc}", pytrace=False)
    yield cluster
    cluster.destroy()


class ServerFactory:
    """Makes databases and servers; everything it made is torn down with it."""

    def __init__(self, request):
        self.request = request
        self.servers = []
        self.dirs = []

    def new_db(self, backend, workdir):
        if backend == "sqlite":
            return databases.SqliteDb(Path(workdir) / "data" / "chat.db")
        if backend == "postgres":
            cluster = self.request.getfixturevalue("pg_cluster")
            return databases.PostgresDb(cluster, cluster.createdb())
        raise ValueError(backend)

    def __call__(self, backend="sqlite", env=None, start=True, db=None):
        workdir = Path(tempfile.mkdtemp(prefix="chatd-srv-"))
        (workdir / "data").mkdir()
        self.dirs.append(workdir)
        db = db or self.new_db(backend, workdir)
        server = harness.ChatdServer(db, env=env, workdir=workdir)
        self.servers.append(server)
        if start:
            server.start()
        return server

    def teardown(self):
        problems = []
        for server in self.servers:
            problem = server.teardown()
            if problem:
                problems.append(problem)
        for d in self.dirs:
            shutil.rmtree(d, ignore_errors=True)
        if problems:
            pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.fixture
def make_server(request):
    """Factory for servers with special settings: make_server(backend, env)."""
    factory = ServerFactory(request)
    yield factory
    factory.teardown()


@pytest.fixture(scope="module")
def module_servers(request):
    factory = ServerFactory(request)
    yield factory
    factory.teardown()


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request):
    return request.param


@pytest.fixture(scope="module")
def server(backend, module_servers):
    """One server per test module and backend, shared by its tests."""
    return module_servers(backend)


@pytest.fixture(scope="module")
def users(server):
    """Three registered users shared by a module's tests."""
    return [api.register(server) for _ in range(3)]


# --------------------------------------------------------------------------
# WebSocket modules: every combination of backend and I/O threads.

THREADS = (1, 4)


@pytest.fixture(scope="module", params=THREADS, ids=lambda t: f"threads{t}")
def threads(request):
    return request.param


@pytest.fixture(scope="module")
def ws_server(request, backend, threads):
    """One server per test module, backend and THREADS value, with the
    module's WS_SERVER_ENV on top; stopped before the next combination
    starts."""
    factory = ServerFactory(request)
    env = {"THREADS": threads}
    env.update(getattr(request.module, "WS_SERVER_ENV", {}))
    server = factory(backend, env=env)
    yield server
    factory.teardown()


@pytest.fixture(scope="module")
def ws_users(ws_server):
    """Four registered users shared by a module's tests."""
    return [api.register(ws_server) for _ in range(4)]


@pytest.fixture(autouse=True)
def _ws_server_survived(request):
    """A WebSocket test that kills the module's server fails with its log,
    and the server is started again so that the next tests still say
    something about themselves."""
    yield
    if "ws_server" not in request.fixturenames:
        return
    server = request.getfixturevalue("ws_server")
    if server.proc is None or server.proc.poll() is None:
        return
    rc = server.proc.returncode
    tail = server.log_tail(30)
    server.start()
    pytest.fail(f"chatd died during this test (exit {rc}); log tail:\n{tail}", pytrace=False)
