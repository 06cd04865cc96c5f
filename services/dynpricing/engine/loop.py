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

import numpy as np
import structlog
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from dynpricing import events
from dynpricing.core.bandit import Bandit
from dynpricing.core.contexts import DemandThresholds, context_key, demand_level
from dynpricing.core.errors import PriceNotOnGridError, UnknownContextError
from dynpricing.engine.checkpoint import Capture
from dynpricing.engine.join import DUPLICATE, LATE, Pending
from dynpricing.engine.metrics import (
    METRIC_CONTEXT_LIMIT,
    EngineMetrics,
    location_label,
    observe_many,
)
from dynpricing.engine.state import EngineBookkeeping, partition_key, split_partition_key
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import EngineSettings

WATERMARK_TIMEOUT_S = 5.0
SUMMARY_CONTEXT_LIMIT = 12

Clock = Callable[[], float]
DeadLetter = Callable[[Message, str, str], None]


_Priced = tuple[str, str, float, int, int, int]  # ids, timestamp, context, requests, drivers
"""A valid demand event ready to be priced: decision id, event id, event time, context row.

A plain tuple rather than an object: it is built once per event on the hot path.
"""


def decision_id_for(origin: events.Origin, event_id: str) -> str:
    """Stable across crashes: the same demand message always gets the same id."""
    return f"{origin.partition}-{origin.offset}-{event_id}"


