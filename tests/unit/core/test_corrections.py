"""A rejection learnt for a decision that expired is taken back exactly when its answer comes."""

from __future__ import annotations

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.forgetting import ADAPTIVE_HALF_LIVES

ROW, ARM = 0, 2


def _bandit(config: BanditConfig, history: int, seed: int = 3) -> Bandit:
    bandit = Bandit(config)
    bandit.context_index("Airport", "high")
    rng = np.random.default_rng(seed)
    arms = rng.integers(0, 4, history)
    bandit.update(np.zeros(history, dtype=np.int64), arms, rng.random(history) < 0.4, now=0.0)
    return bandit


def _tables(bandit: Bandit) -> dict[str, list[float]]:
    doc = bandit.context_document(ROW)
    return {name: doc[name] for name in ("alpha", "beta", "successes", "failures", "pulls")}  # type: ignore[misc]


def test_without_forgetting_the_corrected_posterior_is_the_one_that_learnt_the_answer() -> None:
    config = BanditConfig(forgetting="none")
    corrected, truthful = _bandit(config, 300), _bandit(config, 300)
    corrected.update([ROW], [ARM], [False], now=1.0)  # the expiry's rejection
    corrected.update([ROW, ROW], [1, 3], [True, False], now=2.0)  # learnt meanwhile
    since = int(corrected.context_outcomes([ROW])[0]) - 3
    corrected.retract_rejections([ROW], [ARM], [since], [1.0], now=5.0)
    corrected.update([ROW], [ARM], [True], now=5.0)  # the late answer
    truthful.update([ROW, ROW, ROW], [ARM, 1, 3], [True, True, False], now=2.0)
    assert _tables(corrected) == _tables(truthful)
    assert corrected.total_outcomes == truthful.total_outcomes == 303


def test_under_a_half_life_what_the_clock_left_of_the_rejection_is_taken_back() -> None:
    config = BanditConfig(half_life=100.0)
    corrected, truthful = _bandit(config, 2000), _bandit(config, 2000)
    corrected.update([ROW], [ARM], [False], now=0.0)
    corrected.retract_rejections([ROW], [ARM], [0], [0.0], now=100.0)
    truthful.update([ROW], [ARM], [True], now=0.0)
    truthful.retract_rejections([ROW], [ARM], [0], [0.0], now=100.0)  # as if it never was
    corrected.update([ROW], [ARM], [True], now=100.0)
    untouched = _bandit(config, 2000)
    untouched.update([ROW], [ARM], [True], now=100.0)
    mine, theirs = _tables(corrected), _tables(untouched)
    assert mine["beta"] == pytest.approx(theirs["beta"], rel=1e-12)
    assert mine["alpha"] == pytest.approx(theirs["alpha"], rel=1e-12)
    assert mine["failures"] == theirs["failures"]


def test_under_adaptive_forgetting_each_rate_loses_what_it_still_held_of_the_rejection() -> None:
    config = BanditConfig()  # adaptive forgetting, the default
    corrected, kept = _bandit(config, 3000), _bandit(config, 3000)
    rng = np.random.default_rng(8)
    later = (rng.integers(0, 4, 400), rng.random(400) < 0.4)
    for bandit in (corrected, kept):
        bandit.update([ROW], [ARM], [False], now=1.0)
        for arm, won in zip(*later, strict=True):  # one at a time: the rates fade per outcome
            bandit.update([ROW], [int(arm)], [bool(won)], now=2.0)
    since = int(kept.context_outcomes([ROW])[0]) - 400  # the context's count after the rejection
    corrected.retract_rejections([ROW], [ARM], [since], [1.0], now=3.0)
    after, before = (
        np.asarray(b.to_document(arrays=False)["contexts"]["rate_failures"])[ROW]  # type: ignore[index]
        for b in (corrected, kept)
    )
    taken = before - after  # (rates, arms)
    half_lives = np.asarray(ADAPTIVE_HALF_LIVES)
    assert taken[:, ARM] == pytest.approx(0.5 ** (400 / half_lives), rel=1e-3)
    assert np.delete(taken, ARM, axis=1) == pytest.approx(0.0, abs=0.0)
    assert _tables(corrected)["failures"][ARM] == _tables(kept)["failures"][ARM] - 1
    assert corrected.total_outcomes == kept.total_outcomes - 1


def test_a_retraction_never_takes_a_posterior_below_its_prior_or_a_count_below_zero() -> None:
    bandit = Bandit(BanditConfig(forgetting="none"))
    bandit.context_index("Airport", "high")
    bandit.retract_rejections([ROW, ROW], [ARM, ARM], [0, 0], [0.0, 0.0], now=0.0)
    tables = _tables(bandit)
    assert tables["beta"] == [1.0] * 4
    assert tables["failures"] == tables["pulls"] == [0] * 4
    assert bandit.total_outcomes == 0
