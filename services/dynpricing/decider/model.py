"""A decider's read-only copy of the model: the compacted model topic, read and followed.

The learner publishes each context's posterior to ``pricing_model``, keyed by
the context, whenever it changes (coalesced). A decider reads every partition
of it from the beginning at start; it is *caught up* once its position reaches
the end offsets it saw at start, and only then does it join the demand group
and turn ready. Afterwards it follows the topic between two demand batches.

Each message replaces its context's posterior in the decider's bandit
(:meth:`~dynpricing.core.bandit.Bandit.load_context_document`); a context the
model does not have yet is priced from the prior, like a new context in the
engine. A message for another grid, prior or objective, or one that cannot be
read, is refused: counted, logged at most once a minute, and skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge

from dynpricing.core.bandit import Bandit
from dynpricing.core.errors import PricingError, SnapshotError
from dynpricing.engine.pricing import Pricer
from dynpricing.kafka_io import wall_clock
from dynpricing.service import Stopped

WATERMARK_TIMEOUT_S = 5.0
READ_BATCH = 5000  # model messages per read while catching up
FOLLOW_BATCH = 1000  # ... per loop turn afterwards
CATCH_UP_POLL_S = 0.2
REFUSED_LOG_INTERVAL_S = 60.0

UntilDone = Callable[[Callable[[], Any], str], Any]


class ModelMetrics:
    """The model copy's gauges and counters (the decider's other metrics are pricing's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.age = Gauge(
            "dynpricing_model_age_seconds",
            "Now minus the publish time of the newest context of the model in use",
            registry=registry,
        )
        self.contexts = Gauge(
            "dynpricing_model_contexts", "Contexts in the model copy", registry=registry
        )
        self.updates = Counter(
            "dynpricing_model_updates", "Model messages applied", registry=registry
        )
        self.refused = Counter(
            "dynpricing_model_refused",
            "Model messages refused (another grid, prior, policy or objective, or unreadable)",
            registry=registry,
        )


@dataclass
class ModelCopy:
    """The bandit a decider prices with, and what it knows of each context's model."""

    bandit: Bandit
    pricer: Pricer
    lock: threading.Lock
    newest: float | None = None  # publish time of the newest context applied
    contexts: set[int] = field(default_factory=set)  # rows the model has given

    def apply(self, doc: dict[str, Any]) -> int:
        """One context's document into the bandit (under the lock); its row."""
        with self.lock:
            row = self.bandit.load_context_document(doc)
        versions = self.pricer.context_versions
        assert versions is not None, "a decider's pricer keeps one version per context"
        versions.extend([self.pricer.prior_version] * (row + 1 - len(versions)))
        versions[row] = str(doc.get("model_version", self.pricer.prior_version))
        published = doc.get("published_at")
        if isinstance(published, int | float) and (self.newest is None or published > self.newest):
            self.newest = float(published)
        self.contexts.add(row)
        return row


class ModelFollower:
    """Reads the model topic into a :class:`ModelCopy`: all of it at start, then as it grows."""

    def __init__(
        self,
        reader: Consumer,
        topic: str,
        copy: ModelCopy,
        metrics: ModelMetrics,
        log: Any,
    ) -> None:
        self.reader = reader
        self.topic = topic
        self.copy = copy
        self.metrics = metrics
        self.log = log
        self._refused_said = 0.0

    def catch_up(
        self,
        until_done: UntilDone,
        stopped: Callable[[], bool],
        usable: Callable[[Message], bool],
    ) -> int:
        """Read every partition from its beginning to its end offset now; messages read."""
        ends = self._assign_all(until_done)
        wanted = [TopicPartition(self.topic, p) for p, end in ends.items() if end > 0]
        read = 0
        while wanted:
            if stopped():
                raise Stopped
            read += self._apply(self.reader.consume(READ_BATCH, CATCH_UP_POLL_S), usable)
            # the position, not the last offset seen: compaction leaves gaps in the offsets
            wanted = [tp for tp in self.reader.position(wanted) if tp.offset < ends[tp.partition]]
            wanted = [TopicPartition(tp.topic, tp.partition) for tp in wanted]
        return read

    def _assign_all(self, until_done: UntilDone) -> dict[int, int]:
        """Every partition assigned from the beginning; each one's end offset now."""
        metadata = until_done(
            partial(self.reader.list_topics, self.topic, timeout=WATERMARK_TIMEOUT_S), "model"
        )
        ends: dict[int, int] = {}
        for partition in sorted(metadata.topics[self.topic].partitions):
            tp = TopicPartition(self.topic, partition)
            _, high = until_done(
                partial(self.reader.get_watermark_offsets, tp, WATERMARK_TIMEOUT_S, False),
                "model",
            )
            ends[partition] = int(high)
        self.reader.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in ends])
        return ends

    def follow(self, usable: Callable[[Message], bool]) -> int:
        """What the learner published since the last call (no waiting); messages applied."""
        return self._apply(self.reader.consume(FOLLOW_BATCH, 0), usable)

    def _apply(self, batch: list[Message], usable: Callable[[Message], bool]) -> int:
        """The latest message of each context in ``batch``, applied in order."""
        latest: dict[bytes | str | None, Message] = {}
        for msg in batch:
            if usable(msg):
                latest.pop(msg.key(), None)
                latest[msg.key()] = msg
        applied = 0
        for msg in latest.values():
            value = msg.value()
            if value is None:  # a tombstone: nothing to price with, the context keeps its last
                continue
            try:
                self.copy.apply(orjson.loads(value))
            except (orjson.JSONDecodeError, SnapshotError, PricingError, TypeError) as exc:
                self._refused(msg, exc)
                continue
            applied += 1
        if applied:
            self.metrics.updates.inc(applied)
            self.metrics.contexts.set(len(self.copy.contexts))
            self.refresh_age(wall_clock())
        return applied

    def _refused(self, msg: Message, exc: Exception) -> None:
        self.metrics.refused.inc()
        now = time.monotonic()
        if now - self._refused_said >= REFUSED_LOG_INTERVAL_S:
            self._refused_said = now
            self.log.warning(
                "model_refused",
                topic=msg.topic(),
                partition=msg.partition(),
                offset=msg.offset(),
                error=str(exc),
                note="the context is priced from what the decider had; check that the deciders"
                " and the learner have the same PRICES, PRIOR_*, OBJECTIVE and LOCATIONS",
            )

    def refresh_age(self, now: float) -> None:
        if self.copy.newest is not None:
            self.metrics.age.set(max(0.0, now - self.copy.newest))
