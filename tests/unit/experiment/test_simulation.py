"""The vectorised experiment: common random numbers, delays, and agreement with the bandit."""

from __future__ import annotations

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.market import load_market
from dynpricing.experiment.policies import parse_policy
from dynpricing.experiment.scoring import score, served_revenue_pct
from dynpricing.experiment.simulation import POLICY_STREAM, make_streams, simulate
from tests.unit.core.test_market import l6_document


def test_streams_are_shared_by_policies_and_reproducible_by_seed() -> None:
    market = load_market(l6_document())
    first = make_streams(market, 500, 3, 0.0, seed=4)
    again = make_streams(market, 500, 3, 0.0, seed=4)
    np.testing.assert_array_equal(first.contexts, again.contexts)
    np.testing.assert_array_equal(first.uniforms, again.uniforms)
    assert not np.array_equal(first.contexts, make_streams(market, 500, 3, 0.0, seed=5).contexts)


def test_immediate_feedback_is_visible_to_the_next_decision() -> None:
    streams = make_streams(load_market(l6_document()), 100, 2, 0.0, seed=0)
    # before decision t, exactly the 2 seeds x t earlier outcomes have arrived
    np.testing.assert_array_equal(streams.due_starts[:100], 2 * np.arange(100))


def test_delayed_feedback_arrives_later_on_average_by_the_delay_mean() -> None:
    streams = make_streams(load_market(l6_document()), 4000, 5, 200.0, seed=0)
    due = np.empty(streams.due_order.size, dtype=np.int64)
    for step in range(streams.horizon + 1):
        lo = streams.due_starts[step - 1] if step else 0
        due[streams.due_order[lo : streams.due_starts[step]]] = step
    # outcomes due after the horizon never arrive; among the rest the lag is about the mean
    arrived = streams.due_order[: streams.due_starts[-1]]
    lag = due[arrived] - arrived % streams.horizon - 1
    assert np.all(lag >= 0)
    assert 150 < lag.mean() < 210


@pytest.mark.parametrize(
    "policy",
    [
        "ts-revenue",
        "shape-ts-revenue",
        "monotone-ts-revenue",
        "shrink-ts-revenue",
        "shrink-ts-revenue+adaptive",
        "ts-revenue+hl50",
    ],
)
def test_the_experiment_decides_exactly_like_the_engines_bandit(policy: str) -> None:
    market = load_market(l6_document())
    streams = make_streams(market, 400, 1, 0.0, seed=11)
    run = simulate(parse_policy(policy), market, streams, seed=11)
    spec = parse_policy(policy)
    config = BanditConfig(
        prices=tuple(market.prices),
        policy=spec.core_policy,
        half_life=spec.half_life,
        forgetting="adaptive" if spec.adaptive else "none",
    )
    bandit = Bandit(config)
    rows = [bandit.context_index(*key) for key in market.contexts]
    rng = np.random.default_rng([11, POLICY_STREAM])
    for step in range(400):
        if step:
            bandit.update(
                [rows[streams.contexts[0, step - 1]]],
                [run.arms[0, step - 1]],
                [run.accepted[0, step - 1]],
                now=float(step),
            )
        arm = bandit.choose([rows[streams.contexts[0, step]]], rng, now=float(step))
        assert arm[0] == run.arms[0, step], f"decision {step} differs"


def test_the_oracle_scores_one_hundred_percent_and_no_regret() -> None:
    market = load_market(l6_document())
    streams = make_streams(market, 300, 4, 0.0, seed=0)
    result = score(simulate(parse_policy("oracle"), market, streams, 0), market, streams)
    np.testing.assert_allclose(result.oracle_revenue_pct, 100.0)
    np.testing.assert_allclose(result.regret, 0.0, atol=1e-12)
    np.testing.assert_allclose(result.optimal_arm_share, 1.0)


def test_scores_of_a_two_arm_market_match_hand_arithmetic() -> None:
    # one context, revenues 0.9 (arm 0) and 1.2 (arm 1): always pricing 1.0 earns 75 %
    market = load_market(
        {
            "prices": [1.0, 2.0],
            "contexts": [{"location": "A", "demand_level": "low", "acceptance": [0.9, 0.6]}],
        }
    )
    streams = make_streams(market, 1000, 3, 0.0, seed=0)
    run = simulate(parse_policy("ts-acceptance"), market, streams, 0)
    run.arms[:] = 0
    result = score(run, market, streams)
    np.testing.assert_allclose(result.oracle_revenue_pct, 75.0)
    np.testing.assert_allclose(result.regret, 300.0)
    np.testing.assert_allclose(result.optimal_arm_share, 0.0)
    np.testing.assert_allclose(result.cumulative_regret[[0, 9, 999]], [0.3, 3.0, 300.0])


def test_the_experiment_forgets_exactly_like_the_engines_bandit_after_a_change() -> None:
    market = load_market(l6_document() | {"drift": [{"at": 0.3, "logit_shift": 3.0}]})
    streams = make_streams(market, 1500, 1, 0.0, seed=5)
    spec = parse_policy("ts-revenue+adaptive")
    run = simulate(spec, market, streams, seed=5)
    bandit = Bandit(BanditConfig(prices=tuple(market.prices), policy=spec.core_policy))
    rows = [bandit.context_index(*key) for key in market.contexts]
    rng = np.random.default_rng([5, POLICY_STREAM])
    for step in range(1500):
        if step:
            previous = streams.contexts[0, step - 1]
            bandit.update(
                [rows[previous]], [run.arms[0, step - 1]], [run.accepted[0, step - 1]], now=step
            )
        arm = bandit.choose([rows[streams.contexts[0, step]]], rng, now=float(step))
        assert arm[0] == run.arms[0, step], f"decision {step} differs"
    stats = bandit.arm_stats()
    forgot = stats.alpha != 1.0 + stats.successes
    assert forgot.any()  # the change was big enough for some context to forget


def test_pricing_for_the_drivers_serves_far_more_revenue_than_pricing_for_one_customer() -> None:
    market = load_market(l6_document())  # default supply: high demand has 25 requests, 10 drivers
    streams = make_streams(market, 2000, 5, 0.0, seed=2)
    plain = simulate(parse_policy("ts-revenue"), market, streams, seed=2)
    aware = simulate(parse_policy("ts-revenue-supply"), market, streams, seed=2)
    gain = served_revenue_pct(aware, market, streams) - served_revenue_pct(plain, market, streams)
    # about +9 points in every seed at this horizon (+10.6 at 20,000 with the default policy)
    assert np.all(gain > 3.0)
