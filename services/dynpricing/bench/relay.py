"""The pass-through relay: the engine's Kafka clients and loop with no pricing at all.

It consumes the demand topic with ``make_consumer`` and republishes every value
unchanged through the engine's producer wrapper (``OutputProducer.send_many``), in
batches of the engine's size, so engine / relay isolates what pricing costs on top
of Kafka I/O. Like the engine it assigns itself every partition (from the
beginning) instead of joining a group, and logs ``relay_assigned`` once it has.
Run as ``python -m dynpricing.bench.relay BOOTSTRAP SOURCE TARGET COUNT``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from dynpricing.bench.kafka_env import unique
from dynpricing.kafka_io import OutputProducer, consume_batch, make_consumer, make_producer
from dynpricing.observability import configure_logging
from dynpricing.settings import EngineSettings, KafkaSettings

ASSIGNED = "relay_assigned"
METADATA_TIMEOUT_S = 10.0


def assign_from_start(consumer: Consumer, topic: str) -> None:
    metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
    partitions = sorted(metadata.topics[topic].partitions)
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])


def relay(bootstrap: str, source: str, target: str, count: int) -> int:
    """Republish ``count`` messages of ``source`` to ``target``; returns how many it did."""
    defaults = EngineSettings()
    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    consumer = make_consumer(kafka, unique("bench-relay"), "bench-relay")
    producer = OutputProducer(make_producer(kafka, "bench-relay"))
    assign_from_start(consumer, source)
    structlog.get_logger("bench-relay").info(ASSIGNED, source=source)  # the bench waits for it
    done = 0
    try:
        while done < count:
            values: list[bytes] = []
            keys: list[bytes | str | None] = []
            for msg in consume_batch(consumer, defaults.batch_size, defaults.poll_timeout_s):
                value = msg.value()
                if msg.error() is not None or value is None:
                    continue
                values.append(value)
                keys.append(msg.key())
            producer.send_many(target, values, keys)
            done += len(values)
            producer.poll(0)
        producer.flush()
        producer.raise_if_failed()
    finally:
        consumer.close()
    return done


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dynpricing.bench.relay")
    parser.add_argument("bootstrap")
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("count", type=int)
    args = parser.parse_args(argv)
    configure_logging("info", "json")
    relay(args.bootstrap, args.source, args.target, args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
