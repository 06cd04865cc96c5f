"""``shape-ts``: Thompson draws from a per-context average of demand-curve shapes.

Each decision first draws a model with probability proportional to its
marginal likelihood times prior odds (the monotone Beta model of
:mod:`dynpricing.core.policies.monotone`, a logistic curve in price, a
logistic curve in log price; see :mod:`dynpricing.core.demand_models`), then a
curve from that model. Where a shape fits, outcomes at one price inform every
other price; where the data contradict both shapes, their evidence collapses.
Trusts a shape that almost fits, though: ``docs/experiments.md`` shows where
that loses to plain Thompson sampling, which is why the default is
:mod:`dynpricing.core.policies.shrink`. Kept for comparison.

Draws use the same random numbers in the same order in every form: Beta
draws, two normals per shape and row, one uniform per row.
"""

from __future__ import annotations

import numpy as np

from dynpricing.core.demand_models import (
    FIT_FIELDS,
    fit_columns,
    fit_models,
    logistic_curve,
    sampled_curves,
    shape_features,
)
from dynpricing.core.policies.base import FloatArray, Policy, missing_fit
from dynpricing.core.policies.monotone import (
    monotone_from_draws,
    monotone_one_context,
    monotone_row,
)
from dynpricing.core.posterior import sample_acceptance

EVERY_SHAPE_MAX_ROWS = 512  # one-context batches up to this size compute every shape's curve


