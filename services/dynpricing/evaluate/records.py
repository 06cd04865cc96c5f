"""Logged messages as evaluation reads them: raw records in, checked decisions and outcomes out.

A raw record is one Kafka message (or one line of a dump) exactly as it was
logged: which topic, partition and offset, and the value's bytes. Reading the
topics and reading a dump of them yield the same records, so they give the
same estimates. Parsing goes through :mod:`dynpricing.events`, the engine's
own parser, plus the checks evaluation needs and the engine does not: a
decision must carry a propensity in (0, 1]. Anything unusable is counted under
a reason, never dropped silently and never given a made-up value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from dynpricing import events
from dynpricing.core.errors import PriceNotOnGridError
from dynpricing.core.grid import arm_index, validate_grid

FloatArray = npt.NDArray[np.float64]

DECISION = "decision"
OUTCOME = "outcome"
KINDS = (DECISION, OUTCOME)

# Why a logged decision cannot be scored; stable keys of the report's "excluded" section.
NO_PROPENSITY = "no_propensity"
INVALID_PROPENSITY = "invalid_propensity"
INVALID_DECISION = "invalid_decision"
PRICE_NOT_ON_GRID = "price_not_on_grid"
DUPLICATE_DECISION = "duplicate_decision"
INVALID_OUTCOME = "invalid_outcome"


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One logged message: where it was and its value, byte for byte."""

    kind: str  # DECISION or OUTCOME
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp_ms: int | None = None  # the broker's message timestamp, if known

    def order(self) -> tuple[str, int, int]:
        return (self.kind, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision that can take part in the join (propensity may still be unusable)."""

    decision_id: str
    time: float
    location: str
    demand_level: str
    arm: int
    propensity: float | None  # None: missing or invalid, counted under ``unusable``
    unusable: str | None = None  # why it cannot be scored, if so
    model_version: str = ""


@dataclass
class ParsedLog:
    """Decisions and outcomes that parsed, in time order, and what was refused."""

    decisions: list[LoggedDecision] = field(default_factory=list)
    outcomes: list[events.Outcome] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    decisions_read: int = 0
    outcomes_read: int = 0


def propensity_problem(obj: Any) -> str | None:
    """Why a decision's ``propensity`` cannot weight it, or None when it is in (0, 1].

    The engine's parser reads a missing propensity as 1.0, which would weight
    an old client's decision as if it were certain: evaluation refuses that.
    """
    if not isinstance(obj, dict) or obj.get("propensity") is None:
        return NO_PROPENSITY
    value = obj["propensity"]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return INVALID_PROPENSITY
    if not math.isfinite(value) or not 0.0 < value <= 1.0:
        return INVALID_PROPENSITY
    return None


def parse_decision(record: RawRecord, grid: FloatArray) -> LoggedDecision | str:
    """A logged decision, or the reason it cannot join at all."""
    try:
        decision = events.parse_decision(record.value)
        arm = arm_index(grid, decision.price_multiplier)
    except events.InvalidEvent:
        return INVALID_DECISION
    except PriceNotOnGridError:
        return PRICE_NOT_ON_GRID
    problem = propensity_problem(orjson.loads(record.value or b"null"))
    return LoggedDecision(
        decision_id=decision.decision_id,
        time=decision.timestamp,
        location=decision.location,
        demand_level=decision.demand_level,
        arm=arm,
        propensity=None if problem else decision.propensity,
        unusable=problem,
        model_version=decision.model_version,
    )


def parse_records(records: Iterable[RawRecord], prices: Sequence[float]) -> ParsedLog:
    """Parse every record; decisions and outcomes come back sorted by their own timestamps.

    Ties keep the log's order (partition, offset), so any reading order of the
    same records gives the same result.
    """
    parsed = ParsedLog()
    grid = validate_grid(prices)
    decisions: list[tuple[float, int, int, LoggedDecision]] = []
    outcomes: list[tuple[float, int, int, events.Outcome]] = []
    for record in records:
        if record.kind == DECISION:
            parsed.decisions_read += 1
            decision = parse_decision(record, grid)
            if isinstance(decision, str):
                parsed.refused[decision] += 1
            else:
                decisions.append((decision.time, record.partition, record.offset, decision))
        elif record.kind == OUTCOME:
            parsed.outcomes_read += 1
            try:
                outcome = events.parse_outcome(record.value)
            except events.InvalidEvent:
                parsed.refused[INVALID_OUTCOME] += 1
                continue
            outcomes.append((outcome.timestamp, record.partition, record.offset, outcome))
        else:
            raise ValueError(f"record kind must be one of {KINDS}, got {record.kind!r}")
    decisions.sort(key=lambda item: item[:3])
    outcomes.sort(key=lambda item: item[:3])
    parsed.decisions = [item[3] for item in decisions]
    parsed.outcomes = [item[3] for item in outcomes]
    return parsed
