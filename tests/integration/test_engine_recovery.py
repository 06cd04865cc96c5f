"""Exactly-once learning: restarts, SIGTERM and SIGKILL neither lose nor repeat an outcome."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from tests.integration.conftest import SERVICE_TOPIC_PARTITIONS
from tests.integration.services_support import (
    Service,
    ServiceRunner,
    demand_json,
    engine_settings,
    priced_once,
    produce_values,
    wait_consumed,
)
from tests.kafka_support import drain, unique, wait_until

pytestmark = pytest.mark.kafka


def _demand(runner: ServiceRunner, n: int, prefix: str = "e") -> None:
    now = time.time()
    values = [
        (loc.encode(), demand_json(f"{prefix}{i}", loc, 5 + i % 40, 10, now))
        for i, loc in ((i, ("Airport", "Downtown")[i % 2]) for i in range(n))
    ]
    produce_values(runner.bootstrap, runner.topics.demand, values)


def _decisions(runner: ServiceRunner, at_least: int) -> list[dict[str, Any]]:
    """Every decision in the topic, once at least ``at_least`` are there."""

    def enough() -> list[dict[str, Any]] | None:
        found = [
            json.loads(m.value())
            for m in drain(runner.bootstrap, runner.topics.decisions, idle_s=0.5)
        ]
        return found if len(found) >= at_least else None

    return wait_until(enough, deadline_s=60, what=f"{at_least} decisions")


def _answer(runner: ServiceRunner, decisions: list[dict[str, Any]]) -> None:
    """Outcomes carrying only decision_id, accepted and timestamp (the v2 minimum)."""
    values = [
        (
            f"{d['location']}|{d['demand_level']}".encode(),
            json.dumps(
                {
                    "schema_version": 2,
                    "decision_id": d["decision_id"],
                    "timestamp": time.time(),
                    "accepted": int(d["decision_id"].split("-")[1]) % 3 != 0,
                }
            ).encode(),
        )
        for d in decisions
    ]
    produce_values(runner.bootstrap, runner.topics.outcomes, values)


def _outcomes_learnt(engine: Service, n: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        state = engine.state()
        return state if state["total_outcomes"] >= n else None

    return wait_until(done, deadline_s=60, what=f"{n} outcomes learnt")


def _arm_counts(state: dict[str, Any]) -> dict[tuple[str, str, float], tuple[float, float]]:
    return {
        (ctx["location"], ctx["demand_level"], arm["price"]): (arm["successes"], arm["failures"])
        for ctx in state["contexts"]
        for arm in ctx["arms"]
        if arm["pulls"]
    }


def test_sigterm_exits_zero_after_writing_the_snapshot_and_committing_its_offsets(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    settings = engine_settings(tmp_path, snapshot_interval_s=3600)
    engine = runner.start("engine", **settings)
    engine.wait_ready()
    _demand(runner, 120)
    _decisions(runner, 120)
    assert engine.terminate() == 0
    doc = json.loads(Path(str(settings["state_path"])).read_text())
    offsets = doc["engine"]["offsets"]
    demand_offsets = {k: v for k, v in offsets.items() if k.startswith(runner.topics.demand)}
    assert sum(demand_offsets.values()) == 120
    consumer = Consumer({"bootstrap.servers": runner.bootstrap, "group.id": settings["group_id"]})
    try:
        committed = consumer.committed(
            [TopicPartition(runner.topics.demand, p) for p in range(SERVICE_TOPIC_PARTITIONS)],
            timeout=10,
        )
    finally:
        consumer.close()
    assert {f"{tp.topic}:{tp.partition}": tp.offset for tp in committed if tp.offset >= 0} == (
        demand_offsets
    )


def test_an_idle_engine_keeps_writing_snapshots_that_cover_its_last_decisions(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    # Periodic snapshots wait for the delivery reports of the decisions before
    # them; with no input the loop must still serve those reports.
    settings = engine_settings(tmp_path, snapshot_interval_s=0.5)
    engine = runner.start("engine", **settings)
    engine.wait_ready()
    _demand(runner, 40)
    _decisions(runner, 40)
    written = "dynpricing_snapshot_duration_seconds_count"
    after_decisions = engine.metric(written)

    def pending_on_disk() -> int | None:
        if engine.metric(written) < after_decisions + 4:
            return None
        doc = json.loads(Path(str(settings["state_path"])).read_text())
        return len(doc["engine"]["pending"]["decision_id"])

    assert wait_until(pending_on_disk, deadline_s=10, what="snapshots while idle") == 40
    assert engine.alive()


def test_restarted_engine_keeps_its_counts_and_prices_nothing_twice(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path))
    engine.wait_ready()
    _demand(runner, 150)
    decisions = _decisions(runner, 150)
    _answer(runner, decisions)
    before = _outcomes_learnt(engine, 150)
    assert engine.terminate() == 0

    engine = runner.restart(engine)
    engine.wait_ready()
    after = engine.state()
    assert after["total_outcomes"] == 150
    assert _arm_counts(after) == _arm_counts(before)
    _demand(runner, 1, prefix="late")
    decisions = _decisions(runner, 151)
    ids = [d["decision_id"] for d in decisions]
    assert len(ids) == len(set(ids)) == 151


def test_engine_resumes_after_sigkill_without_losing_or_double_counting_outcomes(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    events, rate = 9_000, 1_500
    rng = random.Random(20261128)
    engine = runner.start("engine", **engine_settings(tmp_path))
    simulator = runner.start("simulator", seed=3, group_id=unique("sim"))
    engine.wait_ready()
    simulator.wait_ready()
    producer = runner.start("producer", count=events, rate=rate, seed=9)
    for _ in range(3):
        time.sleep(rng.uniform(0.3, 1.5))  # a random moment to crash at, not a wait for state
        engine.kill()
        engine = runner.restart(engine)
        engine.wait_ready()
    assert producer.proc.wait(60) == 0

    def all_answered() -> list[dict[str, Any]] | None:
        found = [
            json.loads(m.value())
            for m in drain(runner.bootstrap, runner.topics.outcomes, idle_s=0.5)
        ]
        return found if len({o["decision_id"] for o in found}) >= events else None

    outcomes = wait_until(all_answered, deadline_s=120, what="every decision answered")
    state = _outcomes_learnt(engine, events)
    distinct = {o["decision_id"]: o for o in outcomes}
    assert state["total_outcomes"] == len(distinct) == events
    expected: Counter[tuple[str, str, float, bool]] = Counter(
        (o["context"][0], o["context"][1], o["chosen_price"], o["accepted"])
        for o in distinct.values()
    )
    learnt = _arm_counts(state)
    for (location, level, price), (successes, failures) in learnt.items():
        assert successes == expected[(location, level, price, True)]
        assert failures == expected[(location, level, price, False)]
    decision_ids = [d["decision_id"] for d in _decisions(runner, events)]
    assert len(decision_ids) == len(set(decision_ids)) == events


DOUBLE_CRASH_EVENTS = 20_000


def _priced_then_killed_before_any_snapshot(runner: ServiceRunner, tmp_path: Path) -> Service:
    """Engine A prices every event and dies before a snapshot covers any of them."""
    engine = runner.start("engine", **engine_settings(tmp_path, snapshot_interval_s=3600))
    engine.wait_ready()
    _demand(runner, DOUBLE_CRASH_EVENTS)
    _decisions(runner, DOUBLE_CRASH_EVENTS)
    engine.kill()
    return engine


def _nothing_priced_or_learnt_twice(
    runner: ServiceRunner, crashed: Service, tmp_path: Path
) -> None:
    """Engine C after the double crash: every event priced once, every answer learnt once."""
    engine = runner.restart(crashed, snapshot_interval_s=0.5)
    engine.wait_ready()
    state_path = tmp_path / "bandit_stats.json"
    wait_consumed(state_path, runner.topics.demand, DOUBLE_CRASH_EVENTS)
    decisions = priced_once(runner.bootstrap, runner.topics.demand, runner.topics.decisions)
    _answer(runner, decisions)  # every decision message: an id published twice gets two
    wait_consumed(state_path, runner.topics.outcomes, len(decisions))
    assert engine.state()["total_outcomes"] == len({d["decision_id"] for d in decisions})


def test_a_crash_during_recovery_after_a_stall_prices_and_learns_nothing_twice(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    crashed = _priced_then_killed_before_any_snapshot(runner, tmp_path)
    # B restores, re-reads the 20,000 published decisions and stalls (as under CPU
    # throttling) for longer than its snapshot interval, so it snapshots as soon
    # as it resumes, before it has re-consumed their demand; then it dies.
    recovering = runner.restart(crashed, snapshot_interval_s=5)
    recovering.wait_ready(poll_s=0.01)
    recovering.pause()
    time.sleep(6)  # the stall itself, not a wait for some state
    recovering.resume()
    time.sleep(1)
    recovering.kill()
    _nothing_priced_or_learnt_twice(runner, crashed, tmp_path)


def test_a_crash_during_recovery_with_tiny_batches_and_snapshots_prices_and_learns_nothing_twice(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    crashed = _priced_then_killed_before_any_snapshot(runner, tmp_path)
    state_path = tmp_path / "bandit_stats.json"
    before = state_path.read_bytes()
    # B re-consumes the demand one event per batch and snapshots every 0.2 s:
    # it dies right after its first snapshot, long before it has caught up.
    recovering = runner.restart(crashed, batch_size=1, snapshot_interval_s=0.2)
    wait_until(
        lambda: True if state_path.read_bytes() != before else None,
        deadline_s=60,
        what="B's first snapshot",
    )
    recovering.kill()
    _nothing_priced_or_learnt_twice(runner, crashed, tmp_path)
