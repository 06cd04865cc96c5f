"""Decisions awaiting their outcome, and the memory of decisions already resolved.

Both are bounded. The pending table is ordered by decision time, so expiring
the oldest decisions is cheap; when it is full, the oldest decision is expired
early rather than the table growing without bound.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar


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
