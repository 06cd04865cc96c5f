"""Hostile input never stops a service: too large, over-long, pre-1970, context floods.

Each case is followed by a valid message on the same partition, which must still
be handled: the partition moves on. Dead letters keep a bounded cut of the
original bytes with the full length and a hash.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import time
from pathlib import Path
from typing import Any

import pytest

from dynpricing.events import MAX_DEAD_LETTER_BYTES, MAX_ORIGINAL_BYTES
from tests.integration.services_support import (
    ServiceRunner,
    demand_json,
    engine_settings,
    produce_values,
    read_json_messages,
)
from tests.kafka_support import consume_messages, end_offsets, unique, wait_until

pytestmark = pytest.mark.kafka

JUNK = random.Random(11).randbytes(150_000)  # control bytes, invalid UTF-8, everything
CONTROL_BYTES = b"\x01" * 140_000  # each would be six characters as JSON text


def _letters_by_origin(runner: ServiceRunner, at_least: int) -> dict[tuple[str, int, int], Any]:
    letters = read_json_messages(runner.bootstrap, runner.topics.dead_letters, at_least)
    return {(x["source_topic"], x["source_partition"], x["source_offset"]): x for x in letters}


def _assert_cut_and_hashed(letter: dict[str, Any], raw: bytes) -> None:
    assert letter["original_length"] == len(raw)
    assert letter["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(letter["original_base64"]) == raw[:MAX_ORIGINAL_BYTES]
    assert letter["original_truncated"] is (len(raw) > MAX_ORIGINAL_BYTES)


def _largest_dead_letter(runner: ServiceRunner) -> int:
    total = sum(end_offsets(runner.bootstrap, runner.topics.dead_letters).values())
    messages = consume_messages(runner.bootstrap, runner.topics.dead_letters, total)
    return max(len(m.value() or b"") for m in messages)


def test_oversized_and_over_long_demand_is_dead_lettered_and_the_partition_moves_on(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path))
    engine.wait_ready()
    now = time.time()
    huge_id = demand_json("x" * 600_000, "Airport", 5, 5, now)  # a valid event, 600 kB
    long_id = demand_json("x" * 300, "Airport", 5, 5, now)  # small, but the id is too long
    values = [
        (b"Airport", JUNK),
        (b"Airport", huge_id),
        (b"Airport", CONTROL_BYTES),
        (b"Airport", long_id),
        (b"Airport", demand_json("after", "Airport", 5, 5, now)),
    ]
    where = produce_values(runner.bootstrap, runner.topics.demand, values)
    assert len({p for p, _ in where}) == 1  # one partition: the valid event comes after them
    decisions = read_json_messages(runner.bootstrap, runner.topics.decisions, 1)
    assert [d["event_id"] for d in decisions] == ["after"]
    letters = _letters_by_origin(runner, 4)
    expected = [
        ("too_large", JUNK),
        ("too_large", huge_id),
        ("too_large", CONTROL_BYTES),
        ("invalid_field", long_id),
    ]
    for (partition, offset), (reason, raw) in zip(where, expected, strict=False):
        letter = letters[(runner.topics.demand, partition, offset)]
        assert letter["reason"] == reason, letter["detail"]
        _assert_cut_and_hashed(letter, raw)
    assert "'event_id'" in letters[(runner.topics.demand, *where[3])]["detail"]
    assert _largest_dead_letter(runner) <= MAX_DEAD_LETTER_BYTES
    assert engine.alive()


def _decision(decision_id: str, **changes: object) -> bytes:
    body: dict[str, object] = {
        "schema_version": 2,
        "decision_id": decision_id,
        "event_id": "e",
        "timestamp": time.time(),
        "event_timestamp": time.time(),
        "location": "Airport",
        "demand_level": "high",
        "context": ["Airport", "high"],
        "price_multiplier": 1.5,
        "chosen_price": 1.5,
        "price": None,
        "propensity": 0.5,
        "policy": "test",
        "model_version": "test:0",
    }
    body.update(changes)
    return json.dumps(body).encode()


def test_the_simulator_dead_letters_oversized_and_pre_1970_decisions_and_answers_the_next(
    runner: ServiceRunner,
) -> None:
    simulator = runner.start("simulator", seed=3, group_id=unique("sim"))
    simulator.wait_ready()
    key = b"Airport|high"
    values = [
        (key, JUNK),
        (key, CONTROL_BYTES),
        (key, _decision("0-1-" + "y" * 2_000)),
        (key, _decision("0-2-e", event_timestamp=-86_400.0)),
        (key, _decision("0-3-after")),
    ]
    where = produce_values(runner.bootstrap, runner.topics.decisions, values)
    outcomes = read_json_messages(runner.bootstrap, runner.topics.outcomes, 1)
    assert [o["decision_id"] for o in outcomes] == ["0-3-after"]
    letters = _letters_by_origin(runner, 4)
    junk, control, long_id, before_1970 = (
        letters[(runner.topics.decisions, *w)] for w in where[:4]
    )
    for letter, raw in ((junk, JUNK), (control, CONTROL_BYTES)):
        assert letter["reason"] == "too_large"
        _assert_cut_and_hashed(letter, raw)
    assert long_id["reason"] == "invalid_field"
    assert "'decision_id'" in long_id["detail"]
    assert before_1970["reason"] == "invalid_field"
    assert "'event_timestamp'" in before_1970["detail"]
    assert _largest_dead_letter(runner) <= MAX_DEAD_LETTER_BYTES
    assert simulator.alive()


def test_demand_from_before_1970_is_refused_at_the_edge(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path))
    engine.wait_ready()
    moon = json.dumps(
        {
            "schema_version": 2,
            "event_id": "moon",
            "timestamp": "1969-07-20T20:17:40Z",
            "location": "Airport",
            "active_requests": 5,
            "available_drivers": 5,
        }
    ).encode()
    after = demand_json("after", "Airport", 5, 5, time.time())
    where = produce_values(runner.bootstrap, runner.topics.demand, [(b"A", moon), (b"A", after)])
    decisions = read_json_messages(runner.bootstrap, runner.topics.decisions, 1)
    assert [d["event_id"] for d in decisions] == ["after"]
    letter = _letters_by_origin(runner, 1)[(runner.topics.demand, *where[0])]
    assert letter["reason"] == "invalid_field"
    assert "'timestamp'" in letter["detail"]


def _contexts(state: dict[str, Any]) -> set[tuple[str, str]]:
    return {(c["location"], c["demand_level"]) for c in state["contexts"]}


def _outcome(decision_id: str, context: list[str], price: float) -> bytes:
    return json.dumps(
        {
            "decision_id": decision_id,
            "timestamp": time.time(),
            "accepted": True,
            "context": context,
            "chosen_price": price,
        }
    ).encode()


def test_outcome_contexts_are_validated_like_demand_and_a_refused_outcome_creates_none(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path))
    engine.wait_ready()
    bad = [
        (_outcome("empty-location", ["", "low"], 1.0), "invalid_field"),
        (_outcome("long-location", ["L" * 129, "low"], 1.0), "invalid_field"),
        (_outcome("off-grid", ["Nowhere", "low"], 1.35), "price_not_on_grid"),
    ]
    good = _outcome("simple-client", ["Harbour", "high"], 1.5)
    values = [(b"o", raw) for raw, _ in bad] + [(b"o", good)]
    where = produce_values(runner.bootstrap, runner.topics.outcomes, values)
    letters = _letters_by_origin(runner, len(bad))
    for (partition, offset), (_, reason) in zip(where, bad, strict=False):
        assert letters[(runner.topics.outcomes, partition, offset)]["reason"] == reason
    state = wait_until(
        lambda: engine.state() if engine.state()["total_outcomes"] >= 1 else None,
        what="the simple client's outcome learnt",
    )
    assert state["total_outcomes"] == 1
    assert _contexts(state) == {("Harbour", "high")}


def test_contexts_beyond_max_contexts_are_dead_lettered_and_never_created(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    engine = runner.start("engine", **engine_settings(tmp_path, max_contexts=2))
    engine.wait_ready()
    now = time.time()
    # 5 requests for 5 drivers is "medium": one context per location
    values = [
        (b"k", demand_json(f"e{i}", location, 5, 5, now))
        for i, location in enumerate(["A", "B", "C", "A", "D"])
    ]
    where = produce_values(runner.bootstrap, runner.topics.demand, values)
    decisions = read_json_messages(runner.bootstrap, runner.topics.decisions, 3)
    assert sorted(d["event_id"] for d in decisions) == ["e0", "e1", "e3"]
    letters = _letters_by_origin(runner, 2)
    for index in (2, 4):
        assert letters[(runner.topics.demand, *where[index])]["reason"] == "too_many_contexts"
    simple = _outcome("simple-beyond", ["E", "low"], 1.0)
    (outcome_at,) = produce_values(runner.bootstrap, runner.topics.outcomes, [(b"o", simple)])
    letters = _letters_by_origin(runner, 3)
    assert letters[(runner.topics.outcomes, *outcome_at)]["reason"] == "too_many_contexts"
    assert _contexts(engine.state()) == {("A", "medium"), ("B", "medium")}
