"""The coverage check, reduced for CI: intervals cover the market's truth, DR beats IPS.

The full table (50 seeds, longer horizons) is in ``docs/evaluation.md`` with the
command that reproduces it. Here 20 fixed seeds of a shorter horizon: at a
true coverage of 95 %, 16 or fewer covered of 20 happens with probability
1.6 %, 15 or fewer 0.3 %, so the 75 % bar below holds whatever the default
policy becomes, as long as the estimators are right.
"""

from __future__ import annotations

import json
from dataclasses import replace
from importlib import resources

import pytest

from dynpricing.core.bandit import BanditConfig
from dynpricing.core.market import Market, load_market
from dynpricing.core.policies import DEFAULT_POLICY, OBJECTIVE_REVENUE, POLICY_TS
from dynpricing.evaluate.simulate import CoverageSetup, run_coverage
from dynpricing.evaluate.targets import InformedPolicy, Target, parse_fixed_prices

SEEDS = 20
HORIZON = 800
MIN_COVERAGE = 0.75
ACCURATE_DRAWS = 1024  # logged propensities fine enough for IPS (see docs/evaluation.md)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def market() -> Market:
    raw = resources.files("dynpricing").joinpath("data", "l6.json").read_text()
    return load_market(json.loads(raw))


def targets(market: Market) -> list[Target]:
    prices = tuple(market.prices.tolist())
    oracle = ",".join(
        f"{location}|{level}={market.prices[arm]}"
        for (location, level), arm in zip(market.contexts, market.oracle_arms(), strict=True)
    )
    return [
        parse_fixed_prices("fixed:oracle", oracle),
        InformedPolicy("ts-revenue", BanditConfig(prices=prices, policy=POLICY_TS)),
        InformedPolicy(f"{DEFAULT_POLICY}-{OBJECTIVE_REVENUE}", BanditConfig(prices=prices)),
    ]


def coverage(market: Market, logging: BanditConfig) -> dict[str, dict[str, dict[str, float]]]:
    setup = CoverageSetup(market, HORIZON, SEEDS, 4000, logging, targets(market))
    result: dict[str, dict[str, dict[str, float]]] = run_coverage(setup)["targets"]  # type: ignore[assignment]
    return result


def test_every_estimator_covers_every_target_when_logged_propensities_are_accurate(
    market: Market,
) -> None:
    logging = replace(BanditConfig(prices=tuple(market.prices.tolist())), propensity_draws=1024)
    found = coverage(market, logging)
    assert set(found) == {t.name for t in targets(market)}
    for target, estimators in found.items():
        for estimator, row in estimators.items():
            assert row["coverage"] >= MIN_COVERAGE, (target, estimator, row)
        assert estimators["dr"]["mean_interval_width"] < estimators["ips"]["mean_interval_width"]


def test_doubly_robust_covers_every_target_with_the_engines_own_propensities(
    market: Market,
) -> None:
    found = coverage(market, BanditConfig(prices=tuple(market.prices.tolist())))
    for target, estimators in found.items():
        assert estimators["dr"]["coverage"] >= MIN_COVERAGE, (target, estimators["dr"])
        assert estimators["dr"]["mean_interval_width"] < estimators["ips"]["mean_interval_width"]
