"""Contexts: a location plus a demand level derived from the supply/demand ratio."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dynpricing.core.errors import PricingError

DEMAND_LEVELS: tuple[str, ...] = ("low", "medium", "high")
CONTEXT_KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class DemandThresholds:
    """Ratio bounds of active requests per available driver.

    A ratio below ``low_below`` is low demand, below ``medium_below`` medium,
    anything else (including no drivers at all) high.
    """

    low_below: float = 1.0
    medium_below: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_below <= self.medium_below:
            raise PricingError(
                f"demand thresholds must satisfy 0 <= low_below <= medium_below, "
                f"got low_below={self.low_below}, medium_below={self.medium_below}"
            )


DEFAULT_THRESHOLDS = DemandThresholds()


def demand_level(
    active_requests: int,
    available_drivers: int,
    thresholds: DemandThresholds = DEFAULT_THRESHOLDS,
) -> str:
    """Classify demand pressure; zero drivers means high demand (nobody can serve)."""
    if active_requests < 0 or available_drivers < 0:
        raise PricingError(
            f"active_requests and available_drivers must be >= 0, "
            f"got {active_requests} and {available_drivers}"
        )
    if available_drivers == 0:
        return "high"
    ratio = active_requests / available_drivers
    if ratio < thresholds.low_below:
        return "low"
    if ratio < thresholds.medium_below:
        return "medium"
    return "high"


def context_key(location: str, level: str) -> str:
    """The one-string name of a context, e.g. ``"Airport|high"`` (also the Kafka key)."""
    return f"{location}{CONTEXT_KEY_SEPARATOR}{level}"


LEVEL_INDEX: dict[str, int] = {level: i for i, level in enumerate(DEMAND_LEVELS)}
_NO_ROW = -1


class ContextTable:
    """Rows of contexts by ``(location, demand level)``, without Python objects per context.

    Each distinct location string is kept once, with an id; numpy arrays hold
    each location's row per demand level and each row's location id and level.
    A million arms (250,000 contexts) cost a few megabytes instead of a tuple,
    two strings and a dict entry per context.
    """

    def __init__(self) -> None:
        self._location_ids: dict[str, int] = {}
        self._locations: list[str] = []
        self._rows = np.full(0, _NO_ROW, dtype=np.int32)  # location id * levels + level -> row
        self._row_location = np.zeros(0, dtype=np.int32)
        self._row_level = np.zeros(0, dtype=np.int8)
        self._size = 0
        self._names: list[tuple[str, str]] = []  # built on demand by names()

    def __len__(self) -> int:
        return self._size

    def get(self, location: str, level: str) -> int | None:
        """Row of a known context, else None."""
        location_id = self._location_ids.get(location)
        level_id = LEVEL_INDEX.get(level)
        if location_id is None or level_id is None:
            return None
        row: int = self._rows.item(location_id * len(DEMAND_LEVELS) + level_id)
        return None if row == _NO_ROW else row

    def add(self, location: str, level: str) -> int:
        """Append a new context (level must be one of ``DEMAND_LEVELS``); returns its row."""
        location_id = self._location_ids.get(location)
        if location_id is None:
            location_id = len(self._locations)
            self._location_ids[location] = location_id
            self._locations.append(location)
            self._rows = _grown(self._rows, len(self._locations) * len(DEMAND_LEVELS), _NO_ROW)
        row = self._size
        if row == self._row_location.size:
            self._row_location = _grown(self._row_location, row + 1, 0)
            self._row_level = _grown(self._row_level, row + 1, 0)
        self._row_location[row] = location_id
        self._row_level[row] = LEVEL_INDEX[level]
        self._rows[location_id * len(DEMAND_LEVELS) + LEVEL_INDEX[level]] = row
        self._size = row + 1
        return row

    def extend(self, locations: list[str], levels: list[str]) -> None:
        """Append many new contexts at once (an empty table adopting a snapshot's rows)."""
        ids = self._location_ids
        for location in _fresh_copies([loc for loc in dict.fromkeys(locations) if loc not in ids]):
            ids[location] = len(ids)
        location_ids = [ids[location] for location in locations]
        self._locations = list(ids)  # dicts keep insertion order: id i is the i-th key
        level_ids = [LEVEL_INDEX[level] for level in levels]
        start, self._size = self._size, self._size + len(location_ids)
        self._row_location = _grown(self._row_location, self._size, 0)
        self._row_level = _grown(self._row_level, self._size, 0)
        self._row_location[start : self._size] = location_ids
        self._row_level[start : self._size] = level_ids
        self._rows = _grown(self._rows, len(self._locations) * len(DEMAND_LEVELS), _NO_ROW)
        flat = self._row_location[start : self._size].astype(np.int64) * len(DEMAND_LEVELS)
        self._rows[flat + self._row_level[start : self._size]] = np.arange(start, self._size)

    def name(self, row: int) -> tuple[str, str]:
        """``(location, level)`` of one row, without building :meth:`names`."""
        if not 0 <= row < self._size:
            raise IndexError(f"context row {row} is not in [0, {self._size})")
        location_id: int = self._row_location.item(row)
        level_id: int = self._row_level.item(row)
        return self._locations[location_id], DEMAND_LEVELS[level_id]

    def names(self) -> list[tuple[str, str]]:
        """Row -> ``(location, level)``; kept once built, extended as contexts appear."""
        names = self._names
        if len(names) < self._size:
            locations, start = self._locations, len(names)
            location_ids = self._row_location[start : self._size].tolist()
            levels = self._row_level[start : self._size].tolist()
            names.extend(
                (locations[i], DEMAND_LEVELS[j]) for i, j in zip(location_ids, levels, strict=True)
            )
        return names

    def locations(self) -> list[str]:
        """Location of every row, in row order."""
        return list(map(self._locations.__getitem__, self._row_location[: self._size].tolist()))

    def levels(self) -> list[str]:
        """Demand level of every row, in row order."""
        return list(map(DEMAND_LEVELS.__getitem__, self._row_level[: self._size].tolist()))


def _fresh_copies(strings: list[str]) -> list[str]:
    """New string objects equal to ``strings``, allocated next to each other.

    Locations read from a snapshot were allocated between millions of numbers
    that are freed right after loading; keeping those very strings would pin
    the allocator's memory around them and keep it from the operating system.
    """
    joined = "".join(strings)
    ends = itertools.accumulate(map(len, strings))
    return [joined[end - len(text) : end] for text, end in zip(strings, ends, strict=True)]


def _grown(values: npt.NDArray[Any], size: int, fill: int) -> npt.NDArray[Any]:
    """``values`` if it holds ``size`` entries, else a copy with doubled capacity."""
    if size <= values.size:
        return values
    grown = np.full(max(16, 2 * values.size, size), fill, dtype=values.dtype)
    grown[: values.size] = values
    return grown
