"""The bandit's state stays compact: contexts without per-context objects, int32 counts
that widen before they could overflow, and neither changes a number."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core import bandit as bandit_module
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.contexts import DEMAND_LEVELS, ContextTable
from dynpricing.core.errors import UnknownContextError

contexts = st.lists(
    st.tuples(st.sampled_from(["A", "B", "Airport", "", "é|x"]), st.sampled_from(DEMAND_LEVELS)),
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(contexts, st.integers(0, 40))
def test_context_table_behaves_like_a_dict_of_rows(keys: list[tuple[str, str]], split: int) -> None:
    table, bulk, reference = ContextTable(), ContextTable(), {}
    for location, level in keys:
        if table.get(location, level) is None:
            reference[(location, level)] = table.add(location, level)
    distinct = list(reference)
    bulk.extend([k[0] for k in distinct[:split]], [k[1] for k in distinct[:split]])
    for location, level in distinct[split:]:
        bulk.add(location, level)
    for built in (table, bulk):
        assert len(built) == len(reference)
        assert built.names() == distinct
        assert built.locations() == [location for location, _ in distinct]
        assert built.levels() == [level for _, level in distinct]
        for key, row in reference.items():
            assert built.get(*key) == row
            assert built.name(row) == key
        assert built.get("nowhere", "low") is None
        assert built.get("A", "extreme") is None


def test_counts_widen_to_int64_before_they_could_overflow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bandit_module, "WIDEN_COUNTS_ABOVE", 10)
    narrow_then_wide = Bandit(BanditConfig())
    monkeypatch.setattr(bandit_module, "WIDEN_COUNTS_ABOVE", 2**62)
    narrow = Bandit(BanditConfig())
    rng = np.random.default_rng(5)
    for bandit in (narrow_then_wide, narrow):
        bandit.context_index("A", "low")
    for _ in range(6):
        arms, accepted = rng.integers(4, size=8), rng.random(8) < 0.5
        seed = int(rng.integers(2**32))
        results = []
        for bandit in (narrow_then_wide, narrow):
            bandit.update(np.zeros(8, dtype=np.int64), arms, accepted, 0.0)
            batch = bandit.decide(np.zeros(30, dtype=np.int64), np.random.default_rng(seed), 0.0)
            results.append((batch.arms, batch.propensities, bandit.arm_stats()))
        (arms_w, prop_w, stats_w), (arms_n, prop_n, stats_n) = results
        np.testing.assert_array_equal(arms_w, arms_n)
        np.testing.assert_array_equal(prop_w, prop_n)
        for name in ("alpha", "beta", "successes", "failures", "pulls"):
            np.testing.assert_array_equal(getattr(stats_w, name), getattr(stats_n, name))
            assert getattr(stats_w, name).dtype == getattr(stats_n, name).dtype
    assert narrow_then_wide._pulls.dtype == np.int64
    assert narrow_then_wide._draw_counts.dtype == np.int64
    assert narrow._pulls.dtype == np.int32


def test_a_snapshot_with_counts_past_int32_loads_exactly() -> None:
    config = BanditConfig()
    bandit = Bandit(config)
    bandit.update([bandit.context_index("A", "high")], [2], [True], 0.0)
    doc = bandit.to_document()
    columns = doc["contexts"]
    assert isinstance(columns, dict)
    huge = 3 * 2**31
    columns["successes"] = [[0, 0, huge, 0]]
    columns["pulls"] = [[0, 0, huge, 0]]
    restored, _ = Bandit.from_document(doc, config)
    stats = restored.arm_stats()
    assert stats.successes[0, 2] == huge
    assert stats.pulls[0, 2] == huge
    assert restored.to_document()["contexts"] == columns


@pytest.mark.parametrize(("forgetting", "budget"), [("none", 400), ("adaptive", 550)])
def test_state_costs_a_few_hundred_bytes_per_context(forgetting: str, budget: int) -> None:
    n = 2**14  # a power of two: the tables are exactly full
    bandit = Bandit(BanditConfig(forgetting=forgetting))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(n):
        bandit.context_index(f"location-{i // 3:06d}", DEMAND_LEVELS[i % 3])
    rows = np.arange(n)
    bandit.update(rows, rows % 4, rows % 3 == 0, 0.0)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # 4 arms: 64 bytes of Beta parameters, 48 of int32 counts, 40 of clocks, versions
    # and draw counts, plus a location string per three contexts and table growth;
    # adaptive forgetting adds 4 rates x 4 arms x 2 float32 and 5 float32 scores (148)
    assert held / n < budget, f"{held / n:.0f} bytes per context"


def test_context_name_is_one_entry_of_contexts() -> None:
    bandit = Bandit(BanditConfig(locations=("Downtown", "Airport")))
    rows = range(len(bandit.contexts()))
    assert [bandit.context_name(row) for row in rows] == bandit.contexts()
    with pytest.raises(UnknownContextError):
        bandit.context_name(len(bandit.contexts()))


def test_limited_views_are_the_first_rows_of_the_full_views() -> None:
    bandit = Bandit(BanditConfig(locations=("Downtown", "Airport", "Harbour")))
    rows = np.arange(len(bandit.contexts()))
    bandit.update(rows, rows % 4, rows % 2 == 0, 0.0)
    full, first = bandit.arm_stats(), bandit.arm_stats(4)
    assert bandit.contexts(4) == bandit.contexts()[:4]
    assert bandit.contexts(100) == bandit.contexts()
    for name in ("alpha", "beta", "successes", "failures", "pulls", "posterior_mean"):
        assert np.array_equal(getattr(first, name), getattr(full, name)[:4]), name
