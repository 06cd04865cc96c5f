"""Stand-ins for confluent_kafka's Producer and Consumer: record, deliver when told."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException


@dataclass
class Produced:
    topic: str
    value: bytes
    key: str | bytes | None


@dataclass(frozen=True)
class Report:
    """What a delivery report's message answers: where the message landed (and what it was)."""

    where: tuple[str, int, int]
    payload: bytes | None = None
    key_: str | bytes | None = None

    def topic(self) -> str:
        return self.where[0]

    def partition(self) -> int:
        return self.where[1]

    def offset(self) -> int:
        return self.where[2]

    def value(self) -> bytes | None:
        return self.payload

    def key(self) -> str | bytes | None:
        return self.key_


Callback = Callable[[Any, Any], None]


@dataclass
class FakeProducer:
    """Keeps every message for the test to read; delivers at once, or on ``poll``.

    ``queue_limit`` makes ``produce`` raise BufferError while that many wait for a
    report; ``max_bytes`` makes it refuse larger values as librdkafka does;
    ``broker_max_bytes`` makes larger values fail in their delivery report, as a
    broker with a smaller limit does.
    """

    messages: list[Produced] = field(default_factory=list)
    deliver_at_once: bool = True
    queue_limit: int | None = None
    max_bytes: int | None = None
    broker_max_bytes: int | None = None
    waiting: list[tuple[Callback | None, Report]] = field(default_factory=list)
    polls: int = 0

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivery: Callback | None = None,
    ) -> None:
        if self.max_bytes is not None and len(value) > self.max_bytes:
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        if self.queue_limit is not None and len(self.waiting) >= self.queue_limit:
            raise BufferError("queue full")
        self.messages.append(Produced(topic, value, key))
        report = Report((topic, 0, len(self.messages) - 1), value, key)
        if self.deliver_at_once:
            self._deliver(on_delivery, report)
        else:
            self.waiting.append((on_delivery, report))

    def _deliver(self, callback: Callback | None, report: Report) -> None:
        if callback is None:
            return
        value = report.value() or b""
        if self.broker_max_bytes is not None and len(value) > self.broker_max_bytes:
            callback(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), report)
        else:
            callback(None, report)

    def poll(self, timeout: float = 0.0) -> int:
        del timeout
        self.polls += 1
        waiting, self.waiting = self.waiting, []
        for callback, report in waiting:
            self._deliver(callback, report)
        return len(waiting)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll(timeout)
        return len(self.waiting)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        del in_queue, in_flight, blocking
        waiting, self.waiting = self.waiting, []
        for callback, report in waiting:
            if callback is not None:
                callback(KafkaError(KafkaError._PURGE_QUEUE), report)


# ---- an in-memory broker for whole-engine tests ---------------------------------------


@dataclass(frozen=True)
class FakeMessage:
    """A consumed message, as confluent_kafka.Message answers."""

    topic_: str
    partition_: int
    offset_: int
    value_: bytes | None
    key_: str | bytes | None = None
    timestamp_: tuple[int, int] = (0, -1)  # TIMESTAMP_NOT_AVAILABLE; (1, ms): CreateTime

    def topic(self) -> str:
        return self.topic_

    def partition(self) -> int:
        return self.partition_

    def offset(self) -> int:
        return self.offset_

    def value(self) -> bytes | None:
        return self.value_

    def key(self) -> str | bytes | None:
        return self.key_

    def timestamp(self) -> tuple[int, int]:
        return self.timestamp_

    def error(self) -> None:
        return None


@dataclass
class FakeTopics:
    """Topics as lists of messages per partition: what is delivered, and only that."""

    logs: dict[str, dict[int, list[FakeMessage]]] = field(default_factory=dict)

    def create(self, topic: str, partitions: int) -> None:
        self.logs[topic] = {p: [] for p in range(partitions)}

    def append(self, topic: str, partition: int, value: bytes | None, key: Any = None) -> int:
        log = self.logs[topic][partition]
        log.append(FakeMessage(topic, partition, len(log), value, key))
        return len(log) - 1


@dataclass
class BrokerProducer:
    """A producer whose messages reach ``topics`` only when delivered, at ``poll``.

    ``crash`` loses what was produced but not yet delivered, as a SIGKILL does.
    Every message goes to partition 0.
    """

    topics: FakeTopics
    waiting: list[tuple[str, bytes, Any, Callback | None]] = field(default_factory=list)

    def produce(
        self,
        topic: str,
        value: bytes,
        key: str | bytes | None = None,
        on_delivery: Callback | None = None,
    ) -> None:
        self.waiting.append((topic, value, key, on_delivery))

    def poll(self, timeout: float = 0.0) -> int:
        del timeout
        waiting, self.waiting = self.waiting, []
        for topic, value, key, callback in waiting:
            offset = self.topics.append(topic, 0, value, key)
            if callback is not None:
                callback(None, self.topics.logs[topic][0][offset])
        return len(waiting)

    def flush(self, timeout: float = 0.0) -> int:
        self.poll(timeout)
        return 0

    def crash(self) -> None:
        self.waiting.clear()


@dataclass
class _Metadata:
    topics: dict[str, Any]


@dataclass
class _TopicMetadata:
    partitions: dict[int, None]


@dataclass
class TopicReader:
    """A consumer over ``topics`` with what recovery and the engine's loop call."""

    topics: FakeTopics
    positions: dict[tuple[str, int], int] = field(default_factory=dict)

    def list_topics(self, topic: str, timeout: float = 0.0) -> _Metadata:
        del timeout
        partitions = dict.fromkeys(self.topics.logs[topic])
        return _Metadata({topic: _TopicMetadata(partitions)})

    def get_watermark_offsets(self, tp: Any, timeout: float = 0.0, cached: bool = False) -> Any:
        del timeout, cached
        return 0, len(self.topics.logs[tp.topic][tp.partition])

    def assign(self, partitions: list[Any]) -> None:
        self.positions = {(tp.topic, tp.partition): tp.offset for tp in partitions}

    def consume(self, num_messages: int = 1, timeout: float = 0.0) -> list[FakeMessage]:
        del timeout
        out: list[FakeMessage] = []
        for (topic, partition), position in self.positions.items():
            log = self.topics.logs[topic][partition]
            taken = log[max(position, 0) : max(position, 0) + num_messages - len(out)]
            out += taken
            self.positions[(topic, partition)] = max(position, 0) + len(taken)
        return out

    def close(self) -> None:
        self.positions = {}
