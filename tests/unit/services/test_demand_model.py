"""The demand producer's model: seeded, round-robin, and every demand level occurs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.contexts import DEMAND_LEVELS, demand_level
from dynpricing.producer.demand import DemandModel, DemandSample
from dynpricing.settings import ProducerSettings

RATE_PER_S = 50.0  # the producer's default rate
DAY_LENGTH_S = ProducerSettings().day_length_s
BURST_PROBABILITY = ProducerSettings().burst_probability


def _run(
    seed: int,
    events: int,
    locations: tuple[str, ...] = ("Airport", "Downtown"),
    burst_probability: float = BURST_PROBABILITY,
) -> list[DemandSample]:
    model = DemandModel(locations, np.random.default_rng(seed), DAY_LENGTH_S, burst_probability)
    return [model.sample(i / RATE_PER_S) for i in range(events)]


def _levels(samples: list[DemandSample]) -> Counter[tuple[str, str]]:
    return Counter(
        (s.location, demand_level(s.active_requests, s.available_drivers)) for s in samples
    )


def test_a_model_needs_at_least_one_location() -> None:
    with pytest.raises(ValueError, match="location"):
        DemandModel((), np.random.default_rng(0), DAY_LENGTH_S, BURST_PROBABILITY)


def test_locations_take_turns() -> None:
    samples = _run(seed=1, events=7, locations=("A", "B", "C"))
    assert [s.location for s in samples] == ["A", "B", "C", "A", "B", "C", "A"]


def test_one_seed_gives_one_sequence_of_demand() -> None:
    assert _run(seed=42, events=200) == _run(seed=42, events=200)
    assert _run(seed=42, events=200) != _run(seed=43, events=200)


@settings(max_examples=25)
@given(st.integers(min_value=0, max_value=2**32))
def test_every_demand_level_occurs_at_every_location_within_the_first_ten_seconds(
    seed: int,
) -> None:
    samples = _run(seed, events=int(10 * RATE_PER_S))
    levels = _levels(samples)
    for location in ("Airport", "Downtown"):
        for level in DEMAND_LEVELS:
            assert levels[(location, level)] > 0, (location, level, levels)


def test_requests_and_drivers_are_non_negative_integers() -> None:
    for sample in _run(seed=5, events=2000):
        assert isinstance(sample.active_requests, int)
        assert isinstance(sample.available_drivers, int)
        assert sample.active_requests >= 0
        assert sample.available_drivers >= 0


def test_bursts_push_demand_up() -> None:
    def high_share(burst_probability: float) -> float:
        samples = _run(seed=9, events=4000, burst_probability=burst_probability)
        levels = _levels(samples)
        return sum(n for (_, level), n in levels.items() if level == "high") / len(samples)

    assert high_share(1.0) > high_share(0.0) + 0.1
