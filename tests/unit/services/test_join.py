"""The outcome join: its rules, and its pending table and resolved memory, bounded and ordered."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynpricing.engine.join import (
    APPLIED,
    DUPLICATE,
    EXPIRED,
    LATE,
    MATCHED,
    SIMPLE,
    OutcomeJoin,
    Pending,
    PendingTable,
    ResolvedMemory,
)
from dynpricing.events import InvalidEvent, Outcome


def _table(capacity: int, times: list[float]) -> PendingTable:
    table = PendingTable(capacity)
    for i, decided_at in enumerate(times):
        table.add(f"d{i}", Pending(context=i % 3, arm=i % 4, decided_at=decided_at))
    return table


def test_an_added_decision_is_pending_until_its_outcome_pops_it() -> None:
    table = _table(10, [1.0])
    assert "d0" in table
    assert table.pop("d0") == Pending(0, 0, 1.0)
    assert "d0" not in table
    assert len(table) == 0


def test_popping_an_unknown_or_already_popped_decision_returns_none() -> None:
    table = _table(10, [1.0])
    table.pop("d0")
    assert table.pop("d0") is None
    assert table.pop("never-decided") is None


def test_a_full_table_pushes_out_its_oldest_decisions_and_returns_them() -> None:
    table = _table(2, [1.0, 2.0])
    evicted = table.add("d2", Pending(1, 1, 3.0))
    assert evicted == [("d0", Pending(0, 0, 1.0))]
    assert len(table) == 2
    assert "d0" not in table
    assert "d2" in table


def test_expiry_removes_exactly_the_decisions_made_before_the_cutoff_oldest_first() -> None:
    table = _table(10, [1.0, 2.0, 3.0, 4.0])
    expired = table.expire(decided_before=3.0)
    assert [decision_id for decision_id, _ in expired] == ["d0", "d1"]
    assert len(table) == 2
    assert table.expire(decided_before=3.0) == []


def test_the_table_survives_a_json_round_trip_in_order() -> None:
    table = _table(10, [1.0, 2.5, 7.25])
    doc = orjson.loads(orjson.dumps(table.to_document()))
    restored = PendingTable.from_document(doc, capacity=10)
    assert restored.to_document() == table.to_document()
    assert [d for d, _ in restored.expire(decided_before=100.0)] == ["d0", "d1", "d2"]


@given(st.lists(st.floats(min_value=0, max_value=1e9), max_size=60), st.integers(1, 20))
def test_the_table_never_holds_more_than_its_capacity_and_loses_nothing_silently(
    gaps: list[float], capacity: int
) -> None:
    table = PendingTable(capacity)
    evicted: list[str] = []
    now = 0.0
    for i, gap in enumerate(gaps):
        now += gap
        evicted += [d for d, _ in table.add(f"d{i}", Pending(0, 0, now))]
        assert len(table) <= capacity
    assert len(evicted) + len(table) == len(gaps)
    assert evicted == [f"d{i}" for i in range(len(evicted))]


@given(
    st.lists(st.floats(min_value=0, max_value=1e6), max_size=40).map(sorted),
    st.floats(min_value=0, max_value=1e6),
)
def test_expiry_splits_time_ordered_decisions_at_the_cutoff(
    times: list[float], cutoff: float
) -> None:
    table = _table(len(times) + 1, times)
    expired = table.expire(cutoff)
    assert all(entry.decided_at < cutoff for _, entry in expired)
    remaining = table.expire(float("inf"))
    assert all(entry.decided_at >= cutoff for _, entry in remaining)
    assert len(expired) + len(remaining) == len(times)


def test_resolved_memory_forgets_the_oldest_ids_beyond_its_capacity() -> None:
    memory = ResolvedMemory(2)
    memory.remember("a", "applied")
    memory.remember("b", "expired")
    memory.remember("c", "applied")
    assert len(memory) == 2
    assert memory.get("a") is None
    assert (memory.get("b"), memory.get("c")) == ("expired", "applied")


def test_resolved_memory_of_capacity_zero_remembers_nothing() -> None:
    memory = ResolvedMemory(0)
    memory.remember("a", "applied")
    assert len(memory) == 0
    assert memory.get("a") is None


def test_resolved_memory_round_trips_and_a_smaller_capacity_keeps_the_newest() -> None:
    memory = ResolvedMemory(5)
    for i in range(5):
        memory.remember(f"d{i}", "applied" if i % 2 else "expired")
    doc = orjson.loads(orjson.dumps(memory.to_document()))
    assert ResolvedMemory.from_document(doc, 5).to_document() == memory.to_document()
    smaller = ResolvedMemory.from_document(doc, 2)
    assert smaller.to_document() == {"decision_id": ["d3", "d4"], "status": ["applied", "expired"]}


@given(
    st.integers(min_value=1, max_value=8),
    st.integers(min_value=0, max_value=8),
    st.lists(st.integers(min_value=0, max_value=20), max_size=12),
)
def test_adding_a_batch_of_new_decisions_equals_adding_them_one_by_one(
    capacity: int, already: int, batch_sizes: list[int]
) -> None:
    one_by_one = _table(capacity, [float(i) for i in range(already)])
    batched = _table(capacity, [float(i) for i in range(already)])
    next_id = already
    for size in batch_sizes:
        entries = [
            (f"d{next_id + i}", Pending(i % 3, i % 4, float(next_id + i))) for i in range(size)
        ]
        next_id += size
        evicted = [
            pair for decision_id, entry in entries for pair in one_by_one.add(decision_id, entry)
        ]
        assert batched.add_many(entries) == evicted
        assert batched.to_document() == one_by_one.to_document()


def test_the_snapshot_lists_decisions_in_table_order_after_pops_expiry_and_evictions() -> None:
    table = PendingTable(capacity=50)
    table.add_many((f"d{i}", Pending(i % 3, i % 4, float(i))) for i in range(80))
    table.pop("d60")
    table.expire(45.0)
    table.add("d60", Pending(0, 0, 99.0))
    table.add("d61", Pending(1, 1, 61.0))  # already pending: keeps its place
    doc = table.to_document()
    walked = list(table._items.items())  # the OrderedDict's own (linked-list) order
    assert doc["decision_id"] == [key for key, _ in walked]
    assert doc["decided_at"] == [entry.decided_at for _, entry in walked]
    assert doc["decision_id"][-1] == "d60"


# ---- the rules -----------------------------------------------------------------------


def _outcome(decision_id: str, accepted: bool = True, **context: object) -> Outcome:
    return Outcome(decision_id, 1.0, accepted, **context)  # type: ignore[arg-type]


def _locate(location: str, level: str, price: float) -> tuple[int, int]:
    if price not in (1.0, 1.5):
        raise InvalidEvent("price_not_on_grid", f"{price} is not on the grid")
    return (7 if location == "Airport" else 8), (0 if price == 1.0 else 1)


def _join(max_pending: int = 10, resolved_memory: int = 10) -> OutcomeJoin:
    join = OutcomeJoin.fresh(max_pending, resolved_memory)
    join.decided([("d1", Pending(1, 2, 10.0)), ("d2", Pending(3, 0, 11.0))])
    return join


def test_an_outcome_of_a_pending_decision_is_matched_to_its_context_and_arm() -> None:
    join = _join()
    assert join.resolve(_outcome("d1"), _locate) == (MATCHED, 1, 2)
    assert "d1" not in join.pending
    assert join.resolved.get("d1") == APPLIED


def test_a_second_outcome_of_a_decision_is_a_duplicate_and_a_late_one_is_late() -> None:
    join = _join()
    join.resolve(_outcome("d1"), _locate)
    assert join.resolve(_outcome("d1", accepted=False), _locate)[0] == DUPLICATE
    assert [d for d, _ in join.expire(decided_before=11.5)] == ["d2"]
    assert join.resolve(_outcome("d2"), _locate)[0] == LATE


def test_resolved_is_checked_before_pending_so_an_id_is_never_learnt_twice() -> None:
    join = _join()
    join.resolve(_outcome("d1"), _locate)
    join.pending.add("d1", Pending(1, 2, 12.0))  # as if it had been published again
    assert join.resolve(_outcome("d1"), _locate)[0] == DUPLICATE


def test_a_simple_clients_outcome_is_learnt_for_the_context_and_price_it_names_once() -> None:
    join = _join()
    simple = {"location": "Airport", "demand_level": "low", "price_multiplier": 1.5}
    assert join.resolve(_outcome("ext-1", **simple), _locate) == (SIMPLE, 7, 1)
    assert join.resolve(_outcome("ext-1", **simple), _locate)[0] == DUPLICATE


@pytest.mark.parametrize(
    ("context", "reason"),
    [
        ({}, "unknown_decision"),
        ({"location": "Airport", "demand_level": "low"}, "unknown_decision"),
        ({"price_multiplier": 1.0}, "unknown_decision"),
        (
            {"location": "Airport", "demand_level": "low", "price_multiplier": 1.35},
            "price_not_on_grid",
        ),
    ],
)
def test_an_unknown_decision_without_a_usable_context_and_price_is_refused_and_not_remembered(
    context: dict[str, object], reason: str
) -> None:
    join = _join()
    with pytest.raises(InvalidEvent) as refused:
        join.resolve(_outcome("nobody", **context), _locate)
    assert refused.value.reason == reason
    assert not join.knows("nobody")


def test_a_full_table_expires_its_oldest_decision_and_remembers_it_as_expired() -> None:
    join = _join(max_pending=2)
    evicted = join.decided([("d3", Pending(0, 0, 12.0))])
    assert evicted == [("d1", Pending(1, 2, 10.0))]
    assert join.resolved.get("d1") == EXPIRED
    assert join.resolve(_outcome("d1"), _locate)[0] == LATE


def test_a_recovered_decision_enters_the_table_unless_it_is_already_known() -> None:
    join = _join()
    join.resolve(_outcome("d1"), _locate)
    assert not join.recovered("d1", Pending(0, 0, 1.0))  # answered already
    assert not join.recovered("d2", Pending(0, 0, 1.0))  # pending already
    assert join.recovered("d9", Pending(2, 3, 13.0))
    assert join.knows("d9")
    assert join.resolve(_outcome("d9"), _locate) == (MATCHED, 2, 3)