class ShapeThompson(Policy):
    """Bayesian model averaging of the monotone Betas and two logistic shapes."""

    name = "shape-ts"
    needs_fit = True

    def __init__(self, prices: FloatArray, prior: tuple[float, float]) -> None:
        super().__init__(prices, prior)
        self.features = shape_features(self.prices)

    @property
    def fit_columns(self) -> int:
        return fit_columns(self.features.shape[0])

    def fit(self, alpha: FloatArray, beta: FloatArray) -> FloatArray:
        return fit_models(alpha, beta, self.prices, self.prior)

    def draw(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        rng: np.random.Generator,
        fits: FloatArray | None = None,
    ) -> FloatArray:
        table = fits if fits is not None else self.fit(alpha, beta)
        return sample_fitted_average(alpha, beta, table, self.features, prior=self.prior, rng=rng)

    def draw_one_context(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        n: int,
        rng: np.random.Generator,
        fit: FloatArray | None = None,
    ) -> FloatArray:
        if fit is None:
            raise missing_fit(self)
        return sample_fitted_one_context(
            alpha, beta, fit, self.features, n, prior=self.prior, rng=rng
        )

    def draw_row(
        self,
        alpha: list[float],
        beta: list[float],
        rng: np.random.Generator,
        fit: list[float] | None = None,
    ) -> list[float]:
        if fit is None:
            raise missing_fit(self)
        draws = [rng.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
        return sample_fitted_row(draws, alpha, beta, fit, self.features, prior=self.prior, rng=rng)


def sample_fitted_average(
    alpha: FloatArray,
    beta: FloatArray,
    fits: FloatArray,
    features: FloatArray,
    *,
    prior: tuple[float, float],
    rng: np.random.Generator,
) -> FloatArray:
    """Model-averaged draws from rows of :func:`fit_models` (``shape-ts``, reference form).

    Draws the same random numbers in the same order (Beta draws, then two
    normals per shape and row, then one uniform per row), picks each row's
    model, and only then builds the curves, for the picked model alone.
    """
    n = alpha.shape[0]
    shapes = features.shape[0]
    draws = sample_acceptance(alpha, beta, rng)
    z = rng.standard_normal((shapes * n, 2))
    cumulative = fits[:, len(FIT_FIELDS) * shapes :].T
    uniforms = rng.random(n)
    pick = np.add.reduce(uniforms * cumulative[-1] > cumulative, axis=0, dtype=np.intp)
    chosen: FloatArray = np.empty_like(draws)
    rows = (pick == 0).nonzero()[0]
    if rows.size:
        chosen[rows] = monotone_from_draws(draws[rows], alpha[rows], beta[rows], prior)
    for shape in range(shapes):
        rows = (pick == shape + 1).nonzero()[0]
        if rows.size == 0:
            continue
        factors = tuple(fits[rows, field * shapes + shape] for field in range(len(FIT_FIELDS)))
        chosen[rows] = sampled_curves(factors, z[shape * n + rows], features[shape])
    return chosen


def sample_fitted_one_context(
    alpha: FloatArray,
    beta: FloatArray,
    fit: FloatArray,
    features: FloatArray,
    n: int,
    *,
    prior: tuple[float, float],
    rng: np.random.Generator,
) -> FloatArray:
    """:func:`sample_fitted_average` for ``n`` rows of one context, bit for bit.

    ``alpha``, ``beta`` are the context's ``(n_arms,)`` posterior and ``fit``
    its row of :func:`fit_models`. The same random numbers in the same order;
    what is the same for every row (model weights, modes, Cholesky factors,
    the Beta model's weights) is read once instead of gathered per row.
    """
    shapes = features.shape[0]
    draws: FloatArray = rng.beta(alpha, beta, size=(n, alpha.size))
    z = rng.standard_normal((shapes * n, 2))
    uniforms = rng.random(n)
    cumulative = fit[len(FIT_FIELDS) * shapes :]
    pick = np.add.reduce(uniforms * cumulative[-1] > cumulative[:, None], axis=0, dtype=np.intp)
    if n <= EVERY_SHAPE_MAX_ROWS:
        # every shape's curve for every row, then each row's pick: fewer, larger numpy calls
        factors = tuple(fit[: len(FIT_FIELDS) * shapes].reshape(-1, shapes, 1))
        curves = sampled_curves(factors, z.reshape(shapes, n, 2), features[:, None, :])
        picked: FloatArray = curves[np.maximum(pick - 1, 0), np.arange(n)]
        beta_rows = (pick == 0).nonzero()[0]
        if beta_rows.size:
            picked[beta_rows] = monotone_one_context(draws[beta_rows], alpha, beta, prior)
        return picked
    chosen: FloatArray = np.empty_like(draws)
    for model in range(shapes + 1):
        rows = np.flatnonzero(pick == model)
        if rows.size == 0:
            continue
        if model == 0:
            chosen[rows] = monotone_one_context(draws[rows], alpha, beta, prior)
            continue
        shape = model - 1
        factors = tuple(fit[shape : len(FIT_FIELDS) * shapes : shapes])
        chosen[rows] = sampled_curves(factors, z[shape * n + rows], features[shape])
    return chosen


def sample_fitted_row(
    draws: list[float],
    alpha: list[float],
    beta: list[float],
    fit: list[float],
    features: FloatArray,
    *,
    prior: tuple[float, float],
    rng: np.random.Generator,
) -> list[float]:
    """:func:`sample_fitted_one_context` for one row, Beta ``draws`` already made.

    Plain floats wherever the arithmetic is exactly rounded either way; the
    logistic curve's ``exp`` stays numpy's, so the curve is the same to the bit.
    """
    shapes = features.shape[0]
    z = rng.standard_normal((shapes, 2)).tolist()
    uniform = rng.random()
    cumulative = fit[len(FIT_FIELDS) * shapes :]
    threshold = uniform * cumulative[-1]
    model = sum(threshold > c for c in cumulative)
    if model == 0:
        return monotone_row(draws, alpha, beta, prior)
    shape = model - 1
    mode_a, mode_b, l_aa, l_ba, l_bb = fit[shape : len(FIT_FIELDS) * shapes : shapes]
    z_a, z_b = z[shape]
    a = mode_a + l_aa * z_a
    b = mode_b + l_ba * z_a + l_bb * z_b
    curve: list[float] = logistic_curve(a, b, features[shape]).tolist()
    return curve
