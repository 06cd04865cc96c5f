"""The broker the bench talks to, and the Kafka chores around a measured run.

The bench starts its own single-node broker on a free port in a temporary
directory unless it is given one. Topics, groups and state files are unique per
measurement, so runs never see each other's data.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from dynpricing import broker
from dynpricing.settings import KafkaSettings

TOPIC_TIMEOUT_S = 30.0
WATERMARK_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 10.0
PRELOAD_POLL_EVERY = 10_000
WAIT_STEP_S = 0.05
FLUSH_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """A measurement could not be taken (a process died, a deadline passed)."""


def free_port() -> int:
    """A TCP port that was free a moment ago, with its neighbour free too (the controller)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = int(first.getsockname()[1])
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise BenchError("no free pair of TCP ports")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@contextlib.contextmanager
def bench_broker(bootstrap: str | None, workdir: Path) -> Iterator[str]:
    """The given bootstrap address, or a broker of our own that is stopped afterwards."""
    if bootstrap:
        yield bootstrap
        return
    layout = broker.BrokerLayout(port=free_port(), data_dir=workdir / "kafka")
    proc = broker.start(layout)
    try:
        yield layout.bootstrap
    finally:
        broker.stop(layout, proc)


@dataclass(frozen=True)
class BenchKafka:
    """One broker address plus the small admin and read helpers the bench needs."""

    bootstrap: str
    partitions: int = KafkaSettings().topic_partitions

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings(bootstrap_servers=self.bootstrap)

    def create_topics(self, names: list[str]) -> None:
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(n, self.partitions, 1) for n in names])
        for future in futures.values():
            future.result(timeout=TOPIC_TIMEOUT_S)

    def count(self, topic: str) -> int:
        """Messages in ``topic`` (sum of high watermarks; topics here never get compacted)."""
        consumer = self._reader()
        try:
            return sum(
                watermarks(consumer, TopicPartition(topic, p))[1] for p in range(self.partitions)
            )
        finally:
            consumer.close()

    def wait_for_count(
        self, topic: str, expected: int, deadline_s: float, alive: Callable[[], bool]
    ) -> None:
        """Block until ``topic`` holds ``expected`` messages; fail if the writer died."""
        end = time.monotonic() + deadline_s
        while (have := self.count(topic)) < expected:
            if not alive():
                raise BenchError(f"writer of {topic} exited after {have}/{expected} messages")
            if time.monotonic() > end:
                raise BenchError(f"{topic}: {have}/{expected} messages after {deadline_s:.0f}s")
            time.sleep(WAIT_STEP_S * 4)

    def time_span_s(self, topic: str) -> tuple[int, float]:
        """(messages, seconds between the first and the last message timestamp)."""
        firsts: list[int] = []
        lasts: list[int] = []
        total = 0
        consumer = self._reader()
        try:
            for partition in range(self.partitions):
                tp = TopicPartition(topic, partition)
                low, high = watermarks(consumer, tp)
                if high <= low:
                    continue
                total += high - low
                firsts.append(_timestamp_ms(consumer, topic, partition, low))
                lasts.append(_timestamp_ms(consumer, topic, partition, high - 1))
        finally:
            consumer.close()
        if not firsts:
            return 0, 0.0
        return total, (max(lasts) - min(firsts)) / 1000.0

    def produce_all(
        self, topic: str, values: list[tuple[bytes, bytes]], on_delivery: Callable[..., None]
    ) -> None:
        """Produce (key, value) pairs as fast as the client allows; wait for every report."""
        producer = Producer(
            {
                "bootstrap.servers": self.bootstrap,
                "linger.ms": 20,
                "batch.num.messages": 10_000,
                "compression.type": "lz4",
                "queue.buffering.max.messages": 1_000_000,
                "enable.idempotence": True,
            }
        )
        for i, (key, value) in enumerate(values):
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    producer.poll(0.05)
            if i % PRELOAD_POLL_EVERY == 0:
                producer.poll(0)
        if producer.flush(FLUSH_TIMEOUT_S):
            raise BenchError(f"preloading {topic} did not finish in {FLUSH_TIMEOUT_S:.0f}s")

    def _reader(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": unique("bench-reader"),
                "enable.auto.commit": False,
            }
        )


def watermarks(consumer: Consumer, tp: TopicPartition) -> tuple[int, int]:
    """(low, high) offsets; retried while a new topic's partition has no leader yet."""
    end = time.monotonic() + TOPIC_TIMEOUT_S
    while True:
        try:
            low, high = consumer.get_watermark_offsets(
                tp, timeout=WATERMARK_TIMEOUT_S, cached=False
            )
            return int(low), int(high)
        except KafkaException:
            if time.monotonic() > end:
                raise
            time.sleep(WAIT_STEP_S)


def _timestamp_ms(consumer: Consumer, topic: str, partition: int, offset: int) -> int:
    consumer.assign([TopicPartition(topic, partition, offset)])
    end = time.monotonic() + READ_TIMEOUT_S
    while time.monotonic() < end:
        msg: Message | None = consumer.poll(0.5)
        if msg is None:
            continue
        err = msg.error()
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            raise BenchError(f"reading {topic}:{partition}@{offset}: {err}")
        return int(msg.timestamp()[1])
    raise BenchError(f"no message at {topic}:{partition}@{offset} within {READ_TIMEOUT_S:.0f}s")


class Delivered:
    """Counts failed delivery reports of a preload."""

    def __init__(self) -> None:
        self.failed = 0

    def __call__(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failed += 1


def read_values(bootstrap: str, topic: str, expected: int, deadline_s: float) -> list[bytes]:
    """Every value of ``topic`` from the start; fails unless ``expected`` arrive in time."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("bench-read"),
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[bytes] = []
    end = time.monotonic() + deadline_s
    try:
        while len(values) < expected and time.monotonic() < end:
            for msg in consumer.consume(num_messages=10_000, timeout=0.5):
                value = msg.value()
                if msg.error() is None and value is not None:
                    values.append(value)
    finally:
        consumer.close()
    if len(values) < expected:
        raise BenchError(f"read {len(values)}/{expected} messages of {topic} in {deadline_s:.0f}s")
    return values
