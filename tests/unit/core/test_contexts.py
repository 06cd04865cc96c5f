"""Demand levels come from the request/driver ratio with configurable thresholds."""

from __future__ import annotations

import pytest

from dynpricing.core.contexts import (
    DEMAND_LEVELS,
    ContextTable,
    DemandThresholds,
    context_key,
    demand_level,
)
from dynpricing.core.errors import PricingError


@pytest.mark.parametrize(
    ("requests", "drivers", "level"),
    [(0, 5, "low"), (4, 5, "low"), (5, 5, "medium"), (9, 5, "medium"), (10, 5, "high")],
)
def test_default_thresholds_split_at_ratios_one_and_two(
    requests: int, drivers: int, level: str
) -> None:
    assert demand_level(requests, drivers) == level


def test_zero_drivers_is_high_demand_even_without_requests() -> None:
    assert demand_level(0, 0) == "high"
    assert demand_level(3, 0) == "high"


def test_custom_thresholds_move_the_boundaries() -> None:
    thresholds = DemandThresholds(low_below=0.5, medium_below=3.0)
    assert demand_level(2, 5, thresholds) == "low"
    assert demand_level(3, 5, thresholds) == "medium"
    assert demand_level(14, 5, thresholds) == "medium"
    assert demand_level(15, 5, thresholds) == "high"


def test_thresholds_out_of_order_are_refused() -> None:
    with pytest.raises(PricingError, match="low_below <= medium_below"):
        DemandThresholds(low_below=2.0, medium_below=1.0)


def test_negative_counts_are_refused() -> None:
    with pytest.raises(PricingError, match=">= 0"):
        demand_level(-1, 3)


def test_context_key_joins_location_and_level() -> None:
    assert context_key("Airport", "high") == "Airport|high"


def test_adopted_locations_are_fresh_string_objects_equal_to_the_snapshots() -> None:
    # A snapshot's strings are allocated among numbers freed after loading; the
    # table keeps copies so that memory can go back to the operating system.
    parsed = [f"zone-{i}" for i in range(50)] * 3
    levels = [level for level in DEMAND_LEVELS for _ in range(50)]
    table = ContextTable()
    table.extend(parsed, levels)
    assert table.locations() == parsed
    assert table.levels() == levels
    assert not any(kept is given for kept, given in zip(table.locations(), parsed, strict=True))
    assert table.get("zone-7", "medium") == 57
