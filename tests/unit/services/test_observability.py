"""Every service's HTTP endpoints, over real HTTP on a free local port."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from dynpricing.observability import Health, HttpServer, JsonView, configure_logging

HOST = "127.0.0.1"
TIMEOUT_S = 5.0


class Served:
    """A running server and what a test needs to drive it."""

    def __init__(
        self, views: Mapping[str, JsonView] | None = None, health: Health | None = None
    ) -> None:
        self.registry = CollectorRegistry()
        self.health = health or Health()
        self.server = HttpServer(HOST, 0, self.registry, self.health, views)
        self.server.start()

    def get(self, path: str) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(HOST, self.server.port, timeout=TIMEOUT_S)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        finally:
            connection.close()


STALE_AFTER_S = 1.0  # long enough that no test but the liveness one sees it lapse


class Views:
    """JSON views whose behaviour each test can steer."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.release.set()

    def state(self) -> dict[str, Any]:
        return {"total_outcomes": 3, "contexts": []}

    def counting(self) -> dict[str, Any]:
        self.calls += 1
        return {"calls": self.calls}

    def slow(self) -> dict[str, Any]:
        self.release.wait(TIMEOUT_S)
        return {}

    def broken(self) -> dict[str, Any]:
        raise RuntimeError("table went away")


@pytest.fixture(scope="module")
def views() -> Views:
    return Views()


@pytest.fixture(scope="module")
def server(views: Views) -> Iterator[Served]:
    """One server for the module: stopping one takes up to half a second."""
    routes = {
        "/state": views.state,
        "/counting": views.counting,
        "/slow": views.slow,
        "/broken": views.broken,
    }
    running = Served(routes, Health(stale_after_s=STALE_AFTER_S))
    yield running
    running.server.stop()


@pytest.fixture
def served(server: Served) -> Served:
    """The shared server, alive and not ready, as a service is right after start."""
    server.health.tick()
    server.health.set_ready(False)
    return server


def test_the_server_listens_on_the_port_the_os_picked(served: Served) -> None:
    assert served.server.port > 0


def test_metrics_are_served_from_the_services_own_registry(served: Served) -> None:
    counter = Counter("dynpricing_test_events", "test", ("location",), registry=served.registry)
    counter.labels("Airport").inc(3)
    status, content_type, body = served.get("/metrics")
    assert status == 200
    assert content_type == CONTENT_TYPE_LATEST
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = families["dynpricing_test_events"].samples
    assert [(s.name, s.labels, s.value) for s in samples if s.name.endswith("_total")] == [
        ("dynpricing_test_events_total", {"location": "Airport"}, 3.0)
    ]
    assert (
        served.registry.get_sample_value("dynpricing_test_events_total", {"location": "Airport"})
        == 3.0
    )


def test_a_query_string_does_not_change_the_endpoint(served: Served) -> None:
    assert served.get("/metrics?name[]=x")[0] == 200
    assert served.get("/healthz?verbose=1")[0] == 200


def test_readiness_follows_the_service_and_is_false_at_start(served: Served) -> None:
    assert served.get("/readyz") == (503, "text/plain", b"not ready\n")
    served.health.set_ready(True)
    assert served.get("/readyz") == (200, "text/plain", b"ready\n")
    served.health.set_ready(False)
    assert served.get("/readyz") == (503, "text/plain", b"not ready\n")


def test_liveness_fails_once_the_loop_stops_ticking_and_recovers_when_it_ticks(
    served: Served,
) -> None:
    assert served.get("/healthz") == (200, "text/plain", b"alive\n")
    time.sleep(STALE_AFTER_S + 0.1)
    assert served.get("/healthz") == (503, "text/plain", b"loop stalled\n")
    served.health.tick()
    assert served.get("/healthz")[0] == 200


def test_a_json_view_is_served_as_json(served: Served) -> None:
    status, content_type, body = served.get("/state")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"total_outcomes": 3, "contexts": []}


def test_a_json_view_is_computed_afresh_for_every_request(served: Served) -> None:
    first = json.loads(served.get("/counting")[2])["calls"]
    assert json.loads(served.get("/counting")[2]) == {"calls": first + 1}


def test_a_failing_view_answers_500_with_the_error_and_the_server_keeps_serving(
    served: Served,
) -> None:
    status, content_type, body = served.get("/broken")
    assert (status, content_type) == (500, "application/json")
    assert json.loads(body) == {"error": "RuntimeError: table went away"}
    assert served.get("/state")[0] == 200


def test_an_unknown_path_is_not_found(served: Served) -> None:
    assert served.get("/nothing")[0] == 404
    assert served.get("/")[0] == 404


def test_a_slow_view_does_not_block_health_checks(served: Served, views: Views) -> None:
    views.release.clear()
    results: list[int] = []
    waiting = threading.Thread(target=lambda: results.append(served.get("/slow")[0]))
    try:
        waiting.start()
        assert served.get("/healthz")[0] == 200
        assert results == []
    finally:
        views.release.set()
        waiting.join(TIMEOUT_S)
    assert results == [200]


def test_a_stopped_server_frees_its_port() -> None:
    served = Served()
    port = served.server.port
    served.server.stop()
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection(HOST, port, timeout=TIMEOUT_S).connect()


@pytest.fixture
def reset_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def test_json_logs_are_one_object_per_line_with_event_level_and_time(
    capsys: pytest.CaptureFixture[str], reset_logging: None
) -> None:
    configure_logging("info", "json")
    log = structlog.get_logger("test")
    log.info("decision_published", context="Airport|high", price=1.5)
    log.debug("not_shown")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "decision_published"
    assert (record["context"], record["price"], record["level"]) == ("Airport|high", 1.5, "info")
    assert record["timestamp"].endswith("Z")


def test_auto_log_format_writes_json_when_stderr_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str], reset_logging: None
) -> None:
    configure_logging("warning", "auto")
    structlog.get_logger("test").warning("snapshot_slow", seconds=2.5)
    assert json.loads(capsys.readouterr().err)["event"] == "snapshot_slow"
