"""The engine-facing bandit: contexts, arms, decisions, propensities, learning."""

from __future__ import annotations

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PriceNotOnGridError, PricingError, UnknownContextError
from dynpricing.core.policies import POLICIES, POLICY_TS

CERTAIN = 1e7  # pseudo-counts that make a Beta posterior effectively a point mass


def test_dynamic_contexts_are_added_in_order_of_first_sight() -> None:
    bandit = Bandit(BanditConfig())
    assert bandit.context_index("Downtown", "low") == 0
    assert bandit.context_index("Airport", "high") == 1
    assert bandit.context_index("Downtown", "low") == 0
    assert bandit.contexts() == [("Downtown", "low"), ("Airport", "high")]


def test_finding_a_context_never_adds_one() -> None:
    bandit = Bandit(BanditConfig())
    assert bandit.find_context("Downtown", "low") is None
    assert bandit.n_contexts == 0
    bandit.context_index("Downtown", "low")
    assert (bandit.find_context("Downtown", "low"), bandit.n_contexts) == (0, 1)


def test_fixed_contexts_are_locations_times_levels_and_refuse_strangers() -> None:
    bandit = Bandit(BanditConfig(locations=("Airport", "Downtown")))
    assert len(bandit.contexts()) == 6
    assert bandit.context_index("Downtown", "medium") == 4
    with pytest.raises(UnknownContextError, match="'Harbour' is not configured"):
        bandit.context_index("Harbour", "low")


def test_unknown_demand_level_is_refused_even_with_dynamic_contexts() -> None:
    with pytest.raises(UnknownContextError, match="'extreme'"):
        Bandit(BanditConfig()).context_index("Airport", "extreme")


def test_contexts_grow_past_the_initial_capacity_without_losing_state() -> None:
    bandit = Bandit(BanditConfig())
    first = bandit.context_index("L0", "low")
    bandit.update([first], [2], [True], now=0.0)
    rows = [bandit.context_index(f"L{i}", "low") for i in range(1, 100)]
    assert rows == list(range(1, 100))
    assert bandit.arm_stats().successes[first].tolist() == [0, 0, 1, 0]


def test_prices_match_the_grid_within_float_tolerance() -> None:
    bandit = Bandit(BanditConfig())
    assert bandit.arm_index(1.2) == 1
    assert bandit.arm_index(0.1 + 0.2 + 0.9) == 1  # 1.2000000000000002


def test_a_price_off_the_grid_names_the_price_and_the_grid() -> None:
    with pytest.raises(
        PriceNotOnGridError, match=r"1\.3 is not on the grid \[1\.0, 1\.2, 1\.5, 2\.0\]"
    ):
        Bandit(BanditConfig()).arm_index(1.3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prices": (1.0, 1.0)}, "strictly ascending"),
        ({"prices": ()}, "non-empty"),
        ({"policy": "greedy"}, "unknown policy"),
        ({"objective": "profit"}, "unknown objective"),
        ({"prior_alpha": 0.0}, "prior must be positive"),
        ({"half_life": 0.0}, "half_life"),
        ({"locations": ("A", "A")}, "distinct"),
    ],
)
def test_bad_configuration_is_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(PricingError, match=message):
        BanditConfig(**changes)  # type: ignore[arg-type]


def _certain_bandit(acceptance: list[float], policy: str, objective: str = "revenue") -> Bandit:
    """One context whose posterior is (nearly) a point mass on the given acceptance curve."""
    # no forgetting: the shortcut below writes the posterior behind the learning rule's back
    bandit = Bandit(BanditConfig(policy=policy, objective=objective, forgetting="none"))
    row = bandit.context_index("Airport", "low")
    for arm, p in enumerate(acceptance):
        bandit.update([row, row], [arm, arm], [True, False], now=0.0)
        # shortcut for ten million outcomes: add the rest of the counts directly
        bandit._alpha[row, arm] += CERTAIN * p - 1
        bandit._beta[row, arm] += CERTAIN * (1 - p) - 1
    return bandit


@pytest.mark.parametrize("policy", POLICIES)
def test_a_certain_posterior_picks_the_revenue_optimal_price_with_propensity_one(
    policy: str,
) -> None:
    # revenue = price x acceptance = 0.8, 0.84, 0.75, 0.4 -> arm 1 (1.2) wins by a wide margin
    bandit = _certain_bandit([0.8, 0.7, 0.5, 0.2], policy)
    batch = bandit.decide(np.zeros(50, dtype=np.int64), np.random.default_rng(0), now=0.0)
    assert batch.arms.tolist() == [1] * 50
    assert batch.propensities.tolist() == [1.0] * 50


