"""The joined log as arrays: what the estimators score and what learning targets learn from.

Two views of the same joined log. The scored decisions are those with a usable
propensity and an outcome (or an expiry counted as a rejection). The learning
stream is everything the engine learnt, in the order it learnt it: every
resolved decision (with or without a propensity) and every outcome learnt by
its context, so a target that learns "as the engine did" sees the same
evidence at the same time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dynpricing.evaluate.estimators import CROSS_FIT_FOLDS, LoggedDecisions, stable_folds
from dynpricing.evaluate.logjoin import JoinedLog
from dynpricing.evaluate.records import ParsedLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Context = tuple[str, str]


@dataclass(frozen=True)
class LearningStream:
    """Outcomes in the order the engine learnt them: time, context row, arm, accepted."""

    times: FloatArray
    contexts: IntArray
    arms: IntArray
    accepted: BoolArray


@dataclass(frozen=True)
class EvaluationLog:
    """Scored decisions (time order), their context names, the learning stream, the counts."""

    decisions: LoggedDecisions
    times: FloatArray  # decision time of each scored decision
    decision_ids: tuple[str, ...]
    contexts: tuple[Context, ...]  # row -> (location, demand_level)
    learning: LearningStream
    counts: dict[str, int]

    @property
    def prices(self) -> FloatArray:
        return self.decisions.prices


class NoUsableDecisionsError(ValueError):
    """Nothing in the log can be scored; the message says what was excluded and why."""


def build(
    parsed: ParsedLog, joined: JoinedLog, prices: Sequence[float], folds: int = CROSS_FIT_FOLDS
) -> EvaluationLog:
    """Arrays of the scored decisions and of the learning stream, with every count."""
    rows: dict[Context, int] = {}
    usable = [r for r in joined.resolved if r.decision.propensity is not None]
    counts = _counts(parsed, joined, usable_count=len(usable))
    if not usable:
        raise NoUsableDecisionsError(f"no usable decisions in the log; counts: {counts}")
    grid = np.asarray(prices, dtype=np.float64)
    context = _rows([(r.decision.location, r.decision.demand_level) for r in usable], rows)
    ids = tuple(r.decision.decision_id for r in usable)
    learning = _learning(joined, rows)
    scored = LoggedDecisions(
        contexts=context,
        arms=np.array([r.decision.arm for r in usable], dtype=np.int64),
        propensities=np.array([r.decision.propensity for r in usable], dtype=np.float64),
        accepted=np.array([r.accepted for r in usable], dtype=bool),
        prices=grid,
        folds=stable_folds(ids, folds),
        n_contexts=len(rows),
    )
    return EvaluationLog(
        decisions=scored,
        times=np.array([r.decision.time for r in usable], dtype=np.float64),
        decision_ids=ids,
        contexts=tuple(rows),
        learning=learning,
        counts=counts,
    )


def _rows(keys: Sequence[Context], rows: dict[Context, int]) -> IntArray:
    """Context rows in order of first appearance, extending ``rows``."""
    return np.fromiter(
        (rows.setdefault(key, len(rows)) for key in keys), dtype=np.int64, count=len(keys)
    )


def _learning(joined: JoinedLog, rows: dict[Context, int]) -> LearningStream:
    events = [
        (r.at, (r.decision.location, r.decision.demand_level), r.decision.arm, r.accepted)
        for r in joined.resolved
    ]
    events += [(o.at, (o.location, o.demand_level), o.arm, o.accepted) for o in joined.by_context]
    events.sort(key=lambda e: e[0])  # stable: ties keep the join's order
    return LearningStream(
        times=np.array([e[0] for e in events], dtype=np.float64),
        contexts=_rows([e[1] for e in events], rows),
        arms=np.array([e[2] for e in events], dtype=np.int64),
        accepted=np.array([e[3] for e in events], dtype=bool),
    )


def _counts(parsed: ParsedLog, joined: JoinedLog, usable_count: int) -> dict[str, int]:
    counts: Counter[str] = Counter(parsed.refused)
    counts.update(joined.counts)
    for resolution in joined.resolved:
        reason = resolution.decision.unusable
        if reason is not None:
            counts[reason] += 1
    counts["decisions_read"] = parsed.decisions_read
    counts["outcomes_read"] = parsed.outcomes_read
    counts["decisions_scored"] = usable_count
    return dict(sorted(counts.items()))
