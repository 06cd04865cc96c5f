"""The pure decision core against MABWiser's Thompson sampling, on the same arms and data.

Both learn the same outcomes for the default price grid in one context, then
decide repeatedly for a fixed time. Ours runs the policy the engine runs by
default (``Bandit.decide``, propensities included); MABWiser predicts one arm per
row of a context-free batch (``predict(contexts=...)``), or one arm for size 1.
``ts_revenue_per_s`` is ours again with plain Beta-Bernoulli Thompson sampling
on revenue (``ts-revenue``), the same algorithm as MABWiser's, so the two can be
compared like for like (the default policy also fits and samples demand curves).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.policies import DEFAULT_POLICY, POLICY_TS

BATCH_SIZES = (1, 100, 10_000)
FIT_OUTCOMES = 10_000
ACCEPT_PROBABILITIES = (0.7, 0.55, 0.4, 0.2)  # falls with price, as in any market
SEED = 11


@dataclass(frozen=True)
class CoreResult:
    batch: int
    ours_per_s: float
    mabwiser_per_s: float
    ts_revenue_per_s: float = 0.0  # ours with plain Beta-Bernoulli TS, like MABWiser's

    @property
    def ratio(self) -> float:
        return self.ours_per_s / self.mabwiser_per_s if self.mabwiser_per_s else 0.0

    @property
    def ts_revenue_ratio(self) -> float:
        return self.ts_revenue_per_s / self.mabwiser_per_s if self.mabwiser_per_s else 0.0


def training_data(prices: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(arm index, accepted) for ``FIT_OUTCOMES`` uniformly explored decisions."""
    rng = np.random.default_rng(SEED)
    arms = rng.integers(len(prices), size=FIT_OUTCOMES)
    accepted = rng.random(FIT_OUTCOMES) < np.asarray(ACCEPT_PROBABILITIES)[arms]
    return arms, accepted


def rate(decide: Callable[[], object], batch: int, seconds: float) -> float:
    """Decisions/s of calling ``decide`` (``batch`` decisions a call) for ``seconds``."""
    decide()  # warm caches and lazy imports outside the clock
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        decide()
        calls += 1
    return calls * batch / elapsed


def ours(batch: int, seconds: float, policy: str = DEFAULT_POLICY) -> float:
    config = BanditConfig(policy=policy)
    bandit = Bandit(config)
    context = bandit.context_index("bench", "medium")
    arms, accepted = training_data(config.prices)
    bandit.update(np.full(arms.size, context), arms, accepted, 0.0)
    rows = np.full(batch, context, dtype=np.int64)
    rng = np.random.default_rng(SEED)
    return rate(lambda: bandit.decide(rows, rng, 1.0), batch, seconds)


def mabwiser(batch: int, seconds: float) -> float:
    from mabwiser.mab import MAB, LearningPolicy  # noqa: PLC0415 - installed for the bench only

    prices = list(BanditConfig().prices)
    arms, accepted = training_data(tuple(prices))
    mab = MAB(prices, LearningPolicy.ThompsonSampling(), seed=SEED)
    mab.fit(np.asarray(prices)[arms], accepted.astype(int))
    if batch == 1:
        return rate(mab.predict, 1, seconds)
    contexts = np.zeros((batch, 1))
    return rate(lambda: mab.predict(contexts), batch, seconds)


def run(seconds: float) -> list[CoreResult]:
    return [
        CoreResult(b, ours(b, seconds), mabwiser(b, seconds), ours(b, seconds, POLICY_TS))
        for b in BATCH_SIZES
    ]
