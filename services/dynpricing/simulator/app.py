"""``dynpricing simulator``: answer each pricing decision as a customer would.

Consumes decisions, draws accept/reject from the market model (a market file,
default the bundled L6), holds each answer for an exponential delay when one is
configured, and publishes outcomes. Only it knows the true curves, so it exports
regret. At-least-once: a partition's offset is committed only up to the first
decision whose outcome is not yet delivered; a replayed decision gets a second
outcome, which the engine recognises as a duplicate.
"""

from __future__ import annotations

import dataclasses
import heapq
import importlib.resources
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from dynpricing import events
from dynpricing.core.market import Market, load_market
from dynpricing.kafka_io import (
    DeliveryFailedError,
    DeliveryTracker,
    StopFlag,
    ensure_topics,
    flush,
    make_consumer,
    make_producer,
    origin_of,
    produce,
    refuse_if_denied,
    wait_for_topics,
    wall_clock,
)
from dynpricing.observability import Health, HttpServer, configure_logging
from dynpricing.settings import SimulatorSettings
from dynpricing.simulator.customers import (
    Customers,
    PriceNotOnGridError,
    UnknownMarketContextError,
)

COMMIT_INTERVAL_S = 2.0
EXIT_DELIVERY_FAILED = 3
CONTEXT_LABELS = ("location", "demand_level")


def load_market_file(path: Path | None) -> Market:
    """The configured market file, or the bundled reference market L6."""
    if path is None:
        raw = importlib.resources.files("dynpricing.data").joinpath("l6.json").read_bytes()
    else:
        raw = path.read_bytes()
    return load_market(orjson.loads(raw))


class SimulatorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.regret = Counter(
            "dynpricing_regret",
            "Expected revenue lost against the oracle",
            CONTEXT_LABELS,
            registry=registry,
        )
        self.revenue = Counter(
            "dynpricing_expected_revenue",
            "Expected revenue of the chosen prices",
            CONTEXT_LABELS,
            registry=registry,
        )
        self.oracle = Counter(
            "dynpricing_oracle_revenue",
            "Expected revenue of the oracle's prices",
            CONTEXT_LABELS,
            registry=registry,
        )
        self.outcomes = Counter(
            "dynpricing_simulated_outcomes",
            "Simulated customer answers",
            (*CONTEXT_LABELS, "price", "accepted"),
            registry=registry,
        )
        self.dead_letters = Counter(
            "dynpricing_dead_letters",
            "Messages sent to the dead-letter topic",
            ("reason",),
            registry=registry,
        )


@dataclass
class OffsetTracker:
    """Per partition: the next offset safe to commit, given outcomes still held back."""

    outstanding: dict[int, deque[int]] = field(default_factory=dict)
    done: dict[int, set[int]] = field(default_factory=dict)
    safe: dict[int, int] = field(default_factory=dict)

    def started(self, partition: int, offset: int) -> None:
        self.outstanding.setdefault(partition, deque()).append(offset)
        self.done.setdefault(partition, set())

    def finished(self, partition: int, offset: int) -> None:
        self.done[partition].add(offset)
        queue, done = self.outstanding[partition], self.done[partition]
        while queue and queue[0] in done:
            done.discard(queue[0])
            self.safe[partition] = queue.popleft() + 1


@dataclass(frozen=True, slots=True)
class HeldOutcome:
    """An answer waiting for its delay, and the decision message it answers."""

    partition: int
    offset: int
    outcome: events.Outcome
    revenue: float
    key: str


