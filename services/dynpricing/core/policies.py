"""Thompson-sampling decision rules shared by the engine's bandit and the experiment.

A policy turns posterior parameters into one arm per row. ``ts`` samples each
arm's acceptance independently; ``monotone-ts`` projects the joint draw onto
non-increasing acceptance in price first (see :mod:`dynpricing.core.posterior`).
The objective decides what is maximised: ``revenue`` (price x acceptance) or
``acceptance`` alone (the naive baseline). ``shape-ts`` draws from a
per-context average of logistic demand curves and the independent Betas,
weighted by how well each explains the data
(see :mod:`dynpricing.core.demand_models`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dynpricing.core.demand_models import (
    FittedModels,
    sample_fitted_average,
    sample_fitted_one_context,
    sample_fitted_row,
    sample_model_average,
)
from dynpricing.core.errors import PricingError
from dynpricing.core.posterior import (
    monotone_one_context,
    monotone_row,
    sample_acceptance,
    sample_monotone_acceptance,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

POLICY_TS = "ts"
POLICY_MONOTONE_TS = "monotone-ts"
POLICY_SHAPE_TS = "shape-ts"
POLICIES: tuple[str, ...] = (POLICY_TS, POLICY_MONOTONE_TS, POLICY_SHAPE_TS)
DEFAULT_POLICY = POLICY_SHAPE_TS
DEFAULT_PRIOR = (1.0, 1.0)  # Beta(alpha, beta) prior of every arm

OBJECTIVE_REVENUE = "revenue"
OBJECTIVE_ACCEPTANCE = "acceptance"
OBJECTIVES: tuple[str, ...] = (OBJECTIVE_REVENUE, OBJECTIVE_ACCEPTANCE)

TIE_RELATIVE_TOLERANCE = 1e-12  # pooled draws may differ in the last bits only
SCALAR_ROW_MAX_ARMS = 16  # up to this many arms one decision is cheaper in plain floats


def check_policy(policy: str, objective: str) -> None:
    """Refuse unknown policy or objective names with the accepted ones listed."""
    if policy not in POLICIES:
        raise PricingError(f"unknown policy {policy!r}; expected one of {list(POLICIES)}")
    if objective not in OBJECTIVES:
        raise PricingError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")


def policy_name(policy: str, objective: str) -> str:
    """Display name of a policy with its objective, e.g. ``"ts-revenue"``."""
    return f"{policy}-{objective}"


def draw_acceptance(
    alpha: FloatArray,
    beta: FloatArray,
    policy: str,
    rng: np.random.Generator,
    *,
    prices: FloatArray,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    fits: FittedModels | None = None,
) -> FloatArray:
    """One posterior draw of acceptance per arm, shaped like ``alpha``.

    ``fits`` (shape-ts only) are the rows' :func:`~dynpricing.core.demand_models.fit_models`
    computed beforehand, e.g. cached; the draw is the same with or without them.
    """
    if policy == POLICY_SHAPE_TS:
        if fits is not None:
            return sample_fitted_average(alpha, beta, fits, prior=prior, rng=rng)
        return sample_model_average(alpha, beta, prices, prior, rng)
    if policy == POLICY_MONOTONE_TS:
        return sample_monotone_acceptance(alpha, beta, rng, prior)
    return sample_acceptance(alpha, beta, rng)


def argmax_random_ties(scores: FloatArray, rng: np.random.Generator) -> IntArray:
    """Row-wise argmax; exact ties go to a uniformly random one of the tied arms.

    The generator is only consumed when a tie exists, so tie-free streams stay
    cheap; results are still a pure function of the generator state.
    """
    best = _row_max(scores)
    tied = scores >= best - TIE_RELATIVE_TOLERANCE * np.abs(best)
    arms: IntArray = scores.argmax(axis=-1).astype(np.int64)
    # ufunc methods directly: numpy's sum/flatnonzero wrappers cost more than a small batch
    rows = (np.add.reduce(tied, axis=-1, dtype=np.intp) > 1).nonzero()[0]
    if rows.size:
        noise = rng.random((rows.size, scores.shape[-1]))
        arms[rows] = np.where(tied[rows], noise, -1.0).argmax(axis=-1)
    return arms


def _row_max(scores: FloatArray) -> FloatArray:
    """``scores.max(axis=-1, keepdims=True)``, column by column (faster for a few arms)."""
    if scores.ndim != 2 or scores.shape[1] == 0:  # rows x arms only
        whole: FloatArray = scores.max(axis=-1, keepdims=True)
        return whole
    best = scores[:, 0].copy()
    for column in range(1, scores.shape[1]):
        np.maximum(best, scores[:, column], out=best)
    return best[:, None]


def choose_arms(
    acceptance: FloatArray, prices: FloatArray, objective: str, rng: np.random.Generator
) -> IntArray:
    """The arm each row's draw prefers under the objective."""
    scores = acceptance * prices if objective == OBJECTIVE_REVENUE else acceptance
    return argmax_random_ties(scores, rng)


