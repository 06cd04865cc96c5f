"""Target policies and the replay method on logs of the engine's own bandit."""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import numpy as np
import pytest

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PricingError
from dynpricing.core.market import Market, load_market
from dynpricing.evaluate.dataset import EvaluationLog, LearningStream
from dynpricing.evaluate.estimators import LoggedDecisions
from dynpricing.evaluate.replay import replay
from dynpricing.evaluate.simulate import learning_curve, log_market, logged_evaluation
from dynpricing.evaluate.targets import (
    FrozenPolicy,
    InformedPolicy,
    parse_fixed_prices,
    parse_policy,
)


@pytest.fixture(scope="module")
def market() -> Market:
    raw = resources.files("dynpricing").joinpath("data", "l6.json").read_text()
    return load_market(json.loads(raw))


@pytest.fixture(scope="module")
def log(market: Market) -> EvaluationLog:
    config = BanditConfig(prices=tuple(market.prices.tolist()))
    return logged_evaluation(log_market(market, 600, seed=3, config=config), market)


def test_fixed_prices_pick_the_most_specific_rule(log: EvaluationLog) -> None:
    target = parse_fixed_prices("t", "high=2.0,Airport|high=1.5,Downtown=1.0,*=1.2")
    assert target.price_for("Airport", "high") == 1.5
    assert target.price_for("Downtown", "high") == 1.0
    assert target.price_for("Elsewhere", "high") == 2.0
    assert target.price_for("Elsewhere", "low") == 1.2
    probabilities = target.probabilities(log, np.random.default_rng(0))
    assert set(np.unique(probabilities)) == {0.0, 1.0}
    chosen = log.prices[probabilities.argmax(axis=1)]
    expected = [target.price_for(*log.contexts[c]) for c in log.decisions.contexts]
    np.testing.assert_array_equal(chosen, expected)


def test_a_fixed_price_needs_a_rule_for_every_context(log: EvaluationLog) -> None:
    target = parse_fixed_prices("t", "Airport|high=1.5")
    with pytest.raises(PricingError, match="no price for context"):
        target.probabilities(log, np.random.default_rng(0))


@pytest.mark.parametrize(
    ("spec", "message"),
    [("", "names no price"), ("x", "not a number"), ("low=0", "must be > 0"), ("1,2", "twice")],
)
def test_bad_fixed_price_specs_are_refused(spec: str, message: str) -> None:
    with pytest.raises(PricingError, match=message):
        parse_fixed_prices("t", spec)


def test_a_built_in_policy_is_parsed_with_its_settings() -> None:
    config = parse_policy("monotone-ts-acceptance:half_life=60,prior_beta=2", (1.0, 2.0))
    assert (config.policy, config.objective) == ("monotone-ts", "acceptance")
    assert (config.half_life, config.prior_beta, config.prior_alpha) == (60.0, 2.0, 1.0)
    with pytest.raises(PricingError, match="unknown policy"):
        parse_policy("greedy-revenue", (1.0, 2.0))
    with pytest.raises(PricingError, match="bad setting"):
        parse_policy("ts-revenue:alpha=2", (1.0, 2.0))


def test_an_informed_policy_knows_only_what_was_learnt_before_each_decision(
    log: EvaluationLog,
) -> None:
    """Its probabilities at decision i must not depend on any outcome learnt after it."""
    config = BanditConfig(prices=tuple(log.prices.tolist()), policy="ts")
    full = InformedPolicy("ts", config).probabilities(log, np.random.default_rng(5))
    cut = 300
    later = log.learning.times > log.times[cut]
    flipped = replace(
        log,
        learning=replace(
            log.learning, accepted=np.where(later, ~log.learning.accepted, log.learning.accepted)
        ),
    )
    again = InformedPolicy("ts", config).probabilities(flipped, np.random.default_rng(5))
    np.testing.assert_array_equal(full[: cut + 1], again[: cut + 1])
    assert not np.array_equal(full[cut + 1 :], again[cut + 1 :])


