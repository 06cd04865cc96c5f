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
import numpy.typing as npt

from dynpricing.core.contexts import DEMAND_LEVELS

MarketDoc = dict[str, object]
FloatArray = npt.NDArray[np.float64]
DEFAULT_PRICES = (1.0, 1.2, 1.5, 2.0)
FINE_PRICES = (1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5)
LARGE_PRICES = (1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.75, 1.9, 2.0, 2.25, 2.5)
TREND_STEPS = 20  # a slow trend is this many equal logit steps over the run
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


def near_tie_steep_market() -> MarketDoc:
    """The best two prices within 1-2 % of revenue everywhere, then a steep drop at the top.

    Chosen so that the best-fitting logistic curve (in price and in log price)
    prefers the wrong one of the near-tied pair in every context: a shape that
    almost fits is the hardest case for a policy that trusts shapes.
    """
    tables = (
        [0.95, 0.779, 0.408, 0.087],
        [0.915, 0.82, 0.666, 0.025],
        [0.616, 0.523, 0.305, 0.104],
        [0.947, 0.775, 0.498, 0.13],
        [0.62, 0.524, 0.386, 0.049],
        [0.429, 0.417, 0.327, 0.09],
        [0.945, 0.777, 0.526, 0.037],
        [0.946, 0.934, 0.756, 0.065],
        [0.663, 0.65, 0.527, 0.048],
        [0.745, 0.63, 0.408, 0.077],
        [0.62, 0.559, 0.442, 0.1],
        [0.962, 0.787, 0.557, 0.073],
    )
    doc = _levels(["N1", "N2", "N3", "N4"], lambda i, j: tables[3 * i + j], DEFAULT_PRICES)
    return {"name": "near-tie-steep", "description": "near-tied best pair, steep top drop", **doc}


def plateau_market() -> MarketDoc:
    """Equal acceptance over a range of prices: revenue rises along the plateau, then falls."""
    tables = (
        ([0.80, 0.80, 0.80, 0.35], [0.70, 0.70, 0.42, 0.38], [0.90, 0.62, 0.62, 0.62]),
        ([0.60, 0.60, 0.60, 0.60], [0.85, 0.85, 0.50, 0.20], [0.75, 0.75, 0.75, 0.30]),
    )
    doc = _levels(["Airport", "Downtown"], lambda i, j: tables[i][j], DEFAULT_PRICES)
    return {"name": "plateau", "description": "flat acceptance over a price range", **doc}


def non_monotone_market() -> MarketDoc:
    """Acceptance that rises with price over part of the grid (a price that signals quality)."""
    tables = (
        ([0.75, 0.40, 0.55, 0.10], [0.50, 0.62, 0.55, 0.30], [0.60, 0.45, 0.62, 0.25]),
        ([0.40, 0.45, 0.50, 0.30], [0.80, 0.50, 0.58, 0.15], [0.70, 0.72, 0.40, 0.36]),
    )
    doc = _levels(["Airport", "Downtown"], lambda i, j: tables[i][j], DEFAULT_PRICES)
    return {"name": "non-monotone", "description": "acceptance rising with price in bands", **doc}


def _mixed_curve(rng: np.random.Generator, prices: FloatArray, level: int) -> FloatArray:
    """A random acceptance curve: logistic, linear, constant-elasticity or a plateau."""
    shape = rng.integers(4)
    if shape == 0:  # logistic
        a, b = 0.5 + level + rng.uniform(-0.5, 0.5), rng.uniform(1.5, 4.0)
        return np.asarray(1.0 / (1.0 + np.exp(-(a - b * (prices - 1.0)))))
    if shape == 1:  # linear
        c, d = rng.uniform(0.6, 0.95), rng.uniform(0.3, 0.6)
        return np.clip(c - d * (prices - 1.0), 0.02, 1.0)
    if shape == 2:  # constant elasticity
        return np.asarray(rng.uniform(0.6, 0.95) * prices ** -rng.uniform(0.6, 2.5))
    top, edge = rng.uniform(0.6, 0.9), prices[rng.integers(1, prices.size - 1)]  # plateau
    return np.where(prices <= edge, top, top * rng.uniform(0.2, 0.6))


