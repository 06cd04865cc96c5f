"""The market model: true acceptance curves, the ground truth for scoring policies.

Parsed from the market-file format of ``docs/pricing.md`` (the benchmark
format). The core only sees an already-parsed mapping; reading the file is the
caller's job. Every refusal names the offending field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dynpricing.core.contexts import DEMAND_LEVELS
from dynpricing.core.errors import MarketFileError, PricingError
from dynpricing.core.grid import validate_grid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

LOGIT_CLIP = 1e-12  # tabulated 0 or 1 stay finite when a drift shifts their logit
# Mean requests and drivers of an event per demand level when a context gives no
# ``supply``: the ratios sit inside each level's band (low < 1 <= medium < 2 <= high).
DEFAULT_SUPPLY: dict[str, tuple[float, float]] = {
    "low": (8.0, 12.0),
    "medium": (15.0, 10.0),
    "high": (25.0, 10.0),
}


@dataclass(frozen=True)
class Drift:
    """At ``at`` (fraction of the horizon) acceptance logits move by ``logit_shift``.

    ``rows`` are the contexts that move (their rows in the market); empty means
    every context.
    """

    at: float
    logit_shift: float
    rows: tuple[int, ...] = ()


@dataclass(frozen=True)
class Market:
    """True acceptance per (context, arm), arrival weights and optional drift."""

    name: str
    prices: FloatArray
    contexts: tuple[tuple[str, str], ...]
    weights: FloatArray  # arrival probabilities, sum to 1
    base_acceptance: FloatArray  # (n_contexts, n_arms) before any drift
    drift: tuple[Drift, ...] = ()
    supply: FloatArray | None = None  # (n_contexts, 2) mean requests and drivers of an event

    def acceptance(self, fraction: float = 0.0) -> FloatArray:
        """True acceptance at a point of the run (fraction of the horizon elapsed)."""
        shift = np.zeros((len(self.contexts), 1))
        for d in self.drift:
            if fraction >= d.at:
                shift[list(d.rows) if d.rows else slice(None)] += d.logit_shift
        moved = shift[:, 0] != 0
        if not moved.any():
            return self.base_acceptance
        acceptance = self.base_acceptance.copy()  # contexts that did not move stay exact
        acceptance[moved] = _sigmoid(_logit(self.base_acceptance[moved]) + shift[moved])
        return acceptance

    def mean_supply(self) -> FloatArray:
        """Mean (requests, drivers) of an event per context; the level's default if not given."""
        if self.supply is not None:
            return self.supply
        return np.array([DEFAULT_SUPPLY[level] for _, level in self.contexts])

    def expected_revenue(self, fraction: float = 0.0) -> FloatArray:
        """Price x acceptance per (context, arm): the score of a decision."""
        revenue: FloatArray = self.acceptance(fraction) * self.prices
        return revenue

    def oracle_arms(self, fraction: float = 0.0) -> IntArray:
        """The revenue-optimal arm per context."""
        arms: IntArray = self.expected_revenue(fraction).argmax(axis=1).astype(np.int64)
        return arms

    def acceptance_optimal_arms(self, fraction: float = 0.0) -> IntArray:
        """The arm a pure acceptance maximiser converges to, per context."""
        arms: IntArray = self.acceptance(fraction).argmax(axis=1).astype(np.int64)
        return arms

    def regret(self, contexts: IntArray, arms: IntArray, fraction: float = 0.0) -> FloatArray:
        """Expected revenue lost by each decision against the oracle."""
        revenue = self.expected_revenue(fraction)
        lost: FloatArray = revenue.max(axis=1)[contexts] - revenue[contexts, arms]
        return lost

    def phase_starts(self, horizon: int) -> list[int]:
        """First decision index of each drift phase (phase 0 starts at 0)."""
        return [0, *sorted({math.ceil(d.at * horizon) for d in self.drift})]


def _sigmoid(x: FloatArray) -> FloatArray:
    result: FloatArray = 1.0 / (1.0 + np.exp(-x))
    return result


def _logit(p: FloatArray) -> FloatArray:
    clipped = np.clip(p, LOGIT_CLIP, 1.0 - LOGIT_CLIP)
    result: FloatArray = np.log(clipped) - np.log1p(-clipped)
    return result


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise MarketFileError(f"{field}: expected a finite number, got {value!r}")
    return float(value)


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MarketFileError(f"{field}: expected an object, got {type(value).__name__}")
    return value


def _prices(doc: Mapping[str, Any]) -> FloatArray:
    raw = doc.get("prices")
    if not isinstance(raw, list) or not raw:
        raise MarketFileError(f"prices: expected a non-empty list of multipliers, got {raw!r}")
    values = [_number(v, f"prices[{i}]") for i, v in enumerate(raw)]
    try:
        return validate_grid(values)
    except PricingError as exc:
        raise MarketFileError(f"prices: {exc}") from exc


