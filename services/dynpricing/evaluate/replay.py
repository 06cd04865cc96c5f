"""The replay method: a target that keeps learning from its own choices, run on the log.

Walk the scored decisions in time order. At each one the target (a fresh
bandit that has learnt only from the events it accepted so far) gives its
probability of the logged price; the event is accepted with probability
``target(price) * floor / propensity``, where ``floor`` is at most every
logged propensity. Then the chance of accepting an event *and* its price being
``a`` is ``floor * target(a)``, whatever the logging policy did: the accepted
events are distributed exactly as decisions the target would have made
itself, one accepted event in ``1 / floor`` on average. That is the
"accept only matching decisions" replay of Li et al. (2011), corrected for a
logging policy that is not uniform.

The estimand is the target's expected revenue per decision over its first
``usable`` decisions, learning from scratch (or from the given start). The
interval is the normal interval of the accepted rewards: it treats them as
independent, which ignores how much the whole learning path varies from run
to run (see ``docs/evaluation.md`` for how well that holds).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PricingError
from dynpricing.evaluate.dataset import EvaluationLog
from dynpricing.evaluate.estimators import Interval, normal_interval
from dynpricing.evaluate.targets import INFORMED_DRAWS

FloatArray = npt.NDArray[np.float64]
MIN_REPLAY_EVENTS = 2  # an interval needs at least two accepted events


@dataclass(frozen=True)
class ReplayTarget:
    """A built-in policy that learns from its own choices, and the replay's floor (or None)."""

    name: str
    config: BanditConfig
    floor: float | None = None


@dataclass(frozen=True)
class ReplayResult:
    """The replayed value and how many logged events the target could use."""

    value: Interval | None  # None when fewer than MIN_REPLAY_EVENTS were accepted
    offered: int  # scored decisions walked through
    usable: int  # decisions accepted: the target's own run
    clipped: int  # decisions whose acceptance probability had to be cut to 1 (biased)
    floor: float
    rewards: FloatArray  # revenue of each accepted decision, in order


def replay(
    log: EvaluationLog,
    config: BanditConfig,
    rng: np.random.Generator,
    *,
    floor: float | None = None,
    draws: int = INFORMED_DRAWS,
) -> ReplayResult:
    """Run a learning target through the log by rejection sampling.

    ``floor`` defaults to the smallest logged propensity, so no event is
    clipped; a larger floor accepts more events, and clips (and counts) those
    logged with a propensity below ``floor * target``.
    """
    data = log.decisions
    floor = float(data.propensities.min()) if floor is None else floor
    if not 0 < floor <= 1:
        raise PricingError(f"replay floor must be in (0, 1], got {floor}")
    bandit = Bandit(replace(config, propensity_draws=draws))
    rows = np.array([bandit.context_index(*c) for c in log.contexts], dtype=np.int64)
    rewards = data.rewards
    accepted: list[int] = []
    clipped = 0
    for i in range(data.size):
        row, arm, now = int(rows[data.contexts[i]]), int(data.arms[i]), float(log.times[i])
        chance = bandit.propensities(row, rng, now)[arm] * floor / data.propensities[i]
        clipped += int(chance > 1.0)
        if rng.random() < chance:
            accepted.append(i)
            bandit.update([row], [arm], [bool(data.accepted[i])], now)
    taken: FloatArray = rewards[np.array(accepted, dtype=np.int64)]
    value = normal_interval(taken) if taken.size >= MIN_REPLAY_EVENTS else None
    return ReplayResult(
        value=value,
        offered=data.size,
        usable=taken.size,
        clipped=clipped,
        floor=floor,
        rewards=taken,
    )
