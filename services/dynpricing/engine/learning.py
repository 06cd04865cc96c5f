"""Learning from outcomes: the join's verdicts applied to the posterior, counted.

Shared by the engine and the learner. The rules themselves are the pure
:mod:`dynpricing.engine.join`; this module feeds it parsed outcomes, applies
what it matched to the bandit in one vectorised update per batch, expires
decisions that waited too long, and keeps the metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from confluent_kafka import Message

from dynpricing import events
from dynpricing.core.bandit import Bandit
from dynpricing.engine.contexts import ContextRows
from dynpricing.engine.join import DUPLICATE, LATE, OutcomeJoin, Pending
from dynpricing.engine.metrics import LearningMetrics, location_label
from dynpricing.settings import LearningSettings

Clock = Callable[[], float]
DeadLetter = Callable[[Message, str, str], None]


class Learning:
    """The bandit, the join and the rules that connect them; the caller owns the lock."""

    def __init__(
        self,
        *,
        settings: LearningSettings,
        bandit: Bandit,
        rows: ContextRows,
        join: OutcomeJoin,
        metrics: LearningMetrics,
        dead_letter: DeadLetter,
        clock: Clock,
    ) -> None:
        self.bandit = bandit
        self.rows = rows
        self.join = join
        self.metrics = metrics
        self.clock = clock
        self.timeout_s = settings.decision_timeout_s
        self.expired_as = settings.expired_as
        self._dead_letter = dead_letter

    def learn(self, messages: Sequence[Message]) -> None:
        """Every outcome message of a batch through the join; what it matched, learnt at once."""
        contexts: list[int] = []
        arms: list[int] = []
        accepted: list[bool] = []
        resolve = self.join.resolve
        locate = self.rows.locate
        for msg in messages:
            try:
                outcome = events.parse_outcome(msg.value())
                verdict, context, arm = resolve(outcome, locate)
            except events.InvalidEvent as exc:
                self._dead_letter(msg, exc.reason, exc.detail)
                continue
            if verdict == DUPLICATE:
                self.metrics.duplicates.inc()
            elif verdict == LATE:
                self.metrics.late.inc()
            else:
                contexts.append(context)
                arms.append(arm)
                accepted.append(outcome.accepted)
        self.apply(contexts, arms, accepted)

    def apply(self, contexts: list[int], arms: list[int], accepted: list[bool]) -> None:
        """Learn these outcomes in one update, and count them."""
        if not contexts:
            return
        ctx = np.asarray(contexts, dtype=np.int64)
        arm = np.asarray(arms, dtype=np.int64)
        acc = np.asarray(accepted, dtype=bool)
        self.bandit.update(ctx, arm, acc, self.clock())
        self._count_outcomes(ctx, arm, acc)

    def _count_outcomes(self, ctx: np.ndarray, arm: np.ndarray, acc: np.ndarray) -> None:
        n_arms = len(self.bandit.prices)
        cells = (ctx * n_arms + arm) * 2 + acc.astype(np.int64)
        values, counts = np.unique(cells, return_counts=True)
        for cell, count in zip(values.tolist(), counts.tolist(), strict=True):
            flat, is_accepted = divmod(cell, 2)
            context, arm_index = divmod(flat, n_arms)
            location, level = self.bandit.context_name(context)
            price = self.rows.price_labels[arm_index]
            label = "true" if is_accepted else "false"
            location = location_label(context, location)
            self.metrics.outcomes.labels(location, level, price, label).inc(count)

    def decided(self, entries: list[tuple[str, Pending]]) -> None:
        """Published decisions wait for their outcome; a full table expires its oldest."""
        for _, evicted in self.join.decided(entries):
            self.expire_one(evicted)

    def expire(self, now: float) -> None:
        """Expire every decision older than the timeout at ``now``."""
        for _, entry in self.join.expire(now - self.timeout_s):
            self.expire_one(entry)
        self.metrics.pending.set(len(self.join.pending))

    def expire_one(self, entry: Pending) -> None:
        self.metrics.expired.labels(self.expired_as).inc()
        if self.expired_as == "reject":
            self.apply([entry.context], [entry.arm], [False])
