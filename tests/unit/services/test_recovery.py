"""The read side of exactly-once, on an in-memory broker: restore, find, re-enter, resume.

The last test drives the real engine, checkpointer and recovery through random
sequences of batches, deliveries, checkpoints and crashes (a crash loses what was
produced but not delivered, and abandons a checkpoint in flight) and checks the
property the issue asks for: no demand event is ever priced twice, and no
answered decision is ever learnt twice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from dynpricing import events
from dynpricing.engine import recovery
from dynpricing.engine.checkpoint import Checkpointer
from dynpricing.engine.join import Pending
from dynpricing.engine.loop import PricingEngine
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.engine.state import EngineBookkeeping, partition_key
from dynpricing.kafka_io import OutputProducer
from dynpricing.settings import EngineSettings, TopicSettings
from dynpricing.statefile import read_json, write_json_atomic
from tests.unit.services.fakes import BrokerProducer, FakeTopics, TopicReader

TOPICS = TopicSettings(demand="d", decisions="x", outcomes="o", dead_letters="dl")
DEMAND_PARTITIONS = 2
NOW = 1_800_000_000.0


def _settings(tmp_path: Path) -> EngineSettings:
    return EngineSettings(state_path=tmp_path / "bandit_stats.json", seed=3, topics=TOPICS)


def _decision(decision_id: str, price: float = 1.5, **changes: object) -> bytes:
    decision = events.Decision(
        decision_id, "e", NOW, NOW, "Airport", "high", price, None, 0.5, "ts", "ts:0"
    )
    body = orjson.loads(events.encode_decision(decision)) | changes
    return orjson.dumps(body)


def _locate(location: str, level: str, price: float) -> tuple[int, int]:
    if price not in (1.0, 1.5):
        raise events.InvalidEvent("price_not_on_grid", str(price))
    return (0 if location == "Airport" else 1), (0 if price == 1.0 else 1)


def _books(**offsets: int) -> EngineBookkeeping:
    books = EngineBookkeeping.fresh(1, 100, 100, demand_topic="d")
    books.offsets = {partition_key("d", int(p[1:])): o for p, o in offsets.items()}
    return books


# ---- restore ---------------------------------------------------------------------------


def test_without_a_state_file_the_engine_starts_fresh_and_without_marks(tmp_path: Path) -> None:
    restored = recovery.restore(_settings(tmp_path))
    assert (restored.restored, restored.has_marks) == (False, False)
    assert restored.bandit.total_outcomes == 0


def test_a_version_1_state_file_is_read_as_having_nothing_published_ahead(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    books = _books(p0=5)
    books.decision_marks = {partition_key("x", 0): 9}
    doc = recovery.restore(settings).bandit.to_document(extra=books.to_document(1.0))
    doc["engine"]["version"] = 1
    del doc["engine"]["already_published"]
    write_json_atomic(settings.state_path, doc)
    restored = recovery.restore(settings)
    assert restored.has_marks
    assert restored.books.offsets == {"d:0": 5}
    assert restored.books.decision_marks == {"x:0": 9}
    assert restored.books.already_published == {}


def test_the_positions_published_ahead_round_trip_through_the_state_file(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    books = _books(p0=5)
    books.already_published = {0: {5, 7}, 1: {2}}
    doc = recovery.restore(settings).bandit.to_document(extra=books.to_document(1.0))
    write_json_atomic(settings.state_path, doc)
    assert read_json(settings.state_path)["engine"]["already_published"] == {  # type: ignore[index]
        "d:0": [5, 7],
        "d:1": [2],
    }
    assert recovery.restore(settings).books.already_published == {0: {5, 7}, 1: {2}}


# ---- finding what was published after the snapshot ------------------------------------


def _found(topics: FakeTopics, marks: dict[str, int] | None) -> recovery.Published:
    return recovery.find_published(
        TopicReader(topics),  # type: ignore[arg-type]
        "x",
        marks,
        lambda call, _what: call(),
        lambda _msg: True,
        lambda: False,
    )


def test_decisions_are_read_from_each_partitions_mark_to_its_end() -> None:
    topics = FakeTopics()
    topics.create("x", 3)
    for partition, count in ((0, 5), (1, 3), (2, 4)):
        for i in range(count):
            topics.append("x", partition, f"{partition}:{i}".encode())
    found = _found(topics, {"x:0": 3, "x:1": 3})  # partition 2 has no mark: new since
    assert sorted(found.values) == [b"0:3", b"0:4", b"2:0", b"2:1", b"2:2", b"2:3"]  # type: ignore[type-var]
    assert found.ends == {"x:0": 5, "x:1": 3, "x:2": 4}


def test_without_marks_nothing_is_read_but_the_ends_are_known() -> None:
    topics = FakeTopics()
    topics.create("x", 1)
    topics.append("x", 0, b"old")
    found = _found(topics, None)
    assert (found.values, found.ends) == ([], {"x:0": 1})


# ---- re-entering them -----------------------------------------------------------------


def test_a_decision_found_after_the_marks_is_pending_again_and_its_demand_skipped() -> None:
    books = _books(p0=10, p1=4)
    counts = recovery.re_enter(books, _locate, [_decision("0-12-e"), _decision("1-4-f", 1.0)])
    assert (counts.decisions, counts.pending, counts.ahead) == (2, 2, 2)
    assert books.already_published == {0: {12}, 1: {4}}
    assert books.pending.pop("0-12-e") == Pending(0, 1, NOW)


def test_a_decision_for_demand_before_the_offsets_is_not_skipped_it_was_never_to_come_again() -> (
    None
):
    books = _books(p0=10)
    books.join.decided([("0-3-e", Pending(0, 1, NOW))])  # sent before the capture
    counts = recovery.re_enter(books, _locate, [_decision("0-3-e")])
    assert (counts.pending, counts.ahead, books.already_published) == (0, 0, {})


def test_an_answered_decision_found_again_is_not_pending_but_its_demand_is_still_skipped() -> None:
    books = _books(p0=0)
    books.join.decided([("0-2-e", Pending(0, 1, NOW))])
    books.join.resolve(events.Outcome("0-2-e", NOW, True), _locate)
    counts = recovery.re_enter(books, _locate, [_decision("0-2-e")])
    assert (counts.pending, counts.ahead) == (0, 1)
    assert books.already_published == {0: {2}}
    assert "0-2-e" not in books.pending


def test_a_decision_the_engine_cannot_map_or_parse_still_keeps_its_demand_from_being_priced() -> (
    None
):
    books = _books(p0=0)
    values = [_decision("0-1-e", 1.35), _decision("0-2-e", event_timestamp=-5.0), b"junk"]
    counts = recovery.re_enter(books, _locate, values)
    assert (counts.pending, counts.ahead, counts.unusable) == (0, 2, 3)
    assert books.already_published == {0: {1, 2}}


def test_positions_before_where_consumption_resumes_are_forgotten() -> None:
    books = _books()
    books.already_published = {0: {1, 5, 9}, 1: {2}}
    recovery.forget_skips_before(books, {0: 6, 1: 3})
    assert books.already_published == {0: {9}}


@pytest.mark.parametrize(
    ("decision_id", "position"),
    [("0-12-e", (0, 12)), ("3-7-a-b-c", (3, 7)), ("12-0-", (12, 0)), ("x-1-e", None), ("5", None)],
)
def test_a_decision_id_names_the_demand_message_it_priced(
    decision_id: str, position: tuple[int, int] | None
) -> None:
    assert recovery.demand_position(decision_id) == position


# ---- the property, on the whole engine ------------------------------------------------


@dataclass
class Incarnation:
    """One engine process: what a crash throws away."""

    engine: PricingEngine
    checkpointer: Checkpointer
    raw: BrokerProducer
    reader: TopicReader


def _start(settings: EngineSettings, topics: FakeTopics) -> Incarnation:
    """What the engine does at start: restore, recover, checkpoint if new, resume."""
    restored = recovery.restore(settings)
    raw = BrokerProducer(topics)
    producer = OutputProducer(raw)  # type: ignore[arg-type]
    engine = PricingEngine(
        settings=settings,
        bandit=restored.bandit,
        books=restored.books,
        consumer=None,  # type: ignore[arg-type]
        producer=producer,
        dead_letter=_no_dead_letters,
        usable=lambda _msg: True,
        metrics=EngineMetrics(CollectorRegistry()),
        clock=lambda: NOW,
    )
    marks = restored.books.decision_marks if restored.has_marks else None
    published = _found(topics, marks)
    recovery.re_enter(engine.books, engine.locate, published.values)
    engine.decision_baseline = published.ends
    checkpointer = Checkpointer(
        path=settings.state_path,
        producer=producer,
        capture=engine.capture,
        commit=lambda _offsets: None,
        on_written=engine.snapshot_written,
        log=structlog.get_logger("test"),
    )
    if not restored.has_marks:
        checkpointer.now()
    reader = TopicReader(topics)
    starts = {
        (topic, p): engine.books.offsets.get(partition_key(topic, p), 0)
        for topic in ("d", "o")
        for p in topics.logs[topic]
    }
    reader.assign([_TP(topic, p, offset) for (topic, p), offset in starts.items()])
    return Incarnation(engine, checkpointer, raw, reader)


@dataclass
class _TP:
    topic: str
    partition: int
    offset: int


def _no_dead_letters(msg: Any, reason: str, detail: str) -> None:
    raise AssertionError(f"dead letter {reason}: {detail}")


def _demand(topics: FakeTopics, n: int) -> None:
    topics.create("d", DEMAND_PARTITIONS)
    for i in range(n):
        location = ("Airport", "Downtown")[i % 2]
        event = events.DemandEvent(f"e{i}", NOW, location, 1 + i % 7, 3)
        topics.append("d", i % DEMAND_PARTITIONS, events.encode_demand(event), location)


def _answer(topics: FakeTopics, answered: set[str], twice: bool) -> None:
    """An outcome for every decision on the topic not answered yet (two with ``twice``)."""
    for message in topics.logs["x"][0]:
        decision_id = orjson.loads(message.value_ or b"")["decision_id"]
        if decision_id in answered:
            continue
        answered.add(decision_id)
        outcome = events.encode_outcome(events.Outcome(decision_id, NOW, len(decision_id) % 2 == 0))
        for _ in range(2 if twice else 1):
            topics.append("o", 0, outcome)


ACTIONS = st.one_of(
    st.tuples(st.just("consume"), st.integers(1, 12)),
    st.tuples(st.just("deliver"), st.none()),
    st.tuples(st.just("checkpoint"), st.booleans()),  # True: with decisions still in flight
    st.tuples(st.just("answer"), st.booleans()),  # True: every outcome twice
    st.tuples(st.just("crash"), st.booleans()),  # True: in the middle of a checkpoint
)


# The double crash: A prices and dies before a checkpoint covers it; B recovers,
# checkpoints while still catching up, dies; C must price nothing again.
DOUBLE_CRASH = [
    ("consume", 12),
    ("deliver", None),
    ("crash", False),
    ("consume", 3),
    ("checkpoint", False),
    ("crash", False),
]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(schedule=st.lists(ACTIONS, min_size=1, max_size=30))
@example(schedule=DOUBLE_CRASH)
@example(schedule=[*DOUBLE_CRASH[:2], ("answer", True), *DOUBLE_CRASH[2:], ("answer", True)])
def test_no_demand_is_priced_twice_and_no_answer_learnt_twice_whatever_crashes_and_when(
    tmp_path_factory: pytest.TempPathFactory, schedule: list[tuple[str, Any]]
) -> None:
    settings = _settings(tmp_path_factory.mktemp("engine"))
    topics = FakeTopics()
    _demand(topics, 40)
    topics.create("x", 1)
    topics.create("o", 1)
    answered: set[str] = set()
    run = _start(settings, topics)
    for action, arg in schedule:
        if action == "consume":
            run.engine.process(run.reader.consume(arg))
        elif action == "deliver":
            run.raw.poll()
        elif action == "checkpoint":
            _checkpoint(run, in_flight=arg)
        elif action == "answer":
            _answer(topics, answered, twice=arg)
        else:
            if arg:  # captured, never written: the crash hits while it waits for delivery
                run.checkpointer.periodic()
            run.checkpointer._abandon.set()  # a crash runs no shutdown: the writer just stops
            run.raw.crash()
            run = _start(settings, topics)
    _drain(run)
    _answer(topics, answered, twice=False)
    _drain(run)
    decisions = [orjson.loads(m.value_ or b"") for m in topics.logs["x"][0]]
    priced = [recovery.demand_position(d["decision_id"]) for d in decisions]
    assert len(priced) == len(set(priced)) == 40, "a demand event was priced twice or never"
    assert run.engine.bandit.total_outcomes == len({d["decision_id"] for d in decisions})


def _checkpoint(run: Incarnation, *, in_flight: bool) -> None:
    if not in_flight:
        run.raw.poll()
    run.checkpointer.periodic()
    run.raw.poll()  # the reports the writer waits for
    run.checkpointer.wait()


def _drain(run: Incarnation) -> None:
    while batch := run.reader.consume(10):
        run.engine.process(batch)
        run.raw.poll()
    run.raw.poll()
    deadline = time.monotonic() + 5
    while run.raw.waiting and time.monotonic() < deadline:
        run.raw.poll()
