"""Beta-Bernoulli posterior sampling and its monotone (price-ordered) projection.

Shared by the online :class:`~dynpricing.core.bandit.Bandit` and the offline
experiment, so the two cannot drift apart. Arrays are ``(..., n_arms)`` with arms
in ascending price order.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

SCARCE_EVIDENCE_PER_ARM = 10  # below this many outcomes per arm a context's draws are sorted


def sample_acceptance(alpha: FloatArray, beta: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One Thompson draw of the acceptance probability per arm, independent Betas."""
    draws: FloatArray = rng.beta(alpha, beta)
    return draws


SUFFIX_FORM_MIN_ROWS = 16  # from here on the per-start-arm form below is the faster one


def monotone_decreasing_fit(values: FloatArray, weights: FloatArray) -> FloatArray:
    """Weighted least-squares projection of each row onto non-increasing sequences.

    The closed min-max form of isotonic regression,
    ``fit[i] = min_{j<=i} max_{k>=i} mean_w(values[j..k])``, evaluated for all
    intervals at once. It costs ``O(n_arms**2)`` per row, which for a handful of
    prices is far cheaper than a Python pool-adjacent-violators loop per decision,
    and gives the same answer (the projection is unique). Both evaluations below
    compute every interval mean with the same operations and only take minima
    and maxima of them, so they agree bit for bit; they differ in speed.
    """
    zero = np.zeros((*values.shape[:-1], 1))
    cum_w = np.concatenate([zero, np.cumsum(weights, axis=-1)], axis=-1)
    cum_wv = np.concatenate([zero, np.cumsum(weights * values, axis=-1)], axis=-1)
    if values.ndim == 2 and values.shape[0] >= SUFFIX_FORM_MIN_ROWS:  # rows x arms
        return _fit_by_start_arm(cum_w, cum_wv)
    n_arms = values.shape[-1]
    # interval means mean[..., j, k] over arms j..k (only j <= k is meaningful)
    numerator = cum_wv[..., None, 1:] - cum_wv[..., :-1, None]
    denominator = cum_w[..., None, 1:] - cum_w[..., :-1, None]
    upper = _upper_triangle(n_arms)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = np.where(upper, numerator / np.where(upper, denominator, 1.0), -np.inf)
    # best[..., j, i] = max over k >= i of means[j, k]
    best = np.maximum.accumulate(means[..., ::-1], axis=-1)[..., ::-1]
    fitted: FloatArray = np.where(upper, best, np.inf).min(axis=-2)
    return fitted


def _fit_by_start_arm(cum_w: FloatArray, cum_wv: FloatArray) -> FloatArray:
    """The min-max form one start arm ``j`` at a time: no masked-out half to compute."""
    n_arms = cum_w.shape[-1] - 1
    suffixes = []  # suffixes[j][:, i - j] = max over k >= i of mean(j..k)
    for j in range(n_arms):
        means = (cum_wv[:, j + 1 :] - cum_wv[:, j : j + 1]) / (
            cum_w[:, j + 1 :] - cum_w[:, j : j + 1]
        )
        suffixes.append(np.maximum.accumulate(means[:, ::-1], axis=-1)[:, ::-1])
    fitted: FloatArray = np.empty((cum_w.shape[0], n_arms))
    for i in range(n_arms):
        column = suffixes[0][:, i]
        for j in range(1, i + 1):
            column = np.minimum(column, suffixes[j][:, i - j])
        fitted[:, i] = column
    return fitted


@functools.cache
def _upper_triangle(n_arms: int) -> npt.NDArray[np.bool_]:
    """``j <= k`` as an ``(n_arms, n_arms)`` mask, made once per grid size (read-only)."""
    upper = np.triu(np.ones((n_arms, n_arms), dtype=bool))
    upper.flags.writeable = False
    return upper


def sample_monotone_acceptance(
    alpha: FloatArray,
    beta: FloatArray,
    rng: np.random.Generator,
    prior: tuple[float, float] = (1.0, 1.0),
) -> FloatArray:
    """A Thompson draw forced to respect "acceptance does not rise with price".

    With data, each arm's draw is pooled with its neighbours wherever the order
    is violated, weighted by the arm's pseudo-count ``alpha + beta``: a
    well-measured arm moves little, a barely-tried one is pulled to its
    neighbours. That is how evidence at one price informs the others.

    With (almost) no data the draws are sorted instead: sorted independent
    draws from one prior are an exact draw from that prior restricted to
    non-increasing curves. This matters before feedback arrives: an
    unconstrained flat prior believes revenue rises with price and picks the
    top price half the time, while under the monotone prior the top price is
    the least likely to win. Projection would pool those draws instead, which
    keeps the preference for the top price.
    """
    return monotone_from_draws(sample_acceptance(alpha, beta, rng), alpha, beta, prior)


def monotone_from_draws(
    draws: FloatArray, alpha: FloatArray, beta: FloatArray, prior: tuple[float, float]
) -> FloatArray:
    """The deterministic half of :func:`sample_monotone_acceptance`, row by row.

    Split out so a caller can draw for every row but project only the rows it
    keeps; each row's result depends on that row alone.
    """
    fitted = monotone_decreasing_fit(draws, alpha + beta)
    n_arms = alpha.shape[-1]
    evidence = (alpha + beta).sum(axis=-1) - n_arms * (prior[0] + prior[1])
    scarce = evidence < SCARCE_EVIDENCE_PER_ARM * n_arms
    if np.any(scarce):
        fitted[scarce] = -np.sort(-draws[scarce], axis=-1)
    return fitted


def posterior_mean(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """Mean of Beta(alpha, beta), elementwise."""
    mean: FloatArray = alpha / (alpha + beta)
    return mean