def test_the_acceptance_objective_picks_the_cheapest_price_on_the_same_posterior() -> None:
    bandit = _certain_bandit([0.8, 0.7, 0.5, 0.2], POLICY_TS, objective="acceptance")
    batch = bandit.decide(np.zeros(20, dtype=np.int64), np.random.default_rng(0), now=0.0)
    assert batch.arms.tolist() == [0] * 20


def test_plain_thompson_decisions_are_the_argmax_of_the_generators_beta_draws() -> None:
    # The contract: with a fixed seed, decisions are exactly argmax(price x Beta draw).
    bandit = Bandit(BanditConfig(policy=POLICY_TS))
    row = bandit.context_index("Airport", "low")
    bandit.update([row] * 5, [0, 0, 1, 2, 3], [True, False, True, False, False], now=0.0)
    arms = bandit.choose(np.zeros(1000, dtype=np.int64), np.random.default_rng(7), now=0.0)
    stats = bandit.arm_stats()
    draws = np.random.default_rng(7).beta(
        np.repeat(stats.alpha, 1000, axis=0), np.repeat(stats.beta, 1000, axis=0)
    )
    np.testing.assert_array_equal(arms, (draws * bandit.prices).argmax(axis=1))


def test_ties_are_broken_at_random_not_by_arm_order() -> None:
    # acceptance objective + pooled monotone draws of an untouched context tie often
    from dynpricing.core.policies import argmax_random_ties  # noqa: PLC0415

    arms = argmax_random_ties(np.ones((4000, 4)), np.random.default_rng(0))
    counts = np.bincount(arms, minlength=4)
    assert counts.min() > 850  # each arm expects 1000; 850 is > 5 standard deviations away


def test_repeated_pairs_in_one_update_all_count() -> None:
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("Airport", "high")
    bandit.update([row] * 4, [3, 3, 3, 0], [True, True, False, True], now=0.0)
    stats = bandit.arm_stats()
    assert stats.successes[row].tolist() == [1, 0, 0, 2]
    assert stats.failures[row].tolist() == [0, 0, 0, 1]
    assert stats.pulls[row].tolist() == [1, 0, 0, 3]
    assert stats.alpha[row].tolist() == [2.0, 1.0, 1.0, 3.0]
    assert stats.beta[row].tolist() == [1.0, 1.0, 1.0, 2.0]
    assert bandit.total_outcomes == 4


def test_update_refuses_mismatched_lengths_and_arms_off_the_grid() -> None:
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("Airport", "high")
    with pytest.raises(PricingError, match="equal lengths"):
        bandit.update([row, row], [0], [True, True], now=0.0)
    with pytest.raises(PricingError, match=r"arm indices must be in \[0, 4\)"):
        bandit.update([row], [4], [True], now=0.0)
    with pytest.raises(UnknownContextError):
        bandit.update([7], [0], [True], now=0.0)


def test_without_forgetting_replaying_outcomes_in_any_grouping_gives_an_identical_posterior() -> (
    None
):
    rng = np.random.default_rng(5)
    contexts = rng.integers(0, 3, 5000)
    arms = rng.integers(0, 4, 5000)
    accepted = rng.random(5000) < 0.4
    config = BanditConfig(forgetting="none")
    whole, pieces = Bandit(config), Bandit(config)
    for bandit in (whole, pieces):
        for loc in ("A", "B", "C"):
            bandit.context_index(loc, "low")
    whole.update(contexts, arms, accepted, now=1.0)
    for start in range(0, 5000, 7):
        end = start + 7
        pieces.update(contexts[start:end], arms[start:end], accepted[start:end], now=float(start))
    assert whole.to_document() == pieces.to_document()


def test_propensities_of_all_arms_sum_to_one_and_follow_the_posterior() -> None:
    bandit = _certain_bandit([0.9, 0.2, 0.1, 0.05], POLICY_TS)
    probabilities = bandit.propensities(0, np.random.default_rng(0), now=0.0)
    assert probabilities.tolist() == [1.0, 0.0, 0.0, 0.0]
    fresh = Bandit(BanditConfig())
    row = fresh.context_index("A", "low")
    spread = fresh.propensities(row, np.random.default_rng(0), now=0.0)
    assert spread.sum() == pytest.approx(1.0)
    assert np.all(spread > 0)  # under the flat prior every arm wins sometimes


def test_decisions_do_not_depend_on_whether_propensities_are_estimated() -> None:
    config = BanditConfig()
    left, right = Bandit(config), Bandit(config)
    for bandit in (left, right):
        bandit.context_index("A", "low")
        bandit.update([0, 0], [1, 2], [True, False], now=0.0)
    batch = left.decide(np.zeros(30, dtype=np.int64), np.random.default_rng(9), now=0.0)
    arms = right.choose(np.zeros(30, dtype=np.int64), np.random.default_rng(9), now=0.0)
    np.testing.assert_array_equal(batch.arms, arms)
