"""Hypothesis properties of the bandit under arbitrary outcome streams and configurations."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.policies import OBJECTIVES, POLICIES

configs = st.builds(
    BanditConfig,
    prices=st.sampled_from(
        [(1.0, 1.2, 1.5, 2.0), (0.8, 1.0), (1.0, 1.1, 1.25, 1.4, 1.6, 2.0, 3.0)]
    ),
    prior_alpha=st.floats(0.1, 5.0),
    prior_beta=st.floats(0.1, 5.0),
    objective=st.sampled_from(OBJECTIVES),
    policy=st.sampled_from(POLICIES),
    half_life=st.one_of(st.none(), st.floats(1.0, 1e4)),
    forgetting=st.sampled_from(["adaptive", "none"]),
    forgetting_floor=st.floats(0.0, 50.0),
    propensity_draws=st.integers(1, 32),
)
steps = st.lists(
    st.tuples(
        st.lists(st.integers(0, 2), min_size=1, max_size=12),  # contexts of a batch
        st.integers(0, 2**32 - 1),  # outcome seed
        st.floats(0.0, 100.0),  # clock advance
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=80, deadline=None)
@given(configs, steps, st.integers(0, 2**32 - 1))
def test_decisions_stay_on_the_grid_params_positive_propensities_valid(
    config: BanditConfig, batches: list[tuple[list[int], int, float]], seed: int
) -> None:
    bandit = Bandit(config)
    for location in ("A", "B", "C"):
        bandit.context_index(location, "high")
    rng = np.random.default_rng(seed)
    now = 0.0
    for contexts, outcome_seed, advance in batches:
        now += advance
        rows = np.array(contexts)
        supply = np.random.default_rng(outcome_seed).integers(0, 40, (2, rows.size))
        batch = bandit.decide(rows, rng, now, requests=supply[0], drivers=supply[1])
        assert batch.arms.dtype == np.int64
        assert np.all((batch.arms >= 0) & (batch.arms < len(config.prices)))
        assert np.all((batch.propensities > 0) & (batch.propensities <= 1))
        accepted = np.random.default_rng(outcome_seed).random(rows.size) < 0.5
        bandit.update(rows, batch.arms, accepted, now)
        stats = bandit.arm_stats()
        assert np.all(stats.alpha >= config.prior_alpha - 1e-12)
        assert np.all(stats.beta >= config.prior_beta - 1e-12)
        assert np.all(stats.alpha > 0)
        assert np.all(stats.beta > 0)
        assert np.all(stats.pulls == stats.successes + stats.failures)
        for row in range(3 if config.objective != "revenue-supply" else 0):
            probabilities = bandit.propensities(row, rng, now)
            assert np.all(probabilities >= 0)
            assert abs(probabilities.sum() - 1.0) < 1e-12
    assert bandit.total_outcomes == sum(len(c) for c, _, _ in batches)
