"""``dynpricing decider``: a stateless pricing replica, one of a consumer group on demand.

Any number of deciders share ``demand_events`` through one consumer group
(cooperative-sticky assignment; static membership when ``GROUP_INSTANCE_ID``
is set). Each prices exactly as the engine does (the same
:class:`~dynpricing.engine.pricing.Pricer`: policy, propensity, deterministic
decision ids) from a read-only copy of the model that the learner publishes
(:mod:`dynpricing.decider.model`), and keeps no state of its own: nothing to
restore, so a replica starts, stops and moves in seconds.

Delivery is at least once, with the same decision ids: a decider commits a
partition's offset only once the decisions it covers are delivered (the
producer's reports, :class:`~dynpricing.service.DeliveredCommits`), and on a
graceful hand-over (a rebalance, SIGTERM) it delivers and commits what it has
priced first. After a crash the partition's next owner prices again what
came after the last commit: the same decision ids, priced with the model of
that moment (so possibly at another price); the learner learns each id once
(docs/events.md, "Replays").
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zlib
from collections.abc import Sequence

import numpy as np
from confluent_kafka import Consumer, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Gauge

from dynpricing.core.bandit import Bandit
from dynpricing.decider.model import ModelCopy, ModelFollower, ModelMetrics
from dynpricing.engine import recovery, views
from dynpricing.engine.contexts import ContextRows
from dynpricing.engine.metrics import PricingMetrics
from dynpricing.engine.pricing import Priced, Pricer
from dynpricing.kafka_io import OutputProducer, consume_batch, wall_clock
from dynpricing.service import DeadLetters, DeliveredCommits, Running, Shell, run_service
from dynpricing.settings import DeciderSettings

WATERMARK_TIMEOUT_S = 5.0
GAUGE_INTERVAL_S = 5.0
SUMMARY_INTERVAL_S = 30.0
COMMIT_RESERVE_S = 2.0  # of the shutdown budget, kept for the last commit and closing
HANDOVER_FLUSH_S = 5.0  # at most, on a rebalance, to deliver before committing
EXIT_DELIVERY_FAILED = 3


class DeciderMetrics(PricingMetrics, ModelMetrics):
    """Every decider metric; names follow docs/interfaces.md."""

    def __init__(self, registry: CollectorRegistry) -> None:
        PricingMetrics.__init__(self, registry)
        ModelMetrics.__init__(self, registry)
        self.assigned = Gauge(
            "dynpricing_assigned_partitions",
            "Demand partitions this decider prices now",
            registry=registry,
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, the shell and the decider; then run."""
    del argv  # configured from the environment only
    settings = DeciderSettings()
    t = settings.topics
    topics = [t.demand, t.decisions, t.model, t.dead_letters]
    return run_service("decider", settings, lambda shell: start(shell, settings), topics=topics)


def instance_of(settings: DeciderSettings) -> str:
    """What tells this decider from the others: its static member id, else host and pid."""
    return settings.group_instance_id or f"{socket.gethostname()}:{os.getpid()}"


def random_stream(settings: DeciderSettings) -> np.random.Generator:
    """Each decider's own stream: ``SEED`` mixed with its instance (fresh entropy without)."""
    if settings.seed is None:
        return np.random.default_rng()
    instance = zlib.crc32(instance_of(settings).encode())
    return np.random.default_rng([settings.seed, instance])


def start(shell: Shell, settings: DeciderSettings) -> DeciderService:
    """Read the model to its end, then join the demand group: ready from here on."""
    metrics = DeciderMetrics(shell.registry)
    producer = shell.producer("pricing-decider")
    bandit = Bandit(recovery.bandit_config(settings))
    rows = ContextRows(bandit, settings.max_contexts)
    pricer = Pricer(
        settings=settings,
        bandit=bandit,
        rows=rows,
        producer=producer,
        dead_letter=DeadLetters(shell, producer, metrics.dead_letters).send,
        metrics=metrics,
        clock=wall_clock,
        rng=random_stream(settings),
    )
    pricer.context_versions = []
    copy = ModelCopy(bandit, pricer, threading.Lock())
    # assigns itself the model's partitions: joins no group, commits nothing
    reader = shell.consumer(settings.group_id, "decider-model")
    follower = ModelFollower(reader, settings.topics.model, copy, metrics, shell.log)
    started = time.monotonic()
    read = follower.catch_up(shell.until_done, shell.stop.is_set, shell.usable)
    shell.log.info(
        "model_read",
        contexts=len(copy.contexts),
        applied=read,
        took_s=round(time.monotonic() - started, 3),
    )
    service = DeciderService(shell, settings, pricer, copy, follower, metrics, producer)
    service.join_group()
    shell.views["/state"] = service.state_view
    return service


