"""shrink-ts: how much a fitted demand curve may count; the arms' own data win in the end."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.demand_models import FIT_FIELDS, fit_columns
from dynpricing.core.policies import POLICY_SHRINK_TS, make_policy
from dynpricing.core.policies.shrink import KAPPA_OFFSET, KAPPA_PER_ROOT_OUTCOME

PRICES = np.array([1.0, 1.2, 1.5, 2.0])
SHAPES = 2
MODELS = fit_columns(SHAPES)


def _fit(acceptance: list[float], trials: float) -> tuple[np.ndarray, np.ndarray]:
    """Model weights (Beta, shape 1, shape 2) and kappa per shape and arm for exact counts."""
    p = np.array([acceptance])
    alpha, beta = 1 + trials * p, 1 + trials * (1 - p)
    row = make_policy(POLICY_SHRINK_TS, PRICES).fit(alpha, beta)[0]
    cumulative = row[len(FIT_FIELDS) * SHAPES : MODELS]
    weights = np.diff(np.concatenate([[0.0], cumulative])) / cumulative[-1]
    return weights, row[MODELS:].reshape(SHAPES, PRICES.size)


def _cap(trials: float) -> float:
    return KAPPA_PER_ROOT_OUTCOME * float(np.sqrt(trials + KAPPA_OFFSET))


def test_a_curve_that_fits_counts_as_much_as_the_cap_allows() -> None:
    logistic = list(1 / (1 + np.exp(-(2.0 - 3.0 * (PRICES - 1.0)))))
    weights, kappa = _fit(logistic, 2000)
    assert weights[1:].sum() > 0.9  # the shapes carry the model average
    np.testing.assert_allclose(kappa[0], _cap(2000))  # no excess scatter: capped, not fitted


def test_where_no_shape_fits_the_policy_is_plain_thompson_sampling() -> None:
    weights, _ = _fit([0.9, 0.88, 0.85, 0.15], 500)  # a cliff: no logistic curve near it
    assert weights[0] > 0.999


def test_a_curve_that_almost_fits_is_worth_few_outcomes_once_the_data_show_it() -> None:
    # near-tie-steep's first context: the best logistic curve ranks the best pair wrongly
    _, kappa = _fit([0.95, 0.779, 0.408, 0.087], 3000)
    # far below the cap (822): the excess scatter shows, and each arm's own 3,000
    # outcomes outweigh the curve at least five to one
    assert np.all(kappa < 0.2 * 3000)
    assert np.all(kappa < 0.6 * _cap(3000))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0.0, 5000.0), min_size=4, max_size=4),
    st.lists(st.floats(0.0, 1.0), min_size=4, max_size=4),
)
def test_a_curve_never_counts_more_than_the_cap_of_each_arm(
    trials: list[float], rates: list[float]
) -> None:
    n, p = np.array(trials), np.array(rates)
    alpha, beta = 1 + n * p, 1 + n * (1 - p)
    row = make_policy(POLICY_SHRINK_TS, PRICES).fit(alpha[None], beta[None])[0]
    kappa = row[MODELS:].reshape(SHAPES, PRICES.size)
    assert np.all(kappa > 0)
    assert np.all(kappa <= KAPPA_PER_ROOT_OUTCOME * np.sqrt(n + KAPPA_OFFSET) * (1 + 1e-12))
