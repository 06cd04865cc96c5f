"""The learning state as a versioned, human-readable JSON document.

Columns, not one object per arm: row ``i`` of every table is context ``i``, so
a million arms stay a few tens of megabytes and load in one ``np.asarray``.
The document is checked against the configuration and refused with a message
saying how it differs; it is never silently merged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dynpricing.core.contexts import DEMAND_LEVELS
from dynpricing.core.errors import SnapshotError
from dynpricing.core.grid import same_grid

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.integer[Any]]  # int64 when read; the bandit may keep int32

SNAPSHOT_FORMAT = "dynpricing.bandit_stats"
SNAPSHOT_VERSION = 2  # 2 added adaptive forgetting's rate tables; version 1 still loads
READABLE_VERSIONS = (1, 2)
PRIOR_TOLERANCE = 1e-12
PARAM_TABLES = ("alpha", "beta")
COUNT_TABLES = ("successes", "failures", "pulls")
RATE_TABLES = ("rate_successes", "rate_failures", "rate_score")


@dataclass(frozen=True)
class LearnedTables:
    """Everything a bandit has learned: contexts plus per-(context, arm) tables.

    Row ``i`` is the context ``(locations[i], levels[i])``.
    """

    locations: list[str]
    levels: list[str]
    alpha: FloatArray
    beta: FloatArray
    successes: IntArray
    failures: IntArray
    pulls: IntArray
    clock: FloatArray  # forgetting clock of each context (time of its last decay)
    total_outcomes: int
    # adaptive forgetting (absent in version 1 and under other forgetting rules)
    rate_successes: npt.NDArray[np.floating[Any]] | None = None  # (contexts, rates, arms)
    rate_failures: npt.NDArray[np.floating[Any]] | None = None
    rate_score: FloatArray | None = None  # (contexts, rates + 1)


@dataclass(frozen=True)
class SnapshotHeader:
    """The configuration a snapshot must match to be loaded."""

    prices: tuple[float, ...]
    prior_alpha: float
    prior_beta: float
    objective: str
    policy: str
    half_life: float | None
    forgetting_floor: float
    forgetting: str = "none"  # the rule's kind, see core.forgetting
    adaptive_half_lives: tuple[float, ...] = ()  # adaptive only: its finite rates


def to_document(
    header: SnapshotHeader,
    tables: LearnedTables,
    extra: Mapping[str, object] | None,
    *,
    arrays: bool = False,
) -> dict[str, object]:
    """A JSON-able dict of the whole learning state; ``extra`` is the engine's section.

    With ``arrays`` the tables are copies of the numpy arrays instead of nested
    lists: orjson (``OPT_SERIALIZE_NUMPY``, as ``statefile`` uses) writes the
    same JSON from them without creating a Python number per arm, which is
    most of the time and memory of a million-arm snapshot.
    """

    def table(values: Any) -> Any:
        return values.copy() if arrays else values.tolist()

    forgetting: dict[str, object] = {
        "kind": header.forgetting,
        "half_life": header.half_life,
        "floor": header.forgetting_floor,
    }
    rates: dict[str, object] = {}
    if tables.rate_successes is not None:
        forgetting["half_lives"] = list(header.adaptive_half_lives)
        rates = {name: _single(getattr(tables, name), arrays) for name in RATE_TABLES}
    return {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "prices": list(header.prices),
        "prior": {"alpha": header.prior_alpha, "beta": header.prior_beta},
        "objective": header.objective,
        "policy": header.policy,
        "forgetting": forgetting,
        "total_outcomes": tables.total_outcomes,
        "contexts": {
            "location": tables.locations,
            "demand_level": tables.levels,
            "clock": table(tables.clock),
            **{name: table(getattr(tables, name)) for name in PARAM_TABLES + COUNT_TABLES},
            **rates,
        },
        "engine": dict(extra or {}),
    }


CONTEXT_FORMAT = "dynpricing.context_model"
CONTEXT_VERSION = 1
CONTEXT_READABLE_VERSIONS = (1,)


@dataclass(frozen=True)
class ContextState:
    """One context's posterior: what deciding needs, and its counts for people to read.

    ``alpha``/``beta`` are the posterior the policies decide with (under
    adaptive forgetting, that of the rate currently chosen); ``clock`` is the
    time of its last decay under a fixed half-life. Counts are lifetime totals.
    """

    location: str
    demand_level: str
    alpha: FloatArray
    beta: FloatArray
    clock: float
    successes: IntArray
    failures: IntArray
    pulls: IntArray


def context_to_document(
    header: SnapshotHeader, state: ContextState, extra: Mapping[str, object] | None = None
) -> dict[str, object]:
    """A JSON-able dict of one context (a model message); ``extra`` adds top-level fields."""
    return {
        "format": CONTEXT_FORMAT,
        "version": CONTEXT_VERSION,
        "prices": list(header.prices),
        "prior": {"alpha": header.prior_alpha, "beta": header.prior_beta},
        "objective": header.objective,
        "policy": header.policy,
        "forgetting": {"kind": header.forgetting, "half_life": header.half_life},
        "location": state.location,
        "demand_level": state.demand_level,
        "alpha": state.alpha.tolist(),
        "beta": state.beta.tolist(),
        "clock": float(state.clock),
        "successes": state.successes.tolist(),
        "failures": state.failures.tolist(),
        "pulls": state.pulls.tolist(),
        **dict(extra or {}),
    }


def context_from_document(doc: Mapping[str, Any], header: SnapshotHeader) -> ContextState:
    """Parse and check one context's document; :class:`SnapshotError` says how it misfits."""
    if not isinstance(doc, Mapping):
        raise SnapshotError(f"context model must be a JSON object, got {type(doc).__name__}")
    check_header(doc, header, CONTEXT_FORMAT, CONTEXT_READABLE_VERSIONS)
    names = ("location", "demand_level", "clock", *PARAM_TABLES, *COUNT_TABLES)
    columns = {name: [doc[name]] for name in names if name in doc}  # a table of one row
    locations, levels = _context_keys(columns)
    shape = (1, len(header.prices))
    state = LearnedTables(
        locations=locations,
        levels=levels,
        alpha=_table(columns, "alpha", shape, np.float64),
        beta=_table(columns, "beta", shape, np.float64),
        successes=_table(columns, "successes", shape, np.int64),
        failures=_table(columns, "failures", shape, np.int64),
        pulls=_table(columns, "pulls", shape, np.int64),
        clock=_table(columns, "clock", (1,), np.float64),
        total_outcomes=0,
    )
    _check_values(state)
    return ContextState(
        location=locations[0],
        demand_level=levels[0],
        alpha=state.alpha[0],
        beta=state.beta[0],
        clock=float(state.clock[0]),
        successes=state.successes[0],
        failures=state.failures[0],
        pulls=state.pulls[0],
    )


