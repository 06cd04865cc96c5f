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

import numpy as np
import orjson
from confluent_kafka import Consumer, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from dynpricing import events
from dynpricing.core.market import Market, load_market
from dynpricing.kafka_io import OutputProducer, assign_new_partitions, origin_of, wall_clock
from dynpricing.service import DeadLetters, DeliveredCommits, Running, Shell, once, run_service
from dynpricing.settings import SimulatorSettings
from dynpricing.simulator.customers import (
    Customers,
    PriceNotOnGridError,
    UnknownMarketContextError,
)

COMMIT_INTERVAL_S = 2.0
PARTITION_CHECK_INTERVAL_S = 60.0
COMMIT_RESERVE_S = 2.0  # of the shutdown budget, kept for the last commit and closing
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
        self,
        settings: SimulatorSettings,
        customers: Customers,
        metrics: SimulatorMetrics,
        producer: OutputProducer,
        dead_letters: DeadLetters,
    ) -> None:
        self.settings = settings
        self.customers = customers
        self.metrics = metrics
        self.producer = producer
        self.dead_letters = dead_letters
        self.offsets = OffsetTracker()
        self.held: list[tuple[float, int, HeldOutcome]] = []
        self._seq = 0

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
        self.dead_letters.send(msg, reason, detail)
        origin = origin_of(msg)
        self.offsets.finished(origin.partition, origin.offset)

    def release(self, now: float) -> int:
        """Publish every held outcome whose delay has passed, stamped with the send time."""
        released = 0
        while self.held and self.held[0][0] <= now:
            held = heapq.heappop(self.held)[2]
            outcome = dataclasses.replace(held.outcome, timestamp=wall_clock())
            self.producer.send(
                self.settings.topics.outcomes,
                events.encode_outcome(outcome, revenue=held.revenue),
                held.key,
            )
            self.offsets.finished(held.partition, held.offset)
            released += 1
        self.producer.poll(0)
        return released


class SimulatorService(Running):
    """The loop, at-least-once commits that never wait, and a bounded shutdown.

    The simulator assigns itself every partition of the decisions topic, from
    its group's committed offsets, instead of joining the group's rebalances: a
    restarted simulator takes them back at once (a group member would wait for
    its predecessor's session to time out, 45 s), and a broker restart cannot
    fence it. So one simulator runs per deployment; a second would answer every
    decision again (the engine ignores the duplicates).

    A decision's offset is safe once its outcome (or dead letter) is handed to
    the producer *and* reported delivered: every commit interval the safe
    offsets are noted with the producer's count, and committed at a later
    turn, once the reports of everything handed before have arrived.
    """

    def __init__(self, shell: Shell, sim: Simulator, consumer: Consumer) -> None:
        self.shell = shell
        self.sim = sim
        self.consumer = consumer
        self.topic = shell.settings.topics.decisions
        self.commits = DeliveredCommits(shell, consumer, sim.producer)

    def run(self) -> int:
        shell, sim, settings = self.shell, self.sim, self.sim.settings
        next_commit = time.monotonic() + COMMIT_INTERVAL_S
        next_partition_check = time.monotonic() + PARTITION_CHECK_INTERVAL_S
        while not shell.stop.is_set():
            for msg in self.consumer.consume(settings.batch_size, settings.poll_timeout_s):
                if shell.usable(msg):
                    sim.handle(msg)
            sim.release(time.monotonic())
            shell.tick(self.consumer)
            if time.monotonic() >= next_commit:
                self.commits.turn(self._safe_offsets())
                next_commit = time.monotonic() + COMMIT_INTERVAL_S
            if time.monotonic() >= next_partition_check:  # partitions are rarely added
                shell.at_once(self._look_for_partitions)
                next_partition_check = time.monotonic() + PARTITION_CHECK_INTERVAL_S
        return self._shutdown()

    def _look_for_partitions(self) -> None:
        group = self.sim.settings.group_id
        added = assign_new_partitions(self.consumer, [self.topic], group, {}, once)
        if added:
            self.shell.log.info("partitions_added", partitions=[tp.partition for tp in added])

    def _safe_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p, o) for p, o in self.sim.offsets.safe.items()]

    def _shutdown(self) -> int:
        shell, producer = self.shell, self.sim.producer
        shell.log.info("shutting_down", signal=shell.stop.signal_name, held=len(self.sim.held))
        end = shell.shutdown_deadline
        undelivered = producer.flush(max(0.0, end - COMMIT_RESERVE_S - time.monotonic()))
        producer.raise_if_failed()
        if undelivered:
            shell.log.warning(
                "outcomes_not_delivered",
                undelivered=undelivered,
                note="their decisions are answered again after a restart",
            )
            producer.purge()
            return EXIT_DELIVERY_FAILED
        if not shell.commit_before(self.consumer, self._safe_offsets(), end):
            shell.log.warning("offsets_not_committed", note=shell.commit_note)
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, the shell, the market and the Kafka clients; then run."""
    del argv
    settings = SimulatorSettings()
    t = settings.topics
    topics = [t.decisions, t.outcomes, t.dead_letters]  # what it uses; it may not see demand
    return run_service("simulator", settings, lambda shell: start(shell, settings), topics=topics)


def start(shell: Shell, settings: SimulatorSettings) -> SimulatorService:
    market = load_market_file(settings.market_path)
    customers = Customers(
        market, np.random.default_rng(settings.seed), settings.delay_mean_s, settings.horizon
    )
    metrics = SimulatorMetrics(shell.registry)
    producer = shell.producer("outcome-simulator")
    sim = Simulator(
        settings, customers, metrics, producer, DeadLetters(shell, producer, metrics.dead_letters)
    )
    consumer = shell.consumer(settings.group_id, "outcome-simulator")
    shell.commit_note = "the decisions after the committed offsets are answered again"
    assigned = assign_new_partitions(
        consumer, [settings.topics.decisions], settings.group_id, {}, shell.until_done
    )
    shell.log.info(
        "simulator_started",
        market=market.name,
        delay_mean_s=settings.delay_mean_s,
        partitions=[f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in assigned],
    )
    return SimulatorService(shell, sim, consumer)
