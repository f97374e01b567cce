"""/health, /ready and /metrics."""

import requests

import databases
from api import post_message
from harness import wait_until
from rawhttp import metric_sum, parse_metrics


def test_health(server):
    r = server.get("/health")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"status": "ok"}


def test_health_needs_no_token(server):
    r = server.get("/health", headers={"Authorization": "Bearer garbage"})
    assert r.status_code == 200


def test_ready(server):
    r = server.get("/ready")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/json")


def scrape(server):
    r = server.get("/metrics")
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain"), r.headers
    return r.text, parse_metrics(r.text)


def test_metrics_names_and_types(server, users):
    server.get("/health")
    server.get("/rooms", token=users[0].token)
    text, samples = scrape(server)
    names = {n for n, _, _ in samples}
    for name in (
        "chatd_http_requests_total",
        "chatd_http_request_duration_seconds_bucket",
        "chatd_http_request_duration_seconds_sum",
        "chatd_http_request_duration_seconds_count",
        "chatd_open_connections",
        "chatd_messages_stored_total",
        "chatd_store_queue_depth",
        "chatd_store_commit_duration_seconds_bucket",
        "chatd_store_commit_duration_seconds_sum",
        "chatd_store_commit_duration_seconds_count",
    ):
        assert name in names, f"{name} missing from /metrics"
    for line in (
        "# TYPE chatd_http_requests_total counter",
        "# TYPE chatd_http_request_duration_seconds histogram",
        "# TYPE chatd_open_connections gauge",
        "# TYPE chatd_messages_stored_total counter",
        "# TYPE chatd_store_queue_depth gauge",
        "# TYPE chatd_store_commit_duration_seconds histogram",
    ):
        assert line in text.splitlines(), f"{line!r} missing"
    assert metric_sum(samples, "chatd_open_connections") >= 1
    # histograms end with +Inf
    assert any(n == "chatd_http_request_duration_seconds_bucket" and lab.get("le") == "+Inf"
               for n, lab, _ in samples)
    assert any(n == "chatd_store_commit_duration_seconds_bucket" and lab.get("le") == "+Inf"
               for n, lab, _ in samples)


def test_metrics_requests_by_route_and_status(server, users):
    _, before = scrape(server)
    b200 = metric_sum(before, "chatd_http_requests_total", route="/rooms/:id", status="200")
    b404 = metric_sum(before, "chatd_http_requests_total", route="/rooms/:id", status="404")
    for _ in range(3):
        assert server.get("/rooms/1", token=users[0].token).status_code == 200
    assert server.get("/rooms/999999", token=users[0].token).status_code == 404

    def counted():
        _, after = scrape(server)
        return (metric_sum(after, "chatd_http_requests_total", route="/rooms/:id",
                           status="200") >= b200 + 3
                and metric_sum(after, "chatd_http_requests_total", route="/rooms/:id",
                               status="404") >= b404 + 1)

    wait_until(counted, 5, what="request counters")


def test_metrics_messages_stored_and_commits(server, users):
    _, before = scrape(server)
    stored = metric_sum(before, "chatd_messages_stored_total")
    commits = metric_sum(before, "chatd_store_commit_duration_seconds_count")
    for i in range(3):
        post_message(server, users[0], 1, f"metric {i}")

    def counted():
        _, after = scrape(server)
        return (metric_sum(after, "chatd_messages_stored_total") >= stored + 3
                and metric_sum(after, "chatd_store_commit_duration_seconds_count") > commits)

    wait_until(counted, 5, what="store counters")


def test_ready_503_when_postgres_stops(make_server):
    cluster = databases.PgCluster()
    try:
        cluster.start()
        db = databases.PostgresDb(cluster, cluster.createdb())
        srv = make_server(db=db)
        srv.expect_clean_exit = False  # shutting down without a database is not the point here
        assert srv.get("/ready").status_code == 200
        cluster.stop(mode="immediate")

        def unready():
            r = requests.get(srv.url + "/ready", timeout=15)
            return r.json() if r.status_code == 503 else None  # a 503 Response is falsy

        body = wait_until(unready, 20, interval=0.2, what="/ready to report 503")
        assert body["code"] == "unavailable"
        assert srv.get("/health").status_code == 200
    finally:
        cluster.destroy()


def test_metrics_unknown_paths_do_not_grow_labels(server):
    for i in range(20):
        assert server.get(f"/no/such/path/{i}").status_code == 404
    text, samples = scrape(server)
    routes = {lab.get("route") for n, lab, _ in samples if n == "chatd_http_requests_total"}
    assert not any(r and r.startswith("/no/such/path") for r in routes), routes
    assert len(routes) < 40, routes
