"""What the engine keeps besides the posterior survives a JSON round trip unchanged."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynpricing.engine.join import Pending
from dynpricing.engine.state import (
    ENGINE_STATE_VERSION,
    EngineBookkeeping,
    partition_key,
    rng_from_document,
    rng_to_document,
    split_partition_key,
)


def _through_json(doc: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return loaded


@given(st.integers(min_value=0, max_value=2**128 - 1), st.integers(min_value=0, max_value=3))
def test_a_restored_generator_continues_the_exact_same_stream(seed: int, used: int) -> None:
    rng = np.random.default_rng(seed)
    rng.random(used)
    rng.integers(0, 2**32, size=used, dtype=np.uint32)  # may leave a buffered uint32
    restored = rng_from_document(_through_json(rng_to_document(rng)))
    assert np.array_equal(restored.random(5), rng.random(5))
    assert np.array_equal(restored.integers(0, 2**32, 3), rng.integers(0, 2**32, 3))


def test_the_generator_state_keeps_its_128_bit_integers_as_text() -> None:
    doc = rng_to_document(np.random.default_rng(2**127 + 12345))
    assert doc["bit_generator"] == "PCG64"
    assert isinstance(doc["state"], str)
    assert isinstance(doc["inc"], str)
    assert int(doc["state"]) >= 2**64 or int(doc["inc"]) >= 2**64


def test_a_generator_of_another_kind_is_refused() -> None:
    doc = rng_to_document(np.random.default_rng(1)) | {"bit_generator": "MT19937"}
    with pytest.raises(ValueError, match="MT19937"):
        rng_from_document(doc)


@given(st.text(min_size=1), st.integers(min_value=0, max_value=10_000))
def test_a_partition_key_splits_back_even_when_the_topic_has_colons(
    topic: str, partition: int
) -> None:
    assert split_partition_key(partition_key(topic, partition)) == (topic, partition)


def _books() -> EngineBookkeeping:
    books = EngineBookkeeping.fresh(seed=7, max_pending=100, resolved_memory=100)
    books.rng.random(3)
    books.pending.add("0-5-e5", Pending(context=1, arm=2, decided_at=10.5))
    books.pending.add("1-9-e9", Pending(context=0, arm=3, decided_at=11.0))
    books.resolved.remember("0-1-e1", "applied")
    books.resolved.remember("0-2-e2", "expired")
    books.offsets = {"demand_events:0": 6, "pricing_outcomes:2": 41}
    books.decision_marks = {"pricing_decisions:0": 17}
    return books


def test_bookkeeping_round_trips_offsets_pending_resolved_marks_and_rng() -> None:
    books = _books()
    doc = _through_json(books.to_document(written_at=123.0))
    assert doc["version"] == ENGINE_STATE_VERSION
    assert doc["written_at"] == 123.0
    restored = EngineBookkeeping.from_document(doc, max_pending=100, resolved_memory=100)
    assert restored.offsets == books.offsets
    assert restored.decision_marks == books.decision_marks
    assert restored.pending.to_document() == books.pending.to_document()
    assert restored.resolved.to_document() == books.resolved.to_document()
    assert restored.rng.random() == books.rng.random()
    assert restored.to_document(123.0) == books.to_document(123.0)


def test_bookkeeping_of_an_unknown_version_is_refused() -> None:
    doc = _books().to_document(written_at=1.0) | {"version": ENGINE_STATE_VERSION + 1}
    with pytest.raises(ValueError, match="not supported"):
        EngineBookkeeping.from_document(doc, max_pending=10, resolved_memory=10)


def test_fresh_bookkeeping_with_one_seed_draws_the_same_numbers() -> None:
    first = EngineBookkeeping.fresh(seed=3, max_pending=1, resolved_memory=1)
    second = EngineBookkeeping.fresh(seed=3, max_pending=1, resolved_memory=1)
    assert first.rng.random() == second.rng.random()
    assert (len(first.pending), len(first.resolved), first.offsets) == (0, 0, {})
