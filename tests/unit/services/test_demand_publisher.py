"""The demand producer's messages: keyed by location, valid, counted per location."""

from __future__ import annotations

import orjson
import pytest
from prometheus_client import CollectorRegistry

from dynpricing.events import parse_demand
from dynpricing.producer import app as producer_app
from dynpricing.settings import ProducerSettings, TopicSettings
from tests.unit.services.fakes import FakeProducer
from tests.unit.services.schema_support import schema_errors


def _publisher(
    monkeypatch: pytest.MonkeyPatch, settings: ProducerSettings, registry: CollectorRegistry
) -> tuple[producer_app.DemandPublisher, FakeProducer]:
    fake = FakeProducer()
    monkeypatch.setattr(producer_app, "make_producer", lambda *_args, **_kwargs: fake)
    return producer_app.DemandPublisher(settings, registry), fake


def test_demand_events_are_keyed_by_location_valid_and_counted_per_location(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registry = CollectorRegistry()
    settings = ProducerSettings(seed=4, locations=("Airport", "Downtown", "Harbour"))
    publisher, fake = _publisher(monkeypatch, settings, registry)
    publisher.publish(7, elapsed_s=1.0)
    assert {m.topic for m in fake.messages} == {TopicSettings().demand}
    for message in fake.messages:
        document = orjson.loads(message.value)
        assert schema_errors("demand", document) == []
        event = parse_demand(message.value, fallback_id="unused")
        assert message.key == event.location
        assert event.schema_version == 2
    counts = {
        location: registry.get_sample_value(
            "dynpricing_demand_events_total", {"location": location}
        )
        for location in settings.locations
    }
    assert counts == {"Airport": 3.0, "Downtown": 2.0, "Harbour": 2.0}
    assert publisher.sent == 7


def test_event_ids_are_unique_and_one_seed_repeats_them(monkeypatch: pytest.MonkeyPatch) -> None:
    def event_ids() -> list[str]:
        publisher, fake = _publisher(monkeypatch, ProducerSettings(seed=8), CollectorRegistry())
        publisher.publish(20, elapsed_s=0.0)
        return [parse_demand(m.value, fallback_id="-").event_id for m in fake.messages]

    first = event_ids()
    assert len(set(first)) == 20
    assert event_ids() == first


@pytest.mark.parametrize(
    ("rate_and_count", "sent", "elapsed_s", "due"),
    [
        ((50.0, 0), 0, 1.0, 50),  # paced: 50 per second
        ((50.0, 0), 40, 1.0, 10),  # only what is still due
        ((50.0, 0), 60, 1.0, 0),  # ahead of the pace: nothing
        ((50.0, 30), 25, 1.0, 5),  # capped by the count
        ((0.0, 0), 0, 0.0, producer_app.UNPACED_CHUNK),  # as fast as possible
        ((0.0, 10), 4, 0.0, 6),
    ],
)
def test_the_number_due_follows_the_rate_and_stops_at_the_count(
    monkeypatch: pytest.MonkeyPatch,
    rate_and_count: tuple[float, int],
    sent: int,
    elapsed_s: float,
    due: int,
) -> None:
    rate, count = rate_and_count
    settings = ProducerSettings(rate=rate, count=count, seed=0)
    publisher, _ = _publisher(monkeypatch, settings, CollectorRegistry())
    publisher.sent = sent
    assert producer_app._due(settings, publisher, elapsed_s) == due
