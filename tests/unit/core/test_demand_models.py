"""The logistic shape models and the model averaging behind ``shape-ts`` and ``shrink-ts``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynpricing.core import demand_models
from dynpricing.core.demand_models import (
    beta_log_evidence,
    fit_logistic,
    log_gamma,
)
from dynpricing.core.policies import POLICY_SHAPE_TS, POLICY_SHRINK_TS, make_policy

PRICES = np.array([1.0, 1.2, 1.5, 2.0])
X = PRICES - 1.0


def test_log_gamma_matches_the_standard_library() -> None:
    points = np.concatenate([np.linspace(0.05, 30, 300), np.logspace(1, 7, 50)])
    expected = np.array([math.lgamma(v) for v in points])
    np.testing.assert_allclose(log_gamma(points), expected, rtol=1e-10, atol=1e-10)


def test_beta_evidence_of_one_arm_is_the_beta_binomial_likelihood() -> None:
    # with a uniform prior, P(1 success then 1 failure) = B(2, 2) / B(1, 1) = 1/6
    evidence = beta_log_evidence(np.array([[2.0]]), np.array([[2.0]]), 1.0, 1.0)
    assert evidence[0] == pytest.approx(math.log(1 / 6))


def test_newton_steps_reach_the_mode_of_hard_count_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    trials = rng.integers(0, 3000, (4000, 4)) * (rng.random((4000, 4)) < 0.7)
    truth = 1 / (1 + np.exp(-(rng.uniform(-1, 3, (4000, 1)) - rng.uniform(0, 5, (4000, 1)) * X)))
    successes = rng.binomial(trials, truth).astype(float)
    failures = trials - successes
    fast = fit_logistic(successes, failures, X)
    monkeypatch.setattr(demand_models, "NEWTON_STEPS", 60)
    converged = fit_logistic(successes, failures, X)
    np.testing.assert_allclose(fast.mode, converged.mode, atol=0.01)
    np.testing.assert_allclose(fast.log_evidence, converged.log_evidence, atol=0.01)


def test_fit_recovers_a_logistic_curve_from_plenty_of_data() -> None:
    truth = 1 / (1 + np.exp(-(1.2 - 3.0 * X)))
    trials = np.full((1, 4), 20_000.0)
    fit = fit_logistic(trials * truth, trials * (1 - truth), X)
    np.testing.assert_allclose(fit.mode[0], [1.2, 3.0], atol=0.01)


def _weights(acceptance: list[float], trials: float) -> np.ndarray:
    """Posterior model probabilities (Beta, logistic-price, logistic-log-price)."""
    p = np.array([acceptance])
    alpha, beta = 1 + trials * p, 1 + trials * (1 - p)
    evidence = [beta_log_evidence(alpha, beta, 1.0, 1.0)[0]]
    for x in demand_models.price_features(PRICES).values():
        evidence.append(fit_logistic(alpha - 1, beta - 1, x).log_evidence[0])
    log_w = np.array(evidence) - max(evidence)
    return np.exp(log_w) / np.exp(log_w).sum()


def test_evidence_prefers_a_logistic_shape_when_the_data_are_logistic() -> None:
    logistic = list(1 / (1 + np.exp(-(2.0 - 3.0 * X))))
    assert _weights(logistic, 2000)[1] > 0.9


def test_evidence_abandons_the_shapes_when_the_data_have_a_cliff() -> None:
    assert _weights([0.9, 0.88, 0.85, 0.15], 500)[0] > 0.999


@pytest.mark.parametrize("policy", [POLICY_SHAPE_TS, POLICY_SHRINK_TS])
def test_model_average_draws_are_probabilities_per_arm(policy: str) -> None:
    rng = np.random.default_rng(1)
    alpha = rng.uniform(1, 200, (300, 4))
    beta = rng.uniform(1, 200, (300, 4))
    draws = make_policy(policy, PRICES).draw(alpha, beta, rng)
    assert draws.shape == (300, 4)
    assert np.all((draws >= 0) & (draws <= 1))