def test_a_frozen_snapshot_decides_as_the_bandit_it_was_taken_from(log: EvaluationLog) -> None:
    config = BanditConfig(prices=tuple(log.prices.tolist()), policy="ts")
    bandit = Bandit(config)
    row = bandit.context_index("Airport", "high")
    bandit.update([row] * 40, [2] * 20 + [0] * 20, [True] * 20 + [False] * 20, now=0.0)
    restored, _ = Bandit.from_document(json.loads(json.dumps(bandit.to_document())), config)
    target = FrozenPolicy("snapshot", restored)
    probabilities = target.probabilities(log, np.random.default_rng(2))
    airport_high = log.contexts.index(("Airport", "high"))
    rows = probabilities[log.decisions.contexts == airport_high]
    assert np.allclose(rows, rows[0])
    assert rows[0].argmax() == 2  # 1.5 always accepted, 1.0 never: the snapshot prices 1.5
    assert len(target.unseen_contexts(log)) == len(log.contexts) - 1


def test_replay_accepts_about_one_decision_in_one_over_floor(log: EvaluationLog) -> None:
    config = BanditConfig(prices=tuple(log.prices.tolist()), policy="ts")
    result = replay(log, config, np.random.default_rng(1), floor=0.2)
    assert result.offered == log.decisions.size
    expected = log.decisions.size * 0.2
    assert abs(result.usable - expected) < 5 * np.sqrt(expected)
    assert result.clipped > 0  # decisions logged below 0.2 x target probability
    assert result.rewards.size == result.usable
    unclipped = replay(log, config, np.random.default_rng(1))
    assert unclipped.clipped == 0
    assert unclipped.floor == pytest.approx(log.decisions.propensities.min())


LOGGING = np.array([0.55, 0.15, 0.15, 0.15])  # a known, stationary logging policy


@pytest.mark.slow
def test_replay_follows_the_policys_own_learning_curve_under_a_known_logging_policy(
    market: Market,
) -> None:
    """With exact propensities the accepted decisions are the target's own run.

    The logging policy favours the cheapest price (55 %): a replay that only
    kept matching decisions, without the floor / propensity correction, would
    replay a policy that charges 1.0 far too often.
    """
    horizon, n_arms, replications = 3000, market.prices.size, 20
    config = BanditConfig(prices=tuple(market.prices.tolist()), policy="ts")
    nothing = LearningStream(
        np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, bool)
    )
    runs = []
    for seed in range(replications):
        rng = np.random.default_rng([seed, 99])
        contexts = rng.choice(len(market.contexts), size=horizon, p=market.weights)
        arms = rng.choice(n_arms, size=horizon, p=LOGGING)
        won = rng.random(horizon) < market.acceptance()[contexts, arms]
        data = LoggedDecisions(
            contexts, arms, LOGGING[arms], won, market.prices,
            np.zeros(horizon, dtype=np.int64), len(market.contexts),
        )  # fmt: skip
        log = EvaluationLog(
            data, np.arange(horizon, dtype=float), (), tuple(market.contexts), nothing, {}
        )
        result = replay(log, config, rng)
        assert result.value is not None
        runs.append((result.value, result.usable))
    curve = learning_curve(market, config, max(u for _, u in runs), 400, seed=1)
    truths = np.array([curve[:usable].mean() for _, usable in runs])
    values = np.array([interval.value for interval, _ in runs])
    errors = np.array([interval.std_error for interval, _ in runs])
    covered = sum(interval.covers(t) for (interval, _), t in zip(runs, truths, strict=True))
    assert covered >= 15  # of 20; at 95 % coverage fewer happens with probability 0.3 %
    # the mean error over 20 runs is within 4 standard errors of zero
    assert abs((values - truths).mean()) < 4 * np.sqrt((errors**2).sum()) / replications
