"""The demand producer's messages: keyed by location, valid, counted per location."""

from __future__ import annotations

import dataclasses

import orjson
import pytest
from prometheus_client import CollectorRegistry

from dynpricing.events import DemandEvent, parse_demand
from dynpricing.kafka_io import OutputProducer
from dynpricing.producer import app as producer_app
from dynpricing.settings import ProducerSettings, TopicSettings
from tests.unit.services.fakes import FakeProducer
from tests.unit.services.schema_support import schema_errors


def _publisher(
    monkeypatch: pytest.MonkeyPatch, settings: ProducerSettings, registry: CollectorRegistry
) -> tuple[producer_app.DemandPublisher, FakeProducer]:
    del monkeypatch
    fake = FakeProducer()
    output = OutputProducer(fake)  # type: ignore[arg-type]
    return producer_app.DemandPublisher(settings, registry, output), fake


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


def _stream(monkeypatch: pytest.MonkeyPatch, seed: int | None, replica: str) -> list[DemandEvent]:
    settings = ProducerSettings(seed=seed, replica_id=replica)
    publisher, fake = _publisher(monkeypatch, settings, CollectorRegistry())
    publisher.publish(20, elapsed_s=0.0)
    return [
        dataclasses.replace(parse_demand(m.value, fallback_id="-"), timestamp=0.0)
        for m in fake.messages
    ]


def _ids(stream: list[DemandEvent]) -> set[str]:
    return {event.event_id for event in stream}


def test_event_ids_are_unique_and_one_seed_and_replica_repeat_the_whole_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = _stream(monkeypatch, 8, "pod-a")
    assert len(_ids(first)) == 20
    assert _stream(monkeypatch, 8, "pod-a") == first


def test_the_event_ids_depend_on_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _ids(_stream(monkeypatch, 8, "pod-a")) & _ids(_stream(monkeypatch, 9, "pod-a"))


def test_replicas_with_one_seed_publish_distinct_streams(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = _stream(monkeypatch, 8, "pod-a"), _stream(monkeypatch, 8, "pod-b")
    assert not _ids(a) & _ids(b)
    demand = [(e.location, e.active_requests, e.available_drivers) for e in a]
    assert demand != [(e.location, e.active_requests, e.available_drivers) for e in b]


def test_unseeded_producers_never_share_event_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not _ids(_stream(monkeypatch, None, "pod-a")) & _ids(_stream(monkeypatch, None, "pod-a"))


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
    publisher.producer.sent = sent
    assert producer_app._due(settings, publisher, elapsed_s) == due