class DeciderService(Running):
    """The loop: follow the model, price a batch, commit what is delivered; hand over cleanly."""

    def __init__(  # noqa: PLR0917 - wired once, by start()
        self,
        shell: Shell,
        settings: DeciderSettings,
        pricer: Pricer,
        copy: ModelCopy,
        follower: ModelFollower,
        metrics: DeciderMetrics,
        producer: OutputProducer,
    ) -> None:
        self.shell = shell
        self.settings = settings
        self.pricer = pricer
        self.copy = copy
        self.follower = follower
        self.metrics = metrics
        self.producer = producer
        self.consumer: Consumer | None = None
        self.commits: DeliveredCommits | None = None
        self.positions: dict[tuple[str, int], int] = {}  # next offset per owned partition
        self.owned: set[tuple[str, int]] = set()
        self.stopping = False

    # ---- the group --------------------------------------------------------------------

    def join_group(self) -> None:
        settings = self.settings
        extra: dict[str, str | int | float | bool] = {
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": int(settings.session_timeout_s * 1000),
            "heartbeat.interval.ms": max(500, int(settings.session_timeout_s * 1000 / 4)),
        }
        if settings.group_instance_id:
            extra["group.instance.id"] = settings.group_instance_id
        consumer = self.shell.consumer(settings.group_id, "pricing-decider", **extra)
        self.consumer = consumer
        self.commits = DeliveredCommits(self.shell, consumer, self.producer)
        self.shell.commit_note = "the decisions after the committed offsets are priced again"
        consumer.subscribe(
            [settings.topics.demand],
            on_assign=self._assigned,
            on_revoke=self._revoked,
            on_lost=self._lost,
        )

    def _assigned(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        del consumer
        self.owned.update((tp.topic, tp.partition) for tp in partitions)
        self.metrics.assigned.set(len(self.owned))
        if partitions:
            self.shell.log.info(
                "partitions_assigned",
                partitions=[tp.partition for tp in partitions],
                owned=sorted(p for _, p in self.owned),
            )

    def _revoked(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """A graceful hand-over: deliver what was priced, commit it, then let go."""
        handed = self._drop(partitions)
        if self.stopping or not partitions:
            return
        self.shell.log.info("partitions_revoked", partitions=[tp.partition for tp in partitions])
        if not handed:
            return
        left = self.producer.flush(HANDOVER_FLUSH_S)
        if left:
            self.shell.log.warning(
                "handover_not_delivered",
                undelivered=left,
                note="the next owner prices again what came after the last commit",
            )
            return
        self.producer.raise_if_failed()
        try:
            consumer.commit(offsets=handed, asynchronous=False)
        except KafkaException as exc:
            self.shell.log.warning(
                "offset_commit_failed", error=str(exc), note=self.shell.commit_note
            )
            return
        self.shell.log.info("handed_over", offsets={tp.partition: tp.offset for tp in handed})

    def _lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Taken away without a hand-over (this member was too slow): nothing may be committed."""
        del consumer
        self._drop(partitions)
        self.shell.log.warning("partitions_lost", partitions=[tp.partition for tp in partitions])

    def _drop(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """Forget partitions; the positions reached in them (what a hand-over commits)."""
        handed = []
        for tp in partitions:
            where = (tp.topic, tp.partition)
            self.owned.discard(where)
            position = self.positions.pop(where, None)
            if position is not None:
                handed.append(TopicPartition(tp.topic, tp.partition, position))
        if self.commits is not None:
            self.commits.forget(partitions)
        self.metrics.assigned.set(len(self.owned))
        return handed

    # ---- the loop ---------------------------------------------------------------------

    def run(self) -> int:
        shell, settings = self.shell, self.settings
        consumer = self.consumer
        commits = self.commits
        assert consumer is not None, "join_group runs first"
        assert commits is not None, "join_group runs first"
        now = time.monotonic()
        next_commit = now + settings.commit_interval_s
        next_gauges = now + GAUGE_INTERVAL_S
        next_summary = now + SUMMARY_INTERVAL_S
        while not shell.stop.is_set():
            self.follower.follow(shell.usable)
            self.process(consume_batch(consumer, settings.batch_size, settings.poll_timeout_s))
            shell.tick(consumer)
            now = time.monotonic()
            if now >= next_commit:
                commits.turn(self._positions())
                next_commit = now + settings.commit_interval_s
            if now >= next_gauges:
                self._refresh_gauges(consumer)
                next_gauges = now + GAUGE_INTERVAL_S
            if now >= next_summary:
                shell.log.info(
                    "pricing_summary", contexts=views.summary(self.copy.bandit, self.copy.lock)
                )
                next_summary = now + SUMMARY_INTERVAL_S
        return self._shutdown(consumer)

    def process(self, messages: list[Message]) -> None:
        """Price a batch; the positions it reaches become committable once delivered."""
        if not messages:
            self.producer.poll(0)
            return
        self.metrics.batch_size.observe(len(messages))
        usable, parse = self.shell.usable, self.pricer.parse
        reached: dict[tuple[str, int], int] = {}
        priced: list[Priced] = []
        for msg in messages:
            if msg.error() is not None and not usable(msg):
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            if topic is None or partition is None or offset is None:
                raise ValueError("message without topic, partition or offset")
            reached[(topic, partition)] = offset + 1
            parsed = parse(msg)
            if parsed is not None:
                priced.append(parsed)
        if priced:
            with self.copy.lock:
                self.pricer.price(priced)
        owned = self.owned
        self.positions.update((where, o) for where, o in reached.items() if where in owned)
        self.producer.poll(0)

    def _positions(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self.positions.items()]

    def _refresh_gauges(self, consumer: Consumer) -> None:
        self.follower.refresh_age(wall_clock())
        for (topic, partition), position in list(self.positions.items()):
            try:
                _, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=WATERMARK_TIMEOUT_S, cached=True
                )
            except KafkaException:
                continue
            if high >= 0:
                self.metrics.consumer_lag.labels(topic, str(partition)).set(max(0, high - position))

    def state_view(self) -> dict[str, object]:
        """``/state``: the model copy (counts as the learner last published them)."""
        newest = self.copy.newest
        return views.state_document(
            self.copy.bandit,
            self.copy.lock,
            model_contexts=len(self.copy.contexts),
            model_age_seconds=None if newest is None else max(0.0, wall_clock() - newest),
            assigned_partitions=sorted(p for _, p in self.owned),
        )

    # ---- shutdown ---------------------------------------------------------------------

    def _shutdown(self, consumer: Consumer) -> int:
        """Within SHUTDOWN_TIMEOUT_S: deliver what was priced, commit it, leave the group."""
        shell = self.shell
        shell.log.info("shutting_down", signal=shell.stop.signal_name)
        end = shell.shutdown_deadline
        self.stopping = True  # the revocation on close commits nothing more
        undelivered = self.producer.flush(max(0.0, end - COMMIT_RESERVE_S - time.monotonic()))
        self.producer.raise_if_failed()
        if undelivered:
            shell.log.warning(
                "decisions_not_delivered",
                undelivered=undelivered,
                note="the next owner prices their demand again",
            )
            self.producer.purge()
            return EXIT_DELIVERY_FAILED
        if not shell.commit_before(consumer, self._positions(), end - COMMIT_RESERVE_S / 2):
            shell.log.warning("offsets_not_committed", note=shell.commit_note)
        shell.log.info("decider_stopped")
        return 0