class Simulator:
    """Answers decisions; outcomes wait in a heap until their delay has passed."""

    def __init__(
        self, settings: SimulatorSettings, customers: Customers, metrics: SimulatorMetrics
    ) -> None:
        self.settings = settings
        self.customers = customers
        self.metrics = metrics
        self.producer = make_producer(settings.kafka, "outcome-simulator")
        self.tracker = DeliveryTracker()
        self.offsets = OffsetTracker()
        self.held: list[tuple[float, int, HeldOutcome]] = []
        self._seq = 0
        self.log = structlog.get_logger("simulator")

    def handle(self, msg: Message) -> None:
        where = origin_of(msg)
        partition, offset = where.partition, where.offset
        self.offsets.started(partition, offset)
        try:
            decision = events.parse_decision(msg.value())
            answer = self.customers.answer(
                decision.location, decision.demand_level, decision.price_multiplier
            )
        except events.InvalidEvent as exc:
            self._dead_letter(msg, exc.reason, exc.detail)
            return
        except UnknownMarketContextError as exc:
            self._dead_letter(msg, "unknown_market_context", str(exc))
            return
        except PriceNotOnGridError as exc:
            self._dead_letter(msg, "price_not_on_grid", str(exc))
            return
        self._score(decision, answer.accepted, answer.expected_revenue, answer.oracle_revenue)
        outcome = events.Outcome(
            decision.decision_id,
            0.0,
            answer.accepted,
            decision.location,
            decision.demand_level,
            decision.price_multiplier,
        )
        held = HeldOutcome(
            partition,
            offset,
            outcome,
            decision.price_multiplier if answer.accepted else 0.0,
            f"{decision.location}|{decision.demand_level}",
        )
        self._seq += 1
        heapq.heappush(self.held, (time.monotonic() + answer.delay_s, self._seq, held))

    def _score(self, d: events.Decision, accepted: bool, revenue: float, oracle: float) -> None:
        ctx = (d.location, d.demand_level)
        self.metrics.regret.labels(*ctx).inc(max(0.0, oracle - revenue))
        self.metrics.revenue.labels(*ctx).inc(revenue)
        self.metrics.oracle.labels(*ctx).inc(oracle)
        self.metrics.outcomes.labels(
            *ctx, f"{d.price_multiplier:g}", "true" if accepted else "false"
        ).inc()

    def _dead_letter(self, msg: Message, reason: str, detail: str) -> None:
        origin = origin_of(msg)
        value = events.encode_dead_letter(msg.value(), reason, detail, origin, wall_clock())
        key = events.dead_letter_key(msg.key())
        produce(self.producer, self.settings.topics.dead_letters, value, key, self.tracker)
        self.metrics.dead_letters.labels(reason).inc()
        self.offsets.finished(origin.partition, origin.offset)

    def release(self, now: float) -> int:
        """Publish every held outcome whose delay has passed, stamped with the send time."""
        released = 0
        while self.held and self.held[0][0] <= now:
            held = heapq.heappop(self.held)[2]
            outcome = dataclasses.replace(held.outcome, timestamp=wall_clock())
            produce(
                self.producer,
                self.settings.topics.outcomes,
                events.encode_outcome(outcome, revenue=held.revenue),
                held.key,
                self.tracker,
            )
            self.offsets.finished(held.partition, held.offset)
            released += 1
        self.producer.poll(0)
        return released


def _usable(msg: Message, log: Any, group: str) -> bool:
    err = msg.error()
    if err is None:
        return True
    refuse_if_denied(err, "Read", msg.topic(), group)
    if err.fatal():
        raise KafkaException(err)
    if err.code() != KafkaError._PARTITION_EOF:
        log.warning("consume_error", error=str(err))
    return False


def run(settings: SimulatorSettings, sim: Simulator, stop: StopFlag, health: Health) -> None:
    consumer = make_consumer(settings.kafka, settings.group_id, "outcome-simulator")

    def on_assign(c: Consumer, partitions: list[TopicPartition]) -> None:
        c.assign(partitions)
        health.set_ready(True)

    consumer.subscribe([settings.topics.decisions], on_assign=on_assign)
    next_commit = time.monotonic() + COMMIT_INTERVAL_S
    try:
        while not stop.is_set():
            for msg in consumer.consume(settings.batch_size, settings.poll_timeout_s):
                if _usable(msg, sim.log, settings.group_id):
                    sim.handle(msg)
            sim.release(time.monotonic())
            health.tick()
            if time.monotonic() >= next_commit:
                _commit(consumer, sim, settings.topics.decisions)
                next_commit = time.monotonic() + COMMIT_INTERVAL_S
        sim.log.info("shutting_down", signal=stop.signal_name, held=len(sim.held))
        _commit(consumer, sim, settings.topics.decisions)
    finally:
        consumer.close()


def _commit(consumer: Any, sim: Simulator, topic: str) -> None:
    """Commit only what is delivered: flush first, then the safe offsets."""
    flush(sim.producer, sim.tracker)
    offsets = [TopicPartition(topic, p, o) for p, o in sim.offsets.safe.items()]
    if offsets:
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            refuse_if_denied(exc, "Commit", group=sim.settings.group_id)
            sim.log.warning("offset_commit_failed", error=str(exc))


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, logging, metrics, the market and the Kafka clients; then run."""
    del argv
    settings = SimulatorSettings()
    configure_logging(settings.log_level, settings.log_format)
    log = structlog.get_logger("simulator")
    stop = StopFlag()
    stop.install()
    market = load_market_file(settings.market_path)
    t = settings.topics
    topics = [t.decisions, t.outcomes, t.dead_letters]  # what it uses; it may not see demand
    if settings.create_topics:
        ensure_topics(settings.kafka, topics)
    elif not wait_for_topics(settings.kafka, topics, stop, log):
        return 0
    registry = CollectorRegistry()
    health = Health()
    customers = Customers(
        market, np.random.default_rng(settings.seed), settings.delay_mean_s, settings.horizon
    )
    sim = Simulator(settings, customers, SimulatorMetrics(registry))
    http = HttpServer(settings.http_host, settings.http_port, registry, health)
    http.start()
    log.info("simulator_started", market=market.name, delay_mean_s=settings.delay_mean_s)
    try:
        run(settings, sim, stop, health)
    except DeliveryFailedError as exc:
        log.error("delivery_failed", error=str(exc))
        return EXIT_DELIVERY_FAILED
    finally:
        http.stop()
    return 0
