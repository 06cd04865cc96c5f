"""The simulator's customers answer from the market's true curves and score the regret."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dynpricing.core.errors import PriceNotOnGridError
from dynpricing.core.market import Market, load_market
from dynpricing.simulator.app import load_market_file
from dynpricing.simulator.customers import Customers, UnknownMarketContextError


@pytest.fixture(scope="module")
def l6() -> Market:
    return load_market_file(None)


def _customers(market: Market, seed: int = 0, delay_mean_s: float = 0.0) -> Customers:
    return Customers(market, np.random.default_rng(seed), delay_mean_s)


def test_the_bundled_market_is_l6_with_two_locations_and_three_levels(l6: Market) -> None:
    assert l6.name == "L6"
    assert {location for location, _ in l6.contexts} == {"Airport", "Downtown"}
    assert len(l6.contexts) == 6


def test_each_answer_scores_the_chosen_price_and_the_oracle_under_the_true_curves(
    l6: Market,
) -> None:
    customers = _customers(l6)
    revenue = l6.expected_revenue()
    for row, (location, level) in enumerate(l6.contexts):
        for arm, price in enumerate(l6.prices.tolist()):
            answer = customers.answer(location, level, price)
            assert answer.expected_revenue == pytest.approx(revenue[row, arm])
            assert answer.oracle_revenue == pytest.approx(revenue[row].max())
            assert answer.regret == pytest.approx(revenue[row].max() - revenue[row, arm])
            assert answer.regret >= 0


def test_the_revenue_optimal_price_has_no_regret(l6: Market) -> None:
    customers = _customers(l6)
    for row, (location, level) in enumerate(l6.contexts):
        best = float(l6.prices[l6.oracle_arms()[row]])
        assert customers.answer(location, level, best).regret == 0.0


def test_customers_accept_as_often_as_the_true_curve_says(l6: Market) -> None:
    customers = _customers(l6, seed=11)
    acceptance = l6.acceptance()
    draws = 4000
    for row, (location, level) in enumerate(l6.contexts[:2]):
        for arm, price in enumerate(l6.prices.tolist()):
            accepted = sum(customers.answer(location, level, price).accepted for _ in range(draws))
            # 4000 draws: the standard error is at most 0.008, so 0.05 is over six of them.
            assert accepted / draws == pytest.approx(acceptance[row, arm], abs=0.05)


def test_one_seed_gives_the_same_answers(l6: Market) -> None:
    def answers(seed: int) -> list[bool]:
        customers = _customers(l6, seed=seed, delay_mean_s=1.0)
        return [customers.answer("Airport", "medium", 1.5).accepted for _ in range(50)]

    assert answers(3) == answers(3)


def test_a_price_within_float_round_off_of_a_grid_price_is_that_price(l6: Market) -> None:
    exact = _customers(l6).answer("Airport", "high", 1.2)
    rounded = _customers(l6).answer("Airport", "high", 1.2000000000000002)
    assert rounded == exact


@pytest.mark.parametrize(
    ("location", "level"), [("Harbour", "low"), ("Airport", "extreme"), ("airport", "low")]
)
def test_a_context_the_market_does_not_know_is_refused(
    l6: Market, location: str, level: str
) -> None:
    with pytest.raises(UnknownMarketContextError, match=location):
        _customers(l6).answer(location, level, 1.0)


@pytest.mark.parametrize("price", [1.1, 0.0, -1.0, 3.0, float("nan")])
def test_a_price_off_the_market_grid_is_refused(l6: Market, price: float) -> None:
    with pytest.raises(PriceNotOnGridError):
        _customers(l6).answer("Airport", "low", price)


def test_a_refused_decision_is_not_counted_as_answered(l6: Market) -> None:
    customers = _customers(l6)
    with pytest.raises(PriceNotOnGridError):
        customers.answer("Airport", "low", 1.1)
    assert customers.answered == 0
    customers.answer("Airport", "low", 1.0)
    assert customers.answered == 1


def test_without_a_delay_mean_answers_are_immediate(l6: Market) -> None:
    customers = _customers(l6, delay_mean_s=0.0)
    assert all(customers.answer("Downtown", "low", 1.0).delay_s == 0.0 for _ in range(100))


def test_delays_are_positive_with_the_configured_mean(l6: Market) -> None:
    customers = _customers(l6, seed=2, delay_mean_s=2.0)
    delays = [customers.answer("Downtown", "low", 1.0).delay_s for _ in range(4000)]
    assert min(delays) >= 0.0
    # exponential, mean 2: the standard error of 4000 draws is about 0.03
    assert np.mean(delays) == pytest.approx(2.0, abs=0.2)


def _drifting_market() -> Market:
    doc: dict[str, Any] = {
        "name": "drift",
        "prices": [1.0, 2.0],
        "contexts": [{"location": "A", "demand_level": "low", "acceptance": [0.5, 0.5]}],
        "drift": [{"at": 0.5, "logit_shift": -50.0}],
    }
    return load_market(doc)


def test_a_drifting_market_changes_its_curves_halfway_through_the_horizon() -> None:
    customers = Customers(_drifting_market(), np.random.default_rng(0), 0.0, horizon=10)
    before = [customers.answer("A", "low", 2.0).expected_revenue for _ in range(5)]
    after = [customers.answer("A", "low", 2.0).expected_revenue for _ in range(5)]
    assert before == pytest.approx([1.0] * 5)
    assert max(after) < 1e-9
