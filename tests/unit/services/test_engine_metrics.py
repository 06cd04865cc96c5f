"""The engine's batch histogram update counts exactly what one observe per amount would."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram

from dynpricing.engine.metrics import (
    LATENCY_BUCKETS_S,
    METRIC_CONTEXT_LIMIT,
    OTHER_LOCATION,
    EngineMetrics,
    location_label,
    observe_many,
)

NAME = "dynpricing_decision_latency_seconds"


def _samples(registry: CollectorRegistry) -> dict[str, float]:
    return {
        f"{sample.name}{sorted(sample.labels.items())}": sample.value
        for family in registry.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


amounts = st.lists(
    st.sampled_from(LATENCY_BUCKETS_S)  # exactly on a bound: counted in that bucket
    | st.floats(min_value=0, max_value=20, allow_nan=False),
    max_size=50,
)


@given(amounts, amounts)
def test_observing_a_batch_counts_every_bucket_like_one_observe_per_amount(
    first: list[float], second: list[float]
) -> None:
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single, many = EngineMetrics(one_by_one).latency, EngineMetrics(batched).latency
    for batch in (first, second):
        for amount in batch:
            single.observe(amount)
        observe_many(many, batch)
    expected, got = _samples(one_by_one), _samples(batched)
    total_key = next(key for key in expected if key.startswith(f"{NAME}_sum"))
    assert got.pop(total_key) == pytest.approx(expected.pop(total_key))
    assert got == expected


def test_a_batch_lands_in_the_buckets_a_reader_of_the_registry_sees() -> None:
    registry = CollectorRegistry()
    latency = EngineMetrics(registry).latency
    observe_many(latency, [0.001, 0.0011, 3.0, 100.0])
    assert registry.get_sample_value(f"{NAME}_bucket", {"le": "0.001"}) == 1.0
    assert registry.get_sample_value(f"{NAME}_bucket", {"le": "0.0025"}) == 2.0
    assert registry.get_sample_value(f"{NAME}_bucket", {"le": "5.0"}) == 3.0
    assert registry.get_sample_value(f"{NAME}_bucket", {"le": "+Inf"}) == 4.0
    assert registry.get_sample_value(f"{NAME}_count") == 4.0
    assert registry.get_sample_value(f"{NAME}_sum") == pytest.approx(103.0021)


def test_a_batch_counts_in_a_labelled_histogram_child_too() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("dynpricing_test_seconds", "test", ("x",), registry=registry)
    child = histogram.labels("a")
    observe_many(child, [0.2, 0.7])
    assert registry.get_sample_value("dynpricing_test_seconds_count", {"x": "a"}) == 2.0
    assert registry.get_sample_value("dynpricing_test_seconds_sum", {"x": "a"}) == pytest.approx(
        0.9
    )


def test_an_empty_batch_changes_nothing() -> None:
    registry = CollectorRegistry()
    observe_many(EngineMetrics(registry).latency, [])
    assert registry.get_sample_value(f"{NAME}_count") == 0.0


def test_contexts_beyond_the_limit_share_one_location_label() -> None:
    labels = {location_label(row, f"street-{row}") for row in range(3 * METRIC_CONTEXT_LIMIT)}
    assert len(labels) == METRIC_CONTEXT_LIMIT + 1
    assert location_label(METRIC_CONTEXT_LIMIT - 1, "Airport") == "Airport"
    assert location_label(METRIC_CONTEXT_LIMIT, "Airport") == OTHER_LOCATION
