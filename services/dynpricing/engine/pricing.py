"""Pricing demand: messages in, one decision each out. Shared by the engine and the deciders.

:meth:`Pricer.parse` turns a demand message into a tuple ready to price (or
dead-letters it); :meth:`Pricer.price` decides a batch at once with the
bandit, publishes the decisions and counts them. What a role does around that
differs: the engine skips demand it knows to be priced already and adds each
decision to its pending table; a decider prices everything it consumes.

The per-event work here is kept small on purpose (plain tuples, one lookup
per context, the batch decided with vectorised numpy): a decider's throughput
is a share of a pass-through relay's, so every microsecond per event counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import numpy as np
from confluent_kafka import Message

from dynpricing import events
from dynpricing.core.bandit import Bandit
from dynpricing.core.contexts import DemandThresholds, demand_level
from dynpricing.engine.contexts import ContextRows
from dynpricing.engine.metrics import PricingMetrics, location_label, observe_many
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import PricingSettings

Clock = Callable[[], float]
DeadLetter = Callable[[Message, str, str], None]

Priced = tuple[str, str, float, int, int, int, float]
"""A valid demand event ready to be priced: decision id, event id, event time, context
row, requests, drivers, and the demand message's Kafka timestamp (seconds).

A plain tuple rather than an object: it is built once per event on the hot path.
"""
DECISION_ID: Final = 0
CONTEXT: Final = 3


def decision_id_for(origin: events.Origin, event_id: str) -> str:
    """Stable across crashes: the same demand message always gets the same id."""
    return f"{origin.partition}-{origin.offset}-{event_id}"


def model_version(bandit: Bandit) -> str:
    """The engine's model version: ``<policy>:<outcomes learnt>``."""
    return f"{bandit.policy_name}:{bandit.total_outcomes}"


class Pricer:
    """Parses, decides, publishes and counts; owns no offsets and no pending table."""

    def __init__(
        self,
        *,
        settings: PricingSettings,
        bandit: Bandit,
        rows: ContextRows,
        producer: OutputProducer,
        dead_letter: DeadLetter,
        metrics: PricingMetrics,
        clock: Clock,
        rng: np.random.Generator,
    ) -> None:
        self.bandit = bandit
        self.rows = rows
        self.producer = producer
        self.metrics = metrics
        self.clock = clock
        self.rng = rng
        self.topic = settings.topics.decisions
        self.thresholds = DemandThresholds(settings.demand_low_below, settings.demand_medium_below)
        # A decider's model versions, one per context row (a row beyond them is priced
        # from the prior); None: the engine's, one for the whole batch (model_version)
        self.context_versions: list[str] | None = None
        self.prior_version = f"{bandit.policy_name}:0"
        self._dead_letter = dead_letter
        self._base_prices = settings.base_prices
        self._multipliers = [float(p) for p in bandit.prices]
        self._children: dict[tuple[int, int], Any] = {}

    def parse(self, msg: Message) -> Priced | None:
        """A demand message's fields and context, or None (dead-lettered)."""
        partition, offset = msg.partition(), msg.offset()
        fallback_id = f"{partition}-{offset}"
        try:
            event_id, timestamp, location, requests, drivers, _ = events.demand_fields(
                msg.value(), fallback_id=fallback_id
            )
            context = self.rows.row(location, demand_level(requests, drivers, self.thresholds))
        except events.InvalidEvent as exc:
            self._dead_letter(msg, exc.reason, exc.detail)
            return None
        kind, millis = msg.timestamp()
        created = millis / 1000.0 if kind else timestamp  # the broker's time, if it has one
        # as decision_id_for(origin, event_id)
        return f"{fallback_id}-{event_id}", event_id, timestamp, context, requests, drivers, created

    def price(self, priced: Sequence[Priced]) -> tuple[list[int], float]:
        """Decide and publish one decision per event; the arms chosen and the decision time."""
        now = self.clock()
        count = len(priced)
        contexts = np.fromiter((p[CONTEXT] for p in priced), dtype=np.int64, count=count)
        supply = {}
        if self.bandit.needs_supply:  # OBJECTIVE=revenue-supply prices each event's drivers
            supply = {"requests": [p[4] for p in priced], "drivers": [p[5] for p in priced]}
        batch = self.bandit.decide(contexts, self.rng, now, **supply)
        arms: list[int] = batch.arms.tolist()
        self._publish(priced, arms, batch.propensities.tolist(), now)
        self._count(contexts, batch.arms)
        return arms, now

    def _publish(
        self, priced: Sequence[Priced], arms: list[int], propensities: list[float], now: float
    ) -> None:
        """Produce one decision per event, then observe latency and event-time lag."""
        policy = self.bandit.policy_name
        versions = self.context_versions
        batch_version = model_version(self.bandit) if versions is None else self.prior_version
        known = 0 if versions is None else len(versions)
        names = self.rows.names(max(p[CONTEXT] for p in priced))
        multipliers = self._multipliers
        base_prices = self._base_prices
        values: list[bytes] = []
        keys: list[str] = []
        for (decision_id, event_id, timestamp, context, *_), arm, propensity in zip(
            priced, arms, propensities, strict=True
        ):
            location, level, key = names[context]
            multiplier = multipliers[arm]
            base = base_prices.get(location)
            values.append(events.decision_bytes(
                decision_id, event_id, now, timestamp, location, level, multiplier,
                round(base * multiplier, 6) if base is not None else None, propensity, policy,
                versions[context] if context < known else batch_version,  # type: ignore[index]
            ))  # fmt: skip
            keys.append(key)
        self.producer.send_many(self.topic, values, keys)
        handed = self.clock()
        observe_many(self.metrics.latency, [max(0.0, handed - p[6]) for p in priced])
        observe_many(self.metrics.event_time_lag, [max(0.0, handed - p[2]) for p in priced])

    def _count(self, contexts: np.ndarray, arms: np.ndarray) -> None:
        n_arms = len(self.bandit.prices)
        cells, counts = np.unique(contexts * n_arms + arms, return_counts=True)
        for cell, count in zip(cells.tolist(), counts.tolist(), strict=True):
            child = self._children.get(divmod(cell, n_arms))
            if child is None:
                context, arm = divmod(cell, n_arms)
                location, level = self.bandit.context_name(context)
                location = location_label(context, location)
                child = self.metrics.decisions.labels(location, level, self.rows.price_labels[arm])
                self._children[(context, arm)] = child
            child.inc(count)