def thompson_arms(
    alpha: FloatArray,
    beta: FloatArray,
    prices: FloatArray,
    *,
    policy: str,
    objective: str,
    rng: np.random.Generator,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    fits: FittedModels | None = None,
) -> IntArray:
    """Thompson decisions for rows of posterior parameters ``(n, n_arms)``."""
    draws = draw_acceptance(alpha, beta, policy, rng, prices=prices, prior=prior, fits=fits)
    return choose_arms(draws, prices, objective, rng)


def thompson_arms_one_context(
    alpha: FloatArray,
    beta: FloatArray,
    prices: FloatArray,
    n: int,
    *,
    policy: str,
    objective: str,
    rng: np.random.Generator,
    prior: tuple[float, float] = DEFAULT_PRIOR,
    fit: FloatArray | None = None,
    features: FloatArray | None = None,
) -> IntArray:
    """:func:`thompson_arms` for ``n`` rows that all share one context's posterior.

    ``alpha`` and ``beta`` are that context's ``(n_arms,)`` row; shape-ts also
    needs its :func:`~dynpricing.core.demand_models.fit_models` row ``fit`` and
    the ``features`` it was fitted on. Same random numbers, same order, same
    arms bit for bit as ``thompson_arms`` on the rows repeated ``n`` times; only
    cheaper, since nothing per context is gathered or computed per row, and a
    single decision over a few arms runs in plain floats.
    """
    shape_ts = policy == POLICY_SHAPE_TS
    if shape_ts and (fit is None or features is None):
        raise PricingError("shape-ts needs the context's fit and features")
    if n == 1 and alpha.size <= SCALAR_ROW_MAX_ARMS:
        arm = _one_decision(
            alpha,
            beta,
            prices,
            policy=policy,
            objective=objective,
            rng=rng,
            prior=prior,
            fit=fit,
            features=features,
        )
        return np.array([arm], dtype=np.int64)
    if shape_ts:
        assert fit is not None
        assert features is not None
        draws = sample_fitted_one_context(alpha, beta, fit, features, n, prior=prior, rng=rng)
    else:
        draws = rng.beta(alpha, beta, size=(n, alpha.size))
        if policy == POLICY_MONOTONE_TS:
            draws = monotone_one_context(draws, alpha, beta, prior)
    return choose_arms(draws, prices, objective, rng)


def _one_decision(
    alpha: FloatArray,
    beta: FloatArray,
    prices: FloatArray,
    *,
    policy: str,
    objective: str,
    rng: np.random.Generator,
    prior: tuple[float, float],
    fit: FloatArray | None,
    features: FloatArray | None,
) -> int:
    """One decision of :func:`thompson_arms_one_context`, in plain floats.

    Beta draws one scalar call per arm give the numbers an array call gives
    (one generator, C order), without its per-call argument checks.
    """
    alphas, betas = alpha.tolist(), beta.tolist()
    draws = [rng.beta(a, b) for a, b in zip(alphas, betas, strict=True)]
    if policy == POLICY_SHAPE_TS:
        assert fit is not None
        assert features is not None
        draws = sample_fitted_row(
            draws, alphas, betas, fit.tolist(), features, prior=prior, rng=rng
        )
    elif policy == POLICY_MONOTONE_TS:
        draws = monotone_row(draws, alphas, betas, prior)
    if objective == OBJECTIVE_REVENUE:
        draws = [p * d for p, d in zip(prices.tolist(), draws, strict=True)]
    return _argmax_random_ties_row(draws, rng)


def _argmax_random_ties_row(scores: list[float], rng: np.random.Generator) -> int:
    """:func:`argmax_random_ties` of one row, same generator use and same arm."""
    best = max(scores)
    cut = best - TIE_RELATIVE_TOLERANCE * abs(best)
    tied = [score >= cut for score in scores]
    if sum(tied) <= 1:
        return scores.index(best)
    noise = rng.random(len(scores)).tolist()
    keyed = [u if tie else -1.0 for u, tie in zip(noise, tied, strict=True)]
    return keyed.index(max(keyed))
