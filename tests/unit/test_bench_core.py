"""The decision-core bench measures the default policy and ts-revenue against MABWiser."""

from __future__ import annotations

import pytest

from dynpricing.bench import core

pytest.importorskip("mabwiser")


def test_core_bench_measures_both_policies_at_every_batch_size() -> None:
    results = core.run(0.01)
    assert [r.batch for r in results] == list(core.BATCH_SIZES)
    for r in results:
        assert r.ours_per_s > 0
        assert r.mabwiser_per_s > 0
        assert r.ts_revenue_per_s > 0
        assert r.ratio == pytest.approx(r.ours_per_s / r.mabwiser_per_s)
        assert r.ts_revenue_ratio == pytest.approx(r.ts_revenue_per_s / r.mabwiser_per_s)


def test_ours_runs_the_policy_it_is_given() -> None:
    assert core.ours(1, 0.01, "ts") > 0
    assert core.ours(1, 0.01, "monotone-ts") > 0
