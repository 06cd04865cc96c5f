"""Varied synthetic markets: the families a default policy must not lose on.

L6 is logistic in price, which flatters a logistic demand model. These
families break that shape in different ways (straight-line and
constant-elasticity acceptance, a cliff, near-tied best arms, many rare
contexts on a finer grid, drift), so a policy that only wins because its
shape assumption happens to hold on L6 shows it here. The bundled files in
``dynpricing/data`` are generated from these builders (a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dynpricing.core.contexts import DEMAND_LEVELS

MarketDoc = dict[str, object]
DEFAULT_PRICES = (1.0, 1.2, 1.5, 2.0)
FINE_PRICES = (1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5)
ZIPF_EXPONENT = 1.1  # arrival weight of location rank r is r ** -ZIPF_EXPONENT
BUILD_SEED = 20261128  # fixes the random parameters of the generated families


def _context(location: str, level: str, acceptance: list[float], weight: float = 1.0) -> MarketDoc:
    rounded = [round(float(a), 6) for a in acceptance]
    return {"location": location, "demand_level": level, "weight": weight, "acceptance": rounded}


def _levels(
    locations: list[str], curve: Callable[[int, int], list[float]], prices: tuple[float, ...]
) -> MarketDoc:
    return {
        "prices": list(prices),
        "contexts": [
            _context(loc, level, curve(i, j))
            for i, loc in enumerate(locations)
            for j, level in enumerate(DEMAND_LEVELS)
        ],
    }


def linear_market() -> MarketDoc:
    """Acceptance falls on a straight line in price: ``c - d * (m - 1)``."""
    intercepts = ((0.75, 0.85, 0.95), (0.7, 0.8, 0.92))
    slopes = ((0.7, 0.6, 0.5), (0.75, 0.62, 0.48))
    prices = np.array(DEFAULT_PRICES)

    def curve(i: int, j: int) -> list[float]:
        values = intercepts[i][j] - slopes[i][j] * (prices - 1.0)
        return list(np.clip(values, 0.0, 1.0))

    doc = _levels(["Airport", "Downtown"], curve, DEFAULT_PRICES)
    return {"name": "linear", "description": "straight-line acceptance in price", **doc}


def elasticity_market() -> MarketDoc:
    """Constant elasticity: ``base * m ** -elasticity`` (revenue optimum at an edge or flat)."""
    bases = ((0.7, 0.8, 0.9), (0.65, 0.75, 0.88))
    elasticities = ((1.6, 1.1, 0.7), (1.9, 1.3, 0.85))
    prices = np.array(DEFAULT_PRICES)

    def curve(i: int, j: int) -> list[float]:
        return list(bases[i][j] * prices ** -elasticities[i][j])

    doc = _levels(["Airport", "Downtown"], curve, DEFAULT_PRICES)
    return {"name": "elasticity", "description": "constant-elasticity acceptance", **doc}


def cliff_market() -> MarketDoc:
    """Acceptance flat, then a cliff at a context-specific price: far from logistic in m."""
    tables = (
        ([0.9, 0.88, 0.85, 0.15], [0.92, 0.9, 0.88, 0.5], [0.95, 0.94, 0.6, 0.55]),
        ([0.8, 0.3, 0.28, 0.25], [0.85, 0.83, 0.3, 0.28], [0.9, 0.89, 0.87, 0.3]),
    )
    doc = _levels(["Airport", "Downtown"], lambda i, j: tables[i][j], DEFAULT_PRICES)
    return {"name": "cliff", "description": "flat acceptance then a cliff", **doc}


def near_tie_market() -> MarketDoc:
    """Two arms within 1-2 % of each other in revenue in every context."""
    tables = (
        ([0.80, 0.66, 0.52, 0.30], [0.85, 0.70, 0.57, 0.40], [0.90, 0.80, 0.66, 0.50]),
        ([0.60, 0.505, 0.40, 0.20], [0.75, 0.62, 0.50, 0.37], [0.92, 0.85, 0.69, 0.52]),
    )
    doc = _levels(["Airport", "Downtown"], lambda i, j: tables[i][j], DEFAULT_PRICES)
    return {"name": "near-tie", "description": "near-tied best arms", **doc}


def many_contexts_market(n_locations: int = 40) -> MarketDoc:
    """Many contexts on an 8-price grid with Zipf-skewed arrivals and mixed curve shapes."""
    rng = np.random.default_rng(BUILD_SEED)
    prices = np.array(FINE_PRICES)
    contexts = []
    for rank in range(1, n_locations + 1):
        weight = round(rank**-ZIPF_EXPONENT, 6)
        for j, level in enumerate(DEMAND_LEVELS):
            shape = rng.integers(3)
            if shape == 0:  # logistic
                a, b = 0.5 + j + rng.uniform(-0.5, 0.5), rng.uniform(1.5, 4.0)
                acceptance = 1.0 / (1.0 + np.exp(-(a - b * (prices - 1.0))))
            elif shape == 1:  # linear
                c, d = rng.uniform(0.6, 0.95), rng.uniform(0.3, 0.6)
                acceptance = np.clip(c - d * (prices - 1.0), 0.02, 1.0)
            else:  # constant elasticity
                acceptance = rng.uniform(0.6, 0.95) * prices ** -rng.uniform(0.6, 2.5)
            contexts.append(_context(f"L{rank:02d}", level, list(acceptance), weight))
    return {
        "name": "many-contexts",
        "description": f"{n_locations} locations x 3 levels, 8 prices, Zipf arrivals",
        "prices": list(FINE_PRICES),
        "contexts": contexts,
    }


def drift_market(l6: MarketDoc) -> MarketDoc:
    """L6 whose acceptance logits all rise by 1.5 halfway through the run."""
    return {**l6, "name": "L6-drift", "drift": [{"at": 0.5, "logit_shift": 1.5}]}


FAMILIES: dict[str, Callable[[], MarketDoc]] = {
    "linear": linear_market,
    "elasticity": elasticity_market,
    "cliff": cliff_market,
    "near-tie": near_tie_market,
    "many-contexts": many_contexts_market,
}
