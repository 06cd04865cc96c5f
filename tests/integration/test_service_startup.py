"""How services start: topics they may not create, an unreachable broker, SIGTERM at any time."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dynpricing import broker
from tests.integration.conftest import OwnBroker
from tests.integration.services_support import (
    Service,
    ServiceRunner,
    Topics,
    demand_json,
    engine_settings,
    priced_once,
    produce_values,
    read_json_messages,
    wait_consumed,
)
from tests.kafka_support import create_topics, free_port, start_broker, unique, wait_until

pytestmark = pytest.mark.kafka

SERVICES = ("engine", "producer", "simulator")


def _settings(name: str, tmp_path: Path) -> dict[str, object]:
    if name == "engine":
        return engine_settings(tmp_path)
    if name == "producer":
        return {"rate": 5, "seed": 1}
    return {"group_id": unique("sim")}


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_that_may_not_create_topics_waits_not_ready_until_they_exist(
    kafka_bootstrap: str, tmp_path: Path, name: str
) -> None:
    topics = Topics(*(unique(kind) for kind in ("demand", "decisions", "outcomes", "dead")))
    runner = ServiceRunner(kafka_bootstrap, topics, tmp_path)
    try:
        service = runner.start(name, create_topics="false", **_settings(name, tmp_path))
        wait_until(
            lambda: True if "topics_missing" in service.log() else None,
            what=f"{name} saying which topics are missing",
        )
        assert service.alive()
        # each waits for the topics it uses: the simulator may not even see demand
        assert (topics.decisions if name == "simulator" else topics.demand) in service.log()
        create_topics(kafka_bootstrap, [topics.demand, topics.decisions, topics.outcomes], 3)
        create_topics(kafka_bootstrap, [topics.dead_letters], 1)
        service.wait_ready()
        assert service.terminate() == 0
    finally:
        runner.stop_all()


SHUTDOWN_TIMEOUT_S = 5.0
RESTART_BOUND_S = 20.0  # well under the 45 s session timeout a dynamic member would wait for
# What a process needs besides its own shutdown: interpreter exit, on a loaded machine
EXIT_SLACK_S = 10.0


def _ends_in_time(service: Service) -> int:
    """SIGTERM; the exit code, which must come within the service's shutdown bound."""
    service.proc.send_signal(signal.SIGTERM)
    try:
        return service.proc.wait(SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"{service.name} still running {SHUTDOWN_TIMEOUT_S + EXIT_SLACK_S:.0f}s after"
            f" SIGTERM:\n{service.log()}"
        ) from None


def _logged(service: Service, event: str) -> bool:
    return f'"event": "{event}"' in service.log() or f'"event":"{event}"' in service.log()


def test_sigterm_ends_every_service_in_time_when_the_broker_is_gone_and_nothing_is_lost(
    own_broker: OwnBroker, own_runner: ServiceRunner, tmp_path: Path
) -> None:
    bound = {"shutdown_timeout_s": SHUTDOWN_TIMEOUT_S}
    engine = own_runner.start("engine", **engine_settings(tmp_path), **bound)
    simulator = own_runner.start("simulator", group_id=unique("sim"), seed=2, **bound)
    engine.wait_ready()
    simulator.wait_ready()
    producer = own_runner.start("producer", count=300, rate=300, seed=4, **bound)
    assert producer.proc.wait(60) == 0
    wait_until(lambda: True if engine.state()["total_outcomes"] >= 300 else None, what="learnt")

    own_broker.kill()
    for service in (engine, simulator):
        assert _ends_in_time(service) == 0, service.log()
    assert _logged(engine, "offsets_left_in_state_file"), engine.log()
    late_producer = own_runner.start("producer", rate=50, seed=5, **bound)
    wait_until(lambda: True if _logged(late_producer, "kafka_unreachable") else None, what="retry")
    assert late_producer.get("/healthz")[0] == 200
    assert late_producer.get("/readyz")[0] == 503
    assert _ends_in_time(late_producer) == 0

    own_broker.restart()
    engine = own_runner.restart(engine)
    engine.wait_ready()
    assert engine.state()["total_outcomes"] == 300
    _demand_events(own_runner, 10)
    wait_consumed(tmp_path / "bandit_stats.json", own_runner.topics.demand, 310)
    priced_once(own_runner.bootstrap, own_runner.topics.demand, own_runner.topics.decisions)


