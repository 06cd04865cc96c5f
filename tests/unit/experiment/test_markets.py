"""The bundled market files are the builders' output, and every one loads."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from dynpricing.core.market import load_market
from dynpricing.experiment.markets import FAMILIES, L6_VARIANTS, drift_market


def _bundled(name: str) -> dict[str, object]:
    text = resources.files("dynpricing").joinpath("data", f"{name}.json").read_text()
    document: dict[str, object] = json.loads(text)
    return document


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bundled_family_file_equals_its_builder(family: str) -> None:
    assert _bundled(family) == json.loads(json.dumps(FAMILIES[family]()))
    load_market(_bundled(family))


@pytest.mark.parametrize("variant", sorted(L6_VARIANTS))
def test_bundled_l6_variant_file_equals_its_builder(variant: str) -> None:
    assert _bundled(variant) == json.loads(json.dumps(L6_VARIANTS[variant](_bundled("l6"))))


def test_bundled_drift_market_is_l6_with_the_issue_drift() -> None:
    assert _bundled("l6-drift") == drift_market(_bundled("l6"))
    assert load_market(_bundled("l6-drift")).drift[0].logit_shift == 1.5


def test_families_break_the_logistic_shape_in_different_ways() -> None:
    # the cliff family must have a context whose revenue is not single-peaked in price
    revenue = load_market(_bundled("cliff")).expected_revenue()
    rises_after_falling = [(row[2] < row[1]) and (row[3] > row[2]) for row in revenue]
    assert any(rises_after_falling)


def _revenue(family: str) -> np.ndarray:
    return load_market(_bundled(family)).expected_revenue()


def test_near_tie_steep_has_its_best_two_prices_within_two_percent_and_a_steep_top() -> None:
    market = load_market(_bundled("near-tie-steep"))
    revenue = np.sort(market.expected_revenue(), axis=1)
    gap = (revenue[:, -1] - revenue[:, -2]) / revenue[:, -1]
    assert np.all(gap <= 0.02)
    acceptance = market.acceptance()
    assert np.all(acceptance[:, -1] < 0.5 * acceptance[:, -2])  # the drop at the top price


def test_plateau_and_non_monotone_break_falling_acceptance_their_own_ways() -> None:
    plateau = load_market(_bundled("plateau")).acceptance()
    assert all(np.any(np.diff(row) == 0.0) for row in plateau)  # equal acceptance over a range
    rising = load_market(_bundled("non-monotone")).acceptance()
    assert all(np.any(np.diff(row) > 0.0) for row in rising)  # rises with price somewhere


def test_context_skew_puts_most_traffic_on_a_few_contexts() -> None:
    weights = np.sort(load_market(_bundled("context-skew")).weights)[::-1]
    assert weights[:3].sum() > 0.75
    assert weights.size >= 60


def test_large_grid_has_twelve_prices() -> None:
    assert load_market(_bundled("large-grid")).prices.size == 12


def test_drifting_variants_move_as_named() -> None:
    one = load_market(_bundled("l6-one-shift"))
    moved = one.acceptance(0.5) != one.acceptance(0.0)
    assert moved.any(axis=1).tolist() == [False, False, False, True, False, False]
    assert one.oracle_arms(0.5)[3] != one.oracle_arms(0.0)[3]
    trend = load_market(_bundled("l6-trend"))
    steps = [trend.acceptance(k / 20)[0, 0] for k in range(20)]
    assert np.all(np.diff(steps) > 0)  # up a little at every step
