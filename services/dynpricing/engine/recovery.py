"""The read side of exactly-once learning: restore the state file, find what came after it.

After any crash the engine:

1. **restores** ``bandit_stats.json`` (:func:`restore`): posterior, pending
   decisions, resolved ids, consumed offsets, RNG state, the decision marks,
   and the demand already published ahead of the offsets;
2. **finds the decisions published after that snapshot** (:func:`find_published`):
   each partition of the decisions topic from its mark (a partition without one
   is new since the snapshot: from its beginning) to its end now;
3. **re-enters them** (:func:`re_enter`): each becomes pending again unless it is
   known, and its demand message (``<partition>-<offset>`` starts its id) is
   added to the already-published positions, so when the engine consumes that
   demand again it skips it instead of pricing it a second time;
4. takes the ends it read to as the new marks.

Why this holds after *any* sequence of crashes and stalls, including one during
recovery: every snapshot is consistent on its own. It keeps, in one atomic
file, the consumed offsets ``O``, the positions ``K`` at or after ``O`` whose
decision is published, and marks ``M`` such that any decision published after
the snapshot lands at or after ``M``. Then every published decision is either
for demand before ``O`` (and pending or resolved in the file), in ``K``, or at
or after ``M`` (found in step 2). Steps 2-4 keep that true, and consuming a
position of ``K`` removes it in the same batch that moves ``O`` past it, so the
snapshots taken while the engine catches up are consistent too. (Before ``K``
was persisted, a snapshot taken while catching up recorded offsets before the
recovered decisions and marks after them, and the next crash priced them
again.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
from confluent_kafka import Consumer, Message, TopicPartition

from dynpricing import events
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PricingError, SnapshotError
from dynpricing.engine.join import Pending
from dynpricing.engine.state import EngineBookkeeping, partition_key, split_partition_key
from dynpricing.kafka_io import assign_new_partitions
from dynpricing.service import Stopped
from dynpricing.settings import BanditSettings, EngineSettings
from dynpricing.statefile import read_json

WATERMARK_TIMEOUT_S = 5.0
RECOVERY_BATCH = 5000
READ_POLL_S = 0.5

Locate = Callable[[str, str, float], tuple[int, int]]
UntilDone = Callable[[Callable[[], Any], str], Any]
"""Runs a broker request, retrying while the broker is away (the shell's ``until_done``)."""


def bandit_config(settings: BanditSettings) -> BanditConfig:
    """The core's configuration from a service's settings (engine, decider, learner alike)."""
    extra: dict[str, Any] = {}
    if settings.policy:
        extra["policy"] = settings.policy
    return BanditConfig(
        prices=tuple(settings.prices),
        prior_alpha=settings.prior_alpha,
        prior_beta=settings.prior_beta,
        objective=settings.objective,
        half_life=settings.half_life_s,
        forgetting=settings.forgetting,
        locations=tuple(settings.locations),
        **extra,
    )


@dataclass(frozen=True)
class Restored:
    bandit: Bandit
    books: EngineBookkeeping
    restored: bool  # a state file was there
    has_marks: bool  # it has the engine's section: decisions published after it can be found


def restore(settings: EngineSettings) -> Restored:
    """Step 1: the bandit and bookkeeping from ``bandit_stats.json``, or fresh ones.

    Raises SnapshotError or PricingError for a file this engine cannot use.
    """
    config = bandit_config(settings)
    demand = settings.topics.demand
    fresh = EngineBookkeeping.fresh(
        settings.seed, settings.max_pending, settings.resolved_memory, demand
    )
    doc = read_json(settings.state_path)
    if doc is None:
        return Restored(Bandit(config), fresh, restored=False, has_marks=False)
    bandit, extra = Bandit.from_document(doc, config)
    if not extra:
        return Restored(bandit, fresh, restored=True, has_marks=False)
    try:
        books = EngineBookkeeping.from_document(
            dict(extra), settings.max_pending, settings.resolved_memory, demand
        )
    except (KeyError, TypeError, ValueError) as exc:
        path = settings.state_path
        raise SnapshotError(f"engine section of {path} is invalid: {exc}") from exc
    return Restored(bandit, books, restored=True, has_marks=True)


def _watermarks(reader: Consumer, tp: TopicPartition) -> tuple[int, int]:
    low, high = reader.get_watermark_offsets(tp, timeout=WATERMARK_TIMEOUT_S, cached=False)
    return int(low), int(high)


@dataclass(frozen=True)
class Published:
    """Step 2's result: the decisions after the marks, and each partition's end."""

    values: list[bytes | None]
    ends: dict[str, int]


def find_published(  # noqa: PLR0917 - the reader, what to read, and the shell's three hooks
    reader: Consumer,
    topic: str,
    marks: dict[str, int] | None,
    until_done: UntilDone,
    usable: Callable[[Message], bool],
    stopped: Callable[[], bool],
) -> Published:
    """Step 2: every decision from each partition's mark to its end, read with ``reader``.

    Without marks (no state file yet) nothing is read: only the ends are looked up.
    """
    metadata = until_done(
        lambda: reader.list_topics(topic, timeout=WATERMARK_TIMEOUT_S), "recovery"
    )
    ends: dict[str, int] = {}
    assignment: list[TopicPartition] = []
    for partition in sorted(metadata.topics[topic].partitions):
        tp = TopicPartition(topic, partition)
        low, high = until_done(partial(_watermarks, reader, tp), "recovery")
        key = partition_key(topic, partition)
        ends[key] = int(high)
        if marks is None:
            continue
        start = max(int(low), marks.get(key, int(low)))
        if high > start:
            assignment.append(TopicPartition(topic, partition, start))
    if not assignment:
        return Published([], ends)
    reader.assign(assignment)
    wanted = {tp.partition: ends[partition_key(topic, tp.partition)] for tp in assignment}
    return Published(list(_read_until(reader, wanted, usable, stopped)), ends)


def _read_until(
    reader: Consumer,
    ends: dict[int, int],
    usable: Callable[[Message], bool],
    stopped: Callable[[], bool],
) -> Iterator[bytes | None]:
    """Values until each partition's position reaches its end; waits out a broker away."""
    positions = dict.fromkeys(ends, -1)
    while any(positions[p] + 1 < end for p, end in ends.items()):
        if stopped():
            raise Stopped
        for msg in reader.consume(num_messages=RECOVERY_BATCH, timeout=READ_POLL_S):
            if not usable(msg):
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition is not None and offset is not None:
                positions[partition] = offset
            yield msg.value()


@dataclass(frozen=True)
class ReEntered:
    """Step 3's counts, for the log."""

    decisions: int  # read after the marks
    pending: int  # became pending again
    ahead: int  # demand positions to skip
    unusable: int  # decisions this engine cannot map (its prices or locations changed)


def re_enter(books: EngineBookkeeping, locate: Locate, values: Iterable[bytes | None]) -> ReEntered:
    """Step 3: pending again unless known; its demand position skipped when consumed again.

    A decision this engine can no longer map to a context and price (the grid
    or the locations changed since) is not learnt from, but its demand is still
    skipped: a published decision is never published twice.
    """
    decisions = pending = ahead = unusable = 0
    for value in values:
        decisions += 1
        decision_id, entry = _decision(value, locate)
        if decision_id is None:
            unusable += 1
            continue
        if _skip_when_consumed(books, decision_id):
            ahead += 1
        if entry is None:
            unusable += 1
        elif books.join.recovered(decision_id, entry):
            pending += 1
    return ReEntered(decisions, pending, ahead, unusable)


def _decision(value: bytes | None, locate: Locate) -> tuple[str | None, Pending | None]:
    """(decision id, its pending entry); the entry is None when it cannot be mapped."""
    try:
        decision = events.parse_decision(value)
    except events.InvalidEvent:
        return _decision_id_only(value), None
    try:
        context, arm = locate(decision.location, decision.demand_level, decision.price_multiplier)
    except (events.InvalidEvent, PricingError):
        return decision.decision_id, None
    return decision.decision_id, Pending(context, arm, decision.timestamp)


def _decision_id_only(value: bytes | None) -> str | None:
    """The id of a decision too damaged to parse (it still says which demand it priced)."""
    try:
        body = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    decision_id = body.get("decision_id") if isinstance(body, dict) else None
    return decision_id if isinstance(decision_id, str) else None


def demand_position(decision_id: str) -> tuple[int, int] | None:
    """(partition, offset) of the demand message a decision id was made for."""
    partition, _, rest = decision_id.partition("-")
    offset, _, _ = rest.partition("-")
    if not (partition.isdigit() and offset.isdigit()):
        return None
    return int(partition), int(offset)


def _skip_when_consumed(books: EngineBookkeeping, decision_id: str) -> bool:
    """Remember the decision's demand position if the engine will consume it again."""
    position = demand_position(decision_id)
    if position is None:
        return False
    partition, offset = position
    consumed_up_to = books.offsets.get(partition_key(books.demand_topic, partition), 0)
    if offset < consumed_up_to:
        return False  # covered by the snapshot itself: pending or resolved there
    books.already_published.setdefault(partition, set()).add(offset)
    return True


def forget_skips_before(books: EngineBookkeeping, starts: dict[int, int]) -> None:
    """Drop positions the engine will never consume again (it starts past them)."""
    for partition, start in starts.items():
        ahead = books.already_published.get(partition)
        if ahead:
            ahead.difference_update([offset for offset in ahead if offset < start])
            if not ahead:
                del books.already_published[partition]


def resume_partitions(
    consumer: Consumer,
    books: EngineBookkeeping,
    topics: Sequence[str],
    group: str,
    until_done: UntilDone,
) -> list[str]:
    """Assign every partition of the input topics not yet assigned; returns what was added.

    Each resumes at the snapshot's offset, else Kafka's committed one, else the
    beginning. The engine is a single instance that keeps its own offsets, so
    it assigns partitions itself instead of joining a consumer group's
    rebalances: a restart after SIGKILL resumes at once instead of waiting for
    the dead member's session to time out. The group id is still used for
    commits, so lag stays visible to Kafka tools.
    """
    known = {split_partition_key(key): offset for key, offset in books.offsets.items()}
    new = assign_new_partitions(consumer, topics, group, known, until_done)
    forget_skips_before(
        books,
        {
            tp.partition: tp.offset
            for tp in new
            if tp.topic == books.demand_topic and tp.offset >= 0
        },
    )
    return [f"{tp.topic}:{tp.partition}@{tp.offset}" for tp in new]
