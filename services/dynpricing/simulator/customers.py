"""Customers drawn from the market model: accept/reject, delay and regret. Pure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dynpricing.core.errors import PriceNotOnGridError
from dynpricing.core.grid import arm_index
from dynpricing.core.market import Market


@dataclass(frozen=True, slots=True)
class Answer:
    """One customer's answer to one price, with its score under the true curves."""

    accepted: bool
    delay_s: float
    expected_revenue: float
    oracle_revenue: float

    @property
    def regret(self) -> float:
        return self.oracle_revenue - self.expected_revenue


class UnknownMarketContextError(LookupError):
    """The market has no acceptance curve for this (location, demand level)."""


class Customers:
    """Answers decisions from the market's true acceptance curves."""

    def __init__(
        self, market: Market, rng: np.random.Generator, delay_mean_s: float, horizon: int = 0
    ) -> None:
        self.market = market
        self.rng = rng
        self.delay_mean_s = delay_mean_s
        self.horizon = horizon
        self.answered = 0
        self._rows = {key: i for i, key in enumerate(market.contexts)}

    def answer(self, location: str, demand_level: str, multiplier: float) -> Answer:
        """Raises UnknownMarketContextError or PriceNotOnGridError for what it cannot score."""
        row = self._rows.get((location, demand_level))
        if row is None:
            raise UnknownMarketContextError(f"market has no context {location}|{demand_level}")
        arm = arm_index(self.market.prices, multiplier)
        fraction = min(1.0, self.answered / self.horizon) if self.horizon else 0.0
        acceptance = self.market.acceptance(fraction)[row]
        revenue = acceptance * self.market.prices
        accepted = bool(self.rng.random() < acceptance[arm])
        delay = float(self.rng.exponential(self.delay_mean_s)) if self.delay_mean_s > 0 else 0.0
        self.answered += 1
        return Answer(accepted, delay, float(revenue[arm]), float(revenue.max()))


__all__ = ["Answer", "Customers", "PriceNotOnGridError", "UnknownMarketContextError"]
