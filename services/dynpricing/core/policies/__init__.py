"""Thompson-sampling policies, chosen once by name, and the decision they feed.

A policy (:class:`~dynpricing.core.policies.base.Policy`) draws acceptance
per arm from the posterior; an objective (:mod:`dynpricing.core.objectives`)
scores the draw; the decision is the best-scoring arm, ties broken at random.
Each policy lives in its own module with its plain and fast forms side by
side:

- ``ts`` (:mod:`.thompson`): independent Beta draws, plain Thompson sampling.
- ``monotone-ts`` (:mod:`.monotone`): draws projected onto curves that do not
  rise with price.
- ``shape-ts`` (:mod:`.shape`): model averaging of demand-curve shapes (the
  previous default, kept for comparison).
- ``shrink-ts`` (:mod:`.shrink`, the default): each arm's Beta shrunk toward
  a fitted demand curve by as much as the data say the curve is worth.
"""

from __future__ import annotations

import numpy as np

from dynpricing.core.errors import PricingError
from dynpricing.core.objectives import (
    OBJECTIVE_ACCEPTANCE,
    OBJECTIVE_REVENUE,
    OBJECTIVE_REVENUE_SUPPLY,
    OBJECTIVES,
    Objective,
    Supply,
    objective_for,
)
from dynpricing.core.policies.base import (
    FloatArray,
    IntArray,
    Policy,
    argmax_random_ties,
    argmax_random_ties_row,
)
from dynpricing.core.policies.monotone import MonotoneThompson
from dynpricing.core.policies.shape import ShapeThompson
from dynpricing.core.policies.shrink import ShrinkThompson
from dynpricing.core.policies.thompson import Thompson

POLICY_TYPES: dict[str, type[Policy]] = {
    kind.name: kind for kind in (Thompson, MonotoneThompson, ShapeThompson, ShrinkThompson)
}
POLICIES: tuple[str, ...] = tuple(POLICY_TYPES)
POLICY_TS = Thompson.name
POLICY_MONOTONE_TS = MonotoneThompson.name
POLICY_SHAPE_TS = ShapeThompson.name
POLICY_SHRINK_TS = ShrinkThompson.name
DEFAULT_POLICY = POLICY_SHRINK_TS
DEFAULT_PRIOR = (1.0, 1.0)  # Beta(alpha, beta) prior of every arm
SCALAR_ROW_MAX_ARMS = 16  # up to this many arms one decision is cheaper in plain floats

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_PRIOR",
    "OBJECTIVES",
    "OBJECTIVE_ACCEPTANCE",
    "OBJECTIVE_REVENUE",
    "OBJECTIVE_REVENUE_SUPPLY",
    "POLICIES",
    "POLICY_MONOTONE_TS",
    "POLICY_SHAPE_TS",
    "POLICY_SHRINK_TS",
    "POLICY_TS",
    "Objective",
    "Policy",
    "Supply",
    "argmax_random_ties",
    "make_policy",
    "objective_for",
    "policy_name",
    "thompson_arms",
    "thompson_arms_one_context",
]


def make_policy(
    name: str, prices: FloatArray, prior: tuple[float, float] = DEFAULT_PRIOR
) -> Policy:
    """The policy of that name bound to a grid and prior; :class:`PricingError` if unknown."""
    kind = POLICY_TYPES.get(name)
    if kind is None:
        raise PricingError(f"unknown policy {name!r}; expected one of {list(POLICIES)}")
    return kind(np.asarray(prices, dtype=np.float64), prior)


def policy_name(policy: str, objective: str) -> str:
    """Display name of a policy with its objective, e.g. ``"ts-revenue"``."""
    return f"{policy}-{objective}"


def thompson_arms(
    alpha: FloatArray,
    beta: FloatArray,
    *,
    policy: Policy,
    objective: Objective,
    rng: np.random.Generator,
    fits: FloatArray | None = None,
    supply: Supply | None = None,
) -> IntArray:
    """Thompson decisions for rows of posterior parameters ``(n, n_arms)``.

    ``fits`` are the rows' :meth:`Policy.fit` computed beforehand (e.g.
    cached); the decisions are the same with or without them.
    """
    draws = policy.draw(alpha, beta, rng, fits)
    return argmax_random_ties(objective.scores(draws, policy.prices, supply), rng)


def thompson_arms_one_context(
    alpha: FloatArray,
    beta: FloatArray,
    n: int,
    *,
    policy: Policy,
    objective: Objective,
    rng: np.random.Generator,
    fit: FloatArray | None = None,
    supply: Supply | None = None,
) -> IntArray:
    """:func:`thompson_arms` for ``n`` rows that all share one context's posterior.

    ``alpha`` and ``beta`` are that context's ``(n_arms,)`` row and ``fit``
    its :meth:`Policy.fit` row. Same random numbers, same order, same arms bit
    for bit as ``thompson_arms`` on the rows repeated ``n`` times; only
    cheaper, since nothing per context is gathered or computed per row, and a
    single decision over a few arms runs in plain floats.
    """
    if n == 1 and alpha.size <= SCALAR_ROW_MAX_ARMS:
        one = None if supply is None else (float(supply.requests[0]), float(supply.drivers[0]))
        row = policy.draw_row(
            alpha.tolist(), beta.tolist(), rng, None if fit is None else fit.tolist()
        )
        scores = objective.score_row(row, policy.prices.tolist(), one)
        return np.array([argmax_random_ties_row(scores, rng)], dtype=np.int64)
    draws = policy.draw_one_context(alpha, beta, n, rng, fit)
    return argmax_random_ties(objective.scores(draws, policy.prices, supply), rng)
