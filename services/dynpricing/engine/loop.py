"""The engine's loop: consume a batch, learn its outcomes, price its demand, repeat.

What survives a crash, and how, is answered elsewhere: ``checkpoint.py`` writes
the state (after every decision it covers is delivered) and ``recovery.py``
reads it back and finds what was published after it. This module is the work
between two checkpoints, and :meth:`PricingEngine.capture` is what a checkpoint
takes of it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from dynpricing.core.bandit import Bandit
from dynpricing.engine import views
from dynpricing.engine.checkpoint import Capture
from dynpricing.engine.contexts import ContextRows
from dynpricing.engine.join import Pending
from dynpricing.engine.learning import Learning
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.engine.pricing import DECISION_ID, Priced, Pricer, decision_id_for
from dynpricing.engine.state import EngineBookkeeping, partition_key, split_partition_key
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import EngineSettings

WATERMARK_TIMEOUT_S = 5.0

Clock = Callable[[], float]
DeadLetter = Callable[[Message, str, str], None]

__all__ = ["PricingEngine", "decision_id_for"]


class PricingEngine:
    """Owns the bandit and the bookkeeping; the service shell owns the clients.

    Pricing (:class:`~dynpricing.engine.pricing.Pricer`) and learning
    (:class:`~dynpricing.engine.learning.Learning`) are the rooms the deciders
    and the learner share; the engine adds exactly-once on top: demand it
    knows to be priced is skipped, and each decision it publishes waits in its
    own pending table.
    """

    def __init__(
        self,
        *,
        settings: EngineSettings,
        bandit: Bandit,
        books: EngineBookkeeping,
        consumer: Consumer,
        producer: OutputProducer,
        dead_letter: DeadLetter,
        usable: Callable[[Message], bool],
        metrics: EngineMetrics,
        clock: Clock,
    ) -> None:
        self.settings = settings
        self.bandit = bandit
        self.books = books
        self.consumer = consumer
        self.producer = producer
        self.metrics = metrics
        self.clock = clock
        self.decision_baseline: dict[str, int] = {}
        self.lock = threading.Lock()
        self.log = structlog.get_logger("engine")
        self.last_snapshot_at: float | None = None
        self.rows = ContextRows(bandit, settings.max_contexts)
        self.pricer = Pricer(
            settings=settings,
            bandit=bandit,
            rows=self.rows,
            producer=producer,
            dead_letter=dead_letter,
            metrics=metrics,
            clock=clock,
            rng=books.rng,
        )
        self.learning = Learning(
            settings=settings,
            bandit=bandit,
            rows=self.rows,
            join=books.join,
            metrics=metrics,
            dead_letter=dead_letter,
            clock=clock,
        )
        self._usable = usable
        self._topics = settings.topics

    def locate(self, location: str, level: str, price: float) -> tuple[int, int]:
        """Row and arm of a context and price named by a message; raises InvalidEvent."""
        return self.rows.locate(location, level, price)

    # ---- one batch -------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> None:
        """Learn from the batch's outcomes, price its demand, expire what waited too long."""
        if not messages:
            with self.lock:
                self.learning.expire(self.clock())
            self.producer.poll(0)  # delivery reports, which a background checkpoint waits for
            return
        self.metrics.batch_size.observe(len(messages))
        demand: list[Message] = []
        outcomes: list[Message] = []
        demand_topic = self._topics.demand
        last_offsets: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error() is not None and not self._usable(msg):
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                raise ValueError("message without topic, partition or offset")
            (demand if topic == demand_topic else outcomes).append(msg)
            last_offsets[(topic, partition)] = offset
        with self.lock:  # offsets and what they cover change together for a capture
            for (topic, partition), offset in last_offsets.items():
                self.books.offsets[partition_key(topic, partition)] = offset + 1
            self.learning.learn(outcomes)
            self._price(demand)
            self.learning.expire(self.clock())
        self.producer.poll(0)

    # ---- demand ----------------------------------------------------------------------

    def _published_ahead(self, published: dict[int, set[int]], partition: Any, offset: Any) -> bool:
        """Is this demand message's decision already published (found by recovery)?"""
        ahead = published.get(partition)
        if ahead is None or offset not in ahead:
            return False
        ahead.discard(offset)
        if not ahead:
            del published[partition]
        self.metrics.replayed.inc()
        return True

    def _price(self, messages: Sequence[Message]) -> None:
        published = self.books.already_published
        pending_ids, resolved_ids = self.books.join.known_ids
        parse = self.pricer.parse
        priced: list[Priced] = []
        for msg in messages:
            if published and self._published_ahead(published, msg.partition(), msg.offset()):
                continue
            parsed = parse(msg)
            if parsed is None:
                continue
            decision_id = parsed[DECISION_ID]
            if decision_id in pending_ids or decision_id in resolved_ids:  # never priced twice
                self.metrics.replayed.inc()
                continue
            priced.append(parsed)
        if not priced:
            return
        arms, now = self.pricer.price(priced)
        self.learning.decided(
            [(p[DECISION_ID], Pending(p[3], arm, now)) for p, arm in zip(priced, arms, strict=True)]
        )

    # ---- what a checkpoint takes -------------------------------------------------------

    def capture(self) -> Capture:
        """Step 1 of a checkpoint: copies of everything, and how much the producer was handed.

        Taken under the lock on the loop's thread, so the offsets, the state
        they cover and the producer's count all belong to the same instant.
        """
        with self.lock:
            self.books.decision_marks = self.decision_marks()
            return Capture(
                sent=self.producer.sent,
                tables=self.bandit.to_document(arrays=True),
                books=self.books.capture(self.clock()),
            )

    def decision_marks(self) -> dict[str, int]:
        """Where decisions published after this capture can begin, per partition.

        Each partition's end offset when recovery last read it, raised to just
        past the highest offset delivered since: no broker round trip on the
        loop. Valid because a message produced after the capture lands above
        both. A decision sent before it but delivered after may land above too;
        recovery finds it pending in the snapshot already. A partition with no
        mark (added to the topic since) is read by recovery from its beginning.
        """
        topic = self._topics.decisions
        marks = dict(self.decision_baseline)
        for (delivered_topic, partition), offset in self.producer.highest.items():
            if delivered_topic == topic and partition is not None:
                key = partition_key(topic, partition)
                marks[key] = max(marks.get(key, 0), offset + 1)
        return marks

    def snapshot_written(self, written_at: float, took_s: float) -> None:
        self.last_snapshot_at = written_at
        self.metrics.snapshot_duration.observe(took_s)
        self.metrics.snapshot_age.set(0.0)

    def committable(self, offsets: dict[str, int]) -> list[TopicPartition]:
        return [
            TopicPartition(*split_partition_key(key), offset) for key, offset in offsets.items()
        ]

    def refresh_gauges(self) -> None:
        """Posterior means, pulls and consumer lag (bounded to the first contexts)."""
        views.refresh_arm_gauges(self.bandit, self.lock, self.metrics)
        if self.last_snapshot_at is not None:
            self.metrics.snapshot_age.set(max(0.0, self.clock() - self.last_snapshot_at))
        self._refresh_lag()

    def _refresh_lag(self) -> None:
        for key, offset in list(self.books.offsets.items()):
            topic, partition = split_partition_key(key)
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S, cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, high - offset))

    # ---- views -----------------------------------------------------------------------

    def summary(self) -> list[dict[str, Any]]:
        """Per context: the best price by posterior mean revenue, and pulls per arm."""
        return views.summary(self.bandit, self.lock)

    def state_view(self) -> dict[str, Any]:
        """``/state``: per context and arm the posterior, counts and mean."""
        with self.lock:
            pending = len(self.books.pending)
        age = None if self.last_snapshot_at is None else self.clock() - self.last_snapshot_at
        return views.state_document(
            self.bandit, self.lock, pending_decisions=pending, snapshot_age_seconds=age
        )
