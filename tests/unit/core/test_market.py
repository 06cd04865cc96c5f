"""The market model: true curves, oracle, regret, drift, and refusal of bad files."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import numpy as np
import pytest

from dynpricing.core.errors import MarketFileError
from dynpricing.core.market import load_market


def l6_document() -> dict[str, Any]:
    text = resources.files("dynpricing").joinpath("data", "l6.json").read_text()
    document: dict[str, Any] = json.loads(text)
    return document


def test_l6_revenue_optimum_differs_by_context_while_acceptance_optimum_is_cheapest() -> None:
    market = load_market(l6_document())
    assert market.oracle_arms().tolist() == [1, 1, 2, 0, 1, 2]
    assert market.acceptance_optimal_arms().tolist() == [0] * 6


def test_logistic_acceptance_and_expected_revenue_follow_the_formula() -> None:
    market = load_market(l6_document())
    # Airport|low: sigmoid(1.2 - 3 (m - 1)); at m = 1.5 that is sigmoid(-0.3)
    expected = 1 / (1 + np.exp(0.3))
    assert market.acceptance()[0, 2] == pytest.approx(expected)
    assert market.expected_revenue()[0, 2] == pytest.approx(1.5 * expected)


def test_regret_is_oracle_revenue_minus_chosen_revenue() -> None:
    market = load_market(
        {
            "prices": [1.0, 2.0],
            "contexts": [{"location": "A", "demand_level": "low", "acceptance": [0.9, 0.6]}],
        }
    )
    # revenues 0.9 and 1.2: choosing 1.0 loses 0.3, choosing 2.0 loses nothing
    np.testing.assert_allclose(market.regret(np.array([0, 0]), np.array([0, 1])), [0.3, 0.0])


def test_drift_shifts_every_logit_from_its_fraction_of_the_horizon_on() -> None:
    document = l6_document() | {"drift": [{"at": 0.5, "logit_shift": 1.5}]}
    market = load_market(document)
    before, after = market.acceptance(0.49), market.acceptance(0.5)
    np.testing.assert_allclose(before, market.base_acceptance)
    logit = np.log(after / (1 - after)) - np.log(before / (1 - before))
    np.testing.assert_allclose(logit, 1.5)
    assert market.phase_starts(20_000) == [0, 10_000]
    assert market.oracle_arms(0.5).tolist() != market.oracle_arms(0.0).tolist()


def test_arrival_weights_are_normalised_and_default_to_one() -> None:
    document = l6_document()
    document["contexts"][0]["weight"] = 4.0
    del document["contexts"][1]["weight"]
    weights = load_market(document).weights
    assert weights.sum() == pytest.approx(1.0)
    assert weights[0] == pytest.approx(4 / 9)


def _broken(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(l6_document())
    *parents, leaf = path.split(".")
    target: Any = document
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is _DELETE:
        del target[leaf]
    else:
        target[leaf] = value
    return document


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("prices", [], "prices: expected a non-empty list"),
        ("prices", [1.0, 1.5, 1.2, 2.0], "prices: .*strictly ascending"),
        ("prices", [1.0, "x", 1.5, 2.0], r"prices\[1\]: expected a finite number"),
        ("contexts", [], "contexts: expected a non-empty list"),
        ("contexts.2.logistic.b", "steep", r"contexts\[2\]\.logistic\.b: expected a finite number"),
        ("contexts.1.logistic", _DELETE, r"contexts\[1\]: give exactly one of"),
        ("contexts.1.acceptance", [0.9, 0.8, 0.7, 0.6], r"contexts\[1\]: give exactly one of"),
        ("contexts.3.weight", 0, r"contexts\[3\]\.weight: must be > 0"),
        ("contexts.0.demand_level", "peak", r"contexts\[0\]\.demand_level: expected one of"),
        ("contexts.0.location", "", r"contexts\[0\]\.location: expected a non-empty string"),
        ("contexts.3.location", "Airport", r"contexts\[3\]: duplicate context"),
        ("drift", [{"at": 1.5, "logit_shift": 1.0}], r"drift\[0\]\.at: must be a fraction"),
        ("drift", [{"at": 0.5}], r"drift\[0\]\.logit_shift: expected a finite number"),
        ("drift", {"at": 0.5}, "drift: expected a list"),
        (
            "drift",
            [{"at": 0.5, "logit_shift": 1.0, "contexts": [{"location": "Harbour"}]}],
            r"drift\[0\]\.contexts\[0\]: no context \('Harbour', None\)",
        ),
        ("drift", [{"at": 0.5, "logit_shift": 1.0, "contexts": []}], r"drift\[0\]\.contexts"),
        ("contexts.1.supply", {"requests": -2, "drivers": 3}, r"supply\.requests: must be >= 0"),
        ("contexts.1.supply", {"requests": 2}, r"contexts\[1\]\.supply\.drivers: expected"),
    ],
)
def test_a_bad_market_file_is_refused_naming_the_field(path: str, value: Any, message: str) -> None:
    with pytest.raises(MarketFileError, match=message):
        load_market(_broken(path, value))


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ([0.9, 0.8, 0.7], r"contexts\[0\]\.acceptance: expected 4 probabilities"),
        ([0.9, 0.8, 1.7, 0.1], r"contexts\[0\]\.acceptance\[2\]: probability 1\.7 not in \[0, 1\]"),
    ],
)
def test_a_bad_acceptance_table_is_refused_naming_the_entry(
    table: list[float], message: str
) -> None:
    document = l6_document()
    del document["contexts"][0]["logistic"]
    document["contexts"][0]["acceptance"] = table
    with pytest.raises(MarketFileError, match=message):
        load_market(document)


def test_a_market_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(MarketFileError, match="market: expected an object"):
        load_market([1, 2, 3])


def test_a_drift_moves_only_the_contexts_it_names() -> None:
    only = [{"location": "Downtown", "demand_level": "low"}]
    market = load_market(
        l6_document() | {"drift": [{"at": 0.5, "logit_shift": 2.0, "contexts": only}]}
    )
    before, after = market.acceptance(0.0), market.acceptance(0.5)
    np.testing.assert_array_equal(np.delete(after, 3, axis=0), np.delete(before, 3, axis=0))
    logit = np.log(after[3] / (1 - after[3])) - np.log(before[3] / (1 - before[3]))
    np.testing.assert_allclose(logit, 2.0)


def test_supply_defaults_by_demand_level_and_can_be_given_per_context() -> None:
    document = l6_document()
    document["contexts"][0]["supply"] = {"requests": 3, "drivers": 30}
    supply = load_market(document).mean_supply()
    assert supply[0].tolist() == [3.0, 30.0]  # Airport|low as given
    assert supply[1].tolist() == [15.0, 10.0]  # Airport|medium: the level's default
    assert supply[2].tolist() == [25.0, 10.0]  # Airport|high
