"""The outcome join: published decisions wait for their answer, and each answer counts once.

Pure: no Kafka, no clock of its own, no metrics. The engine feeds it the
decisions it publishes and the outcomes it consumes; the offline evaluation
replays logged decisions and outcomes through the very same rules.

An outcome's decision id is looked up in this order (see docs/events.md):

1. **resolved** before, answered or expired: a *duplicate* or a *late* outcome,
   ignored. Resolved comes first, so an id is never learnt twice even if it were
   pending again;
2. **pending**: *matched*, learnt for the decision's context and arm;
3. **unknown**: the outcome of a simpler client that chose the price itself. It
   is learnt for the context and price it names (the caller maps them to a row
   and an arm, refusing what it cannot map) or refused as ``unknown_decision``.

A decision waits at most the decision timeout (the caller passes the cut-off
time to :meth:`OutcomeJoin.expire`), and the oldest are expired early when the
pending table is full. Both tables are bounded; the resolved memory forgets
the oldest ids first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from dynpricing.events import InvalidEvent, Outcome


@dataclass(frozen=True, slots=True)
class Pending:
    context: int
    arm: int
    decided_at: float


V = TypeVar("V")


def _in_order(items: OrderedDict[str, V]) -> tuple[list[str], list[V]]:
    """Keys and values oldest first, read through the plain dict underneath.

    Walking an ``OrderedDict``'s linked list is over ten times slower than
    reading its dict, which for a million pending decisions made every snapshot
    take seconds. Both orders are the insertion order here, because neither
    table ever moves an entry (no ``move_to_end``, no ``popitem(last=True)``).
    """
    return list(dict.keys(items)), list(dict.values(items))


class PendingTable:
    """decision_id -> (context, arm, time), oldest first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, Pending] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, decision_id: str) -> bool:
        return decision_id in self._items

    def add(self, decision_id: str, entry: Pending) -> list[tuple[str, Pending]]:
        """Insert; returns the entries pushed out because the table was full."""
        self._items[decision_id] = entry
        evicted = []
        while len(self._items) > self.capacity:
            evicted.append(self._items.popitem(last=False))
        return evicted

    def add_many(self, entries: Iterable[tuple[str, Pending]]) -> list[tuple[str, Pending]]:
        """:meth:`add` for a batch: the same table and the same evictions, in order."""
        self._items.update(entries)
        evicted = []
        while len(self._items) > self.capacity:
            evicted.append(self._items.popitem(last=False))
        return evicted

    def pop(self, decision_id: str) -> Pending | None:
        return self._items.pop(decision_id, None)

    def expire(self, decided_before: float) -> list[tuple[str, Pending]]:
        """Remove and return every decision made before ``decided_before``."""
        expired = []
        while self._items:
            entry = next(iter(self._items.values()))
            if entry.decided_at >= decided_before:
                break
            expired.append(self._items.popitem(last=False))
        return expired

    def capture(self) -> tuple[list[str], list[Pending]]:
        """Ids and entries, oldest first: the cheap part of a snapshot, taken on the loop."""
        return _in_order(self._items)

    @staticmethod
    def columns(ids: list[str], entries: list[Pending]) -> dict[str, list[Any]]:
        """The document of a :meth:`capture`: column lists, compact even for a million entries.

        Built with comprehensions on purpose: the engine builds it on its
        snapshot thread, and a comprehension lets the loop's thread take the GIL
        between items where one C-level ``map`` over a million entries would not.
        """
        return {
            "decision_id": ids,
            "context": [entry.context for entry in entries],
            "arm": [entry.arm for entry in entries],
            "decided_at": [entry.decided_at for entry in entries],
        }

    def to_document(self) -> dict[str, list[Any]]:
        return self.columns(*self.capture())

    @classmethod
    def from_document(cls, doc: dict[str, list[Any]], capacity: int) -> PendingTable:
        table = cls(capacity)
        for decision_id, context, arm, decided_at in zip(
            doc["decision_id"], doc["context"], doc["arm"], doc["decided_at"], strict=True
        ):
            table._items[str(decision_id)] = Pending(int(context), int(arm), float(decided_at))
        return table


