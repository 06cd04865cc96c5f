"""``monotone-ts``: Thompson draws projected onto curves that do not rise with price.

With data, each arm's draw is pooled with its neighbours wherever the order is
violated, weighted by the arm's pseudo-count ``alpha + beta`` (weighted
pool-adjacent-violators, in its closed min-max form). With (almost) no data
the draws are sorted instead: sorted independent draws from one prior are an
exact draw from that prior restricted to non-increasing curves. The reference
form (:func:`monotone_from_draws`), the one-context form and the plain-float
row form are below, side by side; they agree bit for bit.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import numpy.typing as npt

from dynpricing.core.policies.base import FloatArray, Policy
from dynpricing.core.posterior import sample_acceptance

SCARCE_EVIDENCE_PER_ARM = 10  # below this many outcomes per arm a context's draws are sorted


class MonotoneThompson(Policy):
    """Independent Beta draws, then the monotone projection (or sorting while scarce)."""

    name = "monotone-ts"

    def draw(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        rng: np.random.Generator,
        fits: FloatArray | None = None,
    ) -> FloatArray:
        return sample_monotone_acceptance(alpha, beta, rng, self.prior)

    def draw_one_context(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        n: int,
        rng: np.random.Generator,
        fit: FloatArray | None = None,
    ) -> FloatArray:
        draws: FloatArray = rng.beta(alpha, beta, size=(n, alpha.size))
        return monotone_one_context(draws, alpha, beta, self.prior)

    def draw_row(
        self,
        alpha: list[float],
        beta: list[float],
        rng: np.random.Generator,
        fit: list[float] | None = None,
    ) -> list[float]:
        draws = [rng.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
        return monotone_row(draws, alpha, beta, self.prior)


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
    # ufunc methods rather than np.cumsum / .min: the same numbers without a Python wrapper
    cum_w = np.concatenate([zero, np.add.accumulate(weights, axis=-1)], axis=-1)
    cum_wv = np.concatenate([zero, np.add.accumulate(weights * values, axis=-1)], axis=-1)
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
    fitted: FloatArray = np.minimum.reduce(np.where(upper, best, np.inf), axis=-2)
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
    scarce = scarce_evidence(alpha, beta, prior)
    if np.any(scarce):
        fitted[scarce] = -np.sort(-draws[scarce], axis=-1)
    return fitted


def scarce_evidence(
    alpha: FloatArray, beta: FloatArray, prior: tuple[float, float]
) -> npt.NDArray[np.bool_]:
    """Rows with too little evidence to project: :func:`monotone_from_draws` sorts those."""
    n_arms = alpha.shape[-1]
    evidence = (alpha + beta).sum(axis=-1) - n_arms * (prior[0] + prior[1])
    scarce: npt.NDArray[np.bool_] = evidence < SCARCE_EVIDENCE_PER_ARM * n_arms
    return scarce


def monotone_one_context(
    draws: FloatArray, alpha: FloatArray, beta: FloatArray, prior: tuple[float, float]
) -> FloatArray:
    """:func:`monotone_from_draws` for rows ``(m, n_arms)`` of one context ``(n_arms,)``.

    Bit for bit the same: the weights and the scarcity test are the context's,
    so they are computed once rather than per row, and scarce rows skip the
    projection their sorted draws replace anyway. Ufunc methods are called
    directly: on a few arms their Python wrappers cost more than the work.
    """
    if _scarce(alpha.tolist(), beta.tolist(), prior):
        sorted_draws: FloatArray = -np.sort(-draws, axis=-1)
        return sorted_draws
    weights = alpha + beta
    n_arms = weights.size
    cum_w = np.zeros(n_arms + 1)
    np.add.accumulate(weights, out=cum_w[1:])
    cum_wv = np.zeros((draws.shape[0], n_arms + 1))
    np.add.accumulate(weights * draws, axis=-1, out=cum_wv[:, 1:])
    # the min-max form of monotone_decreasing_fit with the row-independent half computed once
    upper = _upper_triangle(n_arms)
    denominator = np.where(upper, cum_w[None, 1:] - cum_w[:-1, None], 1.0)
    numerator = cum_wv[:, None, 1:] - cum_wv[:, :-1, None]
    means = np.where(upper, numerator / denominator, -np.inf)
    best = np.maximum.accumulate(means[..., ::-1], axis=-1)[..., ::-1]
    fitted: FloatArray = np.minimum.reduce(np.where(upper, best, np.inf), axis=-2)
    return fitted


def _scarce(alpha: list[float], beta: list[float], prior: tuple[float, float]) -> bool:
    """:func:`scarce_evidence` of one context's row, summed in plain floats.

    The sum's order differs from numpy's, so where that could matter (evidence
    within rounding of the threshold) the numpy form decides.
    """
    n_arms = len(alpha)
    total = sum(alpha) + sum(beta)
    evidence = total - n_arms * (prior[0] + prior[1])
    threshold = SCARCE_EVIDENCE_PER_ARM * n_arms
    if abs(evidence - threshold) <= 1e-9 * (total + threshold):
        return bool(scarce_evidence(np.array([alpha]), np.array([beta]), prior)[0])
    return evidence < threshold


def monotone_row(
    draws: list[float], alpha: list[float], beta: list[float], prior: tuple[float, float]
) -> list[float]:
    """:func:`monotone_from_draws` of one row, in plain floats (cheaper for a few arms).

    The same additions, products, divisions, minima and maxima as the numpy
    form, in the same order, so the same numbers to the last bit.
    """
    if _scarce(alpha, beta, prior):
        return sorted(draws, reverse=True)
    n_arms = len(draws)
    weights = [a + b for a, b in zip(alpha, beta, strict=True)]
    cum_w = [0.0] * (n_arms + 1)
    cum_wv = [0.0] * (n_arms + 1)
    acc_w = acc_wv = 0.0
    for arm in range(n_arms):
        w = weights[arm]
        acc_w = w if arm == 0 else acc_w + w
        acc_wv = w * draws[arm] if arm == 0 else acc_wv + w * draws[arm]
        cum_w[arm + 1] = acc_w
        cum_wv[arm + 1] = acc_wv
    # best[j][i] = max over k >= i of mean(j..k); fitted[i] = min over j <= i of best[j][i]
    fitted = [math.inf] * n_arms
    for j in range(n_arms):
        running = -math.inf
        suffix = [0.0] * n_arms
        for k in range(n_arms - 1, j - 1, -1):
            mean = (cum_wv[k + 1] - cum_wv[j]) / (cum_w[k + 1] - cum_w[j])
            running = max(running, mean)
            suffix[k] = running
        for i in range(j, n_arms):
            fitted[i] = min(fitted[i], suffix[i])
    return fitted
