"""Forgetting: a fixed half-life runs on a clock; adaptive forgetting forgets after a change."""

from __future__ import annotations

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.forgetting import AdaptiveForgetting, decay_evidence

HALF_LIFE = 100.0


def _evidence(bandit: Bandit, row: int) -> float:
    stats = bandit.arm_stats()
    return float(stats.alpha[row, 0] + stats.beta[row, 0] - 2.0)  # minus the Beta(1, 1) prior


def test_evidence_halves_after_one_half_life() -> None:
    bandit = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=0.0))
    row = bandit.context_index("A", "low")
    bandit.update([row] * 8, [0] * 8, [True] * 8, now=0.0)
    bandit.update([], [], [], now=HALF_LIFE)  # nothing to apply: the clock alone does not decay
    assert _evidence(bandit, row) == pytest.approx(8.0)
    bandit.propensities(row, np.random.default_rng(0), now=HALF_LIFE)  # touching it does
    assert _evidence(bandit, row) == pytest.approx(4.0)


def test_a_quiet_context_and_a_busy_one_forget_alike_over_the_same_time() -> None:
    bandit = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=0.0))
    quiet, busy, witness = (bandit.context_index(loc, "low") for loc in ("Q", "B", "W"))
    bandit.update([quiet, busy, witness], [0, 0, 0], [True, True, True], now=0.0)
    for t in range(1, 301):  # busy gets an outcome on another arm every time unit
        bandit.update([busy], [3], [False], now=float(t))
    bandit.update([quiet], [3], [False], now=300.0)
    stats = bandit.arm_stats()
    # arm 0's single success is 3 half-lives old in both: 1/8 of it is left
    assert stats.alpha[quiet, 0] == pytest.approx(1.0 + 1 / 8)
    assert stats.alpha[busy, 0] == pytest.approx(1.0 + 1 / 8)


def test_lazy_decay_equals_decaying_at_every_tick() -> None:
    lazy = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=0.0))
    eager = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=0.0))
    rng = np.random.default_rng(0)
    for bandit in (lazy, eager):
        bandit.context_index("A", "low")
        bandit.update([0] * 10, [1] * 10, [True] * 6 + [False] * 4, now=0.0)
    for t in range(1, 50):
        eager.propensities(0, rng, now=float(t))
    lazy.propensities(0, rng, now=49.0)
    np.testing.assert_allclose(lazy.arm_stats().alpha, eager.arm_stats().alpha, rtol=1e-12)
    np.testing.assert_allclose(lazy.arm_stats().beta, eager.arm_stats().beta, rtol=1e-12)


def test_counts_stay_lifetime_totals_while_parameters_decay() -> None:
    bandit = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=0.0))
    row = bandit.context_index("A", "low")
    bandit.update([row] * 4, [2] * 4, [True] * 4, now=0.0)
    bandit.update([row], [2], [True], now=10 * HALF_LIFE)
    stats = bandit.arm_stats()
    assert stats.successes[row, 2] == 5
    assert stats.alpha[row, 2] == pytest.approx(1.0 + 4 / 1024 + 1)


def test_without_forgetting_the_clock_changes_nothing() -> None:
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("A", "low")
    bandit.update([row], [0], [True], now=0.0)
    bandit.update([row], [0], [True], now=1e9)
    assert bandit.arm_stats().alpha[row, 0] == 3.0


def test_forgetting_keeps_a_floor_of_evidence_in_proportion() -> None:
    bandit = Bandit(BanditConfig(half_life=HALF_LIFE, forgetting_floor=20.0))
    row = bandit.context_index("A", "low")
    bandit.update([row] * 100, [3] * 100, [True] * 10 + [False] * 90, now=0.0)
    bandit.update([row] * 3, [1] * 3, [True] * 3, now=0.0)
    bandit.propensities(row, np.random.default_rng(0), now=50 * HALF_LIFE)
    stats = bandit.arm_stats()
    # 100 outcomes decay to the floor of 20, still 10 % accepted; 3 outcomes are under it
    assert stats.alpha[row, 3] == pytest.approx(1.0 + 2.0)
    assert stats.beta[row, 3] == pytest.approx(1.0 + 18.0)
    assert stats.alpha[row, 1] == pytest.approx(1.0 + 3.0)


