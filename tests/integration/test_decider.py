"""Deciders on a real broker: priced from the model they read, ready only once they have it,
and the partitions of a decider that dies are priced by the others."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.contexts import context_key
from tests.integration.services_support import (
    Service,
    ServiceRunner,
    demand_json,
    produce_values,
    read_json_messages,
)
from tests.kafka_support import create_topics, unique, wait_until

pytestmark = pytest.mark.kafka

MODEL_CONTEXTS = 10_000
LEVELS = ("low", "medium", "high")


def decider_settings(**overrides: object) -> dict[str, object]:
    """Decider settings for tests: a group of the test's own, a short session timeout."""
    settings: dict[str, object] = {
        "group_id": unique("decider"),
        "session_timeout_s": 6,
        "commit_interval_s": 0.5,
        "seed": 11,
    }
    settings.update(overrides)
    return settings


def _demand(runner: ServiceRunner, n: int, prefix: str, locations: tuple[str, ...]) -> None:
    now = time.time()
    values = [
        (loc.encode(), demand_json(f"{prefix}{i}", loc, 5 + i % 40, 10, now))
        for i, loc in ((i, locations[i % len(locations)]) for i in range(n))
    ]
    produce_values(runner.bootstrap, runner.topics.demand, values)


def _model_messages(contexts: int, learnt_at: float) -> list[tuple[bytes, bytes]]:
    """What a learner would have published: ``contexts`` contexts, each with its version."""
    bandit = Bandit(BanditConfig())
    messages = []
    for i in range(contexts):
        location, level = f"loc{i // len(LEVELS)}", LEVELS[i % len(LEVELS)]
        row = bandit.context_index(location, level)
        bandit.update([row] * 3, [1, 2, 3], [True, False, True], now=learnt_at)
        doc = bandit.context_document(
            row, {"model_version": f"shrink-ts-revenue:{1000 + i}", "published_at": learnt_at}
        )
        messages.append((context_key(location, level).encode(), orjson.dumps(doc)))
    return messages


def _decisions(runner: ServiceRunner, at_least: int) -> list[dict[str, Any]]:
    return read_json_messages(runner.bootstrap, runner.topics.decisions, at_least, 120)


def test_a_decider_prices_every_event_from_the_prior_when_the_model_is_empty(
    runner: ServiceRunner,
) -> None:
    decider = runner.start("decider", **decider_settings())
    decider.wait_ready()
    _demand(runner, 300, "e", ("Airport", "Downtown"))
    decisions = _decisions(runner, 300)
    ids = [d["decision_id"] for d in decisions]
    assert len(ids) == len(set(ids)) == 300
    assert {d["model_version"] for d in decisions} == {"shrink-ts-revenue:0"}
    assert all(0 < d["propensity"] <= 1 for d in decisions)
    assert {d["policy"] for d in decisions} == {"shrink-ts-revenue"}
    assert decider.metric("dynpricing_decisions_total") == 300
    assert decider.terminate() == 0


def test_a_decider_joining_a_model_of_10000_contexts_is_ready_only_once_it_has_read_it(
    runner: ServiceRunner,
) -> None:
    create_topics(runner.bootstrap, [runner.topics.model], 3, {"cleanup.policy": "compact"})
    learnt_at = time.time() - 30
    model = _model_messages(MODEL_CONTEXTS, learnt_at)
    produce_values(runner.bootstrap, runner.topics.model, model)
    # demand for contexts all over the model, waiting before the decider starts
    locations = tuple(f"loc{i}" for i in range(0, MODEL_CONTEXTS // len(LEVELS), 97))
    _demand(runner, 600, "m", locations)
    decider = runner.start("decider", **decider_settings())
    state = _first_ready_state(decider)
    assert len(state["contexts"]) >= MODEL_CONTEXTS
    assert state["model_contexts"] == MODEL_CONTEXTS
    versions = {context_key(*_context_of(doc)): doc["model_version"] for doc in _docs(model)}
    decisions = _decisions(runner, 600)
    assert len(decisions) == 600
    for decision in decisions:  # every one priced with the model's version of its context
        key = context_key(decision["location"], decision["demand_level"])
        assert decision["model_version"] == versions[key], decision
    assert decider.metric("dynpricing_model_age_seconds") >= 30


def _first_ready_state(decider: Service) -> dict[str, Any]:
    """``/state`` at the first moment ``/readyz`` answers 200."""

    def ready_state() -> dict[str, Any] | None:
        if not decider.alive():
            raise AssertionError(f"decider exited:\n{decider.log()}")
        try:
            if decider.get("/readyz")[0] != 200:
                return None
        except OSError:
            return None
        return decider.state()

    return wait_until(ready_state, deadline_s=120, what="decider ready", step_s=0.01)


def _docs(model: list[tuple[bytes, bytes]]) -> list[dict[str, Any]]:
    return [json.loads(value) for _, value in model]


def _context_of(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["location"], doc["demand_level"]


def test_a_new_model_message_changes_the_deciders_prices_while_it_runs(
    runner: ServiceRunner,
) -> None:
    decider = runner.start("decider", **decider_settings())
    decider.wait_ready()
    # the learner's word: at Airport|medium only 1.5 is ever accepted (a certain posterior)
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("Airport", "medium")
    n = 20_000
    for arm in range(4):
        bandit.update([row] * n, [arm] * n, [arm == 2] * n, now=time.time())
    doc = bandit.context_document(row, {"model_version": "shrink-ts-revenue:80000"})
    produce_values(runner.bootstrap, runner.topics.model, [(b"Airport|medium", orjson.dumps(doc))])
    wait_until(
        lambda: True if decider.metric("dynpricing_model_updates_total") >= 1 else None,
        what="the model message applied",
    )
    now = time.time()
    produce_values(
        runner.bootstrap,
        runner.topics.demand,
        [(b"Airport", demand_json(f"a{i}", "Airport", 15, 10, now)) for i in range(200)],
    )
    decisions = _decisions(runner, 200)
    assert Counter(d["price_multiplier"] for d in decisions) == {1.5: 200}
    assert {d["model_version"] for d in decisions} == {"shrink-ts-revenue:80000"}


def test_with_two_deciders_the_survivor_prices_the_partitions_of_one_killed(
    runner: ServiceRunner,
) -> None:
    first = runner.start("decider", **decider_settings(group_id=(group := unique("decider"))))
    first.wait_ready()
    second = runner.start("decider", **decider_settings(group_id=group))
    second.wait_ready()
    wait_until(lambda: _split(first, second), deadline_s=60, what="both deciders own partitions")
    _demand(runner, 300, "before", ("Airport", "Downtown", "Harbour", "Centre"))
    _decisions(runner, 300)
    second.kill()
    _demand(runner, 300, "after", ("Airport", "Downtown", "Harbour", "Centre"))
    decisions = _decisions(runner, 600)
    after = [d for d in decisions if d["event_id"].startswith("after")]
    assert {d["event_id"] for d in after} == {f"after{i}" for i in range(300)}
    assert first.state()["assigned_partitions"] == [0, 1, 2]


def _split(first: Service, second: Service) -> tuple[list[int], list[int]] | None:
    mine, theirs = first.state()["assigned_partitions"], second.state()["assigned_partitions"]
    if mine and theirs and sorted(mine + theirs) == [0, 1, 2]:
        return mine, theirs
    return None
