"""Cached policy fits: decisions with a warm cache equal decisions refitted from scratch."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.bandit import Bandit, BanditConfig, DecisionBatch
from dynpricing.core.policies import POLICY_SHAPE_TS, POLICY_SHRINK_TS
from dynpricing.core.policies.monotone import monotone_decreasing_fit

configs = st.builds(
    BanditConfig,
    prices=st.sampled_from([(1.0, 1.2, 1.5, 2.0), (0.8, 1.0), (1.0, 1.1, 1.25, 1.4, 1.6, 2.0)]),
    prior_alpha=st.floats(0.1, 5.0),
    prior_beta=st.floats(0.1, 5.0),
    policy=st.sampled_from([POLICY_SHAPE_TS, POLICY_SHRINK_TS]),
    half_life=st.one_of(st.none(), st.floats(1.0, 1e3)),
    forgetting=st.sampled_from(["adaptive", "none"]),
    forgetting_floor=st.floats(0.0, 50.0),
    propensity_draws=st.integers(1, 32),
)
# one step: ("decide" | "update" | "propensities", context rows, seed, clock advance)
steps = st.lists(
    st.tuples(
        st.sampled_from(["decide", "decide", "update", "propensities"]),
        st.lists(st.integers(0, 4), min_size=1, max_size=40),
        st.integers(0, 2**32 - 1),
        st.sampled_from([0.0, 0.0, 0.5, 7.0]),
    ),
    min_size=1,
    max_size=12,
)


def run(bandit: Bandit, plan: list[tuple[str, list[int], int, float]], seed: int) -> list[object]:
    """Every result of the plan, then the final tables."""
    for location in ("A", "B", "C", "D", "E"):
        bandit.context_index(location, "medium")
    rng = np.random.default_rng(seed)
    n_arms = len(bandit.prices)
    results: list[object] = []
    now = 0.0
    for op, contexts, op_seed, advance in plan:
        now += advance
        rows = np.array(contexts)
        if op == "decide":
            batch: DecisionBatch = bandit.decide(rows, rng, now)
            results += [batch.arms, batch.propensities]
        elif op == "propensities":
            results.append(bandit.propensities(contexts[0], rng, now))
        else:
            outcomes = np.random.default_rng(op_seed)
            arms = outcomes.integers(n_arms, size=rows.size)
            bandit.update(rows, arms, outcomes.random(rows.size) < 0.4, now)
    stats = bandit.arm_stats()
    return [*results, stats.alpha, stats.beta, rng.random()]


@settings(max_examples=60, deadline=None)
@given(configs, steps, st.integers(0, 2**32 - 1))
def test_cached_fits_decide_exactly_like_cold_ones(
    config: BanditConfig, plan: list[tuple[str, list[int], int, float]], seed: int
) -> None:
    cold = run(Bandit(config, fit_cache_slots=0), plan, seed)
    warm = run(Bandit(config), plan, seed)
    crowded = run(Bandit(config, fit_cache_slots=2), plan, seed)  # contexts evict each other
    for expected, *got in zip(cold, warm, crowded, strict=True):
        for value in got:
            np.testing.assert_array_equal(value, expected)


def test_a_restored_bandit_decides_like_the_original_with_a_warm_cache() -> None:
    config = BanditConfig()
    bandit = Bandit(config)
    row = bandit.context_index("A", "high")
    rng = np.random.default_rng(3)
    bandit.decide(np.full(5, row), rng, 0.0)  # warm the cache
    bandit.update(np.full(30, row), rng.integers(4, size=30), rng.random(30) < 0.5, 0.0)
    restored, _ = Bandit.from_document(bandit.to_document(), config)
    for _ in range(3):
        seed = int(rng.integers(2**32))
        original = bandit.decide(np.full(7, row), np.random.default_rng(seed), 1.0).arms
        again = restored.decide(np.full(7, row), np.random.default_rng(seed), 1.0).arms
        np.testing.assert_array_equal(original, again)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 40),
    st.sampled_from([1, 2, 4, 7]),
    st.integers(0, 2**32 - 1),
    st.sampled_from([1.0, 30.0, 1e4]),
)
def test_isotonic_fit_is_the_same_for_few_and_many_rows(
    rows: int, arms: int, seed: int, scale: float
) -> None:
    """The min-max form is evaluated two ways (few rows / many rows); they agree bit for bit."""
    rng = np.random.default_rng(seed)
    values = rng.random((rows, arms))
    values[rng.random((rows, arms)) < 0.2] = 0.5  # ties in the draws
    weights = 0.1 + np.floor(rng.random((rows, arms)) * scale)
    together = monotone_decreasing_fit(values, weights)
    alone = np.concatenate(
        [monotone_decreasing_fit(values[i : i + 1], weights[i : i + 1]) for i in range(rows)]
    )
    np.testing.assert_array_equal(together, alone)
