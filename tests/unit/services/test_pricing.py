"""Pricing a demand message: latency from the broker's clock, event-time lag from the event's."""

from __future__ import annotations

import numpy as np
import orjson
from prometheus_client import CollectorRegistry

from dynpricing import events
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.engine.contexts import ContextRows
from dynpricing.engine.metrics import PricingMetrics
from dynpricing.engine.pricing import Pricer
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import DeciderSettings, TopicSettings
from tests.unit.services.fakes import FakeMessage, FakeProducer

NOW = 1_800_000_000.0
CREATE_TIME = (1, int((NOW - 0.004) * 1000))  # the broker's timestamp: 4 ms before pricing
LATENCY = "dynpricing_decision_latency_seconds"
LAG = "dynpricing_event_time_lag_seconds"


def _pricer(registry: CollectorRegistry, fake: FakeProducer) -> Pricer:
    settings = DeciderSettings(topics=TopicSettings(decisions="x"))
    bandit = Bandit(BanditConfig())
    return Pricer(
        settings=settings,
        bandit=bandit,
        rows=ContextRows(bandit, settings.max_contexts),
        producer=OutputProducer(fake),  # type: ignore[arg-type]
        dead_letter=lambda *_: None,
        metrics=PricingMetrics(registry),
        clock=lambda: NOW,
        rng=np.random.default_rng(1),
    )


def _message(offset: int, event_time: float, broker: tuple[int, int]) -> FakeMessage:
    event = events.DemandEvent(f"e{offset}", event_time, "Airport", 5, 3)
    return FakeMessage("d", 2, offset, events.encode_demand(event), "Airport", broker)


def test_latency_is_measured_from_the_brokers_timestamp_and_lag_from_the_events() -> None:
    registry, fake = CollectorRegistry(), FakeProducer()
    pricer = _pricer(registry, fake)
    whole_seconds = float(int(NOW) - 1)  # a client that sends whole seconds
    priced = [pricer.parse(_message(i, whole_seconds, CREATE_TIME)) for i in range(3)]
    assert all(p is not None for p in priced)
    pricer.price([p for p in priced if p is not None])
    assert registry.get_sample_value(f"{LATENCY}_count") == 3
    assert registry.get_sample_value(f"{LATENCY}_bucket", {"le": "0.005"}) == 3
    assert registry.get_sample_value(f"{LATENCY}_bucket", {"le": "0.0025"}) == 0
    assert registry.get_sample_value(f"{LAG}_sum") == 3 * (NOW - whole_seconds)
    decisions = [orjson.loads(m.value) for m in fake.messages]
    assert [d["decision_id"] for d in decisions] == ["2-0-e0", "2-1-e1", "2-2-e2"]
    assert {d["model_version"] for d in decisions} == {"shrink-ts-revenue:0"}


def test_without_a_broker_timestamp_latency_falls_back_to_the_events_time() -> None:
    registry = CollectorRegistry()
    pricer = _pricer(registry, FakeProducer())
    parsed = pricer.parse(_message(0, NOW - 2.0, (0, -1)))
    assert parsed is not None
    pricer.price([parsed])
    assert registry.get_sample_value(f"{LATENCY}_sum") == 2.0


def test_a_decider_names_each_contexts_model_version_and_the_prior_for_new_contexts() -> None:
    fake = FakeProducer()
    pricer = _pricer(CollectorRegistry(), fake)
    pricer.rows.row("Airport", "medium")  # row 0: in the model (5 requests, 3 drivers)
    pricer.context_versions = ["shrink-ts-revenue:812"]
    messages = [_message(0, NOW, CREATE_TIME)]
    other = events.DemandEvent("z", NOW, "Harbour", 1, 9)  # a context the model lacks
    messages.append(FakeMessage("d", 0, 7, events.encode_demand(other), "Harbour", CREATE_TIME))
    priced = [pricer.parse(m) for m in messages]
    pricer.price([p for p in priced if p is not None])
    versions = {
        d["location"]: d["model_version"] for d in (orjson.loads(m.value) for m in fake.messages)
    }
    assert versions == {"Airport": "shrink-ts-revenue:812", "Harbour": "shrink-ts-revenue:0"}