def _single(values: Any, arrays: bool) -> Any:
    """A single-precision table as its shortest decimals (orjson writes float32 arrays so).

    The list form holds the float64 nearest to each shortest decimal, which
    JSON writes as that same decimal, so both forms give the same bytes; read
    back and rounded to single precision, every value is exactly what it was.
    """
    single = np.asarray(values, dtype=np.float32)
    if arrays:
        return single.copy()
    shortest = np.array([float(str(v)) for v in single.ravel()], dtype=np.float64)
    return shortest.reshape(single.shape).tolist()


def _field(doc: Mapping[str, Any], name: str) -> Any:
    if name not in doc:
        raise SnapshotError(f"snapshot has no {name!r} field")
    return doc[name]


def check_header(
    doc: Mapping[str, Any],
    header: SnapshotHeader,
    fmt: str = SNAPSHOT_FORMAT,
    versions: Sequence[int] = READABLE_VERSIONS,
) -> None:
    """Refuse a document written for another format, grid, prior or objective."""
    if doc.get("format") != fmt or doc.get("version") not in versions:
        raise SnapshotError(
            f"snapshot format {doc.get('format')!r} version {doc.get('version')!r} "
            f"!= expected {fmt!r} version {max(versions)} (or one of {list(versions)})"
        )
    prices = _field(doc, "prices")
    if not _is_number_list(prices) or not same_grid(prices, header.prices):
        raise SnapshotError(f"snapshot grid {prices} != configured grid {list(header.prices)}")
    prior = _field(doc, "prior")
    expected = {"alpha": header.prior_alpha, "beta": header.prior_beta}
    if not isinstance(prior, Mapping) or not all(
        _close(prior.get(key), value) for key, value in expected.items()
    ):
        raise SnapshotError(f"snapshot prior {prior} != configured prior {expected}")
    objective = _field(doc, "objective")
    if objective != header.objective:
        raise SnapshotError(
            f"snapshot objective {objective!r} != configured objective {header.objective!r}"
        )


def _is_number_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in value
    )


def _close(value: object, expected: float) -> bool:
    return isinstance(value, int | float) and abs(float(value) - expected) <= PRIOR_TOLERANCE


