"""Which outcome answers which logged decision: the engine's join rules, applied offline.

The engine keeps published decisions in a pending table until their outcome
arrives; the first outcome of a decision counts, a second one is a duplicate,
one arriving after ``DECISION_TIMEOUT_S`` is late (the decision expired and was
counted as a rejection, or dropped), and an outcome for a decision it never
made is learnt by its context and price when it names them, else refused. The
same tables (:mod:`dynpricing.engine.pending`) and rules run here on the
logged messages in time order, so the evaluation sees the decisions with the
outcomes the engine learnt for them, and nothing else.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from dynpricing import events
from dynpricing.core.errors import PriceNotOnGridError, PricingError
from dynpricing.core.grid import arm_index, validate_grid
from dynpricing.engine.pending import Pending, PendingTable, ResolvedMemory
from dynpricing.evaluate.records import DUPLICATE_DECISION, LoggedDecision

DEFAULT_DECISION_TIMEOUT_S = 300.0  # the engine's DECISION_TIMEOUT_S default
DEFAULT_RESOLVED_MEMORY = 200_000  # the engine's RESOLVED_MEMORY default
DEFAULT_MAX_PENDING = 1_000_000  # the engine's MAX_PENDING default
EXPIRED_AS_REJECT = "reject"
EXPIRED_AS_DROP = "drop"
APPLIED = "applied"
EXPIRED = "expired"

# Stable keys of the report's join counts.
JOINED = "joined"
EXPIRED_REJECT = "expired_as_reject"
EXPIRED_DROP = "expired_dropped"
PENDING_AT_END = "pending_at_end"
DUPLICATE_OUTCOME = "duplicate_outcomes"
LATE_OUTCOME = "late_outcomes"
WITHOUT_DECISION = "outcomes_without_decision"
UNKNOWN_DECISION = "unknown_decision"
OFF_GRID_OUTCOME = "outcome_price_not_on_grid"


@dataclass(frozen=True)
class JoinRules:
    """The engine settings the join depends on (same names, same defaults)."""

    decision_timeout_s: float = DEFAULT_DECISION_TIMEOUT_S
    expired_as: str = EXPIRED_AS_REJECT
    resolved_memory: int = DEFAULT_RESOLVED_MEMORY
    max_pending: int = DEFAULT_MAX_PENDING

    def __post_init__(self) -> None:
        if self.expired_as not in {EXPIRED_AS_REJECT, EXPIRED_AS_DROP}:
            raise PricingError(f"expired_as must be 'reject' or 'drop', got {self.expired_as!r}")
        if not self.decision_timeout_s > 0:
            raise PricingError(f"decision timeout must be > 0, got {self.decision_timeout_s}")


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the engine learnt for one logged decision, and when."""

    decision: LoggedDecision
    accepted: bool
    at: float  # outcome time, or expiry time for a decision counted as rejected


@dataclass(frozen=True, slots=True)
class ContextOutcome:
    """An outcome without a logged decision that the engine learns by its context and price."""

    at: float
    location: str
    demand_level: str
    arm: int
    accepted: bool


@dataclass
class JoinedLog:
    """Resolved decisions in decision order, outcomes learnt by context, and the counts."""

    resolved: list[Resolution] = field(default_factory=list)
    by_context: list[ContextOutcome] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


class _Join:
    """The engine's pending table and resolved memory, driven by logged messages."""

    def __init__(self, decisions: Sequence[LoggedDecision], rules: JoinRules) -> None:
        self.decisions = decisions
        self.rules = rules
        self.pending = PendingTable(rules.max_pending)
        self.memory = ResolvedMemory(rules.resolved_memory)
        self.answers: dict[int, Resolution] = {}
        self.joined = JoinedLog()

    def decide(self, index: int) -> None:
        decision = self.decisions[index]
        seen = decision.decision_id in self.pending or self.memory.get(decision.decision_id)
        if seen:
            self.joined.counts[DUPLICATE_DECISION] += 1
            return
        entry = Pending(context=index, arm=decision.arm, decided_at=decision.time)
        for evicted_id, evicted in self.pending.add(decision.decision_id, entry):
            self._expire_one(evicted_id, evicted, decision.time)

    def expire(self, now: float) -> None:
        for decision_id, entry in self.pending.expire(now - self.rules.decision_timeout_s):
            self._expire_one(decision_id, entry, entry.decided_at + self.rules.decision_timeout_s)

    def _expire_one(self, decision_id: str, entry: Pending, at: float) -> None:
        self.memory.remember(decision_id, EXPIRED)
        if self.rules.expired_as == EXPIRED_AS_REJECT:
            self.answers[entry.context] = Resolution(self.decisions[entry.context], False, at)
            self.joined.counts[EXPIRED_REJECT] += 1
        else:
            self.joined.counts[EXPIRED_DROP] += 1

    def outcome(self, outcome: events.Outcome, grid: Sequence[float]) -> None:
        """The engine's ``_resolve``: pending, duplicate, late, or learnt by context."""
        status = self.memory.get(outcome.decision_id)
        entry = self.pending.pop(outcome.decision_id)
        if entry is not None:
            self.memory.remember(outcome.decision_id, APPLIED)
            decision = self.decisions[entry.context]
            self.answers[entry.context] = Resolution(decision, outcome.accepted, outcome.timestamp)
            self.joined.counts[JOINED] += 1
        elif status == APPLIED:
            self.joined.counts[DUPLICATE_OUTCOME] += 1
        elif status == EXPIRED:
            self.joined.counts[LATE_OUTCOME] += 1
        else:
            self._by_context(outcome, grid)

    def _by_context(self, outcome: events.Outcome, grid: Sequence[float]) -> None:
        if (
            outcome.location is None
            or outcome.demand_level is None
            or outcome.price_multiplier is None
        ):
            self.joined.counts[UNKNOWN_DECISION] += 1
            return
        try:
            arm = arm_index(validate_grid(grid), outcome.price_multiplier)
        except PriceNotOnGridError:
            self.joined.counts[OFF_GRID_OUTCOME] += 1
            return
        self.memory.remember(outcome.decision_id, APPLIED)
        self.joined.counts[WITHOUT_DECISION] += 1
        self.joined.by_context.append(
            ContextOutcome(
                outcome.timestamp, outcome.location, outcome.demand_level, arm, outcome.accepted
            )
        )

    def finish(self, end: float) -> JoinedLog:
        """Expire what the engine would have expired by ``end``; the rest is still pending."""
        self.expire(end)
        self.joined.counts[PENDING_AT_END] += len(self.pending)
        self.joined.resolved = [self.answers[i] for i in sorted(self.answers)]
        return self.joined


def join(
    decisions: Sequence[LoggedDecision],
    outcomes: Sequence[events.Outcome],
    grid: Sequence[float],
    rules: JoinRules,
    end: float | None = None,
) -> JoinedLog:
    """Join time-ordered decisions and outcomes as the engine would have.

    ``end`` is how far the log reaches (default: its last message); decisions
    younger than the timeout at that point may still get an outcome and are
    counted as pending, not scored.
    """
    joiner = _Join(decisions, rules)
    i = 0
    for outcome in outcomes:
        while i < len(decisions) and decisions[i].time <= outcome.timestamp:
            joiner.decide(i)
            i += 1
        joiner.expire(outcome.timestamp)
        joiner.outcome(outcome, grid)
    while i < len(decisions):
        joiner.decide(i)
        i += 1
    last = max(
        (decisions[-1].time if decisions else 0.0), (outcomes[-1].timestamp if outcomes else 0.0)
    )
    return joiner.finish(last if end is None else end)
