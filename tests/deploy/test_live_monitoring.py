"""Live check: the dashboards and alerts work on the metrics the services really export.

The three services run on the test broker; a real Prometheus (Debian's binary)
scrapes them with docker-compose's scrape config, rewritten for the local
ports, and loads the alert rules. Then every dashboard query runs through
Prometheus's HTTP API and must return data, and every alert expression must
evaluate, on series that exist.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CHART,
    COMPOSE_SERVICES,
    contract,
    dashboards,
    grafana_to_promql,
    http_get,
    metric_names,
    panels,
    tool,
)
from tests.kafka_support import free_port, unique, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.tools]

SCRAPE_INTERVAL = "1s"
PROMETHEUS_START_S = 60.0
DATA_DEADLINE_S = 120.0
# Decisions expire fast and outcomes come late, so the expired-decision series exist.
DECISION_TIMEOUT_S = 1.0
OUTCOME_DELAY_MEAN_S = 0.5
DEMAND_RATE = 200
STOP_TIMEOUT_S = 30.0
TOPIC_KEYS = ("DEMAND", "DECISIONS", "OUTCOMES", "DEAD_LETTERS")


@dataclass
class Service:
    """One service process (``python -m dynpricing.cli <name>``) with its HTTP port."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.port, path)

    def wait_ready(self) -> None:
        def ready() -> bool | None:
            if self.proc.poll() is not None:
                log = self.log_path.read_text(errors="replace")[-3000:]
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{log}")
            try:
                return True if self.get("/readyz")[0] == 200 else None
            except OSError:
                return None

        wait_until(ready, deadline_s=DATA_DEADLINE_S, what=f"{self.name} /readyz")


@dataclass
class Stack:
    """The three services on one broker, with the contract's variable names."""

    bootstrap: str
    topics: dict[str, str]
    workdir: Path
    started: list[Service] = field(default_factory=list)

    def start(self, name: str, **settings: object) -> Service:
        prefix = f"DYNPRICING_{name.upper()}_"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DYNPRICING_")}
        env[f"{prefix}KAFKA__BOOTSTRAP_SERVERS"] = self.bootstrap
        env.update({f"{prefix}TOPICS__{key}": topic for key, topic in self.topics.items()})
        env[f"{prefix}HTTP_PORT"] = str(port)
        env[f"{prefix}LOG_FORMAT"] = "json"
        for key, value in settings.items():
            env[f"{prefix}{key.upper()}"] = str(value)
        log_path = self.workdir / f"{name}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dynpricing.cli", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        service = Service(name, port, proc, log_path)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            if service.proc.poll() is None:
                service.proc.kill()
                service.proc.wait(STOP_TIMEOUT_S)


