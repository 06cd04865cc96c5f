"""``shrink-ts`` (the default): each arm's own Beta posterior, shrunk toward a fitted demand curve.

Plain Thompson sampling learns every price on its own; a demand-curve shape
lets outcomes at one price inform the others, but a shape that is wrong
(or nearly right, which is worse: it is trusted) prices confidently wrong.
This policy uses the shape as *prior evidence* for each arm rather than as
the answer:

1. Per context, the logistic shapes of :mod:`dynpricing.core.demand_models`
   are fitted and weighed against the shape-free Beta model by marginal
   likelihood, as in ``shape-ts``.
2. Each shape is worth ``kappa`` outcomes per arm, chosen from the data by
   empirical Bayes: the more the arms' outcomes scatter around the fitted
   curve beyond binomial noise, the fewer outcomes the curve is worth (a
   method-of-moments fit of a beta-binomial around the curve). A curve that
   fits is worth up to ``KAPPA_MAX`` outcomes; one that does not, a handful.
3. ``kappa`` never exceeds ``KAPPA_PER_ROOT_OUTCOME * sqrt(n + KAPPA_OFFSET)``
   for an arm with ``n`` outcomes of its own: a curve can speed up learning,
   but its pull on a well-measured arm shrinks like the arm's own noise, so
   the arm's data always decide in the end, and an arm the curve wrongly
   calls bad still gets tried.
4. A decision draws a model by weight; for the Beta model the draw is plain
   Thompson sampling; for a shape it draws a curve ``s`` from the shape's
   posterior and then each arm from ``Beta(alpha + kappa s, beta + kappa (1 - s))``.

Where no shape fits the policy *is* plain Thompson sampling, and where one
fits it learns nearly as fast as trusting the shape outright
(``docs/experiments.md`` has the families and the paired differences).
Random numbers, in the same order in every form: two normals per shape and
row, one uniform per row, then one Beta draw per arm and row.
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
from dynpricing.core.policies.base import FloatArray, IntArray, Policy, missing_fit

SHRINK_LOG_PRIOR_ODDS = -1.5  # of each shape against the Beta model (docs/experiments.md)
KAPPA_MIN = 2.0  # outcomes per arm a misfitting curve is still worth
KAPPA_MAX = 1e4  # ... and a curve that fits
KAPPA_PER_ROOT_OUTCOME = 15.0  # cap: kappa <= this * sqrt(outcomes of the arm + offset)
KAPPA_OFFSET = 4.0
MIN_OVERDISPERSION = 1e-9  # dispersion ratio above 1 that still counts as a misfit
EVERY_SHAPE_MAX_ROWS = 512  # one-context batches up to this size compute every shape's curve


class ShrinkThompson(Policy):
    """Beta posteriors shrunk toward a model-averaged demand curve, by empirical Bayes."""

    name = "shrink-ts"
    needs_fit = True

    def __init__(self, prices: FloatArray, prior: tuple[float, float]) -> None:
        super().__init__(prices, prior)
        self.features = shape_features(self.prices)
        self._shapes = self.features.shape[0]
        self._models = fit_columns(self._shapes)  # the fit_models part of a fit row

    @property
    def fit_columns(self) -> int:
        """fit_models' columns, then ``kappa`` per shape and arm."""
        return int(self._models + self._shapes * self.prices.size)

    def fit(self, alpha: FloatArray, beta: FloatArray) -> FloatArray:
        """Shape fits and model weights, then each shape's ``kappa`` per arm.

        A pure function of each row's ``(alpha, beta)``, so a caller may keep
        rows for as long as the posterior they came from does not change.
        """
        models = fit_models(alpha, beta, self.prices, self.prior, SHRINK_LOG_PRIOR_ODDS)
        successes, failures = alpha - self.prior[0], beta - self.prior[1]
        trials = successes + failures
        cap = KAPPA_PER_ROOT_OUTCOME * np.sqrt(np.maximum(trials, 0.0) + KAPPA_OFFSET)
        table = np.empty((alpha.shape[0], self.fit_columns))
        table[:, : self._models] = models
        n_arms = self.prices.size
        for shape in range(self._shapes):
            mode_a, mode_b = models[:, shape], models[:, self._shapes + shape]
            curve = logistic_curve(mode_a, mode_b, self.features[shape])
            kappa = _empirical_bayes_kappa(successes, trials, curve)
            start = self._models + shape * n_arms
            table[:, start : start + n_arms] = np.minimum(kappa[:, None], cap)
        return table

    def draw(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        rng: np.random.Generator,
        fits: FloatArray | None = None,
    ) -> FloatArray:
        table = fits if fits is not None else self.fit(alpha, beta)
        n, shapes, n_arms = alpha.shape[0], self._shapes, self.prices.size
        z = rng.standard_normal((shapes * n, 2))
        uniforms: FloatArray = rng.random(int(n))
        pick = self._pick(table[:, len(FIT_FIELDS) * shapes : self._models].T, uniforms)
        kappa = np.zeros_like(alpha)
        curve = np.zeros_like(alpha)
        for shape in range(shapes):
            rows = (pick == shape + 1).nonzero()[0]
            if rows.size == 0:
                continue
            factors = tuple(table[rows, field * shapes + shape] for field in range(len(FIT_FIELDS)))
            curve[rows] = sampled_curves(factors, z[shape * n + rows], self.features[shape])
            start = self._models + shape * n_arms
            kappa[rows] = table[rows, start : start + n_arms]
        return _shrunk_draws(alpha, beta, kappa, curve, rng)

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
        shapes, n_arms = self._shapes, self.prices.size
        z = rng.standard_normal((shapes * n, 2))
        uniforms: FloatArray = rng.random(n)
        pick = self._pick(fit[len(FIT_FIELDS) * shapes : self._models][:, None], uniforms)
        kappas = fit[self._models :].reshape(shapes, n_arms)
        if n <= EVERY_SHAPE_MAX_ROWS:
            # every shape's curve for every row, then each row's pick: fewer, larger numpy calls
            factors = tuple(fit[: len(FIT_FIELDS) * shapes].reshape(-1, shapes, 1))
            curves = sampled_curves(factors, z.reshape(shapes, n, 2), self.features[:, None, :])
            shape_rows = np.maximum(pick - 1, 0)
            curve = curves[shape_rows, np.arange(n)]
            kappa = np.where((pick > 0)[:, None], kappas[shape_rows], 0.0)
            return _shrunk_draws(alpha, beta, kappa, curve, rng)
        kappa = np.zeros((n, n_arms))
        curve = np.zeros((n, n_arms))
        for shape in range(shapes):
            rows = (pick == shape + 1).nonzero()[0]
            if rows.size == 0:
                continue
            factors = tuple(fit[shape : len(FIT_FIELDS) * shapes : shapes])
            curve[rows] = sampled_curves(factors, z[shape * n + rows], self.features[shape])
            kappa[rows] = kappas[shape]
        return _shrunk_draws(alpha, beta, kappa, curve, rng)

    def draw_row(
        self,
        alpha: list[float],
        beta: list[float],
        rng: np.random.Generator,
        fit: list[float] | None = None,
    ) -> list[float]:
        if fit is None:
            raise missing_fit(self)
        shapes, n_arms = self._shapes, len(alpha)
        z = rng.standard_normal((shapes, 2)).tolist()
        uniform = rng.random()
        cumulative = fit[len(FIT_FIELDS) * shapes : self._models]
        threshold = uniform * cumulative[-1]
        model = sum(threshold > c for c in cumulative)  # 0 = Beta
        if model == 0:
            return [rng.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
        shape = model - 1
        mode_a, mode_b, l_aa, l_ba, l_bb = fit[shape : len(FIT_FIELDS) * shapes : shapes]
        z_a, z_b = z[shape]
        a = mode_a + l_aa * z_a
        b = mode_b + l_ba * z_a + l_bb * z_b
        curve: list[float] = logistic_curve(a, b, self.features[shape]).tolist()
        start = self._models + shape * n_arms
        kappa = fit[start : start + n_arms]
        draws = []
        for al, be, k, s in zip(alpha, beta, kappa, curve, strict=True):
            shrink = k * s  # as _shrunk_draws, operation for operation
            draws.append(rng.beta(al + shrink, be + (k - shrink)))
        return draws

    def _pick(self, cumulative: FloatArray, uniforms: FloatArray) -> IntArray:
        """Each row's model (0 = Beta) from cumulative weights ``(models, n or 1)``."""
        picked: IntArray = np.add.reduce(
            uniforms * cumulative[-1] > cumulative, axis=0, dtype=np.intp
        )
        return picked


def _shrunk_draws(
    alpha: FloatArray,
    beta: FloatArray,
    kappa: FloatArray,
    curve: FloatArray,
    rng: np.random.Generator,
) -> FloatArray:
    """One Beta draw per arm with ``kappa`` outcomes of prior evidence at the curve."""
    shrink = kappa * curve
    draws: FloatArray = rng.beta(alpha + shrink, beta + (kappa - shrink))
    return draws


def _empirical_bayes_kappa(
    successes: FloatArray, trials: FloatArray, curve: FloatArray
) -> FloatArray:
    """How many outcomes per arm the curve is worth, per row (method of moments).

    Around a curve worth ``kappa`` outcomes an arm's successes are
    beta-binomial, whose Pearson statistic has expectation
    ``1 + (n - 1) / (kappa + 1)`` per arm instead of 1. Solving the observed
    dispersion (per degree of freedom, the curve's two parameters taken off)
    for ``kappa``: no excess dispersion gives ``KAPPA_MAX``.
    """
    p = np.minimum(np.maximum(curve, 1e-9), 1.0 - 1e-9)
    measured = trials > 0
    expected = trials * p
    pearson = np.where(measured, (successes - expected) ** 2 / (expected * (1.0 - p) + 1e-300), 0.0)
    used = np.add.reduce(measured, axis=-1, dtype=np.float64)
    dispersion = np.add.reduce(pearson, axis=-1) / np.maximum(used - 2.0, 1.0)
    spread = np.add.reduce(np.where(measured, trials - 1.0, 0.0), axis=-1) / np.maximum(used, 1.0)
    kappa = spread / np.maximum(dispersion - 1.0, MIN_OVERDISPERSION) - 1.0
    clipped: FloatArray = np.minimum(np.maximum(kappa, KAPPA_MIN), KAPPA_MAX)
    return clipped
