"""Posterior sampling and the monotone projection shared by bandit and experiment."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from dynpricing.core.policies.monotone import monotone_decreasing_fit, sample_monotone_acceptance


def pool_adjacent_violators(values: list[float], weights: list[float]) -> list[float]:
    """Reference: the textbook sequential algorithm for a non-increasing fit."""
    blocks: list[list[float]] = []  # [weighted sum, weight, length]
    for v, w in zip(values, weights, strict=True):
        blocks.append([v * w, w, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            total, weight, length = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += weight
            blocks[-1][2] += length
    return [total / weight for total, weight, length in blocks for _ in range(int(length))]


def test_a_violating_pair_is_pooled_to_its_weighted_mean() -> None:
    # 0.2 then 0.6 rises with price; equal weights pool to 0.4, weights 3:1 to 0.3
    fit = monotone_decreasing_fit(np.array([[0.2, 0.6], [0.2, 0.6]]), np.array([[1, 1], [3, 1.0]]))
    np.testing.assert_allclose(fit, [[0.4, 0.4], [0.3, 0.3]])


def test_an_already_decreasing_draw_is_left_alone() -> None:
    values = np.array([[0.9, 0.7, 0.7, 0.1]])
    np.testing.assert_allclose(monotone_decreasing_fit(values, np.ones((1, 4))), values, atol=1e-15)


finite = st.floats(0.0, 1.0, allow_nan=False)
positive = st.floats(0.01, 100.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 8).flatmap(
        lambda k: st.tuples(
            arrays(np.float64, k, elements=finite), arrays(np.float64, k, elements=positive)
        )
    )
)
def test_projection_matches_pool_adjacent_violators(case: tuple[np.ndarray, np.ndarray]) -> None:
    values, weights = case
    fit = monotone_decreasing_fit(values[None], weights[None])[0]
    np.testing.assert_allclose(
        fit, pool_adjacent_violators(list(values), list(weights)), atol=1e-12
    )
    assert np.all(np.diff(fit) <= 1e-12)
    # a projection keeps the weighted total
    np.testing.assert_allclose(
        (fit * weights).sum(), (values * weights).sum(), rtol=1e-9, atol=1e-12
    )


def test_monotone_draws_never_rise_with_price() -> None:
    rng = np.random.default_rng(3)
    alpha = rng.uniform(0.5, 50, (500, 5))
    beta = rng.uniform(0.5, 50, (500, 5))
    draws = sample_monotone_acceptance(alpha, beta, rng)
    assert np.all(np.diff(draws, axis=1) <= 1e-12)
    assert np.all((draws >= 0) & (draws <= 1))


def test_without_data_monotone_draws_are_sorted_prior_draws() -> None:
    # sorted iid draws are an exact draw from the prior restricted to falling curves
    alpha = beta = np.ones((3, 4))
    draws = sample_monotone_acceptance(alpha, beta, np.random.default_rng(8))
    expected = -np.sort(-np.random.default_rng(8).beta(alpha, beta), axis=1)
    np.testing.assert_array_equal(draws, expected)


def test_without_data_the_top_price_is_the_least_likely_revenue_pick() -> None:
    from dynpricing.core.policies import argmax_random_ties  # noqa: PLC0415

    rng = np.random.default_rng(0)
    ones = np.ones((20_000, 4))
    draws = sample_monotone_acceptance(ones, ones, rng)
    picks = np.bincount(argmax_random_ties(draws * np.array([1.0, 1.2, 1.5, 2.0]), rng))
    assert picks.argmin() == 3
