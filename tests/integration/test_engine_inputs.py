"""Late, duplicate, expired and malformed input: specified behaviour, and the engine keeps going."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dynpricing.events import REASONS
from tests.integration.services_support import (
    Service,
    ServiceRunner,
    demand_json,
    engine_settings,
    produce_values,
)
from tests.kafka_support import drain, wait_until

pytestmark = pytest.mark.kafka


def _read(runner: ServiceRunner, topic: str, at_least: int) -> list[dict[str, Any]]:
    def enough() -> list[dict[str, Any]] | None:
        found = [json.loads(m.value()) for m in drain(runner.bootstrap, topic, idle_s=0.5)]
        return found if len(found) >= at_least else None

    return wait_until(enough, deadline_s=60, what=f"{at_least} messages on {topic}")


def _outcome(decision_id: str, accepted: object, **extra: object) -> tuple[bytes, bytes]:
    body = {"decision_id": decision_id, "timestamp": time.time(), "accepted": accepted, **extra}
    return b"k", json.dumps(body).encode()


def _wait_metric(engine: Service, name: str, value: float, **labels: str) -> None:
    wait_until(
        lambda: True if engine.metric(name, labels) >= value else None,
        deadline_s=30,
        what=f"{name}{labels} >= {value}",
    )


def _totals(engine: Service) -> tuple[float, float]:
    state = engine.state()
    arms = [arm for ctx in state["contexts"] for arm in ctx["arms"]]
    return sum(a["successes"] for a in arms), sum(a["failures"] for a in arms)


@pytest.mark.parametrize(("expired_as", "expired_failures"), [("reject", 2), ("drop", 0)])
def test_out_of_order_duplicate_late_and_expired_outcomes_behave_as_specified(
    runner: ServiceRunner, tmp_path: Path, expired_as: str, expired_failures: int
) -> None:
    engine = runner.start(
        "engine", **engine_settings(tmp_path, decision_timeout_s=5, expired_as=expired_as)
    )
    engine.wait_ready()
    now = time.time()
    produce_values(
        runner.bootstrap,
        runner.topics.demand,
        [(b"Airport", demand_json(f"e{i}", "Airport", 10, 10, now)) for i in range(4)],
    )
    ids = [d["decision_id"] for d in _read(runner, runner.topics.decisions, 4)]
    d0, d1, _d2, d3 = ids  # d2, like d1, is never answered
    # d3 answered before d0 (out of order), d0 answered twice (duplicate)
    produce_values(
        runner.bootstrap,
        runner.topics.outcomes,
        [_outcome(d3, False), _outcome(d0, True), _outcome(d0, False)],
    )
    _wait_metric(engine, "dynpricing_duplicate_outcomes_total", 1)
    # d1 and d2 get no answer in time and expire
    _wait_metric(engine, "dynpricing_expired_decisions_total", 2, action=expired_as)
    produce_values(runner.bootstrap, runner.topics.outcomes, [_outcome(d1, True)])
    _wait_metric(engine, "dynpricing_late_outcomes_total", 1)

    assert _totals(engine) == (1, 1 + expired_failures)
    assert engine.state()["pending_decisions"] == 0
    assert engine.metric("dynpricing_duplicate_outcomes_total") == 1
    assert engine.metric("dynpricing_late_outcomes_total") == 1


def test_outcome_of_a_simple_client_with_context_and_price_is_learnt_without_a_decision(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path))
    engine.wait_ready()
    simple = {"context": ["Downtown", "high"], "chosen_price": 1.5, "revenue": 1.5}
    produce_values(
        runner.bootstrap,
        runner.topics.outcomes,
        [_outcome("external-1", True, **simple), _outcome("external-1", True, **simple)],
    )
    _wait_metric(engine, "dynpricing_duplicate_outcomes_total", 1)
    state = engine.state()
    (ctx,) = [
        c for c in state["contexts"] if (c["location"], c["demand_level"]) == ("Downtown", "high")
    ]
    arm = next(a for a in ctx["arms"] if a["price"] == 1.5)
    assert (arm["successes"], arm["failures"]) == (1, 0)


BAD_DEMAND: list[tuple[bytes | None, str]] = [
    (b"not json at all", "not_json"),
    (None, "not_json"),
    (b"[1, 2, 3]", "not_an_object"),
    (
        b'{"schema_version": 99, "event_id": "x", "timestamp": 1, "location": "Airport",'
        b' "active_requests": 1, "available_drivers": 1}',
        "unsupported_schema_version",
    ),
    (
        b'{"schema_version": 2, "timestamp": 1, "location": "Airport",'
        b' "active_requests": 1, "available_drivers": 1}',
        "missing_field",
    ),
    (
        b'{"event_id": "n", "timestamp": 1, "location": "Airport",'
        b' "active_requests": 3, "available_drivers": -1}',
        "invalid_field",
    ),
    (
        b'{"event_id": "s", "timestamp": 1, "location": "Airport",'
        b' "active_requests": "many", "available_drivers": 2}',
        "invalid_field",
    ),
    (
        b'{"event_id": "t", "timestamp": "yesterday", "location": "Airport",'
        b' "active_requests": 3, "available_drivers": 2}',
        "invalid_field",
    ),
    (
        b'{"event_id": "m", "timestamp": 1, "location": "Mars",'
        b' "active_requests": 3, "available_drivers": 2}',
        "unknown_location",
    ),
]
BAD_OUTCOMES: list[tuple[bytes | None, str]] = [
    (b"{", "not_json"),
    (b'{"decision_id": "nobody", "timestamp": 1, "accepted": true}', "unknown_decision"),
    (b'{"decision_id": "x", "timestamp": 1, "accepted": "yes"}', "invalid_field"),
    (
        b'{"decision_id": "y", "timestamp": 1, "accepted": true, "context": ["Airport", "low"],'
        b' "chosen_price": 1.35}',
        "price_not_on_grid",
    ),
]


def test_malformed_input_lands_in_dead_letters_with_reasons_while_valid_events_are_priced(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path, locations=["Airport", "Downtown"]))
    engine.wait_ready()
    now = time.time()
    valid = [(b"Airport", demand_json(f"ok{i}", "Airport", 5, 10, now)) for i in range(3)]
    demand = [valid[0], *[(b"bad", raw) for raw, _ in BAD_DEMAND], *valid[1:]]
    demand_at = produce_values(runner.bootstrap, runner.topics.demand, demand)
    outcome_at = produce_values(
        runner.bootstrap, runner.topics.outcomes, [(b"bad", raw) for raw, _ in BAD_OUTCOMES]
    )
    letters = _read(runner, runner.topics.dead_letters, len(BAD_DEMAND) + len(BAD_OUTCOMES))
    decisions = _read(runner, runner.topics.decisions, 3)

    assert sorted(d["event_id"] for d in decisions) == ["ok0", "ok1", "ok2"]
    by_origin = {(x["source_topic"], x["source_partition"], x["source_offset"]): x for x in letters}
    expected = [
        (runner.topics.demand, where, raw, reason)
        for where, (raw, reason) in zip(demand_at[1:-2], BAD_DEMAND, strict=True)
    ] + [
        (runner.topics.outcomes, where, raw, reason)
        for where, (raw, reason) in zip(outcome_at, BAD_OUTCOMES, strict=True)
    ]
    for topic, (partition, offset), raw, reason in expected:
        letter = by_origin[(topic, partition, offset)]
        assert letter["reason"] == reason, letter
        assert base64.b64decode(letter["original_base64"]) == (raw or b"")
        assert letter["detail"]
    assert engine.metric("dynpricing_dead_letters_total") == len(expected)
    assert engine.alive()


@settings(
    max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(garbage=st.lists(st.binary(max_size=80), min_size=5, max_size=25))
def test_arbitrary_bytes_never_stop_the_engine_and_each_message_is_accounted_for(
    runner: ServiceRunner, tmp_path: Path, garbage: list[bytes]
) -> None:
    if not runner.started:
        runner.start("engine", **engine_settings(tmp_path)).wait_ready()
    engine = runner.started[0]
    marker = f"valid-{time.monotonic_ns()}"
    values = [(b"g", raw) for raw in garbage] + [
        (b"Airport", demand_json(marker, "Airport", 5, 5, time.time()))
    ]
    where = produce_values(runner.bootstrap, runner.topics.demand, values)

    def settled() -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        decisions = [
            json.loads(m.value())
            for m in drain(runner.bootstrap, runner.topics.decisions, idle_s=0.3)
        ]
        if not any(d["event_id"] == marker for d in decisions):
            return None
        letters = [
            json.loads(m.value())
            for m in drain(runner.bootstrap, runner.topics.dead_letters, idle_s=0.3)
        ]
        return decisions, letters

    decisions, letters = wait_until(settled, deadline_s=60, what="the valid event's decision")
    lettered = {(x["source_partition"], x["source_offset"]): x for x in letters}
    priced = {
        d["decision_id"].split("-")[0] + "-" + d["decision_id"].split("-")[1] for d in decisions
    }
    for (partition, offset), (_, raw) in zip(where[:-1], values[:-1], strict=True):
        letter = lettered.get((partition, offset))
        if letter is None:  # only a value that really is a demand event may be priced
            assert f"{partition}-{offset}" in priced, raw
            continue
        assert letter["reason"] in REASONS
        assert base64.b64decode(letter["original_base64"]) == raw
    assert engine.alive()