def context_skew_market(n_rare: int = 20) -> MarketDoc:
    """Three contexts take about 80 % of the traffic; many rare ones share the rest."""
    rng = np.random.default_rng(BUILD_SEED + 1)
    prices = np.array(DEFAULT_PRICES)
    heavy = 0.8 / 3
    rare = 0.2 / (3 * n_rare)
    contexts = [
        _context("Hub", level, list(_mixed_curve(rng, prices, j)), round(heavy, 6))
        for j, level in enumerate(DEMAND_LEVELS)
    ]
    for rank in range(1, n_rare + 1):
        for j, level in enumerate(DEMAND_LEVELS):
            curve = _mixed_curve(rng, prices, j)
            contexts.append(_context(f"R{rank:02d}", level, list(curve), round(rare, 6)))
    return {
        "name": "context-skew",
        "description": f"3 contexts with 80 % of arrivals, {3 * n_rare} rare ones",
        "prices": list(DEFAULT_PRICES),
        "contexts": contexts,
    }


def large_grid_market() -> MarketDoc:
    """Twelve prices and six contexts of mixed curve shapes."""
    rng = np.random.default_rng(BUILD_SEED + 2)
    prices = np.array(LARGE_PRICES)
    doc = _levels(
        ["Airport", "Downtown"],
        lambda _, level: list(_mixed_curve(rng, prices, level)),
        LARGE_PRICES,
    )
    return {"name": "large-grid", "description": "12 prices, mixed curve shapes", **doc}


def drift_market(l6: MarketDoc) -> MarketDoc:
    """L6 whose acceptance logits all rise by 1.5 halfway through the run."""
    return {**l6, "name": "L6-drift", "drift": [{"at": 0.5, "logit_shift": 1.5}]}


def l6_like_shift_market() -> MarketDoc:
    """An L6-like logistic market whose customers turn more price-sensitive halfway through."""
    intercepts = ((1.6, 2.4, 3.2), (1.0, 1.9, 2.8))
    doc: MarketDoc = {
        "name": "L6-like-shift",
        "description": "logistic like L6 (b = 2.5), every logit falls by 1.2 at half the run",
        "prices": list(DEFAULT_PRICES),
        "contexts": [
            {
                "location": location,
                "demand_level": level,
                "weight": 1.0,
                "logistic": {"a": intercepts[i][j], "b": 2.5},
            }
            for i, location in enumerate(("Airport", "Downtown"))
            for j, level in enumerate(DEMAND_LEVELS)
        ],
        "drift": [{"at": 0.5, "logit_shift": -1.2}],
    }
    return doc


def trend_market(l6: MarketDoc, steps: int = TREND_STEPS) -> MarketDoc:
    """L6 whose logits climb by 1.5 in small even steps over the whole run (a slow trend)."""
    shift = round(1.5 / steps, 6)
    drift = [{"at": round(k / steps, 6), "logit_shift": shift} for k in range(1, steps)]
    return {**l6, "name": "L6-trend", "drift": drift}


def one_context_shift_market(l6: MarketDoc) -> MarketDoc:
    """L6 where halfway through only Downtown|low changes, enough to move its best price."""
    only = [{"location": "Downtown", "demand_level": "low"}]
    drift = [{"at": 0.5, "logit_shift": 2.0, "contexts": only}]
    return {**l6, "name": "L6-one-shift", "drift": drift}


FAMILIES: dict[str, Callable[[], MarketDoc]] = {
    "linear": linear_market,
    "elasticity": elasticity_market,
    "cliff": cliff_market,
    "near-tie": near_tie_market,
    "many-contexts": many_contexts_market,
    "near-tie-steep": near_tie_steep_market,
    "plateau": plateau_market,
    "non-monotone": non_monotone_market,
    "context-skew": context_skew_market,
    "large-grid": large_grid_market,
    "l6-like-shift": l6_like_shift_market,
}
L6_VARIANTS: dict[str, Callable[[MarketDoc], MarketDoc]] = {
    "l6-drift": drift_market,
    "l6-trend": trend_market,
    "l6-one-shift": one_context_shift_market,
}  # built from the bundled l6.json
