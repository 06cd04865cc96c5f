"""The write side of exactly-once on fakes: capture, wait for delivery, write, commit."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import pytest
import structlog

from dynpricing.engine.checkpoint import Capture, Checkpointer
from dynpricing.engine.state import EngineBookkeeping
from dynpricing.kafka_io import DeliveryFailedError, OutputProducer
from tests.unit.services.fakes import FakeProducer

WAIT_S = 10.0


class Loop:
    """What the engine's loop is to a checkpointer: state that changes, a producer, commits."""

    def __init__(self, tmp_path: Path) -> None:
        self.path = tmp_path / "bandit_stats.json"
        self.fake = FakeProducer(deliver_at_once=False)
        self.producer = OutputProducer(self.fake)  # type: ignore[arg-type]
        self.books = EngineBookkeeping.fresh(1, 10, 10, demand_topic="d")
        self.generation = itertools.count(1)
        self.committed: list[dict[str, int]] = []
        self.written: list[float] = []
        self.checkpointer = Checkpointer(
            path=self.path,
            producer=self.producer,
            capture=self.capture,
            commit=self.committed.append,
            on_written=lambda at, _took: self.written.append(at),
            log=structlog.get_logger("test"),
        )

    def capture(self) -> Capture:
        generation = next(self.generation)
        self.books.offsets = {"d:0": generation}
        return Capture(self.producer.sent, {"generation": generation}, self.books.capture(0.0))

    def price(self, n: int) -> None:
        self.producer.send_many("decisions", [b"d"] * n, [None] * n)

    def on_disk(self) -> int | None:
        if not self.path.exists():
            return None
        generation: int = json.loads(self.path.read_text())["generation"]
        return generation


def _eventually(condition: object) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.005)


def test_a_periodic_checkpoint_is_written_only_once_everything_before_it_is_delivered(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path)
    loop.price(3)
    assert loop.checkpointer.periodic()
    time.sleep(0.05)
    assert loop.on_disk() is None  # three decisions without a report: nothing written
    loop.producer.poll()
    loop.checkpointer.wait()
    assert loop.on_disk() == 1
    assert json.loads(loop.path.read_text())["engine"]["offsets"] == {"d:0": 1}


def test_the_offsets_written_are_committed_from_the_loop_at_its_next_checkpoint(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path)
    loop.checkpointer.periodic()
    loop.checkpointer.wait()
    assert loop.committed == []  # the writer thread never touches the consumer
    loop.checkpointer.periodic()
    assert loop.committed == [{"d:0": 1}]
    loop.checkpointer.wait()


def test_while_one_checkpoint_waits_for_delivery_the_next_ones_are_skipped(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.price(1)
    assert loop.checkpointer.periodic()
    assert not loop.checkpointer.periodic()  # the broker is away: no queue of captures
    loop.producer.poll()
    loop.checkpointer.wait()
    assert loop.on_disk() == 1
    assert loop.checkpointer.periodic()  # captures 2
    loop.checkpointer.wait()
    assert loop.on_disk() == 2


def test_a_failed_delivery_writes_nothing_and_stops_the_loop_at_its_next_checkpoint(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path)
    loop.price(2)
    loop.checkpointer.periodic()
    loop.fake.purge()  # both reports are failures
    _eventually(
        lambda: loop.checkpointer._writer is not None and not loop.checkpointer._writer.is_alive()
    )
    with pytest.raises(DeliveryFailedError):
        loop.checkpointer.periodic()
    assert loop.on_disk() is None


def test_the_final_checkpoint_takes_over_from_a_waiting_one_and_nothing_older_follows_it(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path)
    loop.price(2)
    loop.checkpointer.periodic()  # generation 1, waiting for two reports
    loop.price(1)
    assert loop.checkpointer.final(time.monotonic() + WAIT_S)  # flushes and writes 2
    assert loop.on_disk() == 2
    assert loop.written == [0.0]  # once: the abandoned writer (joined by final) wrote nothing


def test_without_delivery_the_final_checkpoint_writes_nothing_and_the_last_file_stands(
    tmp_path: Path,
) -> None:
    loop = Loop(tmp_path)
    loop.checkpointer.now()
    loop.price(1)
    loop.fake.flush = lambda _timeout=0.0: 1  # type: ignore[method-assign,assignment]
    assert not loop.checkpointer.final(time.monotonic() + 0.05)
    assert loop.on_disk() == 1


def test_a_start_up_checkpoint_is_written_and_committed_before_it_returns(tmp_path: Path) -> None:
    loop = Loop(tmp_path)
    loop.checkpointer.now()
    assert loop.on_disk() == 1
    assert loop.committed == [{"d:0": 1}]