def test_decay_with_a_floor_composes_over_time_spans() -> None:
    rng = np.random.default_rng(4)
    alpha, beta = 1 + rng.uniform(0, 200, (50, 4)), 1 + rng.uniform(0, 200, (50, 4))
    first, second = rng.uniform(0.1, 1, 50), rng.uniform(0.1, 1, 50)
    stepwise = decay_evidence(
        *decay_evidence(alpha, beta, (1.0, 1.0), first, 30.0), (1.0, 1.0), second, 30.0
    )
    at_once = decay_evidence(alpha, beta, (1.0, 1.0), first * second, 30.0)
    np.testing.assert_allclose(stepwise, at_once, rtol=1e-12)


def _stream(bandit: Bandit, row: int, rate: float, n: int, seed: int) -> None:
    """``n`` outcomes of arm 1 in context ``row``, accepted with probability ``rate``."""
    won = np.random.default_rng(seed).random(n) < rate
    for chunk in range(0, n, 10):  # batches of ten, as an engine would apply them
        size = len(won[chunk : chunk + 10])
        bandit.update([row] * size, [1] * size, won[chunk : chunk + 10], now=float(chunk))


def _mean(bandit: Bandit, row: int) -> float:
    stats = bandit.arm_stats()
    return float(stats.posterior_mean[row, 1])


def test_adaptive_forgetting_never_forgets_on_a_steady_market() -> None:
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("A", "low")
    _stream(bandit, row, 0.6, 3000, seed=1)
    stats = bandit.arm_stats()
    # the decisions' posterior is the whole history: prior plus lifetime counts
    assert stats.alpha[row, 1] == 1.0 + stats.successes[row, 1]
    assert stats.beta[row, 1] == 1.0 + stats.failures[row, 1]


def test_after_a_change_adaptive_forgetting_follows_the_new_rate_in_that_context_only() -> None:
    adaptive, steady = Bandit(BanditConfig()), Bandit(BanditConfig(forgetting="none"))
    for bandit in (adaptive, steady):
        changed, quiet = bandit.context_index("A", "low"), bandit.context_index("B", "low")
        _stream(bandit, changed, 0.3, 2000, seed=2)
        _stream(bandit, quiet, 0.3, 2000, seed=3)
        _stream(bandit, changed, 0.8, 600, seed=4)  # acceptance jumps in context A only
    # without forgetting the mean is stuck between old and new (about 0.42); adaptive has
    # let most of the old go (about 0.72; the noise of its few hundred outcomes is 0.02)
    assert _mean(steady, 0) < 0.45
    assert _mean(adaptive, 0) > 0.62
    stats = adaptive.arm_stats()
    assert stats.alpha[1, 1] == 1.0 + stats.successes[1, 1]  # context B kept everything


def test_adaptive_learning_ignores_the_order_of_outcomes_within_a_batch() -> None:
    rng = np.random.default_rng(6)
    arms, won = rng.integers(0, 4, 40), rng.random(40) < 0.5
    order = rng.permutation(40)
    results = []
    for permutation in (np.arange(40), order):
        bandit = Bandit(BanditConfig())
        row = bandit.context_index("A", "low")
        _stream(bandit, row, 0.2, 500, seed=7)
        bandit.update([row] * 40, arms[permutation], won[permutation], now=1.0)
        results.append(bandit.to_document())
    assert results[0] == results[1]


def test_adaptive_forgetting_refuses_bad_rates() -> None:
    with pytest.raises(ValueError, match="half-lives must be > 0"):
        AdaptiveForgetting(half_lives=(100.0, 0.0))
    with pytest.raises(ValueError, match="score_half_life"):
        AdaptiveForgetting(score_half_life=-1.0)


def test_a_half_life_overrides_adaptive_forgetting() -> None:
    document = Bandit(BanditConfig(half_life=60.0)).to_document()
    assert document["forgetting"]["kind"] == "half-life"  # type: ignore[index]
    assert Bandit(BanditConfig(forgetting="none")).to_document()["forgetting"]["kind"] == "none"  # type: ignore[index]
