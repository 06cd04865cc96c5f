"""``dynpricing engine``: the one place that wires the pricing engine together.

The service shell (``dynpricing.service``) runs it: the state file is read
before the broker is looked for; once the broker answers, the engine recovers
what was published after that state (``recovery.py``), checkpoints as it goes
(``checkpoint.py``) and prices in ``loop.py``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from dynpricing.core.errors import PricingError, SnapshotError
from dynpricing.engine import recovery
from dynpricing.engine.checkpoint import Checkpointer
from dynpricing.engine.loop import PricingEngine
from dynpricing.engine.memory import calm_garbage_collector, release_freed_memory
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.kafka_io import OutputProducer, consume_batch, make_consumer, wall_clock
from dynpricing.service import DeadLetters, Running, ServiceExit, Shell, once, run_service
from dynpricing.settings import EngineSettings

EXIT_BAD_STATE = 2
EXIT_DELIVERY_FAILED = 3
PARTITION_CHECK_INTERVAL_S = 60.0
COMMIT_RESERVE_S = 2.0  # of the shutdown budget, kept for the last commit and closing
OFFSETS_NOTE = (
    "the state file holds the offsets and the engine resumes from it;"
    " only Kafka's view of the lag is behind"
)

# re-exported for the benchmarks, which restore state files the way the engine does
bandit_config = recovery.bandit_config
restore = recovery.restore


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, the shell and the engine; then run."""
    del argv  # configured from the environment only
    settings = EngineSettings()
    starter = EngineStarter(settings)
    return run_service("engine", settings, starter.start, prepare=starter.restore)


class EngineStarter:
    """The engine's start: its state file first, then (broker up) recovery and clients."""

    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.restored: recovery.Restored | None = None

    def restore(self, shell: Shell) -> None:
        """Before Kafka: a state file this engine cannot use ends it at once (exit 2)."""
        del shell  # a file, no client
        try:
            self.restored = recovery.restore(self.settings)
        except (SnapshotError, PricingError) as exc:
            raise ServiceExit(
                EXIT_BAD_STATE, "state_refused", path=str(self.settings.state_path), error=str(exc)
            ) from exc

    def start(self, shell: Shell) -> EngineService:
        settings, restored = self.settings, self.restored
        assert restored is not None, "restore runs first"
        metrics = EngineMetrics(shell.registry)
        consumer = shell.consumer(settings.group_id, "pricing-engine")
        producer = shell.producer("pricing-engine")
        dead_letters = DeadLetters(shell, producer, metrics.dead_letters)
        engine = PricingEngine(
            settings=settings,
            bandit=restored.bandit,
            books=restored.books,
            consumer=consumer,
            producer=producer,
            dead_letter=dead_letters.send,
            usable=shell.usable,
            metrics=metrics,
            clock=wall_clock,
        )
        shell.commit_note = OFFSETS_NOTE
        recovered = self._recover(shell, engine, restored.has_marks)
        checkpointer = Checkpointer(
            path=settings.state_path,
            producer=producer,
            capture=engine.capture,
            commit=lambda offsets: shell.commit(consumer, engine.committable(offsets)),
            on_written=engine.snapshot_written,
            log=shell.log,
        )
        if not restored.has_marks:
            # Before consuming anything: from now on a crash always finds marks
            # saying where decisions published after the state file begin.
            checkpointer.now()
        calm_garbage_collector()
        release_freed_memory()
        topics = (settings.topics.demand, settings.topics.outcomes)
        assigned = recovery.resume_partitions(
            consumer, engine.books, topics, settings.group_id, shell.until_done
        )
        shell.views["/state"] = engine.state_view
        shell.log.info(
            "engine_started",
            restored=restored.restored,
            outcomes=engine.bandit.total_outcomes,
            pending=len(engine.books.pending),
            recovered_decisions=recovered.decisions,
            recovered_pending=recovered.pending,
            already_published=sum(len(v) for v in engine.books.already_published.values()),
            policy=engine.bandit.policy_name,
            partitions=assigned,
        )
        return EngineService(shell, engine, checkpointer, producer)

    def _recover(self, shell: Shell, engine: PricingEngine, has_marks: bool) -> recovery.ReEntered:
        """Steps 2-4 of recovery, with a reader of its own (closed before the loop starts)."""
        settings = self.settings
        started = time.monotonic()
        marks = engine.books.decision_marks if has_marks else None
        if marks is not None:
            shell.log.info("recovery_started", marks=marks)
        group = f"{settings.group_id}-recovery"
        reader = make_consumer(settings.kafka, group, "engine-recovery", shell.link.callbacks())
        try:
            published = recovery.find_published(
                reader,
                settings.topics.decisions,
                marks,
                shell.until_done,
                lambda msg: shell.usable(msg, group),
                shell.stop.is_set,
            )
        finally:
            reader.close()
        re_entered = recovery.re_enter(engine.books, engine.locate, published.values)
        engine.decision_baseline = published.ends
        if marks is not None:
            shell.log.info(
                "recovery_done",
                decisions=re_entered.decisions,
                pending=re_entered.pending,
                already_published=re_entered.ahead,
                unusable=re_entered.unusable,
                took_s=round(time.monotonic() - started, 3),
            )
        return re_entered


