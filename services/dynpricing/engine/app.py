"""``dynpricing engine``: the one place that wires the pricing engine together."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from prometheus_client import CollectorRegistry

from dynpricing import events
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PricingError, SnapshotError
from dynpricing.engine.join import Pending
from dynpricing.engine.loop import METADATA_DEADLINE_S, WATERMARK_TIMEOUT_S, PricingEngine
from dynpricing.engine.memory import calm_garbage_collector, release_freed_memory
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.engine.state import EngineBookkeeping, partition_key, split_partition_key
from dynpricing.kafka_io import (
    DeliveryFailedError,
    StopFlag,
    consume_batch,
    ensure_topics,
    make_consumer,
    make_producer,
    origin_of,
    raise_group_refusal,
    refuse_if_denied,
    retrying,
    wait_for_topics,
    wall_clock,
)
from dynpricing.observability import Health, HttpServer, configure_logging
from dynpricing.settings import EngineSettings
from dynpricing.statefile import read_json

RECOVERY_DEADLINE_S = 60.0
PARTITION_CHECK_INTERVAL_S = 60.0
RECOVERY_BATCH = 5000
EXIT_BAD_STATE = 2
EXIT_DELIVERY_FAILED = 3


def bandit_config(settings: EngineSettings) -> BanditConfig:
    extra: dict[str, Any] = {}
    if settings.policy:
        extra["policy"] = settings.policy
    return BanditConfig(
        prices=tuple(settings.prices),
        prior_alpha=settings.prior_alpha,
        prior_beta=settings.prior_beta,
        objective=settings.objective,
        half_life=settings.half_life_s,
        locations=tuple(settings.locations),
        **extra,
    )


def _fresh_books(settings: EngineSettings) -> EngineBookkeeping:
    return EngineBookkeeping.fresh(settings.seed, settings.max_pending, settings.resolved_memory)


def restore(settings: EngineSettings) -> tuple[Bandit, EngineBookkeeping, bool]:
    """The bandit and bookkeeping from ``bandit_stats.json``, or fresh ones."""
    config = bandit_config(settings)
    doc = read_json(settings.state_path)
    if doc is None:
        return Bandit(config), _fresh_books(settings), False
    bandit, extra = Bandit.from_document(doc, config)
    if not extra:
        books = _fresh_books(settings)
    else:
        try:
            books = EngineBookkeeping.from_document(
                dict(extra), settings.max_pending, settings.resolved_memory
            )
        except (KeyError, TypeError, ValueError) as exc:
            path = settings.state_path
            raise SnapshotError(f"engine section of {path} is invalid: {exc}") from exc
    return bandit, books, True


def _read_until_end(
    consumer: Consumer, ends: dict[tuple[str, int], int], group: str
) -> list[bytes | None]:
    values: list[bytes | None] = []
    positions = dict.fromkeys(ends, -1)
    deadline = time.monotonic() + RECOVERY_DEADLINE_S
    while any(positions[tp] + 1 < end for tp, end in ends.items()):
        if time.monotonic() > deadline:
            raise RuntimeError("reading published decisions for recovery took too long")
        for msg in consumer.consume(num_messages=RECOVERY_BATCH, timeout=0.5):
            err = msg.error()
            if err is not None:
                refuse_if_denied(err, "Read", msg.topic(), group)
                raise KafkaException(err)
            where = origin_of(msg)
            positions[(where.topic, where.partition)] = where.offset
            values.append(msg.value())
    return values


def recover_published(engine: PricingEngine, settings: EngineSettings) -> int:
    """Re-enter decisions published after the snapshot into the pending table.

    Their demand events will be consumed again; the engine then skips them
    instead of pricing and publishing them a second time.
    """
    marks = engine.books.decision_marks
    if not marks:
        return 0
    consumer = engine.consumer
    ends: dict[tuple[str, int], int] = {}
    assignment = []
    for key, start in marks.items():
        topic, partition = split_partition_key(key)
        tp = TopicPartition(topic, partition)
        _, high = retrying(
            lambda tp=tp: consumer.get_watermark_offsets(  # type: ignore[misc]
                tp, timeout=WATERMARK_TIMEOUT_S
            ),
            METADATA_DEADLINE_S,
        )
        if high > start:
            ends[(topic, partition)] = high
            assignment.append(TopicPartition(topic, partition, start))
    if not assignment:
        return 0
    group = f"{settings.group_id}-recovery"
    reader = make_consumer(settings.kafka, group, "engine-recovery")
    try:
        reader.assign(assignment)
        values = _read_until_end(reader, ends, group)
    finally:
        reader.close()
    return sum(_re_enter(engine, value) for value in values)


def _re_enter(engine: PricingEngine, value: bytes | None) -> int:
    try:
        decision = events.parse_decision(value)
        context = engine.bandit.context_index(decision.location, decision.demand_level)
        arm = engine.bandit.arm_index(decision.price_multiplier)
    except (events.InvalidEvent, PricingError):
        return 0
    if not engine.books.join.recovered(
        decision.decision_id, Pending(context, arm, decision.timestamp)
    ):
        return 0
    engine.already_published.add(decision.decision_id)
    return 1


def _start_offset(
    engine: PricingEngine, committed: dict[tuple[str, int], int], topic: str, partition: int
) -> int:
    """The snapshot's offset, else Kafka's committed one, else the beginning."""
    offset = engine.books.offsets.get(partition_key(topic, partition))
    if offset is not None:
        return offset
    return committed.get((topic, partition), OFFSET_BEGINNING)


def _committed(
    consumer: Consumer, partitions: list[TopicPartition], group: str
) -> dict[tuple[str, int], int]:
    """Kafka's committed offsets; retried while the group coordinator is still loading."""
    found = retrying(
        lambda: consumer.committed(partitions, timeout=WATERMARK_TIMEOUT_S),
        METADATA_DEADLINE_S,
        group=group,
        between=lambda: raise_group_refusal(consumer, group),
    )
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def assign_partitions(engine: PricingEngine, settings: EngineSettings) -> list[str]:
    """Assign every partition of the input topics not yet assigned; returns what was added.

    The engine is a single instance that keeps its own offsets, so it assigns
    partitions itself instead of joining a consumer group's rebalances: a
    restart after SIGKILL resumes at once instead of waiting for the dead
    member's session to time out. The group id is still used for commits, so lag
    stays visible to Kafka tools.
    """
    consumer = engine.consumer
    wanted = []
    for topic in (settings.topics.demand, settings.topics.outcomes):
        metadata = consumer.list_topics(topic, timeout=WATERMARK_TIMEOUT_S)
        wanted += [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    current = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    new = [tp for tp in wanted if (tp.topic, tp.partition) not in current]
    if not new:
        return []
    unknown = [
        tp for tp in new if partition_key(tp.topic, tp.partition) not in engine.books.offsets
    ]
    committed = _committed(consumer, unknown, settings.group_id) if unknown else {}
    for tp in new:
        tp.offset = _start_offset(engine, committed, tp.topic, tp.partition)
    consumer.incremental_assign(new)
    return [f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in new]


def run(engine: PricingEngine, settings: EngineSettings, stop: StopFlag, health: Health) -> None:
    """Consume and price until stopped; snapshot periodically and once more at the end."""
    log = engine.log
    next_snapshot = time.monotonic() + settings.snapshot_interval_s
    next_summary = time.monotonic() + settings.summary_interval_s
    next_partition_check = time.monotonic() + PARTITION_CHECK_INTERVAL_S
    while not stop.is_set():
        engine.process(consume_batch(engine.consumer, settings.batch_size, settings.poll_timeout_s))
        health.tick()
        now = time.monotonic()
        if now >= next_snapshot:
            engine.snapshot(wait=False)  # durable write and commit finish in the background
            engine.refresh_gauges()
            next_snapshot = now + settings.snapshot_interval_s
        if now >= next_partition_check:  # partitions are rarely added: look now and then
            added = assign_partitions(engine, settings)
            engine.refresh_decision_baseline()
            if added:
                log.info("partitions_added", partitions=added)
            next_partition_check = now + PARTITION_CHECK_INTERVAL_S
        if now >= next_summary:
            log.info(
                "learning_summary",
                outcomes=engine.bandit.total_outcomes,
                pending=len(engine.books.pending),
                contexts=engine.summary(),
            )
            next_summary = now + settings.summary_interval_s
    log.info("shutting_down", signal=stop.signal_name)
    engine.snapshot(flush_timeout_s=settings.shutdown_timeout_s)


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, logging, metrics, Kafka clients and the loop; then run."""
    del argv  # configured from the environment only
    settings = EngineSettings()
    configure_logging(settings.log_level, settings.log_format)
    log = structlog.get_logger("engine")
    stop = StopFlag()
    stop.install()
    try:
        bandit, books, restored = restore(settings)
    except (SnapshotError, PricingError) as exc:
        log.error("state_refused", path=str(settings.state_path), error=str(exc))
        return EXIT_BAD_STATE
    if settings.create_topics:
        ensure_topics(settings.kafka, settings.topics.all())
    elif not wait_for_topics(settings.kafka, settings.topics.all(), stop, log):
        return 0
    registry = CollectorRegistry()
    metrics = EngineMetrics(registry)
    health = Health()
    consumer = make_consumer(settings.kafka, settings.group_id, "pricing-engine")
    producer = make_producer(settings.kafka, "pricing-engine")
    engine = PricingEngine(
        settings=settings,
        bandit=bandit,
        books=books,
        consumer=consumer,
        producer=producer,
        metrics=metrics,
        clock=wall_clock,
    )
    recovered = recover_published(engine, settings)
    engine.refresh_decision_baseline()
    if not restored:
        # A first snapshot before consuming anything: from now on a crash always
        # finds marks saying where decisions published after it begin.
        engine.snapshot()
    calm_garbage_collector()
    release_freed_memory()
    log.info(
        "engine_started",
        restored=restored,
        outcomes=bandit.total_outcomes,
        pending=len(books.pending),
        recovered_decisions=recovered,
        policy=bandit.policy_name,
    )
    http = HttpServer(
        settings.http_host, settings.http_port, registry, health, {"/state": engine.state_view}
    )
    http.start()
    log.info("partitions_assigned", partitions=assign_partitions(engine, settings))
    health.set_ready(True)
    try:
        run(engine, settings, stop, health)
    except DeliveryFailedError as exc:
        log.error("delivery_failed", error=str(exc))
        return EXIT_DELIVERY_FAILED
    finally:
        health.set_ready(False)
        consumer.close()
        http.stop()
    log.info("engine_stopped", outcomes=engine.bandit.total_outcomes)
    return 0
