"""What the engine keeps in ``bandit_stats.json`` besides the posterior.

The core's snapshot document has an ``engine`` section that the core does not
read. The engine keeps there, in one atomic write together with the posterior:
the next offset to consume per partition, the pending decisions, the resolved
decision ids, the RNG state, where on the decisions topic decisions published
after the snapshot can begin (``decision_marks``), and the demand messages at
or after the consumed offsets whose decision is published already
(``already_published``): recovery found them, and they must be skipped, not
priced again, when they are consumed. With that last part every snapshot is
consistent on its own, even one written while the engine was still catching up
after a crash (see ``engine/recovery.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dynpricing.engine.join import OutcomeJoin, Pending, PendingTable, ResolvedMemory

ENGINE_STATE_VERSION = 2  # 2 added already_published; version 1 is read as having none
READABLE_VERSIONS = frozenset({1, ENGINE_STATE_VERSION})


def partition_key(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


def split_partition_key(key: str) -> tuple[str, int]:
    topic, _, partition = key.rpartition(":")
    return topic, int(partition)


def rng_to_document(rng: np.random.Generator) -> dict[str, Any]:
    """PCG64 state with its 128-bit integers as strings (JSON numbers would lose them)."""
    state = rng.bit_generator.state
    inner = state["state"]
    return {
        "bit_generator": state["bit_generator"],
        "state": str(inner["state"]),
        "inc": str(inner["inc"]),
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def rng_from_document(doc: dict[str, Any]) -> np.random.Generator:
    if doc.get("bit_generator") != "PCG64":
        raise ValueError(f"unsupported bit generator {doc.get('bit_generator')!r}")
    bit_generator = np.random.PCG64()
    bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": int(doc["state"]), "inc": int(doc["inc"])},
        "has_uint32": int(doc["has_uint32"]),
        "uinteger": int(doc["uinteger"]),
    }
    return np.random.Generator(bit_generator)


@dataclass(frozen=True)
class BooksCapture:
    """The bookkeeping at one instant; its document is built later, off the loop."""

    written_at: float
    offsets: dict[str, int]
    decision_marks: dict[str, int]
    already_published: dict[str, list[int]]
    rng: dict[str, Any]
    pending: tuple[list[str], list[Pending]]
    resolved: tuple[list[str], list[str]]

    def to_document(self) -> dict[str, Any]:
        return {
            "version": ENGINE_STATE_VERSION,
            "written_at": self.written_at,
            "offsets": self.offsets,
            "decision_marks": self.decision_marks,
            "already_published": self.already_published,
            "rng": self.rng,
            "pending": PendingTable.columns(*self.pending),
            "resolved": ResolvedMemory.columns(*self.resolved),
        }


@dataclass
class EngineBookkeeping:
    """Everything besides the posterior that must survive a crash."""

    rng: np.random.Generator
    join: OutcomeJoin
    offsets: dict[str, int] = field(default_factory=dict)
    decision_marks: dict[str, int] = field(default_factory=dict)
    # demand partition -> offsets at or after ``offsets`` whose decision is published
    already_published: dict[int, set[int]] = field(default_factory=dict)
    demand_topic: str = ""

    @property
    def pending(self) -> PendingTable:
        return self.join.pending

    @property
    def resolved(self) -> ResolvedMemory:
        return self.join.resolved

    def to_document(self, written_at: float) -> dict[str, Any]:
        return self.capture(written_at).to_document()

    def capture(self, written_at: float) -> BooksCapture:
        """A copy of everything, cheap enough to take on the loop (no per-entry work)."""
        return BooksCapture(
            written_at=written_at,
            offsets=dict(self.offsets),
            decision_marks=dict(self.decision_marks),
            already_published={
                partition_key(self.demand_topic, partition): sorted(offsets)
                for partition, offsets in self.already_published.items()
                if offsets
            },
            rng=rng_to_document(self.rng),
            pending=self.pending.capture(),
            resolved=self.resolved.capture(),
        )

    @classmethod
    def from_document(
        cls, doc: dict[str, Any], max_pending: int, resolved_memory: int, demand_topic: str = ""
    ) -> EngineBookkeeping:
        if doc.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"engine state version {doc.get('version')!r} is not supported")
        join = OutcomeJoin(
            PendingTable.from_document(doc["pending"], max_pending),
            ResolvedMemory.from_document(doc["resolved"], resolved_memory),
        )
        published: dict[int, set[int]] = {}
        for key, offsets in doc.get("already_published", {}).items():
            topic, partition = split_partition_key(key)
            if topic == demand_topic and offsets:
                published[partition] = {int(offset) for offset in offsets}
        return cls(
            rng=rng_from_document(doc["rng"]),
            join=join,
            offsets={str(k): int(v) for k, v in doc["offsets"].items()},
            decision_marks={str(k): int(v) for k, v in doc["decision_marks"].items()},
            already_published=published,
            demand_topic=demand_topic,
        )

    @classmethod
    def fresh(
        cls, seed: int | None, max_pending: int, resolved_memory: int, demand_topic: str = ""
    ) -> EngineBookkeeping:
        return cls(
            rng=np.random.default_rng(seed),
            join=OutcomeJoin.fresh(max_pending, resolved_memory),
            demand_topic=demand_topic,
        )
