"""OBJECTIVE=revenue-supply: the engine prices each demand event with its own requests and drivers.

On an in-memory broker, one engine per objective learns the same acceptance
curve, then prices the same demand. Plain revenue picks the revenue-optimal
price; revenue-supply, seeing a thousand requests and one driver, knows that
one ride at most can be served and asks the top price. It can only know that
if the engine hands the event's requests and drivers to the core.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from prometheus_client import CollectorRegistry

from dynpricing import events
from dynpricing.engine import recovery
from dynpricing.engine.loop import PricingEngine
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import EngineSettings, TopicSettings
from tests.unit.services.fakes import BrokerProducer, FakeTopics

TOPICS = TopicSettings(demand="d", decisions="x", outcomes="o", dead_letters="dl")
NOW = 1_800_000_000.0
ACCEPTANCE = (0.9, 0.8, 0.6, 0.45)  # revenue 0.9, 0.96, 0.9, 0.9: 1.2 is revenue-optimal
LEARNT = 20_000  # outcomes per price: the posterior is all but certain


def _engine(tmp_path: Path, objective: str, topics: FakeTopics) -> PricingEngine:
    settings = EngineSettings(
        state_path=tmp_path / f"{objective}.json", seed=3, topics=TOPICS, objective=objective
    )
    restored = recovery.restore(settings)
    bandit = restored.bandit
    row = bandit.context_index("Airport", "high")
    rng = np.random.default_rng(0)
    for arm, p in enumerate(ACCEPTANCE):
        bandit.update([row] * LEARNT, [arm] * LEARNT, rng.random(LEARNT) < p, now=0.0)
    return PricingEngine(
        settings=settings,
        bandit=bandit,
        books=restored.books,
        consumer=None,  # type: ignore[arg-type]
        producer=OutputProducer(BrokerProducer(topics)),  # type: ignore[arg-type]
        dead_letter=_no_dead_letters,
        usable=lambda _msg: True,
        metrics=EngineMetrics(CollectorRegistry()),
        clock=lambda: NOW,
    )


def _no_dead_letters(msg: object, reason: str, detail: str) -> None:
    raise AssertionError(f"dead letter {reason}: {detail}")


@pytest.mark.parametrize(("objective", "price"), [("revenue", 1.2), ("revenue-supply", 2.0)])
def test_the_engine_prices_with_the_events_requests_and_drivers_under_revenue_supply(
    tmp_path: Path, objective: str, price: float
) -> None:
    topics = FakeTopics()
    topics.create("d", 1)
    topics.create("x", 1)
    for i in range(20):  # a thousand requests, one driver: high demand, one ride at most
        demand = events.DemandEvent(f"e{i}", NOW, "Airport", 1000, 1)
        topics.append("d", 0, events.encode_demand(demand), "Airport")
    engine = _engine(tmp_path, objective, topics)
    engine.process(topics.logs["d"][0])
    engine.producer.poll()
    decisions = [orjson.loads(m.value_ or b"") for m in topics.logs["x"][0]]
    assert len(decisions) == 20
    assert {d["price_multiplier"] for d in decisions} == {price}
    assert {d["policy"] for d in decisions} == {f"shrink-ts-{objective}"}
    assert all(0 < d["propensity"] <= 1 for d in decisions)
