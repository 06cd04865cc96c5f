"""Beta-Bernoulli posterior sampling and its monotone (price-ordered) projection.

Shared by the online :class:`~dynpricing.core.bandit.Bandit` and the offline
experiment, so the two cannot drift apart. Arrays are ``(..., n_arms)`` with arms
in ascending price order.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def sample_acceptance(alpha: FloatArray, beta: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One Thompson draw of the acceptance probability per arm, independent Betas."""
    draws: FloatArray = rng.beta(alpha, beta)
    return draws


def monotone_decreasing_fit(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted least-squares projection of each row onto non-increasing sequences.

    The closed min-max form of isotonic regression,
    ``fit[i] = min_{j<=i} max_{k>=i} mean_w(values[j..k])``, evaluated for all
    intervals at once. It costs ``O(n_arms**2)`` per row, which for a handful of
    prices is far cheaper than a Python pool-adjacent-violators loop per decision,
    and gives the same answer (the projection is unique).
    """
    n_arms = values.shape[-1]
    zero = np.zeros((*values.shape[:-1], 1))
    cum_w = np.concatenate([zero, np.cumsum(weights, axis=-1)], axis=-1)
    cum_wv = np.concatenate([zero, np.cumsum(weights * values, axis=-1)], axis=-1)
    # interval means mean[..., j, k] over arms j..k (only j <= k is meaningful)
    numerator = cum_wv[..., None, 1:] - cum_wv[..., :-1, None]
    denominator = cum_w[..., None, 1:] - cum_w[..., :-1, None]
    upper = np.triu(np.ones((n_arms, n_arms), dtype=bool))
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(upper, numerator / np.where(upper, denominator, 1.0), -np.inf)
    # best[..., j, i] = max over k >= i of means[j, k]
    best = np.maximum.accumulate(means[..., ::-1], axis=-1)[..., ::-1]
    fitted: FloatArray = np.where(upper, best, np.inf).min(axis=-2)
    return fitted


def sample_monotone_acceptance(
    alpha: FloatArray, beta: FloatArray, rng: np.random.Generator
) -> FloatArray:
    """A Thompson draw forced to respect "acceptance does not rise with price".

    Each arm's draw is pooled with its neighbours wherever the order is violated,
    weighted by the arm's pseudo-count ``alpha + beta``: a well-measured arm
    moves little, a barely-tried one is pulled to its neighbours. That is how
    evidence at one price informs the others.
    """
    return monotone_decreasing_fit(sample_acceptance(alpha, beta, rng), alpha + beta)


def posterior_mean(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """Mean of Beta(alpha, beta), elementwise."""
    mean: FloatArray = alpha / (alpha + beta)
    return mean
