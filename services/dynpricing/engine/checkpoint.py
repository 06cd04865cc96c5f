"""The write side of exactly-once learning: capture, wait for delivery, write, commit.

A checkpoint is four steps, in this order:

1. **capture**, on the loop's thread between two batches: copies of the
   posterior, the pending decisions, the resolved ids, the consumed offsets,
   the demand already published ahead of them, the RNG state, the decision
   marks, and how many messages the producer had been handed (``sent``);
2. **wait for delivery** of every message handed over before the capture (the
   decisions and dead letters that the captured offsets cover);
3. **write** the state file atomically: from now on a crash resumes here;
4. **commit** the captured offsets to Kafka, from the loop's thread (the
   consumer is the loop's) at its next checkpoint, without waiting for the
   answer: only tools that show lag read them; the state file is the truth.

So a state file never lists a pending decision that is not on the decisions
topic, nor offsets past input whose output could still be lost. Periodic
checkpoints run steps 2 to 4 on a writer thread while the loop goes on
pricing; at most one is in flight, and while it waits (the broker away) later
ones are skipped instead of queued. The final checkpoint on shutdown abandons a
periodic one still waiting, flushes within the shutdown budget and writes only
if everything was delivered; otherwise the previous state file stands, and what
was not delivered is priced again after the restart (see ``recovery.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dynpricing.engine.memory import release_freed_memory
from dynpricing.engine.state import BooksCapture
from dynpricing.kafka_io import OutputProducer
from dynpricing.statefile import write_json_atomic

SKIPPED_LOG_INTERVAL_S = 30.0
ABANDON_WAIT_S = 0.5  # for a background checkpoint to notice it is abandoned


@dataclass
class Capture:
    """Step 1's result: everything a state file holds, and the producer's count at that time.

    Mutable only so the writer can let go of the copies (a million pending
    decisions) as soon as the document is written.
    """

    sent: int
    tables: dict[str, Any] | None
    books: BooksCapture

    def document(self) -> dict[str, Any]:
        if self.tables is None:
            raise RuntimeError("this capture was written already")
        return {**self.tables, "engine": self.books.to_document()}


Capturer = Callable[[], Capture]
Committer = Callable[[dict[str, int]], None]


class _Writer(threading.Thread):
    """Steps 2 to 4 of one periodic checkpoint; keeps the exception it raised, if any."""

    def __init__(self, job: Callable[[], None]) -> None:
        super().__init__(name="checkpoint-writer", daemon=True)
        self._job = job
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._job()
        except BaseException as exc:  # re-raised on the loop's thread by Checkpointer.periodic
            self.error = exc


class Checkpointer:
    """Runs checkpoints for the engine; it never blocks the loop on the broker."""

    def __init__(
        self,
        *,
        path: Path,
        producer: OutputProducer,
        capture: Capturer,
        commit: Committer,
        on_written: Callable[[float, float], None],
        log: Any,
    ) -> None:
        self._path = path
        self._producer = producer
        self._capture = capture
        self._commit = commit
        self._on_written = on_written  # (written_at, seconds it took): metrics
        self._log = log
        self._writer: _Writer | None = None
        self._abandon = threading.Event()
        self._write_lock = threading.Lock()
        self._skipped_said = 0.0
        self._uncommitted: dict[str, int] | None = None
        self.written = 0

    # ---- periodic ---------------------------------------------------------------------

    def periodic(self) -> bool:
        """Capture now and finish in the background; False if the last one still runs.

        Raises what the previous background checkpoint raised (a failed
        delivery): the loop must stop without writing anything newer.
        """
        self.commit_written()
        writer = self._writer
        if writer is not None:
            if writer.is_alive():
                self._say_skipped()
                return False
            self._writer = None
            if writer.error is not None:
                raise writer.error
        started = time.perf_counter()
        capture = self._capture()
        self._writer = _Writer(lambda: self._deliver_then_write(capture, started))
        self._writer.start()
        return True

    def _deliver_then_write(self, capture: Capture, started: float) -> None:
        if not self._producer.wait_for_reports(capture.sent, self._abandon):
            return  # shutting down: the final checkpoint takes over
        with self._write_lock:
            if self._abandon.is_set():
                return
            self._write(capture, started)
            self._uncommitted = capture.books.offsets

    def commit_written(self) -> None:
        """Step 4 for the last state file written, on the loop's thread (it owns the consumer)."""
        offsets, self._uncommitted = self._uncommitted, None
        if offsets is not None:
            self._commit(offsets)

    def _say_skipped(self) -> None:
        now = time.monotonic()
        if now - self._skipped_said >= SKIPPED_LOG_INTERVAL_S:
            self._skipped_said = now
            self._log.warning("snapshot_waiting_for_delivery", undelivered=self._producer.in_flight)

    def wait(self) -> None:
        """Until the background checkpoint is over; raise what it raised (tests, start-up)."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()
            if writer.error is not None:
                raise writer.error

    # ---- now, on this thread ----------------------------------------------------------

    def now(self) -> None:
        """A checkpoint written before it returns (start-up), however long delivery takes."""
        self.wait()
        started = time.perf_counter()
        capture = self._capture()
        self._producer.flush()
        self._producer.wait_for_reports(capture.sent)
        with self._write_lock:
            self._write(capture, started)
        self._commit(capture.books.offsets)

    def final(self, deadline: float) -> bool:
        """The shutdown checkpoint, over by ``deadline`` (monotonic); True if it was written.

        A periodic checkpoint still waiting for delivery is abandoned (one
        writing its file is let finish: a local write). If the producer cannot
        deliver everything in time, nothing is written: the last state file
        stands and covers no undelivered output.
        """
        self._abandon.set()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join(ABANDON_WAIT_S)  # it sees the flag within milliseconds, or is writing
            if not writer.is_alive() and writer.error is not None:
                raise writer.error
        with self._write_lock:  # a write in progress finishes first
            pass
        started = time.perf_counter()
        capture = self._capture()
        undelivered = self._producer.flush(max(0.0, deadline - time.monotonic()))
        self._producer.raise_if_failed()
        if undelivered or self._producer.reported < capture.sent:
            self._log.warning(
                "state_not_written",
                undelivered=undelivered,
                note="the last state file stands; what was not delivered is redone after a restart",
            )
            return False
        with self._write_lock:
            self._write(capture, started)
        self._log.info("state_written", path=str(self._path), offsets=capture.books.offsets)
        return True

    # ---- steps 3 and 4 ----------------------------------------------------------------

    def _write(self, capture: Capture, started: float) -> None:
        """Write durably, then let go of the copies and give their memory back."""
        written_at = capture.books.written_at
        write_json_atomic(self._path, capture.document())
        capture.tables = None
        release_freed_memory()
        self.written += 1
        self._on_written(written_at, time.perf_counter() - started)
