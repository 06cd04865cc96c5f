"""The foundation: a real broker answers produce and consume through confluent-kafka."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType  # type: ignore[attr-defined]

from dynpricing import broker
from dynpricing.kafka_io import ensure_topics
from dynpricing.settings import KafkaSettings
from tests.kafka_support import consume_messages, create_topics, free_port, start_broker, unique

pytestmark = pytest.mark.kafka


def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    errors: list[KafkaError] = []

    def report(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            errors.append(err)

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for key, value in records:
        producer.produce(topic, key=key, value=value, on_delivery=report)
    assert producer.flush(30) == 0
    assert errors == []


def test_messages_round_trip_through_the_broker_in_order_with_keys(
    kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("roundtrip")
    sent = [(f"k{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(50)]
    _produce(kafka_bootstrap, topic, sent)
    got = consume_messages(kafka_bootstrap, topic, len(sent))
    assert [(m.key(), m.value()) for m in got] == sent
    assert [m.offset() for m in got] == list(range(len(sent)))


def test_broker_restarted_on_its_data_directory_keeps_the_messages(tmp_path: Path) -> None:
    layout = broker.BrokerLayout(port=free_port(), data_dir=tmp_path / "kafka")
    proc = start_broker(layout)
    try:
        create_topics(layout.bootstrap, ["durable"])
        _produce(layout.bootstrap, "durable", [(b"a", b"before-restart")])
        assert broker.stop(layout, proc)
        assert broker.read_pid(layout) is None
        proc = broker.start(layout, fresh=False)
        got = consume_messages(layout.bootstrap, "durable", 1)
        assert got[0].value() == b"before-restart"
    finally:
        broker.stop(layout, proc)
    assert broker.read_pid(layout) is None


def test_reap_stops_a_broker_left_running_under_a_folder(tmp_path: Path) -> None:
    layout = broker.BrokerLayout(port=free_port(), data_dir=tmp_path / "left" / "kafka")
    proc = start_broker(layout)
    try:
        assert broker.stop_all_under(tmp_path) == 1
        assert proc.wait(timeout=5) is not None
    finally:
        broker.stop(layout, proc)
    assert broker.read_pid(layout) is None


def test_missing_topics_are_created_and_the_model_topic_is_compacted(kafka_bootstrap: str) -> None:
    loop, model = unique("loop"), unique("model")
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_partitions=2)
    ensure_topics(kafka, [loop, model], compacted=[model])
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in (loop, model)]
    policies = {
        resource.name: future.result(timeout=30)["cleanup.policy"].value
        for resource, future in admin.describe_configs(resources).items()
    }
    assert policies == {loop: "delete", model: "compact"}
    partitions = admin.list_topics(model, timeout=10).topics[model].partitions
    assert len(partitions) == 2