def _demand_events(runner: ServiceRunner, n: int) -> None:
    now = time.time()
    values = [(b"Airport", demand_json(f"more{i}", "Airport", 5, 5, now)) for i in range(n)]
    produce_values(runner.bootstrap, runner.topics.demand, values)


def _unreachable(tmp_path: Path) -> tuple[ServiceRunner, int]:
    """Services pointed at a port where no broker listens (yet)."""
    port = free_port()
    topics = Topics(*(unique(kind) for kind in ("demand", "decisions", "outcomes", "dead")))
    return ServiceRunner(f"127.0.0.1:{port}", topics, tmp_path), port


def test_services_serve_health_and_metrics_and_retry_until_the_broker_comes(
    tmp_path: Path,
) -> None:
    runner, port = _unreachable(tmp_path)
    layout = broker.BrokerLayout(port=port, data_dir=tmp_path / "late-kafka")
    try:
        services = [runner.start(name, **_settings(name, tmp_path)) for name in SERVICES]
        for service in services:
            wait_until(
                lambda s=service: True if s.log().count("kafka_unreachable") >= 2 else None,
                what=f"{service.name} trying the broker a second time",
            )
            assert service.get("/healthz")[0] == 200
            assert service.get("/metrics")[0] == 200
            assert service.get("/readyz")[0] == 503
            assert service.alive()
        proc = start_broker(layout)
        try:
            for service in services:
                service.wait_ready(deadline_s=90)
            for service in services:
                assert _ends_in_time(service) == 0, service.log()
        finally:
            broker.stop(layout, proc)
    finally:
        runner.stop_all()


def test_sigterm_ends_services_still_waiting_for_an_unreachable_broker(tmp_path: Path) -> None:
    runner, _ = _unreachable(tmp_path)
    try:
        bound = {"shutdown_timeout_s": SHUTDOWN_TIMEOUT_S}
        services = [runner.start(name, **bound, **_settings(name, tmp_path)) for name in SERVICES]
        for service in services:
            wait_until(
                lambda s=service: True if _logged(s, "kafka_unreachable") else None, what="retry"
            )
        for service in services:
            assert _ends_in_time(service) == 0, service.log()
    finally:
        runner.stop_all()


def test_a_restarted_simulator_takes_its_partitions_back_at_once(
    runner: ServiceRunner,
) -> None:
    # A group member's partitions wait for its session to time out (45 s by
    # default) before anyone else gets them; the simulator assigns itself its
    # partitions, so a restart has them back at once.
    simulator = runner.start("simulator", group_id=unique("sim"), seed=1)
    simulator.wait_ready()
    decision = {
        "schema_version": 2,
        "decision_id": "0-0-first",
        "timestamp": time.time(),
        "context": ["Airport", "high"],
        "price_multiplier": 1.5,
    }
    keys = [f"k{i}".encode() for i in range(12)]  # several keys: every partition gets one
    first = [
        (key, json.dumps(decision | {"decision_id": f"first-{i}"}).encode())
        for i, key in enumerate(keys)
    ]
    produce_values(runner.bootstrap, runner.topics.decisions, first)
    read_json_messages(runner.bootstrap, runner.topics.outcomes, len(first))
    simulator.kill()
    simulator = runner.restart(simulator)
    again = [
        (key, json.dumps(decision | {"decision_id": f"again-{i}"}).encode())
        for i, key in enumerate(keys)
    ]
    produce_values(runner.bootstrap, runner.topics.decisions, again)
    outcomes = read_json_messages(
        runner.bootstrap, runner.topics.outcomes, 2 * len(keys), deadline_s=RESTART_BOUND_S
    )
    assert {o["decision_id"] for o in outcomes} >= {f"again-{i}" for i in range(len(keys))}
