"""The pricing roles' Prometheus metrics, registered on a registry passed in.

Grouped by what a role does: every role has :class:`ServiceMetrics`; pricing
(the engine, the deciders) adds :class:`PricingMetrics`, learning (the engine,
the learner) :class:`LearningMetrics`. Each class keeps its metrics as plain
attributes, so a holder's ``vars()`` lists them all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

ARM_LABELS = ("location", "demand_level", "price")
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS_S = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
BATCH_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
SNAPSHOT_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
METRIC_CONTEXT_LIMIT = 1000  # contexts with series of their own, in order of first appearance
OTHER_LOCATION = "_other"


def location_label(row: int, location: str) -> str:
    """The ``location`` label of a context row: bounded however many locations appear.

    With no fixed ``LOCATIONS`` any string in a demand event makes a context; the
    first ``METRIC_CONTEXT_LIMIT`` contexts keep their own series and every later
    one is counted under ``OTHER_LOCATION``, so Prometheus never sees an
    unbounded number of label values.
    """
    return location if row < METRIC_CONTEXT_LIMIT else OTHER_LOCATION


class ServiceMetrics:
    """What every pricing role has: batches, dead letters, consumer lag."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_size = Histogram(
            "dynpricing_batch_size",
            "Messages per consumed batch",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.dead_letters = Counter(
            "dynpricing_dead_letters",
            "Messages sent to the dead-letter topic",
            ("reason",),
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "dynpricing_consumer_lag",
            "Messages not yet consumed per partition",
            ("topic", "partition"),
            registry=registry,
        )


class PricingMetrics(ServiceMetrics):
    """Pricing demand (the engine and the deciders)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.decisions = Counter(
            "dynpricing_decisions", "Pricing decisions published", ARM_LABELS, registry=registry
        )
        self.latency = Histogram(
            "dynpricing_decision_latency_seconds",
            "Demand message's Kafka timestamp to its decision handed to the producer",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self.event_time_lag = Histogram(
            "dynpricing_event_time_lag_seconds",
            "Demand event's own timestamp to its decision handed to the producer",
            buckets=LAG_BUCKETS_S,
            registry=registry,
        )


class LearningMetrics(ServiceMetrics):
    """Joining outcomes and learning (the engine and the learner)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.outcomes = Counter(
            "dynpricing_outcomes_applied",
            "Outcomes applied to the posterior",
            (*ARM_LABELS, "accepted"),
            registry=registry,
        )
        self.duplicates = Counter(
            "dynpricing_duplicate_outcomes",
            "Second and later outcomes for one decision (ignored)",
            registry=registry,
        )
        self.late = Counter(
            "dynpricing_late_outcomes",
            "Outcomes for decisions that had already expired (ignored)",
            registry=registry,
        )
        self.expired = Counter(
            "dynpricing_expired_decisions",
            "Decisions that got no outcome in time",
            ("action",),
            registry=registry,
        )
        self.pending = Gauge(
            "dynpricing_pending_decisions", "Decisions awaiting an outcome", registry=registry
        )
        self.posterior_mean = Gauge(
            "dynpricing_posterior_mean",
            "Posterior mean acceptance per arm",
            ARM_LABELS,
            registry=registry,
        )
        self.arm_pulls = Gauge(
            "dynpricing_arm_pulls", "Outcomes learnt per arm", ARM_LABELS, registry=registry
        )
        self.snapshot_duration = Histogram(
            "dynpricing_snapshot_duration_seconds",
            "Time to write bandit_stats.json",
            buckets=SNAPSHOT_BUCKETS_S,
            registry=registry,
        )
        self.snapshot_age = Gauge(
            "dynpricing_snapshot_age_seconds",
            "Seconds since the last successful snapshot",
            registry=registry,
        )


class EngineMetrics(PricingMetrics, LearningMetrics):
    """Every engine metric (pricing and learning in one process); names follow
    docs/interfaces.md."""

    def __init__(self, registry: CollectorRegistry) -> None:
        super().__init__(registry)
        self.replayed = Counter(
            "dynpricing_replayed_demand",
            "Demand events consumed again after a crash whose decision was already published"
            " (skipped, not priced twice)",
            registry=registry,
        )


def observe_many(histogram: Histogram, amounts: Sequence[float]) -> None:
    """``histogram.observe`` for each amount, at the cost of one bucket update per bucket.

    The engine observes one latency per decision; tens of thousands of
    ``observe`` calls a second (each taking a lock) would be a large share of its
    time. This adds the same counts and sum through the histogram's own bucket
    values, and falls back to ``observe`` if the client library changes them.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for amount in amounts:
            histogram.observe(amount)
        return
    # observe() counts an amount in the first bucket whose bound is >= it
    slots = np.searchsorted(np.asarray(bounds), np.asarray(amounts, dtype=np.float64), "left")
    for slot, count in enumerate(np.bincount(slots, minlength=len(bounds)).tolist()):
        if count:
            buckets[slot].inc(count)
    total.inc(float(sum(amounts)))
