"""Which outcome answers which logged decision: the engine's join rules, applied offline.

The engine keeps published decisions in a pending table until their outcome
arrives; the first outcome of a decision counts, a second one is a duplicate,
one arriving after ``DECISION_TIMEOUT_S`` is late (the decision expired and was
counted as a rejection, or dropped), and an outcome for a decision it never
made is learnt by its context and price when it names them, else refused. The
engine's own join (:class:`dynpricing.engine.join.OutcomeJoin`) runs here on
the logged messages in time order, so the evaluation sees the decisions with
the outcomes the engine learnt for them, and nothing else. This module only
feeds it and counts its verdicts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from dynpricing import events
from dynpricing.core.errors import PriceNotOnGridError, PricingError
from dynpricing.core.grid import arm_index, validate_grid
from dynpricing.engine.join import DUPLICATE, MATCHED, SIMPLE, OutcomeJoin, Pending
from dynpricing.evaluate.records import DUPLICATE_DECISION, LoggedDecision

DEFAULT_DECISION_TIMEOUT_S = 300.0  # the engine's DECISION_TIMEOUT_S default
DEFAULT_RESOLVED_MEMORY = 200_000  # the engine's RESOLVED_MEMORY default
DEFAULT_MAX_PENDING = 1_000_000  # the engine's MAX_PENDING default
EXPIRED_AS_REJECT = "reject"
EXPIRED_AS_DROP = "drop"

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
UNKNOWN_LOCATION = "outcome_unknown_location"
REFUSED = {  # the engine's dead-letter reason for a refused outcome -> its count here
    "unknown_decision": UNKNOWN_DECISION,
    "price_not_on_grid": OFF_GRID_OUTCOME,
    "unknown_location": UNKNOWN_LOCATION,
}


@dataclass(frozen=True)
class JoinRules:
    """The engine settings the join depends on (same names, same defaults)."""

    decision_timeout_s: float = DEFAULT_DECISION_TIMEOUT_S
    expired_as: str = EXPIRED_AS_REJECT
    resolved_memory: int = DEFAULT_RESOLVED_MEMORY
    max_pending: int = DEFAULT_MAX_PENDING
    prices: tuple[float, ...] = ()  # the grid a simple client's price must be on
    locations: tuple[str, ...] = ()  # the engine's LOCATIONS; empty: any location

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
    """The engine's :class:`OutcomeJoin`, driven by logged messages; counts what it decides."""

    def __init__(self, decisions: Sequence[LoggedDecision], rules: JoinRules) -> None:
        self.decisions = decisions
        self.rules = rules
        self.join = OutcomeJoin.fresh(rules.max_pending, rules.resolved_memory)
        self.answers: dict[int, Resolution] = {}
        self.grid = validate_grid(rules.prices) if rules.prices else None
        self.joined = JoinedLog()

    def decide(self, index: int) -> None:
        decision = self.decisions[index]
        if self.join.knows(decision.decision_id):  # the engine never prices a known id twice
            self.joined.counts[DUPLICATE_DECISION] += 1
            return
        entry = Pending(context=index, arm=decision.arm, decided_at=decision.time)
        for _, evicted in self.join.decided([(decision.decision_id, entry)]):
            self._expired(evicted, decision.time)

    def expire(self, now: float) -> None:
        for _, entry in self.join.expire(now - self.rules.decision_timeout_s):
            self._expired(entry, entry.decided_at + self.rules.decision_timeout_s)

    def _expired(self, entry: Pending, at: float) -> None:
        if self.rules.expired_as == EXPIRED_AS_REJECT:
            self.answers[entry.context] = Resolution(self.decisions[entry.context], False, at)
            self.joined.counts[EXPIRED_REJECT] += 1
        else:
            self.joined.counts[EXPIRED_DROP] += 1

    def outcome(self, outcome: events.Outcome) -> None:
        """The engine's verdict on one outcome: matched, duplicate, late, simple, or refused."""
        try:
            verdict, context, arm = self.join.resolve(outcome, self._locate)
        except events.InvalidEvent as exc:
            self.joined.counts[REFUSED.get(exc.reason, exc.reason)] += 1
            return
        if verdict == MATCHED:
            decision = self.decisions[context]
            self.answers[context] = Resolution(decision, outcome.accepted, outcome.timestamp)
            self.joined.counts[JOINED] += 1
        elif verdict == SIMPLE:
            location, level = outcome.location or "", outcome.demand_level or ""
            self.joined.by_context.append(
                ContextOutcome(outcome.timestamp, location, level, arm, outcome.accepted)
            )
            self.joined.counts[WITHOUT_DECISION] += 1
        else:
            self.joined.counts[DUPLICATE_OUTCOME if verdict == DUPLICATE else LATE_OUTCOME] += 1

    def _locate(self, location: str, level: str, price: float) -> tuple[int, int]:
        """A simple client's context and arm, refused as the engine refuses them."""
        del level  # checked by the parser
        if self.rules.locations and location not in self.rules.locations:
            raise events.InvalidEvent("unknown_location", f"location {location!r}")
        if self.grid is None:
            raise events.InvalidEvent("price_not_on_grid", "no grid")
        try:
            return -1, arm_index(self.grid, price)
        except PriceNotOnGridError as exc:
            raise events.InvalidEvent("price_not_on_grid", str(exc)) from None

    def finish(self, end: float) -> JoinedLog:
        """Expire what the engine would have expired by ``end``; the rest is still pending."""
        self.expire(end)
        self.joined.counts[PENDING_AT_END] += len(self.join.pending)
        self.joined.resolved = [self.answers[i] for i in sorted(self.answers)]
        return self.joined


def join(
    decisions: Sequence[LoggedDecision],
    outcomes: Sequence[events.Outcome],
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
        joiner.outcome(outcome)
    while i < len(decisions):
        joiner.decide(i)
        i += 1
    last = max(
        (decisions[-1].time if decisions else 0.0), (outcomes[-1].timestamp if outcomes else 0.0)
    )
    return joiner.finish(last if end is None else end)
