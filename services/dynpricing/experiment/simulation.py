"""Vectorised-across-seeds simulation of pricing policies against a market.

All seeds advance together: the posterior of every seed is one ``(seeds,
contexts, arms)`` table, so a step is a few numpy operations whatever the
number of seeds. The market's randomness (arrivals, accept/reject uniforms,
feedback delays) is drawn once and shared by every policy (common random
numbers), so policy differences are not drowned in market noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dynpricing.core.forgetting import FORGETTING_FLOOR, decay_evidence, decay_factor
from dynpricing.core.market import Market
from dynpricing.core.policies import OBJECTIVE_REVENUE, argmax_random_ties, thompson_arms
from dynpricing.core.posterior import posterior_mean
from dynpricing.experiment.policies import (
    KIND_EPSILON_GREEDY,
    KIND_ORACLE,
    KIND_RANDOM,
    PolicySpec,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[int], None]  # called with the number of steps just completed

MARKET_STREAM = 0  # seed-sequence keys: market noise and policy noise never share draws
POLICY_STREAM = 1
PROGRESS_EVERY = 1000  # steps between progress callbacks


@dataclass(frozen=True)
class MarketStreams:
    """Common random numbers: what happens in the market, whatever the policy does."""

    contexts: IntArray  # (seeds, horizon) arriving context per decision
    uniforms: FloatArray  # (seeds, horizon) accept iff uniform < true acceptance
    due_order: IntArray  # flat (seed * horizon + step) indices of outcomes, by arrival step
    due_starts: (
        IntArray  # (horizon + 1,) outcomes visible before step t: due_order[: due_starts[t]]
    )

    @property
    def seeds(self) -> int:
        """Number of independent replications."""
        return int(self.contexts.shape[0])

    @property
    def horizon(self) -> int:
        """Decisions per replication."""
        return int(self.contexts.shape[1])


def make_streams(
    market: Market, horizon: int, seeds: int, delay_mean: float, seed: int
) -> MarketStreams:
    """Draw arrivals, outcome noise and feedback delays for every replication.

    An outcome of decision ``t`` becomes visible before decision
    ``t + 1 + floor(delay)``, delay ~ Exponential(``delay_mean``); a zero mean is
    immediate feedback (visible to the very next decision).
    """
    rng = np.random.default_rng([seed, MARKET_STREAM])
    contexts = rng.choice(len(market.contexts), size=(seeds, horizon), p=market.weights)
    uniforms = rng.random((seeds, horizon))
    delay = np.zeros((seeds, horizon))
    if delay_mean > 0:
        delay = np.floor(rng.exponential(delay_mean, (seeds, horizon)))
    due = (np.arange(horizon) + 1 + delay).astype(np.int64).reshape(-1)
    order = np.argsort(due, kind="stable")
    starts = np.searchsorted(due[order], np.arange(horizon + 1), side="right")
    return MarketStreams(
        contexts=contexts.astype(np.int64),
        uniforms=uniforms,
        due_order=order.astype(np.int64),
        due_starts=starts.astype(np.int64),
    )


@dataclass(frozen=True)
class PolicyRun:
    """What one policy did over every replication."""

    name: str
    arms: npt.NDArray[np.int16]  # (seeds, horizon) chosen arm per decision
    accepted: BoolArray  # (seeds, horizon) realised outcome per decision


class Posterior:
    """Beta tables for all seeds, with the same lazy clock-based forgetting as the bandit."""

    def __init__(self, seeds: int, n_contexts: int, n_arms: int, half_life: float | None) -> None:
        self.alpha = np.ones((seeds, n_contexts, n_arms))
        self.beta = np.ones((seeds, n_contexts, n_arms))
        self.clock = np.zeros((seeds, n_contexts))
        self.half_life = half_life

    def advance(self, seeds: IntArray, contexts: IntArray, now: float) -> None:
        """Decay the touched (seed, context) rows to time ``now``."""
        if self.half_life is None:
            return
        factor = decay_factor(now - self.clock[seeds, contexts], self.half_life)
        at = (seeds, contexts)
        self.alpha[at], self.beta[at] = decay_evidence(
            self.alpha[at], self.beta[at], (1.0, 1.0), factor, FORGETTING_FLOOR
        )
        self.clock[at] = now

    def learn(
        self, seeds: IntArray, contexts: IntArray, arms: IntArray, won: BoolArray, now: float
    ) -> None:
        """Apply outcomes; repeated cells all count."""
        self.advance(seeds, contexts, now)
        np.add.at(self.alpha, (seeds, contexts, arms), won.astype(np.float64))
        np.add.at(self.beta, (seeds, contexts, arms), (~won).astype(np.float64))


def _oracle_table(market: Market, horizon: int) -> tuple[IntArray, list[IntArray]]:
    """Phase index per step and the oracle arm per context in each phase."""
    starts = market.phase_starts(horizon)
    phase = np.searchsorted(np.array(starts[1:]), np.arange(horizon), side="right")
    oracles = [market.oracle_arms(start / horizon) for start in starts]
    return phase.astype(np.int64), oracles


def acceptance_by_step(market: Market, horizon: int) -> tuple[IntArray, FloatArray]:
    """Phase of each step and the true acceptance table of each phase ``(phases, C, K)``."""
    starts = market.phase_starts(horizon)
    phase = np.searchsorted(np.array(starts[1:]), np.arange(horizon), side="right")
    tables = np.stack([market.acceptance(start / horizon) for start in starts])
    return phase.astype(np.int64), tables


class _Decider:
    """One policy's decision rule over all seeds at one step."""

    def __init__(self, spec: PolicySpec, market: Market, horizon: int, seed: int) -> None:
        self.spec = spec
        self.prices = market.prices
        self.rng = np.random.default_rng([seed, POLICY_STREAM])
        self.phase, self.oracles = _oracle_table(market, horizon)

    def decide(self, posterior: Posterior, contexts: IntArray, step: int) -> IntArray:
        spec, rng = self.spec, self.rng
        n_arms = self.prices.size
        if spec.kind == KIND_ORACLE:
            oracle: IntArray = self.oracles[self.phase[step]][contexts]
            return oracle
        if spec.kind == KIND_RANDOM:
            return rng.integers(0, n_arms, contexts.size)
        seeds = np.arange(contexts.size)
        posterior.advance(seeds, contexts, step)
        alpha, beta = posterior.alpha[seeds, contexts], posterior.beta[seeds, contexts]
        if spec.kind == KIND_EPSILON_GREEDY:
            greedy = argmax_random_ties(posterior_mean(alpha, beta) * self.prices, rng)
            explore = rng.random(contexts.size) < spec.epsilon
            return np.where(explore, rng.integers(0, n_arms, contexts.size), greedy)
        return thompson_arms(
            alpha, beta, self.prices, policy=spec.core_policy, objective=spec.objective, rng=rng
        )


