"""What a decision maximises, given one posterior draw of acceptance per arm.

An objective scores each arm of each row from the draw; the decision is the
row's argmax (ties broken at random, see :mod:`dynpricing.core.policies`).
Chosen once, by name, when a bandit is built (:func:`objective_for`).

- ``revenue``: price x acceptance, the expected revenue of one customer.
- ``acceptance``: acceptance alone, the naive baseline that drifts to the
  cheapest price.
- ``revenue-supply``: the expected revenue of the rides that can be served.
  An event stands for ``requests`` customers who each accept with the drawn
  probability, and at most ``drivers`` of the acceptances can be served, so an
  arm is worth ``price x E[min(Binomial(requests, acceptance), drivers)]``.
  Where drivers are scarce this prefers a higher price than ``revenue``:
  acceptances beyond the drivers earn nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from dynpricing.core.errors import PricingError

FloatArray = npt.NDArray[np.float64]

OBJECTIVE_REVENUE = "revenue"
OBJECTIVE_ACCEPTANCE = "acceptance"
OBJECTIVE_REVENUE_SUPPLY = "revenue-supply"
EXACT_SERVED_MAX = 256  # above this many drivers and requests a normal approximation is used
PROBABILITY_CLIP = 1e-12  # keeps p / (1 - p) finite in the binomial recursion


@dataclass(frozen=True)
class Supply:
    """Requests and available drivers of each event row (``(n,)`` each, >= 0)."""

    requests: FloatArray
    drivers: FloatArray

    def __post_init__(self) -> None:
        if self.requests.shape != self.drivers.shape:
            raise PricingError(
                f"requests and drivers must have one value per event, got "
                f"{self.requests.shape} and {self.drivers.shape}"
            )
        if self.requests.size and (self.requests.min() < 0 or self.drivers.min() < 0):
            raise PricingError("requests and drivers must be >= 0")

    @classmethod
    def of(cls, requests: object, drivers: object) -> Supply:
        """From anything array-like, one value per event."""
        return cls(
            np.asarray(requests, dtype=np.float64).reshape(-1),
            np.asarray(drivers, dtype=np.float64).reshape(-1),
        )

    def repeat(self, n: int) -> Supply:
        """Each event's supply ``n`` times in a row (for extra draws per event)."""
        return Supply(np.repeat(self.requests, n), np.repeat(self.drivers, n))


class Objective(ABC):
    """Scores of the arms of each row of a posterior draw; higher is better."""

    name: ClassVar[str]
    needs_supply: ClassVar[bool] = False

    @abstractmethod
    def scores(self, draws: FloatArray, prices: FloatArray, supply: Supply | None) -> FloatArray:
        """``(n, n_arms)`` scores of draws ``(n, n_arms)`` (supply: one value per row)."""

    @abstractmethod
    def score_row(
        self, draws: list[float], prices: list[float], supply: tuple[float, float] | None
    ) -> list[float]:
        """:meth:`scores` of one row in plain floats: the same numbers to the last bit."""


class Revenue(Objective):
    """Price x acceptance."""

    name = OBJECTIVE_REVENUE

    def scores(self, draws: FloatArray, prices: FloatArray, supply: Supply | None) -> FloatArray:
        scores: FloatArray = draws * prices
        return scores

    def score_row(
        self, draws: list[float], prices: list[float], supply: tuple[float, float] | None
    ) -> list[float]:
        return [p * d for p, d in zip(prices, draws, strict=True)]


class Acceptance(Objective):
    """Acceptance alone (the naive baseline)."""

    name = OBJECTIVE_ACCEPTANCE

    def scores(self, draws: FloatArray, prices: FloatArray, supply: Supply | None) -> FloatArray:
        return draws

    def score_row(
        self, draws: list[float], prices: list[float], supply: tuple[float, float] | None
    ) -> list[float]:
        return draws


class ServedRevenue(Objective):
    """Price x the expected number of acceptances that a driver can serve."""

    name = OBJECTIVE_REVENUE_SUPPLY
    needs_supply = True

    def scores(self, draws: FloatArray, prices: FloatArray, supply: Supply | None) -> FloatArray:
        if supply is None or supply.requests.size != draws.shape[0]:
            raise PricingError("the revenue-supply objective needs requests and drivers per event")
        served = expected_served(draws, supply.requests, supply.drivers)
        scores: FloatArray = served * prices
        return scores

    def score_row(
        self, draws: list[float], prices: list[float], supply: tuple[float, float] | None
    ) -> list[float]:
        if supply is None:
            raise PricingError("the revenue-supply objective needs requests and drivers per event")
        one = Supply(np.array([supply[0]]), np.array([supply[1]]))
        scores: list[float] = self.scores(np.array([draws]), np.asarray(prices), one)[0].tolist()
        return scores


def expected_served(
    acceptance: FloatArray, requests: FloatArray, drivers: FloatArray
) -> FloatArray:
    """``E[min(X, drivers)]`` for ``X ~ Binomial(requests, acceptance)``, per row and arm.

    ``acceptance`` is ``(n, n_arms)``, ``requests`` and ``drivers`` ``(n,)``
    (whole numbers; fractions are rounded down). Exact by the binomial
    recursion up to ``EXACT_SERVED_MAX`` served rides; beyond that, where the
    binomial is close to normal, by the normal formula.
    """
    p = np.clip(acceptance, 0.0, 1.0 - PROBABILITY_CLIP)
    n = np.floor(requests)[:, None] * np.ones_like(p)
    d = np.floor(drivers)[:, None] * np.ones_like(p)
    limit = np.minimum(n, d)  # E[min(X, d)] = sum over j < min(n, d) of P(X > j)
    served = np.zeros_like(p)
    exact = limit <= EXACT_SERVED_MAX
    if exact.any():
        served[exact] = _served_exact(p[exact], n[exact], limit[exact])
    if not exact.all():
        wide = ~exact
        served[wide] = _served_normal(p[wide], n[wide], d[wide])
    return served


def _served_exact(p: FloatArray, n: FloatArray, limit: FloatArray) -> FloatArray:
    """``sum_{j < limit} P(X > j)`` with the pmf built term by term (1-D arrays)."""
    pmf = np.exp(n * np.log1p(-p))  # P(X = 0)
    cdf = pmf.copy()
    served = np.zeros_like(p)
    odds = p / (1.0 - p)
    for j in range(int(limit.max(initial=0.0))):
        served += np.where(j < limit, 1.0 - cdf, 0.0)
        pmf = pmf * (n - j) / (j + 1) * odds
        cdf = cdf + pmf
    return np.maximum(served, 0.0)


def _served_normal(p: FloatArray, n: FloatArray, d: FloatArray) -> FloatArray:
    """``E[min(X, d)]`` for ``X`` normal with the binomial's mean and variance."""
    mean, sd = n * p, np.sqrt(np.maximum(n * p * (1.0 - p), 1e-300))
    z = (mean - d) / sd
    cdf = 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))
    density = np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
    served: FloatArray = mean - ((mean - d) * cdf + sd * density)
    return np.clip(served, 0.0, np.minimum(n, d))


OBJECTIVE_RULES: dict[str, Objective] = {
    objective.name: objective for objective in (Revenue(), Acceptance(), ServedRevenue())
}
OBJECTIVES: tuple[str, ...] = tuple(OBJECTIVE_RULES)


def objective_for(name: str) -> Objective:
    """The objective of that name; :class:`PricingError` listing the known ones otherwise."""
    objective = OBJECTIVE_RULES.get(name)
    if objective is None:
        raise PricingError(f"unknown objective {name!r}; expected one of {list(OBJECTIVES)}")
    return objective
