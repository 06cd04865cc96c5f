"""Read a window of logged decisions and outcomes from the topics, every partition.

The window is a time range (broker timestamps) or an offset range of the
decisions topic. Outcomes are read from the window's first decision until
``decision timeout`` after its last one, the longest the engine waits for an
outcome. Each partition is read up to its end offset as it was when reading
started, so a busy topic still gives a definite window. The reader joins no
consumer group and commits nothing: evaluating never moves a service's offsets.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from dynpricing.evaluate.records import DECISION, OUTCOME, RawRecord
from dynpricing.kafka_io import retrying
from dynpricing.settings import KafkaSettings, librdkafka_config

METADATA_TIMEOUT_S = 10.0
METADATA_DEADLINE_S = 30.0
CONSUME_TIMEOUT_S = 1.0
CONSUME_BATCH = 10_000
STALL_DEADLINE_S = 60.0  # no progress on any partition for this long is an error
MS_PER_S = 1000


class KafkaReadError(RuntimeError):
    """The window could not be read completely (missing topic, broker error, stall)."""


@dataclass(frozen=True)
class Window:
    """What to read: broker-time bounds in seconds, or decision-topic offsets, or everything."""

    since: float | None = None
    until: float | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def describe(self) -> dict[str, object]:
        return {
            "since": self.since,
            "until": self.until,
            "from_offset": self.from_offset,
            "to_offset": self.to_offset,
        }


@dataclass(frozen=True)
class _Range:
    partition: int
    start: int
    end: int  # exclusive


def read_log(
    kafka: KafkaSettings,
    decisions_topic: str,
    outcomes_topic: str,
    window: Window,
    decision_timeout_s: float,
    *,
    group_id: str,
) -> list[RawRecord]:
    """Decisions in the window and the outcomes that may answer them, in topic order.

    ``group_id`` is never joined and nothing is committed under it, but
    librdkafka looks up its coordinator, so on a broker with ACLs the
    principal needs Describe on it (as the engine's recovery reader does).
    """
    consumer = Consumer(
        {
            **librdkafka_config(kafka),
            "group.id": group_id,
            "client.id": "dynpricing-evaluate",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        ranges = _decision_ranges(consumer, decisions_topic, window)
        decisions = _read(consumer, decisions_topic, DECISION, ranges)
        stamps = [r.timestamp_ms for r in decisions if r.timestamp_ms is not None]
        if not stamps:
            return decisions
        start_s = window.since if window.since is not None else min(stamps) / MS_PER_S
        end_s = max(stamps) / MS_PER_S + decision_timeout_s
        outcome_ranges = _time_ranges(consumer, outcomes_topic, start_s, end_s)
        return decisions + _read(consumer, outcomes_topic, OUTCOME, outcome_ranges)
    finally:
        consumer.close()


def _partitions(consumer: Consumer, topic: str) -> list[int]:
    metadata = retrying(
        lambda: consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S), METADATA_DEADLINE_S
    )
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise KafkaReadError(f"topic {topic!r} does not exist or has no partitions")
    return sorted(found.partitions)


def _watermarks(consumer: Consumer, topic: str, partition: int) -> tuple[int, int]:
    tp = TopicPartition(topic, partition)
    low, high = retrying(
        lambda: consumer.get_watermark_offsets(tp, timeout=METADATA_TIMEOUT_S, cached=False),
        METADATA_DEADLINE_S,
    )
    return int(low), int(high)


def _offsets_at(
    consumer: Consumer, topic: str, partitions: Sequence[int], at_s: float
) -> list[int]:
    """Earliest offset per partition whose timestamp is >= ``at_s`` (the end if none)."""
    wanted = [TopicPartition(topic, p, int(at_s * MS_PER_S)) for p in partitions]
    found = retrying(
        lambda: consumer.offsets_for_times(wanted, timeout=METADATA_TIMEOUT_S),
        METADATA_DEADLINE_S,
    )
    return [tp.offset for tp in found]


def _decision_ranges(consumer: Consumer, topic: str, window: Window) -> list[_Range]:
    partitions = _partitions(consumer, topic)
    if window.since is not None or window.until is not None:
        since = window.since if window.since is not None else 0.0
        return _time_ranges(consumer, topic, since, window.until)
    ranges = []
    for partition in partitions:
        low, high = _watermarks(consumer, topic, partition)
        start = max(low, window.from_offset or 0)
        end = high if window.to_offset is None else min(high, window.to_offset)
        ranges.append(_Range(partition, start, end))
    return ranges


def _time_ranges(
    consumer: Consumer, topic: str, since_s: float, until_s: float | None
) -> list[_Range]:
    partitions = _partitions(consumer, topic)
    marks = [_watermarks(consumer, topic, p) for p in partitions]
    starts = _offsets_at(consumer, topic, partitions, since_s)
    ends = (
        _offsets_at(consumer, topic, partitions, until_s)
        if until_s is not None
        else [OFFSET_END] * len(partitions)
    )
    ranges = []
    for partition, (low, high), start, end in zip(partitions, marks, starts, ends, strict=True):
        first = high if start < 0 else max(start, low)  # negative: no message that late
        last = high if end < 0 else min(end, high)
        ranges.append(_Range(partition, first, last))
    return ranges


def _read(consumer: Consumer, topic: str, kind: str, ranges: Sequence[_Range]) -> list[RawRecord]:
    """Every message of ``[start, end)`` on each partition, sorted by partition and offset."""
    todo = {r.partition: r for r in ranges if r.start < r.end}
    if not todo:
        return []
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in todo.values()])
    records: list[RawRecord] = []
    last_progress = time.monotonic()
    while todo:
        batch = consumer.consume(CONSUME_BATCH, CONSUME_TIMEOUT_S)
        for msg in batch:
            record = _record(msg, kind, todo)
            if record is not None:
                records.append(record)
                last_progress = time.monotonic()
        _drop_finished(consumer, topic, todo)
        if todo and time.monotonic() - last_progress > STALL_DEADLINE_S:
            raise KafkaReadError(
                f"no progress reading {topic} for {STALL_DEADLINE_S:.0f}s; "
                f"partitions still unread: {sorted(todo)}"
            )
    consumer.unassign()
    records.sort(key=lambda r: (r.partition, r.offset))
    return records


def _drop_finished(consumer: Consumer, topic: str, todo: dict[int, _Range]) -> None:
    """Partitions whose position passed the end (the last offsets held no message)."""
    positions = consumer.position([TopicPartition(topic, p) for p in todo])
    for tp in positions:
        if tp.offset >= 0 and tp.offset >= todo[tp.partition].end:
            del todo[tp.partition]


def _record(msg: Message, kind: str, todo: dict[int, _Range]) -> RawRecord | None:
    err = msg.error()
    if err is not None:
        if err.code() == KafkaError._PARTITION_EOF:
            return None
        raise KafkaException(err)
    partition, offset = msg.partition(), msg.offset()
    if partition is None or offset is None or partition not in todo:
        return None
    wanted = todo[partition]
    if offset >= wanted.end:
        return None
    if offset + 1 >= wanted.end:
        del todo[partition]
    _, stamp = msg.timestamp()
    return RawRecord(
        kind=kind,
        partition=partition,
        offset=offset,
        value=msg.value(),
        key=msg.key(),
        timestamp_ms=stamp if stamp > 0 else None,
    )