def _curve(ctx: Mapping[str, Any], field: str, prices: FloatArray) -> FloatArray:
    """Acceptance per price from exactly one of ``logistic`` or ``acceptance``."""
    if ("logistic" in ctx) == ("acceptance" in ctx):
        raise MarketFileError(f"{field}: give exactly one of 'logistic' or 'acceptance'")
    if "logistic" in ctx:
        logistic = _mapping(ctx["logistic"], f"{field}.logistic")
        a = _number(logistic.get("a"), f"{field}.logistic.a")
        b = _number(logistic.get("b"), f"{field}.logistic.b")
        return _sigmoid(a - b * (prices - 1.0))
    table = ctx["acceptance"]
    if not isinstance(table, list) or len(table) != prices.size:
        raise MarketFileError(
            f"{field}.acceptance: expected {prices.size} probabilities (one per price), "
            f"got {table!r}"
        )
    values = [_number(v, f"{field}.acceptance[{i}]") for i, v in enumerate(table)]
    for i, v in enumerate(values):
        if not 0.0 <= v <= 1.0:
            raise MarketFileError(f"{field}.acceptance[{i}]: probability {v} not in [0, 1]")
    return np.asarray(values, dtype=np.float64)


def _supply(ctx: Mapping[str, Any], field: str, level: str) -> tuple[float, float]:
    """Mean requests and drivers of an event in this context (``supply``, optional)."""
    if "supply" not in ctx:
        return DEFAULT_SUPPLY[level]
    supply = _mapping(ctx["supply"], f"{field}.supply")
    means = []
    for key in ("requests", "drivers"):
        value = _number(supply.get(key), f"{field}.supply.{key}")
        if value < 0:
            raise MarketFileError(f"{field}.supply.{key}: must be >= 0, got {value}")
        means.append(value)
    return means[0], means[1]


_Context = tuple[tuple[str, str], float, FloatArray, tuple[float, float]]


def _context(ctx: Any, field: str, prices: FloatArray) -> _Context:
    ctx = _mapping(ctx, field)
    location = ctx.get("location")
    if not isinstance(location, str) or not location:
        raise MarketFileError(f"{field}.location: expected a non-empty string, got {location!r}")
    level = ctx.get("demand_level")
    if level not in DEMAND_LEVELS:
        raise MarketFileError(
            f"{field}.demand_level: expected one of {list(DEMAND_LEVELS)}, got {level!r}"
        )
    weight = _number(ctx.get("weight", 1.0), f"{field}.weight")
    if weight <= 0:
        raise MarketFileError(f"{field}.weight: must be > 0, got {weight}")
    curve = _curve(ctx, field, prices)
    supply = _supply(ctx, field, str(level))
    return (location, str(level)), weight, curve, supply


def _drift_rows(
    entry: Mapping[str, Any], field: str, keys: list[tuple[str, str]]
) -> tuple[int, ...]:
    """Rows named by a drift's optional ``contexts`` list (empty: every context)."""
    raw = entry.get("contexts")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise MarketFileError(f"{field}.contexts: expected a non-empty list, got {raw!r}")
    rows = []
    for j, item in enumerate(raw):
        named = _mapping(item, f"{field}.contexts[{j}]")
        key = (named.get("location"), named.get("demand_level"))
        if key not in keys:
            raise MarketFileError(f"{field}.contexts[{j}]: no context {key} in the market")
        rows.append(keys.index(key))
    return tuple(rows)


def _drift(raw: Any, keys: list[tuple[str, str]]) -> tuple[Drift, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise MarketFileError(f"drift: expected a list, got {type(raw).__name__}")
    drifts = []
    for i, item in enumerate(raw):
        field = f"drift[{i}]"
        entry = _mapping(item, field)
        at = _number(entry.get("at"), f"{field}.at")
        if not 0.0 <= at <= 1.0:
            raise MarketFileError(f"{field}.at: must be a fraction in [0, 1], got {at}")
        shift = _number(entry.get("logit_shift"), f"{field}.logit_shift")
        drifts.append(Drift(at=at, logit_shift=shift, rows=_drift_rows(entry, field, keys)))
    return tuple(drifts)


def load_market(doc: Any) -> Market:
    """Validate a parsed market file and build the model."""
    doc = _mapping(doc, "market")
    prices = _prices(doc)
    raw_contexts = doc.get("contexts")
    if not isinstance(raw_contexts, list) or not raw_contexts:
        raise MarketFileError("contexts: expected a non-empty list")
    parsed = [_context(c, f"contexts[{i}]", prices) for i, c in enumerate(raw_contexts)]
    keys = [key for key, *_ in parsed]
    for i, key in enumerate(keys):
        if key in keys[:i]:
            raise MarketFileError(f"contexts[{i}]: duplicate context {key}")
    weights = np.array([w for _, w, *_ in parsed])
    name = doc.get("name", "market")
    if not isinstance(name, str):
        raise MarketFileError(f"name: expected a string, got {name!r}")
    return Market(
        name=name,
        prices=prices,
        contexts=tuple(keys),
        weights=weights / weights.sum(),
        base_acceptance=np.stack([item[2] for item in parsed]),
        drift=_drift(doc.get("drift"), keys),
        supply=np.array([item[3] for item in parsed]),
    )


def context_rows(market: Market, keys: Sequence[tuple[str, str]]) -> IntArray:
    """Rows of the given (location, demand_level) keys in the market."""
    index = {key: i for i, key in enumerate(market.contexts)}
    return np.array([index[key] for key in keys], dtype=np.int64)