def _table(columns: Mapping[str, Any], name: str, shape: tuple[int, ...], dtype: type) -> Any:
    try:
        table: Any = np.asarray(_field(columns, name), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise SnapshotError(f"snapshot contexts.{name}: not a table of numbers ({exc})") from exc
    if table.shape != shape and not (shape[0] == 0 and table.size == 0):
        raise SnapshotError(f"snapshot contexts.{name}: shape {table.shape} != expected {shape}")
    return table.reshape(shape)


LEVELS = frozenset(DEMAND_LEVELS)


def _level_or_none(level: object) -> str | None:
    return level if isinstance(level, str) else None


def _context_keys(columns: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The location and demand level columns, checked: valid and no context twice."""
    locations = _field(columns, "location")
    levels = _field(columns, "demand_level")
    if not isinstance(locations, list) or not isinstance(levels, list):
        raise SnapshotError("snapshot contexts.location and contexts.demand_level must be lists")
    if len(locations) != len(levels):
        raise SnapshotError(
            f"snapshot has {len(locations)} locations but {len(levels)} demand levels"
        )
    keys = list(zip(locations, levels, strict=True))
    if not (set(map(type, locations)) <= {str} and set(map(_level_or_none, levels)) <= LEVELS):
        i, key = next(
            (i, key)
            for i, key in enumerate(keys)
            if not isinstance(key[0], str) or key[1] not in DEMAND_LEVELS
        )
        raise SnapshotError(f"snapshot contexts[{i}] = {key} is not a valid context")
    if len(set(keys)) != len(keys):
        raise SnapshotError("snapshot lists a context more than once")
    return locations, levels


def from_document(
    doc: Mapping[str, Any], header: SnapshotHeader
) -> tuple[LearnedTables, dict[str, object]]:
    """Parse and check a document; returns the tables and the engine's section."""
    if not isinstance(doc, Mapping):
        raise SnapshotError(f"snapshot must be a JSON object, got {type(doc).__name__}")
    check_header(doc, header)
    columns = _field(doc, "contexts")
    if not isinstance(columns, Mapping):
        raise SnapshotError("snapshot contexts must be an object of columns")
    locations, levels = _context_keys(columns)
    shape = (len(locations), len(header.prices))
    tables = LearnedTables(
        locations=locations,
        levels=levels,
        alpha=_table(columns, "alpha", shape, np.float64),
        beta=_table(columns, "beta", shape, np.float64),
        successes=_table(columns, "successes", shape, np.int64),
        failures=_table(columns, "failures", shape, np.int64),
        pulls=_table(columns, "pulls", shape, np.int64),
        clock=_table(columns, "clock", (len(locations),), np.float64),
        total_outcomes=_total_outcomes(doc),
        **_rate_tables(doc, columns, header, shape),
    )
    _check_values(tables)
    engine = doc.get("engine", {})
    if not isinstance(engine, Mapping):
        raise SnapshotError("snapshot engine section must be an object")
    return tables, dict(engine)


def _rate_tables(
    doc: Mapping[str, Any],
    columns: Mapping[str, Any],
    header: SnapshotHeader,
    shape: tuple[int, int],
) -> dict[str, Any]:
    """Adaptive forgetting's tables, if the document has them for the configured rates.

    A document of version 1, of another forgetting rule or of other rates has
    none to offer: the bandit then starts the rates from the posterior (the
    migration, see ``docs/pricing.md``).
    """
    forgetting = doc.get("forgetting")
    rates = list(header.adaptive_half_lives)
    if not rates or not isinstance(forgetting, Mapping) or "rate_successes" not in columns:
        return {}
    if forgetting.get("half_lives") != rates:
        return {}
    contexts, arms = shape
    evidence = (contexts, len(rates), arms)
    return {
        "rate_successes": _table(columns, "rate_successes", evidence, np.float64),
        "rate_failures": _table(columns, "rate_failures", evidence, np.float64),
        "rate_score": _table(columns, "rate_score", (contexts, len(rates) + 1), np.float64),
    }


def _total_outcomes(doc: Mapping[str, Any]) -> int:
    total = _field(doc, "total_outcomes")
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise SnapshotError(f"snapshot total_outcomes must be a count, got {total!r}")
    return total


def _check_values(tables: LearnedTables) -> None:
    for name in PARAM_TABLES:
        table = getattr(tables, name)
        if not np.all(np.isfinite(table)) or np.any(table <= 0):
            raise SnapshotError(f"snapshot contexts.{name}: Beta parameters must be finite and > 0")
    for name in RATE_TABLES:
        table = getattr(tables, name)
        if table is not None and not np.all(np.isfinite(table)):
            raise SnapshotError(f"snapshot contexts.{name}: must be finite")
    for name in ("rate_successes", "rate_failures"):
        table = getattr(tables, name)
        if table is not None and np.any(table < 0):
            raise SnapshotError(f"snapshot contexts.{name}: evidence must be >= 0")
    for name in COUNT_TABLES:
        if np.any(getattr(tables, name) < 0):
            raise SnapshotError(f"snapshot contexts.{name}: counts must be >= 0")
    if not np.all(np.isfinite(tables.clock)):
        raise SnapshotError("snapshot contexts.clock: must be finite")


def grid_list(prices: Sequence[float] | FloatArray) -> tuple[float, ...]:
    """The grid as a tuple of plain floats (for headers and messages)."""
    return tuple(float(p) for p in prices)