def simulate(
    spec: PolicySpec,
    market: Market,
    streams: MarketStreams,
    seed: int,
    progress: Progress | None = None,
) -> PolicyRun:
    """Run one policy over every replication of the shared market streams."""
    seeds, horizon = streams.seeds, streams.horizon
    phase, acceptance = acceptance_by_step(market, horizon)
    posterior = Posterior(seeds, len(market.contexts), market.prices.size, spec.half_life)
    decider = _Decider(spec, market, horizon, seed)
    arms = np.zeros((seeds, horizon), dtype=np.int64)
    accepted = np.zeros((seeds, horizon), dtype=bool)
    for step in range(horizon):
        if spec.learns:
            _deliver(posterior, streams, arms, accepted, step)
        contexts = streams.contexts[:, step]
        chosen = decider.decide(posterior, contexts, step)
        arms[:, step] = chosen
        accepted[:, step] = streams.uniforms[:, step] < acceptance[phase[step], contexts, chosen]
        if progress is not None and (step + 1) % PROGRESS_EVERY == 0:
            progress(PROGRESS_EVERY)
    if progress is not None:
        progress(horizon % PROGRESS_EVERY)
    return PolicyRun(name=spec.name, arms=arms.astype(np.int16), accepted=accepted)


def _deliver(
    posterior: Posterior, streams: MarketStreams, arms: IntArray, accepted: BoolArray, step: int
) -> None:
    """Apply the outcomes that have arrived by ``step``."""
    due = streams.due_order[streams.due_starts[step - 1] if step else 0 : streams.due_starts[step]]
    if due.size == 0:
        return
    seeds, steps = np.divmod(due, streams.horizon)
    contexts = streams.contexts[seeds, steps]
    posterior.learn(seeds, contexts, arms[seeds, steps], accepted[seeds, steps], step)


__all__ = ["OBJECTIVE_REVENUE", "MarketStreams", "PolicyRun", "make_streams", "simulate"]
