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


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """One server for the tests that leave it as they found it (stopping takes ~0.5 s)."""
    running = Served({"/state": lambda: {"total_outcomes": 3, "contexts": []}})
    yield running
    running.server.stop()


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


def test_readiness_follows_the_service_and_is_false_at_start() -> None:
    served = Served()
    try:
        _check_readiness(served)
    finally:
        served.server.stop()


def _check_readiness(served: Served) -> None:
    assert served.get("/readyz")[0] == 503
    served.health.set_ready(True)
    assert served.get("/readyz")[:1] == (200,)
    assert served.get("/readyz")[2] == b"ready\n"
    served.health.set_ready(False)
    assert served.get("/readyz") == (503, "text/plain", b"not ready\n")


def test_liveness_fails_once_the_loop_stops_ticking_and_recovers_when_it_ticks() -> None:
    served = Served(health=Health(stale_after_s=0.5))
    try:
        served.health.tick()
        assert served.get("/healthz") == (200, "text/plain", b"alive\n")
        time.sleep(0.6)
        assert served.get("/healthz") == (503, "text/plain", b"loop stalled\n")
        served.health.tick()
        assert served.get("/healthz")[0] == 200
    finally:
        served.server.stop()


def test_a_json_view_is_served_as_json(served: Served) -> None:
    status, content_type, body = served.get("/state")
    assert (status, content_type) == (200, "application/json")
    assert json.loads(body) == {"total_outcomes": 3, "contexts": []}


def test_a_json_view_is_computed_afresh_for_every_request() -> None:
    calls: list[int] = []

    def view() -> dict[str, Any]:
        calls.append(1)
        return {"calls": len(calls)}

    served = Served({"/state": view})
    try:
        assert json.loads(served.get("/state")[2]) == {"calls": 1}
        assert json.loads(served.get("/state")[2]) == {"calls": 2}
    finally:
        served.server.stop()


def test_an_unknown_path_is_not_found(served: Served) -> None:
    assert served.get("/nothing")[0] == 404
    assert served.get("/")[0] == 404


def test_a_slow_view_does_not_block_health_checks() -> None:
    release = threading.Event()

    def slow() -> dict[str, Any]:
        release.wait(TIMEOUT_S)
        return {}

    served = Served({"/state": slow})
    results: list[int] = []
    waiting = threading.Thread(target=lambda: results.append(served.get("/state")[0]))
    try:
        waiting.start()
        assert served.get("/healthz")[0] == 200
        assert results == []
    finally:
        release.set()
        waiting.join(TIMEOUT_S)
        served.server.stop()
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
