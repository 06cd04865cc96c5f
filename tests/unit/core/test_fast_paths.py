"""The one-context fast paths decide exactly like the general batch path.

``Bandit.decide`` and ``choose`` take a shortcut when every event of a batch
shares one context (one-event batches included). The shortcut must consume the
generator identically and give the same arms and propensities bit for bit, so
each test runs the same calls through both and compares everything.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.objectives import Supply, objective_for
from dynpricing.core.policies import (
    OBJECTIVES,
    POLICIES,
    POLICY_SHAPE_TS,
    POLICY_SHRINK_TS,
    SCALAR_ROW_MAX_ARMS,
    argmax_random_ties,
    make_policy,
    thompson_arms,
    thompson_arms_one_context,
)
from dynpricing.core.policies.base import argmax_random_ties_row
from dynpricing.core.policies.monotone import (
    SCARCE_EVIDENCE_PER_ARM,
    monotone_from_draws,
    monotone_one_context,
    monotone_row,
)

GRIDS = [
    (1.0, 1.2, 1.5, 2.0),
    (0.8, 1.0),
    (1.0, 1.1, 1.25, 1.4, 1.6, 2.0, 3.0),
    tuple(1.0 + 0.1 * k for k in range(SCALAR_ROW_MAX_ARMS + 3)),  # past the plain-float path
]


class GeneralPathBandit(Bandit):
    """A bandit that never takes the one-context shortcuts: the reference."""

    def _one_context(self, rows: np.ndarray) -> int | None:  # noqa: ARG002 - never one context
        return None

    def _arms_one(self, row: int, n: int, rng: np.random.Generator) -> np.ndarray:
        rows = np.full(n, row, dtype=np.int64)
        return self._arms_for(rows, rows[:1], np.zeros(n, dtype=np.intp), rng)


def _posterior(seed: int, n_arms: int, evidence: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    curve = np.sort(rng.uniform(0.05, 0.95, n_arms))[::-1]
    trials = rng.uniform(0.0, evidence, n_arms)
    prior = rng.uniform(0.2, 3.0, 2)
    return prior[0] + trials * curve, prior[1] + trials * (1 - curve)


@settings(max_examples=150, deadline=None)
@given(
    st.tuples(st.sampled_from(POLICIES), st.sampled_from(OBJECTIVES)),
    st.sampled_from(GRIDS),
    st.sampled_from([1, 1, 2, 17, 300, 700]),  # 700: past EVERY_SHAPE_MAX_ROWS
    st.sampled_from([0.0, 5.0, 40.0, 3000.0]),
    st.integers(0, 2**32 - 1),
)
def test_one_context_arms_equal_thompson_arms_on_repeated_rows(
    rule: tuple[str, str], grid: tuple[float, ...], n: int, evidence: float, seed: int
) -> None:
    name, objective_name = rule
    prices = np.asarray(grid)
    alpha, beta = _posterior(seed, prices.size, evidence)
    prior = (float(min(alpha.min(), 1.0)), float(min(beta.min(), 1.0)))
    policy, objective = make_policy(name, prices, prior), objective_for(objective_name)
    fit = policy.fit(alpha[None], beta[None])[0] if policy.needs_fit else None
    supply = Supply.of(*np.random.default_rng(seed).integers(0, 30, (2, n)))
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    fast = thompson_arms_one_context(
        alpha, beta, n, policy=policy, objective=objective, rng=fast_rng, fit=fit, supply=supply,
    )  # fmt: skip
    slow = thompson_arms(
        np.tile(alpha, (n, 1)), np.tile(beta, (n, 1)),
        policy=policy, objective=objective, rng=slow_rng, supply=supply,
    )  # fmt: skip
    np.testing.assert_array_equal(fast, slow)
    assert fast.dtype == slow.dtype
    assert fast_rng.random() == slow_rng.random()  # the same numbers were consumed


@pytest.mark.parametrize("name", [POLICY_SHAPE_TS, POLICY_SHRINK_TS])
@pytest.mark.parametrize("n", [1, 5])
def test_fitted_policies_one_context_forms_need_their_fit(name: str, n: int) -> None:
    policy = make_policy(name, np.asarray(GRIDS[0]))
    with pytest.raises(Exception, match="fit"):
        thompson_arms_one_context(
            np.ones(4), np.ones(4), n, policy=policy, objective=objective_for("revenue"),
            rng=np.random.default_rng(0),
        )  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(GRIDS),
    st.sampled_from([1, 3, 15, 16, 40]),
    st.floats(0.0, 200.0),
    st.integers(0, 2**32 - 1),
)
def test_monotone_shortcuts_equal_monotone_from_draws(
    grid: tuple[float, ...], m: int, evidence: float, seed: int
) -> None:
    n_arms = len(grid)
    alpha, beta = _posterior(seed, n_arms, evidence)
    prior = (1.0, 0.5)
    draws = np.random.default_rng(seed).beta(alpha, beta, size=(m, n_arms))
    expected = monotone_from_draws(draws, np.tile(alpha, (m, 1)), np.tile(beta, (m, 1)), prior)
    np.testing.assert_array_equal(monotone_one_context(draws, alpha, beta, prior), expected)
    row = monotone_row(draws[0].tolist(), alpha.tolist(), beta.tolist(), prior)
    np.testing.assert_array_equal(np.asarray(row), expected[0])


@pytest.mark.parametrize("offset", [-1e-9, 0.0, 1e-9, -1.0, 1.0])
def test_monotone_row_agrees_at_the_scarcity_threshold(offset: float) -> None:
    """Evidence right at the sort-or-project threshold decides like the numpy form."""
    n_arms, prior = 4, (1.0, 1.0)
    alpha = np.full(n_arms, prior[0] + SCARCE_EVIDENCE_PER_ARM / 2 + offset / n_arms)
    beta = np.full(n_arms, prior[1] + SCARCE_EVIDENCE_PER_ARM / 2)
    draws = np.array([[0.2, 0.6, 0.3, 0.5]])
    expected = monotone_from_draws(draws, alpha[None], beta[None], prior)[0]
    row = monotone_row(draws[0].tolist(), alpha.tolist(), beta.tolist(), prior)
    np.testing.assert_array_equal(np.asarray(row), expected)
    np.testing.assert_array_equal(monotone_one_context(draws, alpha, beta, prior)[0], expected)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.sampled_from([0.0, 0.5, 0.5 + 1e-14, 0.7, 1.0]), min_size=1, max_size=8),
    st.integers(0, 2**32 - 1),
)
def test_one_row_tie_break_equals_the_array_form(scores: list[float], seed: int) -> None:
    fast_rng, slow_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    fast = argmax_random_ties_row(scores, fast_rng)
    slow = argmax_random_ties(np.array([scores]), slow_rng)[0]
    assert fast == slow
    assert fast_rng.random() == slow_rng.random()


configs = st.builds(
    BanditConfig,
    prices=st.sampled_from(GRIDS),
    prior_alpha=st.floats(0.1, 5.0),
    prior_beta=st.floats(0.1, 5.0),
    objective=st.sampled_from(OBJECTIVES),
    policy=st.sampled_from(POLICIES),
    half_life=st.one_of(st.none(), st.floats(1.0, 1e3)),
    forgetting_floor=st.floats(0.0, 50.0),
    propensity_draws=st.integers(1, 64),
    forgetting=st.sampled_from(["adaptive", "none"]),
)
# one step: (kind, first context, batch size, outcome seed, clock advance)
steps = st.lists(
    st.tuples(
        st.sampled_from(["one", "one", "same", "mixed", "update", "choose", "propensities"]),
        st.integers(0, 3),
        st.integers(1, 60),
        st.integers(0, 2**32 - 1),
        st.sampled_from([0.0, 0.0, 0.5, 7.0]),
    ),
    min_size=1,
    max_size=14,
)


def _run(bandit: Bandit, plan: list[tuple[str, int, int, int, float]], seed: int) -> list[object]:
    for location in ("A", "B", "C", "D"):
        bandit.context_index(location, "low")
    rng = np.random.default_rng(seed)
    n_arms = bandit.prices.size
    results: list[object] = []
    now = 0.0
    for kind, first, size, step_seed, advance in plan:
        now += advance
        local = np.random.default_rng(step_seed)
        if kind == "one":
            rows = np.array([first])
        elif kind == "same":
            rows = np.full(size, first)
        else:
            rows = local.integers(0, 4, size=size)
        supply = {
            "requests": local.integers(0, 30, rows.size),
            "drivers": local.integers(0, 30, rows.size),
        }
        if kind == "update":
            arms = local.integers(n_arms, size=rows.size)
            bandit.update(rows, arms, local.random(rows.size) < 0.45, now)
        elif kind == "choose":
            results.append(bandit.choose(rows, rng, now, **supply))
        elif kind == "propensities":
            if bandit.config.objective != "revenue-supply":  # per event there, not per context
                results.append(bandit.propensities(first, rng, now))
        else:
            batch = bandit.decide(rows, rng, now, **supply)
            results += [batch.arms, batch.propensities]
    stats = bandit.arm_stats()
    used = len(bandit.contexts())
    return [*results, stats.alpha, stats.beta, bandit._draw_counts[:used], rng.random()]


@settings(max_examples=80, deadline=None)
@given(configs, steps, st.integers(0, 2**32 - 1))
def test_bandit_shortcuts_decide_exactly_like_the_general_path(
    config: BanditConfig, plan: list[tuple[str, int, int, int, float]], seed: int
) -> None:
    fast = _run(Bandit(config), plan, seed)
    slow = _run(GeneralPathBandit(config), plan, seed)
    assert len(fast) == len(slow)
    for got, expected in zip(fast, slow, strict=True):
        np.testing.assert_array_equal(got, expected)
        assert np.asarray(got).dtype == np.asarray(expected).dtype


def test_fit_cache_off_takes_the_same_shortcut_decisions() -> None:
    config = BanditConfig()
    plan = [("update", 0, 50, 1, 0.0), ("one", 0, 1, 0, 1.0), ("same", 1, 30, 0, 0.0)] * 3
    cached = _run(Bandit(config), plan, 5)
    cold = _run(Bandit(config, fit_cache_slots=0), plan, 5)
    for got, expected in zip(cached, cold, strict=True):
        np.testing.assert_array_equal(got, expected)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=2, max_size=200))
def test_distinct_rows_are_what_np_unique_gives(contexts: list[int]) -> None:
    from dynpricing.core.bandit import _distinct  # noqa: PLC0415

    rows = np.array(contexts, dtype=np.int64)
    unique, inverse = _distinct(rows)
    np.testing.assert_array_equal(unique[inverse], rows)
    if len(set(contexts)) > 1:
        expected_unique, expected_inverse = np.unique(rows, return_inverse=True)
        np.testing.assert_array_equal(unique, expected_unique)
        np.testing.assert_array_equal(inverse, expected_inverse)
        assert inverse.dtype == expected_inverse.dtype