class PricingEngine:
    """Owns the bandit and the bookkeeping; the service shell owns the clients."""

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
        self.thresholds = DemandThresholds(settings.demand_low_below, settings.demand_medium_below)
        self.last_snapshot_at: float | None = None
        self._dead_letter = dead_letter
        self._usable = usable
        self._decision_children: dict[tuple[int, int], Any] = {}
        self._context_ids: dict[tuple[str, str], int] = {}
        self._names: list[tuple[str, str, str]] = []
        self._multipliers = [float(p) for p in bandit.prices]
        self._topics = settings.topics

    # ---- one batch -------------------------------------------------------------------

    def process(self, messages: Sequence[Message]) -> None:
        """Learn from the batch's outcomes, price its demand, expire what waited too long."""
        if not messages:
            with self.lock:
                self._expire(self.clock())
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
            self._learn(outcomes)
            self._price(demand)
            self._expire(self.clock())
        self.producer.poll(0)

    # ---- outcomes --------------------------------------------------------------------

    def _learn(self, messages: Sequence[Message]) -> None:
        contexts: list[int] = []
        arms: list[int] = []
        accepted: list[bool] = []
        resolve = self.books.join.resolve
        for msg in messages:
            try:
                outcome = events.parse_outcome(msg.value())
                verdict, context, arm = resolve(outcome, self.locate)
            except events.InvalidEvent as exc:
                self._dead_letter(msg, exc.reason, exc.detail)
                continue
            if verdict == DUPLICATE:
                self.metrics.duplicates.inc()
            elif verdict == LATE:
                self.metrics.late.inc()
            else:
                contexts.append(context)
                arms.append(arm)
                accepted.append(outcome.accepted)
        self._apply(contexts, arms, accepted)

    def locate(self, location: str, level: str, price: float) -> tuple[int, int]:
        """Row and arm of a context and price named by a message; raises InvalidEvent.

        The price is checked before the context is looked up, so a refused
        outcome never creates a context.
        """
        try:
            arm = self.bandit.arm_index(price)
        except PriceNotOnGridError as exc:
            raise events.InvalidEvent("price_not_on_grid", str(exc)) from None
        return self._context(location, level), arm

    def _apply(self, contexts: list[int], arms: list[int], accepted: list[bool]) -> None:
        if not contexts:
            return
        ctx = np.asarray(contexts, dtype=np.int64)
        arm = np.asarray(arms, dtype=np.int64)
        acc = np.asarray(accepted, dtype=bool)
        self.bandit.update(ctx, arm, acc, self.clock())
        self._count_outcomes(ctx, arm, acc)

    def _count_outcomes(self, ctx: np.ndarray, arm: np.ndarray, acc: np.ndarray) -> None:
        n_arms = len(self.bandit.prices)
        cells = (ctx * n_arms + arm) * 2 + acc.astype(np.int64)
        values, counts = np.unique(cells, return_counts=True)
        for cell, count in zip(values.tolist(), counts.tolist(), strict=True):
            flat, is_accepted = divmod(cell, 2)
            context, arm_index = divmod(flat, n_arms)
            location, level = self.bandit.context_name(context)
            price = self._price_label(arm_index)
            label = "true" if is_accepted else "false"
            location = location_label(context, location)
            self.metrics.outcomes.labels(location, level, price, label).inc(count)

    # ---- demand ----------------------------------------------------------------------

    def _context(self, location: str, level: str) -> int:
        """The row of a context, added when new unless that would pass ``MAX_CONTEXTS``."""
        bandit = self.bandit
        row = bandit.find_context(location, level)
        if row is not None:
            return row
        if not bandit.config.locations and bandit.n_contexts >= self.settings.max_contexts:
            raise events.InvalidEvent(
                "too_many_contexts",
                f"{bandit.n_contexts} contexts already (MAX_CONTEXTS);"
                f" {events.shown(location)}|{level} would be one more",
            )
        try:
            return bandit.context_index(location, level)
        except UnknownContextError as exc:
            raise events.InvalidEvent("unknown_location", str(exc)) from None

    def _parse_demand(self, msg: Message, published: dict[int, set[int]]) -> _Priced | None:
        """A demand message's fields and context, or None (dead-lettered or already published)."""
        partition, offset = msg.partition(), msg.offset()
        if published and self._published_ahead(published, partition, offset):
            return None
        fallback_id = f"{partition}-{offset}"
        try:
            event_id, timestamp, location, requests, drivers, _ = events.demand_fields(
                msg.value(), fallback_id=fallback_id
            )
            level = demand_level(requests, drivers, self.thresholds)
            context = self._context_ids.get((location, level))
            if context is None:
                context = self._context(location, level)
                self._context_ids[(location, level)] = context
        except events.InvalidEvent as exc:
            self._dead_letter(msg, exc.reason, exc.detail)
            return None
        # as decision_id_for(origin, event_id)
        return f"{fallback_id}-{event_id}", event_id, timestamp, context, requests, drivers

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
        priced = []
        for msg in messages:
            parsed = self._parse_demand(msg, published)
            if parsed is None:
                continue
            if parsed[0] in pending_ids or parsed[0] in resolved_ids:  # never priced twice
                self.metrics.replayed.inc()
                continue
            priced.append(parsed)
        if not priced:
            return
        now = self.clock()
        contexts = np.fromiter((p[3] for p in priced), dtype=np.int64, count=len(priced))
        supply = {}
        if self.bandit.needs_supply:  # OBJECTIVE=revenue-supply prices each event's drivers
            supply = {"requests": [p[4] for p in priced], "drivers": [p[5] for p in priced]}
        batch = self.bandit.decide(contexts, self.books.rng, now, **supply)
        self._publish(priced, batch.arms.tolist(), batch.propensities.tolist(), now)
        self._count_decisions(contexts, batch.arms)

    def _publish(
        self, priced: list[_Priced], arms: list[int], propensities: list[float], now: float
    ) -> None:
        """Produce one decision per priced event, observe latency, and add them as pending."""
        policy = self.bandit.policy_name
        model_version = f"{policy}:{self.bandit.total_outcomes}"
        names = self._context_names(max(p[3] for p in priced))
        multipliers = self._multipliers
        base_prices = self.settings.base_prices
        values: list[bytes] = []
        keys: list[str] = []
        entries = []
        for (decision_id, event_id, timestamp, context, *_), arm, propensity in zip(
            priced, arms, propensities, strict=True
        ):
            location, level, key = names[context]
            multiplier = multipliers[arm]
            base = base_prices.get(location)
            values.append(events.decision_bytes(
                decision_id, event_id, now, timestamp, location, level, multiplier,
                round(base * multiplier, 6) if base is not None else None,
                propensity, policy, model_version,
            ))  # fmt: skip
            keys.append(key)
            entries.append((decision_id, Pending(context, arm, now)))
        self.producer.send_many(self._topics.decisions, values, keys)
        published_at = self.clock()
        observe_many(self.metrics.latency, [max(0.0, published_at - p[2]) for p in priced])
        for _, evicted in self.books.join.decided(entries):
            self._expire_one(evicted)

    def _context_names(self, highest: int) -> list[tuple[str, str, str]]:
        """(location, level, Kafka key) per context row, extended when new contexts appear."""
        names = self._names
        for row in range(len(names), highest + 1):
            location, level = self.bandit.context_name(row)
            names.append((location, level, context_key(location, level)))
        return names

    def _count_decisions(self, contexts: np.ndarray, arms: np.ndarray) -> None:
        n_arms = len(self.bandit.prices)
        cells, counts = np.unique(contexts * n_arms + arms, return_counts=True)
        for cell, count in zip(cells.tolist(), counts.tolist(), strict=True):
            child = self._decision_children.get(divmod(cell, n_arms))
            if child is None:
                context, arm = divmod(cell, n_arms)
                location, level = self.bandit.context_name(context)
                location = location_label(context, location)
                child = self.metrics.decisions.labels(location, level, self._price_label(arm))
                self._decision_children[(context, arm)] = child
            child.inc(count)

    def _price_label(self, arm: int) -> str:
        return f"{float(self.bandit.prices[arm]):g}"

    # ---- expiry ----------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        for _, entry in self.books.join.expire(now - self.settings.decision_timeout_s):
            self._expire_one(entry)
        self.metrics.pending.set(len(self.books.pending))

    def _expire_one(self, entry: Pending) -> None:
        self.metrics.expired.labels(self.settings.expired_as).inc()
        if self.settings.expired_as == "reject":
            self._apply([entry.context], [entry.arm], [False])

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
        with self.lock:
            stats = self.bandit.arm_stats(METRIC_CONTEXT_LIMIT)
            names = self.bandit.contexts(METRIC_CONTEXT_LIMIT)
        for context, (location, level) in enumerate(names):
            for arm in range(len(self.bandit.prices)):
                price = self._price_label(arm)
                mean = float(stats.posterior_mean[context, arm])
                self.metrics.posterior_mean.labels(location, level, price).set(mean)
                pulls = float(stats.pulls[context, arm])
                self.metrics.arm_pulls.labels(location, level, price).set(pulls)
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
        with self.lock:
            stats = self.bandit.arm_stats(SUMMARY_CONTEXT_LIMIT)
            names = self.bandit.contexts(SUMMARY_CONTEXT_LIMIT)
        prices = self.bandit.prices
        rows = []
        for context, (location, level) in enumerate(names):
            revenue = prices * stats.posterior_mean[context]
            rows.append(
                {
                    "context": context_key(location, level),
                    "best_price": float(prices[int(np.argmax(revenue))]),
                    "pulls": [int(x) for x in stats.pulls[context]],
                }
            )
        return rows

    def state_view(self) -> dict[str, Any]:
        """``/state``: per context and arm the posterior, counts and mean."""
        with self.lock:
            stats = self.bandit.arm_stats()
            names = self.bandit.contexts()
            total = int(self.bandit.total_outcomes)
            pending = len(self.books.pending)
        prices = [float(p) for p in self.bandit.prices]
        contexts = []
        for context, (location, level) in enumerate(names):
            arms = [
                {
                    "price": price,
                    "alpha": float(stats.alpha[context, arm]),
                    "beta": float(stats.beta[context, arm]),
                    "successes": float(stats.successes[context, arm]),
                    "failures": float(stats.failures[context, arm]),
                    "pulls": float(stats.pulls[context, arm]),
                    "posterior_mean": float(stats.posterior_mean[context, arm]),
                }
                for arm, price in enumerate(prices)
            ]
            contexts.append({"location": location, "demand_level": level, "arms": arms})
        age = None if self.last_snapshot_at is None else self.clock() - self.last_snapshot_at
        return {
            "policy": self.bandit.policy_name,
            "prices": prices,
            "total_outcomes": total,
            "pending_decisions": pending,
            "snapshot_age_seconds": age,
            "contexts": contexts,
        }
