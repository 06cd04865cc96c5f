"""Shape models of the acceptance curve within one context, and how much data trusts them.

A logistic curve in price shares strength across arms: a few outcomes at two
prices pin down the whole curve, so a clearly bad price is dropped after far
fewer trials than an arm-by-arm Beta model needs. But a fixed shape is wrong
on some markets, and a wrong shape learns the wrong price with confidence.
So each context weighs the shape models against the shape-free Beta model
by their marginal likelihoods (Bayesian model averaging): where a shape fits,
it is used; where the data contradict it, the Beta model takes over. The
policies that draw from these fits are :mod:`dynpricing.core.policies.shape`
and :mod:`dynpricing.core.policies.shrink`.

Parameters ``theta = (a, b)`` give ``logit(acceptance) = a - b * x`` for a
per-model feature ``x`` of the price; the posterior of ``theta`` is the Laplace
(Gaussian) approximation around its mode, fitted by a few Newton steps. All
functions take rows ``(n, n_arms)`` of effective successes and failures.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

NEWTON_STEPS = 5  # from the least-squares start; see tests/unit/core/test_demand_models.py
MAX_NEWTON_STEP = 2.0  # logits per step per parameter
LOGIT_LIMIT = 30.0  # keeps exp() finite; sigmoid(30) is 1 to double precision
PRIOR_MEAN = (0.0, 2.0)  # a: acceptance ~ 50 % at the lowest price; b: falls with price
PRIOR_VAR = (9.0, 9.0)  # weak: +-3 logits on either
LOG_2PI = math.log(2.0 * math.pi)
SHAPE_LOG_PRIOR_ODDS = -1.5  # log prior odds of each shape against the Beta model: a shape
# must earn its place, which keeps it from costing anything on shapes it cannot fit
# (the cliff family); tuned in docs/experiments.md
STIRLING_SHIFT = 8  # log Gamma's Stirling series is accurate to ~1e-13 from here on
HALF_LOG_2PI = 0.5 * LOG_2PI
_SHIFTS = np.arange(STIRLING_SHIFT, dtype=np.float64)


@dataclass(frozen=True)
class LogisticFit:
    """Laplace posterior of ``(a, b)`` per row and its log marginal likelihood."""

    mode: FloatArray  # (n, 2)
    h_aa: FloatArray  # precision matrix entries, (n,) each
    h_ab: FloatArray
    h_bb: FloatArray
    log_evidence: FloatArray  # (n,)


def _total(values: FloatArray) -> FloatArray:
    """``values.sum(axis=-1)``: the same reduction, without the method's Python wrapper.

    A fit makes dozens of these on a few arms each, where the wrapper costs
    more than the sum.
    """
    total: FloatArray = np.add.reduce(values, axis=-1)
    return total


def _product(values: FloatArray) -> FloatArray:
    """``np.prod(values, axis=-1)``, likewise."""
    product: FloatArray = np.multiply.reduce(values, axis=-1)
    return product


def log_gamma(x: FloatArray) -> FloatArray:
    """Elementwise log Gamma for x > 0 (numpy has none; the core may not import scipy).

    Shift up by ``STIRLING_SHIFT`` with the recurrence, then the Stirling series.
    """
    x = np.asarray(x, dtype=np.float64)
    shift = _product(x[..., None] + _SHIFTS)
    z = x + STIRLING_SHIFT
    inv = 1.0 / z
    inv2 = inv * inv
    series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 / 1680)))
    result: FloatArray = (z - 0.5) * np.log(z) - z + HALF_LOG_2PI + series - np.log(shift)
    return result


def log_beta_function(a: FloatArray, b: FloatArray) -> FloatArray:
    """Elementwise log B(a, b)."""
    return log_gamma(a) + log_gamma(b) - log_gamma(a + b)


@functools.lru_cache(maxsize=64)
def _prior_log_beta(prior_alpha: float, prior_beta: float) -> np.float64:
    """``log B(prior)``, the same number every fit of a bandit subtracts, computed once."""
    value: np.float64 = log_beta_function(np.full(1, prior_alpha), np.full(1, prior_beta))[0]
    return value


def beta_log_evidence(
    alpha: FloatArray, beta: FloatArray, prior_alpha: float, prior_beta: float
) -> FloatArray:
    """Log marginal likelihood of the independent-Beta model, per row."""
    prior = _prior_log_beta(prior_alpha, prior_beta)
    lg_alpha, lg_beta, lg_total = log_gamma(
        np.concatenate((alpha[None], beta[None], (alpha + beta)[None]))
    )
    evidence: FloatArray = _total(lg_alpha + lg_beta - lg_total - prior)
    return evidence


def _sigmoid(z: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-np.minimum(np.maximum(z, -LOGIT_LIMIT), LOGIT_LIMIT)))
    return result


def logistic_curve(a: FloatArray | float, b: FloatArray | float, x: FloatArray) -> FloatArray:
    """``sigmoid(a - b x)``: rows of ``a``, ``b`` ``(n,)`` against features ``x`` ``(n_arms,)``."""
    if isinstance(a, float) and isinstance(b, float):
        return _sigmoid(a - b * x)
    return _sigmoid(np.asarray(a)[..., None] - np.asarray(b)[..., None] * x)


def sampled_curves(
    factors: tuple[FloatArray, ...], normal: FloatArray, x: FloatArray
) -> FloatArray:
    """Acceptance curves of logistic fits at sampled parameters.

    ``factors`` are a fit's mode and Cholesky factor ``(mode_a, mode_b, l_aa,
    l_ba, l_bb)``, ``normal`` the standard normals (last axis 2) that move the
    parameters off the mode, ``x`` the features the curve is evaluated on
    (broadcast against the parameters' shape plus one axis).
    """
    mode_a, mode_b, l_aa, l_ba, l_bb = factors
    a = mode_a + l_aa * normal[..., 0]
    b = mode_b + l_ba * normal[..., 0] + l_bb * normal[..., 1]
    return _sigmoid(a[..., None] - b[..., None] * x)


def _curvature(
    trials: FloatArray, p: FloatArray, x: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Entries of the posterior precision (Fisher information plus prior)."""
    w = trials * p * (1.0 - p)
    wx = w * x  # w * x * x below is (w * x) * x: the same numbers, one product fewer
    h_aa = _total(w) + 1.0 / PRIOR_VAR[0]
    h_ab = -_total(wx)
    h_bb = _total(wx * x) + 1.0 / PRIOR_VAR[1]
    return h_aa, h_ab, h_bb


def _solve_2x2(
    h_aa: FloatArray, h_ab: FloatArray, h_bb: FloatArray, g_a: FloatArray, g_b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    det = h_aa * h_bb - h_ab * h_ab
    return (h_bb * g_a - h_ab * g_b) / det, (h_aa * g_b - h_ab * g_a) / det


def _starting_point(
    successes: FloatArray, failures: FloatArray, x: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Weighted least squares on smoothed empirical logits: close to the mode already."""
    trials = successes + failures
    rate = (successes + 0.5) / (trials + 1.0)
    z = np.log(rate) - np.log1p(-rate)
    w = trials * rate * (1.0 - rate)
    # normal equations of sum w (z - a + b x)^2 + prior penalties, in (a, b)
    wx, wz = w * x, w * z
    h_aa = _total(w) + 1.0 / PRIOR_VAR[0]
    h_ab = -_total(wx)
    h_bb = _total(wx * x) + 1.0 / PRIOR_VAR[1]
    g_a = _total(wz) + PRIOR_MEAN[0] / PRIOR_VAR[0]
    g_b = -_total(wz * x) + PRIOR_MEAN[1] / PRIOR_VAR[1]
    return _solve_2x2(h_aa, h_ab, h_bb, g_a, g_b)


def fit_logistic(successes: FloatArray, failures: FloatArray, x: FloatArray) -> LogisticFit:
    """Posterior mode, precision and Laplace log evidence of the logistic model.

    Starts from a least-squares fit of empirical logits and takes a few Newton
    steps, each capped at ``MAX_NEWTON_STEP`` logits so a flat likelihood far
    from the data cannot throw it off. A pure function of the counts, so a
    restored snapshot decides exactly like the original.
    """
    trials = successes + failures
    a, b = _starting_point(successes, failures, x)
    for _ in range(NEWTON_STEPS):
        p = _sigmoid(a[:, None] - b[:, None] * x)
        residual = successes - trials * p
        g_a = _total(residual) - (a - PRIOR_MEAN[0]) / PRIOR_VAR[0]
        g_b = -_total(residual * x) - (b - PRIOR_MEAN[1]) / PRIOR_VAR[1]
        step_a, step_b = _solve_2x2(*_curvature(trials, p, x), g_a, g_b)
        a = a + np.minimum(np.maximum(step_a, -MAX_NEWTON_STEP), MAX_NEWTON_STEP)
        b = b + np.minimum(np.maximum(step_b, -MAX_NEWTON_STEP), MAX_NEWTON_STEP)
    p = np.minimum(np.maximum(_sigmoid(a[:, None] - b[:, None] * x), 1e-300), 1.0 - 1e-16)
    h_aa, h_ab, h_bb = _curvature(trials, p, x)
    log_lik = _total(successes * np.log(p) + failures * np.log1p(-p))
    log_prior = -0.5 * (
        (a - PRIOR_MEAN[0]) ** 2 / PRIOR_VAR[0]
        + (b - PRIOR_MEAN[1]) ** 2 / PRIOR_VAR[1]
        + math.log(PRIOR_VAR[0] * PRIOR_VAR[1])
        + 2 * LOG_2PI
    )
    log_det = np.log(h_aa * h_bb - h_ab * h_ab)
    evidence = log_lik + log_prior + LOG_2PI - 0.5 * log_det
    return LogisticFit(np.concatenate((a[:, None], b[:, None]), axis=1), h_aa, h_ab, h_bb, evidence)


def sample_logistic(fit: LogisticFit, x: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One acceptance curve per row drawn from the Laplace posterior."""
    det = fit.h_aa * fit.h_bb - fit.h_ab * fit.h_ab
    var_a, cov, var_b = fit.h_bb / det, -fit.h_ab / det, fit.h_aa / det
    z = rng.standard_normal((fit.mode.shape[0], 2))
    # Cholesky factor of the 2x2 covariance, written out
    l_aa = np.sqrt(var_a)
    l_ba = cov / l_aa
    l_bb = np.sqrt(np.maximum(var_b - l_ba * l_ba, 0.0))
    a = fit.mode[:, 0] + l_aa * z[:, 0]
    b = fit.mode[:, 1] + l_ba * z[:, 0] + l_bb * z[:, 1]
    return _sigmoid(a[:, None] - b[:, None] * x)


def price_features(prices: FloatArray) -> dict[str, FloatArray]:
    """The shape models' price features: linear and logarithmic in the multiplier."""
    return {
        "logistic-price": prices - prices[0],
        "logistic-log-price": np.log(prices / prices[0]),
    }


def _fit_shapes(
    alpha: FloatArray, beta: FloatArray, features: FloatArray, prior: tuple[float, float]
) -> LogisticFit:
    """Every shape fitted to every row (rows = shape x input row), each distinct row once.

    A batch repeats a few contexts many times and a fit is a deterministic
    function of its row, so fitting the distinct rows and copying the results
    gives the same numbers as fitting every row, at a fraction of the cost.
    """
    shapes, n = features.shape[0], alpha.shape[0]
    params = np.concatenate((alpha, beta), axis=1)
    if n == 1:  # nothing to deduplicate
        first, inverse = np.zeros(1, dtype=np.intp), np.zeros(1, dtype=np.intp)
    else:
        # rows as opaque bytes: np.unique(axis=0) is several times slower on small tables
        keys = params.view(np.dtype((np.void, params.itemsize * params.shape[1]))).reshape(-1)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    distinct = params[first]
    u = distinct.shape[0]
    half = alpha.shape[1]
    # np.concatenate rather than np.tile / np.stack / np.hstack: the same arrays, no Python wrapper
    successes = np.concatenate((distinct[:, :half] - prior[0],) * shapes)
    failures = np.concatenate((distinct[:, half:] - prior[1],) * shapes)
    fit = fit_logistic(successes, failures, np.repeat(features, u, axis=0))
    rows = (np.arange(shapes)[:, None] * u + inverse.reshape(1, n)).reshape(-1)
    return LogisticFit(
        fit.mode[rows], fit.h_aa[rows], fit.h_ab[rows], fit.h_bb[rows], fit.log_evidence[rows]
    )


FIT_FIELDS = ("mode_a", "mode_b", "l_aa", "l_ba", "l_bb")  # per shape, then the model weights


def fit_columns(n_shapes: int) -> int:
    """Width of a :func:`fit_models` table: five numbers per shape, one weight per model."""
    return len(FIT_FIELDS) * n_shapes + 1 + n_shapes


def shape_features(prices: FloatArray) -> FloatArray:
    """The price features of :func:`price_features` stacked, ``(shapes, n_arms)``."""
    return np.stack(list(price_features(prices).values()))


@functools.lru_cache(maxsize=16)
def _grid_features(prices: bytes) -> FloatArray:
    """:func:`shape_features` of a grid (given as its float64 bytes), made once and read-only."""
    features = shape_features(np.frombuffer(prices, dtype=np.float64))
    features.flags.writeable = False
    return features


def fit_models(
    alpha: FloatArray,
    beta: FloatArray,
    prices: FloatArray,
    prior: tuple[float, float],
    shape_log_prior_odds: float = SHAPE_LOG_PRIOR_ODDS,
) -> FloatArray:
    """Everything deterministic about a model-averaged draw, one row per input row.

    Columns: per shape the Laplace mode ``(a, b)`` and the Cholesky factor of
    its covariance, then the cumulative model weights (Beta model first). A
    pure function of each row's ``(alpha, beta)``, so a caller may keep rows
    for as long as the posterior they came from does not change.
    """
    n = alpha.shape[0]
    features = _grid_features(np.asarray(prices, dtype=np.float64).tobytes())
    shapes = features.shape[0]
    fit = _fit_shapes(alpha, beta, features, prior)
    det = fit.h_aa * fit.h_bb - fit.h_ab * fit.h_ab
    var_a, cov, var_b = fit.h_bb / det, -fit.h_ab / det, fit.h_aa / det
    # Cholesky factor of the 2x2 covariance, written out
    l_aa = np.sqrt(var_a)
    l_ba = cov / l_aa
    l_bb = np.sqrt(np.maximum(var_b - l_ba * l_ba, 0.0))
    log_w = np.concatenate(
        [
            beta_log_evidence(alpha, beta, *prior)[None],
            (fit.log_evidence + shape_log_prior_odds).reshape(shapes, n),
        ]
    )
    weights = np.exp(log_w - log_w.max(axis=0))
    per_shape = [fit.mode[:, 0], fit.mode[:, 1], l_aa, l_ba, l_bb]
    table = np.empty((n, fit_columns(shapes)))
    for field, values in enumerate(per_shape):
        table[:, field * shapes : (field + 1) * shapes] = values.reshape(shapes, n).T
    table[:, len(FIT_FIELDS) * shapes :] = np.cumsum(weights, axis=0).T
    return table