class ResolvedMemory:
    """Bounded memory of resolved decision ids: 'applied' or 'expired'."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, decision_id: str) -> str | None:
        return self._items.get(decision_id)

    def remember(self, decision_id: str, status: str) -> None:
        if self.capacity == 0:
            return
        self._items[decision_id] = status
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def capture(self) -> tuple[list[str], list[str]]:
        """Ids and statuses, oldest first."""
        return _in_order(self._items)

    @staticmethod
    def columns(ids: list[str], statuses: list[str]) -> dict[str, list[str]]:
        """The document of a :meth:`capture`."""
        return {"decision_id": ids, "status": statuses}

    def to_document(self) -> dict[str, list[str]]:
        return self.columns(*self.capture())

    @classmethod
    def from_document(cls, doc: dict[str, list[str]], capacity: int) -> ResolvedMemory:
        memory = cls(capacity)
        for decision_id, status in zip(doc["decision_id"], doc["status"], strict=True):
            memory.remember(decision_id, status)
        return memory


APPLIED = "applied"  # resolved: an outcome was learnt
EXPIRED = "expired"  # resolved: no outcome in time (learnt as a rejection or dropped)
MATCHED = "matched"  # an outcome's verdicts, besides being refused
DUPLICATE = "duplicate"
LATE = "late"
SIMPLE = "simple"

Locate = Callable[[str, str, float], tuple[int, int]]
"""(location, demand level, price multiplier) -> (context row, arm); raises InvalidEvent."""

Verdict = tuple[str, int, int]
"""What an outcome means: (``MATCHED`` | ``SIMPLE`` | ``DUPLICATE`` | ``LATE``, context, arm).

Context and arm are ``-1`` for an outcome that is ignored. A plain tuple: the
engine builds one per outcome.
"""
_IGNORED_DUPLICATE: Verdict = (DUPLICATE, -1, -1)
_IGNORED_LATE: Verdict = (LATE, -1, -1)


class OutcomeJoin:
    """Pending decisions and resolved ids, and the rules that join outcomes to them."""

    def __init__(self, pending: PendingTable, resolved: ResolvedMemory) -> None:
        self.pending = pending
        self.resolved = resolved
        self._pending_ids = pending._items  # read once per priced event: no method calls
        self._resolved_ids = resolved._items

    @classmethod
    def fresh(cls, max_pending: int, resolved_memory: int) -> OutcomeJoin:
        return cls(PendingTable(max_pending), ResolvedMemory(resolved_memory))

    def knows(self, decision_id: str) -> bool:
        """Pending or resolved: a decision with this id was published already."""
        return decision_id in self._pending_ids or decision_id in self._resolved_ids

    @property
    def known_ids(self) -> tuple[Container[str], Container[str]]:
        """The pending and the resolved ids, for a caller that checks :meth:`knows` per
        event on its hot path without a method call each time."""
        return self._pending_ids, self._resolved_ids

    def decided(self, entries: Iterable[tuple[str, Pending]]) -> list[tuple[str, Pending]]:
        """Add published decisions; returns those pushed out of a full table, now expired.

        The caller never passes an id it :meth:`knows` (the engine does not price
        a decision twice); an id already pending would keep its first entry.
        """
        evicted = self.pending.add_many(entries)
        for decision_id, _ in evicted:
            self.resolved.remember(decision_id, EXPIRED)
        return evicted

    def recovered(self, decision_id: str, entry: Pending) -> bool:
        """Re-enter a decision found on the decisions topic after a crash, unless known."""
        if self.knows(decision_id):
            return False
        for evicted_id, _ in self.pending.add(decision_id, entry):
            self.resolved.remember(evicted_id, EXPIRED)
        return True

    def resolve(self, outcome: Outcome, locate: Locate) -> Verdict:
        """The verdict on one outcome, remembered; raises InvalidEvent when it is refused."""
        decision_id = outcome.decision_id
        status = self.resolved.get(decision_id)
        if status is not None:
            return _IGNORED_DUPLICATE if status == APPLIED else _IGNORED_LATE
        entry = self.pending.pop(decision_id)
        if entry is not None:
            self.resolved.remember(decision_id, APPLIED)
            return MATCHED, entry.context, entry.arm
        context, arm = locate_simple(outcome, locate)
        self.resolved.remember(decision_id, APPLIED)
        return SIMPLE, context, arm

    def expire(self, decided_before: float) -> list[tuple[str, Pending]]:
        """Remove and return the decisions made before the cut-off, remembered as expired."""
        expired = self.pending.expire(decided_before)
        for decision_id, _ in expired:
            self.resolved.remember(decision_id, EXPIRED)
        return expired


def locate_simple(outcome: Outcome, locate: Locate) -> tuple[int, int]:
    """Context row and arm of a simple client's outcome, which names both itself."""
    if outcome.location is None or outcome.demand_level is None:
        raise InvalidEvent(
            "unknown_decision", f"no pending decision {outcome.decision_id!r} and no context"
        )
    if outcome.price_multiplier is None:
        raise InvalidEvent(
            "unknown_decision", f"no pending decision {outcome.decision_id!r} and no price"
        )
    return locate(outcome.location, outcome.demand_level, outcome.price_multiplier)