class EngineService(Running):
    """The loop: consume, price and learn, checkpoint now and then; a bounded shutdown."""

    def __init__(
        self,
        shell: Shell,
        engine: PricingEngine,
        checkpointer: Checkpointer,
        producer: OutputProducer,
    ) -> None:
        self.shell = shell
        self.engine = engine
        self.checkpointer = checkpointer
        self.producer = producer
        self.settings = engine.settings

    def run(self) -> int:
        shell, engine, settings = self.shell, self.engine, self.settings
        consumer = engine.consumer
        now = time.monotonic()
        next_snapshot = now + settings.snapshot_interval_s
        next_summary = now + settings.summary_interval_s
        next_partition_check = now + PARTITION_CHECK_INTERVAL_S
        while not shell.stop.is_set():
            engine.process(consume_batch(consumer, settings.batch_size, settings.poll_timeout_s))
            shell.tick(consumer)
            now = time.monotonic()
            if now >= next_snapshot:
                self.checkpointer.periodic()  # delivery, write and commit go on in the background
                engine.refresh_gauges()
                next_snapshot = now + settings.snapshot_interval_s
            if now >= next_partition_check:  # partitions are rarely added: look now and then
                shell.at_once(self._look_for_partitions)
                next_partition_check = now + PARTITION_CHECK_INTERVAL_S
            if now >= next_summary:
                shell.log.info(
                    "learning_summary",
                    outcomes=engine.bandit.total_outcomes,
                    pending=len(engine.books.pending),
                    contexts=engine.summary(),
                )
                next_summary = now + settings.summary_interval_s
        return self._shutdown()

    def _look_for_partitions(self) -> None:
        topics = (self.settings.topics.demand, self.settings.topics.outcomes)
        engine = self.engine
        added = recovery.resume_partitions(
            engine.consumer, engine.books, topics, self.settings.group_id, once
        )
        if added:
            self.shell.log.info("partitions_added", partitions=added)

    def _shutdown(self) -> int:
        """Within SHUTDOWN_TIMEOUT_S: the final checkpoint, then a last commit (waited for
        briefly; the state file holds the offsets either way)."""
        shell, engine = self.shell, self.engine
        shell.log.info("shutting_down", signal=shell.stop.signal_name)
        end = shell.shutdown_deadline
        if not self.checkpointer.final(end - COMMIT_RESERVE_S):
            self.producer.purge()
            return EXIT_DELIVERY_FAILED
        offsets = engine.committable(engine.books.offsets)
        if not shell.commit_before(engine.consumer, offsets, end - COMMIT_RESERVE_S / 2):
            shell.log.warning("offsets_left_in_state_file", note=OFFSETS_NOTE)
        shell.log.info("engine_stopped", outcomes=engine.bandit.total_outcomes)
        return 0
