"""The simulator commits a partition only up to its first decision still unanswered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dynpricing.simulator.app import OffsetTracker


def test_nothing_is_safe_before_anything_finished() -> None:
    tracker = OffsetTracker()
    tracker.started(0, 10)
    assert tracker.safe == {}


def test_finishing_in_order_makes_the_next_offset_safe() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(0, offset)
    tracker.finished(0, 10)
    assert tracker.safe == {0: 11}
    tracker.finished(0, 11)
    tracker.finished(0, 12)
    assert tracker.safe == {0: 13}


def test_a_held_back_answer_holds_the_commit_until_it_is_sent() -> None:
    tracker = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(0, offset)
    tracker.finished(0, 12)
    tracker.finished(0, 11)
    assert 0 not in tracker.safe
    tracker.finished(0, 10)
    assert tracker.safe == {0: 13}


def test_partitions_are_tracked_apart() -> None:
    tracker = OffsetTracker()
    tracker.started(0, 5)
    tracker.started(1, 5)
    tracker.started(1, 6)
    tracker.finished(1, 6)
    tracker.finished(0, 5)
    assert tracker.safe == {0: 6}


def test_gaps_between_offsets_do_not_block_the_commit() -> None:
    tracker = OffsetTracker()
    tracker.started(2, 100)
    tracker.started(2, 140)
    tracker.finished(2, 100)
    assert tracker.safe == {2: 101}
    tracker.finished(2, 140)
    assert tracker.safe == {2: 141}


@given(
    st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40, unique=True)
    .map(sorted)
    .flatmap(lambda offsets: st.tuples(st.just(offsets), st.permutations(offsets))),
    st.integers(min_value=0, max_value=40),
)
def test_the_safe_offset_is_always_just_past_the_finished_prefix(
    offsets_and_order: tuple[list[int], list[int]], finished_count: int
) -> None:
    offsets, order = offsets_and_order
    tracker = OffsetTracker()
    for offset in offsets:
        tracker.started(0, offset)
    finished = set(order[:finished_count])
    for offset in order[:finished_count]:
        tracker.finished(0, offset)
    prefix = 0
    while prefix < len(offsets) and offsets[prefix] in finished:
        prefix += 1
    if prefix == 0:
        assert 0 not in tracker.safe
    else:
        assert tracker.safe[0] == offsets[prefix - 1] + 1
