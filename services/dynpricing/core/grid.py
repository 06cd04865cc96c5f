"""The price grid: the arms are price multipliers, ascending."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from dynpricing.core.errors import PriceNotOnGridError, PricingError

PRICE_MATCH_TOLERANCE = 1e-9  # absolute; prices arrive as decimal JSON floats

FloatArray = npt.NDArray[np.float64]


def validate_grid(prices: Sequence[float]) -> FloatArray:
    """Return the grid as a float64 array, refusing empty, unsorted or non-positive grids.

    Ascending order matters: the monotone policy assumes acceptance does not
    rise along the arm axis.
    """
    grid = np.asarray(prices, dtype=np.float64)
    if grid.ndim != 1 or grid.size == 0:
        raise PricingError(f"price grid must be a non-empty list, got {list(prices)}")
    if not np.all(np.isfinite(grid)) or np.any(grid <= 0):
        raise PricingError(f"price grid must hold finite positive numbers, got {grid.tolist()}")
    if np.any(np.diff(grid) <= PRICE_MATCH_TOLERANCE):
        raise PricingError(f"price grid must be strictly ascending, got {grid.tolist()}")
    return grid


def arm_index(grid: FloatArray, price: float) -> int:
    """Index of ``price`` on the grid, tolerant to float round-off."""
    distance = np.abs(grid - float(price))
    index = int(np.argmin(distance))
    if not distance[index] <= PRICE_MATCH_TOLERANCE:
        raise PriceNotOnGridError(f"price {price} is not on the grid {grid.tolist()}")
    return index


def same_grid(left: Sequence[float], right: Sequence[float]) -> bool:
    """True when two grids have the same arms (within the match tolerance)."""
    if len(left) != len(right):
        return False
    return bool(np.all(np.abs(np.asarray(left) - np.asarray(right)) <= PRICE_MATCH_TOLERANCE))
