"""The bundled market files are the builders' output, and every one loads."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from dynpricing.core.market import load_market
from dynpricing.experiment.markets import FAMILIES, drift_market


def _bundled(name: str) -> dict[str, object]:
    text = resources.files("dynpricing").joinpath("data", f"{name}.json").read_text()
    document: dict[str, object] = json.loads(text)
    return document


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_bundled_family_file_equals_its_builder(family: str) -> None:
    assert _bundled(family) == json.loads(json.dumps(FAMILIES[family]()))
    load_market(_bundled(family))


def test_bundled_drift_market_is_l6_with_the_issue_drift() -> None:
    assert _bundled("l6-drift") == drift_market(_bundled("l6"))
    assert load_market(_bundled("l6-drift")).drift[0].logit_shift == 1.5


def test_families_break_the_logistic_shape_in_different_ways() -> None:
    # the cliff family must have a context whose revenue is not single-peaked in price
    revenue = load_market(_bundled("cliff")).expected_revenue()
    rises_after_falling = [(row[2] < row[1]) and (row[3] > row[2]) for row in revenue]
    assert any(rises_after_falling)
