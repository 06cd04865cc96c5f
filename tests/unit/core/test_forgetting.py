"""Forgetting runs on a clock, not on the number of updates."""

from __future__ import annotations

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.forgetting import decay_evidence

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