def wait_for_group_coordinator(bootstrap: str, topic: str) -> None:
    """On a fresh broker the offsets topic loads for a while and group calls fail
    with NOT_COORDINATOR; wait that out so the services start on a settled broker."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition  # noqa: PLC0415

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("warmup")})
    try:

        def settled() -> bool | None:
            try:
                consumer.committed([TopicPartition(topic, 0)], timeout=5)
            except KafkaException:
                return None
            return True

        wait_until(settled, deadline_s=DATA_DEADLINE_S, what="the group coordinator")
    finally:
        consumer.close()


def produce_garbage(bootstrap: str, topic: str) -> None:
    """One unparseable event, so the dead-letter series exist."""
    from confluent_kafka import Producer  # noqa: PLC0415 - only the live check needs Kafka

    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=b"Airport", value=b"not json")
    assert producer.flush(30) == 0


def prometheus_config(ports: dict[str, int], rules: Path) -> dict[str, Any]:
    """docker-compose's scrape config with each target moved to its local port."""
    config = yaml.safe_load((CHART / "prometheus" / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = SCRAPE_INTERVAL
    config["global"]["evaluation_interval"] = SCRAPE_INTERVAL
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            component = static["labels"]["component"]
            static["targets"] = [f"127.0.0.1:{ports[component]}"]
    return dict(config)


class PrometheusApi:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - http://127.0.0.1
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", data
        return list(data["result"])

    def has_data(self, expr: str) -> bool:
        return bool(self.query(expr))


@pytest.fixture
def stack(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> Iterator[Stack]:
    partitions = {"DEMAND": 3, "DECISIONS": 3, "OUTCOMES": 3, "DEAD_LETTERS": 1}
    topics = {key: topic_factory(key.lower(), partitions[key]) for key in TOPIC_KEYS}
    services = Stack(kafka_bootstrap, topics, tmp_path)
    yield services
    services.stop_all()


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[PrometheusApi]:
    binary = tool("prometheus")
    wait_for_group_coordinator(stack.bootstrap, stack.topics["DEMAND"])
    engine = stack.start(
        "engine",
        state_path=tmp_path / "bandit_stats.json",
        group_id=unique("engine"),
        snapshot_interval_s=0.5,
        decision_timeout_s=DECISION_TIMEOUT_S,
        expired_as="reject",
        seed=7,
    )
    simulator = stack.start(
        "simulator", group_id=unique("simulator"), seed=11, delay_mean_s=OUTCOME_DELAY_MEAN_S
    )
    engine.wait_ready()
    simulator.wait_ready()
    producer = stack.start("producer", rate=DEMAND_RATE, seed=5)
    producer.wait_ready()
    produce_garbage(stack.bootstrap, stack.topics["DEMAND"])

    ports = {s.name: s.port for s in (engine, simulator, producer)}
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(ports, CHART / "prometheus" / "alerts.yml")))
    port = free_port()
    log = (tmp_path / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            str(binary),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    api = PrometheusApi(port)
    try:

        def ready() -> bool | None:
            if proc.poll() is not None:
                raise AssertionError(
                    f"prometheus exited {proc.returncode}:\n"
                    + (tmp_path / "prometheus.log").read_text(errors="replace")[-3000:]
                )
            try:
                ready_url = f"{api.base}/-/ready"
                with urllib.request.urlopen(ready_url, timeout=2) as resp:  # noqa: S310 - loopback
                    return True if resp.status == 200 else None
            except OSError:
                return None

        wait_until(ready, deadline_s=PROMETHEUS_START_S, what="prometheus ready")
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()


def dashboard_targets() -> dict[str, list[tuple[str, str]]]:
    """Panel -> its (refId, PromQL) pairs, Grafana variables filled in."""
    out: dict[str, list[tuple[str, str]]] = {}
    for file, dash in dashboards().items():
        for panel in panels(dash):
            out[f"{file}: {panel['title']}"] = [
                (t["refId"], grafana_to_promql(t["expr"])) for t in panel["targets"]
            ]
    return out


def alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load((CHART / "prometheus" / "alerts.yml").read_text())["groups"]
    return {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}


def exported_types(stack: Stack) -> dict[str, str]:
    """Metric name -> type, from the ``# TYPE`` lines of every running service."""
    types: dict[str, str] = {}
    for service in stack.started:
        status, body = service.get("/metrics")
        assert status == 200, service.name
        for line in body.decode().splitlines():
            if line.startswith("# TYPE dynpricing_"):
                _, _, name, kind = line.split()
                types[name] = kind
    return types


def test_services_export_every_contract_metric_with_its_type(
    prometheus: PrometheusApi, stack: Stack
) -> None:
    exported = exported_types(stack)
    tables = contract().service_metrics
    promised = {name: kind for s in stack.started for name, kind in tables[s.name].items()}
    wrong = {
        name: exported.get(name, "missing")
        for name, kind in promised.items()
        if exported.get(name) != kind
    }
    assert not wrong, f"docs/interfaces.md promises these, the services export: {wrong}"


def test_every_dashboard_panel_and_alert_works_on_live_metrics(
    prometheus: PrometheusApi,
) -> None:
    def all_targets_up() -> bool | None:
        found = {r["metric"]["component"] for r in prometheus.query("up == 1")}
        return True if found >= set(COMPOSE_SERVICES) else None

    wait_until(all_targets_up, deadline_s=DATA_DEADLINE_S, what="all three targets up")

    targets = dashboard_targets()
    missing: list[str] = []

    def every_target_has_data() -> bool | None:
        missing.clear()
        for panel, queries in targets.items():
            for ref, expr in queries:
                if not prometheus.has_data(expr):
                    missing.append(f"{panel} [{ref}]: {expr}")
        return True if not missing else None

    try:
        wait_until(every_target_has_data, deadline_s=DATA_DEADLINE_S, what="every panel's data")
    except AssertionError:
        pytest.fail("dashboard queries without data:\n" + "\n".join(missing))

    locations = prometheus.get(
        "/api/v1/label/location/values", **{"match[]": "dynpricing_decisions_total"}
    )
    assert locations, "the dashboard's location variable would be empty"

    for name, expr in alert_exprs().items():
        prometheus.query(expr)  # evaluates without error
        for metric in metric_names(expr):
            assert prometheus.has_data(f"count({metric})"), f"{name}: no {metric} series"
    assert not prometheus.query(alert_exprs()["DynpricingEngineDown"]), "engine reported down"

    rules = prometheus.get("/api/v1/rules")
    loaded = {r["name"]: r for g in rules["groups"] for r in g["rules"]}
    assert set(loaded) == set(alert_exprs())
    unhealthy = {n: r.get("lastError") for n, r in loaded.items() if r["health"] != "ok"}
    assert not unhealthy, unhealthy
