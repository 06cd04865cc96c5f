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

from dynpricing.core.forgetting import AdaptiveForgetting, Forgetting, HalfLife, RateTables
from dynpricing.core.market import Market
from dynpricing.core.policies import (
    OBJECTIVE_REVENUE,
    Supply,
    argmax_random_ties,
    make_policy,
    objective_for,
    thompson_arms,
)
from dynpricing.core.posterior import posterior_mean
from dynpricing.experiment.policies import (
    KIND_EPSILON_GREEDY,
    KIND_ORACLE,
    KIND_RANDOM,
    KIND_THOMPSON,
    PolicySpec,
)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Progress = Callable[[int], None]  # called with the number of steps just completed

MARKET_STREAM = 0  # seed-sequence keys: market noise and policy noise never share draws
POLICY_STREAM = 1
SUPPLY_STREAM = 2  # requests and drivers per event, drawn apart so older streams stay as they were
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
    requests: FloatArray  # (seeds, horizon) requests of each event (Poisson around the market's)
    drivers: FloatArray  # (seeds, horizon) available drivers of each event

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
    supply = np.random.default_rng([seed, SUPPLY_STREAM]).poisson(market.mean_supply()[contexts])
    return MarketStreams(
        contexts=contexts.astype(np.int64),
        uniforms=uniforms,
        due_order=order.astype(np.int64),
        due_starts=starts.astype(np.int64),
        requests=supply[..., 0].astype(np.float64),
        drivers=supply[..., 1].astype(np.float64),
    )


@dataclass(frozen=True)
class PolicyRun:
    """What one policy did over every replication."""

    name: str
    arms: npt.NDArray[np.int16]  # (seeds, horizon) chosen arm per decision
    accepted: BoolArray  # (seeds, horizon) realised outcome per decision


class Posterior:
    """Beta tables of every seed as rows ``seed * contexts + context``, forgetting as the bandit.

    The rows are what :class:`~dynpricing.core.bandit.Bandit` keeps per
    context, and learning calls the same core forgetting rules
    (:mod:`dynpricing.core.forgetting`), so one seed of the experiment and a
    bandit fed the same outcomes hold the same posterior.
    """

    PRIOR = (1.0, 1.0)

    def __init__(self, seeds: int, n_contexts: int, n_arms: int, forgetting: Forgetting) -> None:
        rows = seeds * n_contexts
        self.n_contexts = n_contexts
        self.alpha = np.ones((rows, n_arms))
        self.beta = np.ones((rows, n_arms))
        self.successes = np.zeros((rows, n_arms))  # lifetime counts
        self.failures = np.zeros((rows, n_arms))
        self.clock = np.zeros(rows)
        self.forgetting = forgetting
        self.rates: RateTables | None = None
        if isinstance(forgetting, AdaptiveForgetting):
            self.rates = forgetting.fresh(self.alpha, self.beta, self.PRIOR)

    def rows(self, seeds: IntArray, contexts: IntArray) -> IntArray:
        """Table rows of (seed, context) pairs."""
        rows: IntArray = seeds * self.n_contexts + contexts
        return rows

    def advance(self, rows: IntArray, now: float) -> None:
        """Decay the touched distinct rows to time ``now`` (fixed half-life only)."""
        forgetting = self.forgetting
        if not isinstance(forgetting, HalfLife):
            return
        elapsed = now - self.clock[rows]
        moved = rows[elapsed > 0]
        if moved.size == 0:
            return
        self.alpha[moved], self.beta[moved] = forgetting.decay(
            self.alpha[moved], self.beta[moved], self.PRIOR, now - self.clock[moved]
        )
        self.clock[moved] = now

    def learn(self, rows: IntArray, arms: IntArray, won: BoolArray, now: float) -> None:
        """Apply outcomes; repeated cells all count, as in ``Bandit.update``."""
        unique, inverse = np.unique(rows, return_inverse=True)
        self.advance(unique, now)
        at = (rows, arms)
        forgetting = self.forgetting
        if isinstance(forgetting, AdaptiveForgetting) and self.rates is not None:
            won_table = np.zeros((unique.size, self.alpha.shape[1]))
            lost_table = np.zeros_like(won_table)
            np.add.at(won_table, (inverse, arms), won.astype(np.float64))
            np.add.at(lost_table, (inverse, arms), (~won).astype(np.float64))
            rates = self.rates
            state, alpha, beta = forgetting.learn(
                RateTables(rates.successes[unique], rates.failures[unique], rates.score[unique]),
                (self.successes[unique], self.failures[unique]),
                won_table,
                lost_table,
                self.PRIOR,
            )
            rates.successes[unique], rates.failures[unique] = state.successes, state.failures
            rates.score[unique] = state.score
            self.alpha[unique], self.beta[unique] = alpha, beta
        else:
            np.add.at(self.alpha, at, won.astype(np.float64))
            np.add.at(self.beta, at, (~won).astype(np.float64))
        np.add.at(self.successes, at, won.astype(np.float64))
        np.add.at(self.failures, at, (~won).astype(np.float64))


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

    def decide(
        self, posterior: Posterior, contexts: IntArray, step: int, supply: Supply
    ) -> IntArray:
        """The chosen arm of every seed; ``contexts`` and ``supply`` have one entry per seed."""
        raise NotImplementedError


class _Oracle(_Decider):
    def __init__(self, spec: PolicySpec, market: Market, horizon: int, seed: int) -> None:
        super().__init__(spec, market, horizon, seed)
        self.phase, self.oracles = _oracle_table(market, horizon)

    def decide(
        self, posterior: Posterior, contexts: IntArray, step: int, supply: Supply
    ) -> IntArray:
        oracle: IntArray = self.oracles[self.phase[step]][contexts]
        return oracle


class _Random(_Decider):
    def decide(
        self, posterior: Posterior, contexts: IntArray, step: int, supply: Supply
    ) -> IntArray:
        return self.rng.integers(0, self.prices.size, contexts.size)


class _EpsilonGreedy(_Decider):
    def decide(
        self, posterior: Posterior, contexts: IntArray, step: int, supply: Supply
    ) -> IntArray:
        rows = posterior.rows(np.arange(contexts.size), contexts)
        posterior.advance(rows, step)
        alpha, beta, rng = posterior.alpha[rows], posterior.beta[rows], self.rng
        greedy = argmax_random_ties(posterior_mean(alpha, beta) * self.prices, rng)
        explore = rng.random(contexts.size) < self.spec.epsilon
        return np.where(explore, rng.integers(0, self.prices.size, contexts.size), greedy)


class _Thompson(_Decider):
    def __init__(self, spec: PolicySpec, market: Market, horizon: int, seed: int) -> None:
        super().__init__(spec, market, horizon, seed)
        self.policy = make_policy(spec.core_policy, market.prices, Posterior.PRIOR)
        self.objective = objective_for(spec.objective)

    def decide(
        self, posterior: Posterior, contexts: IntArray, step: int, supply: Supply
    ) -> IntArray:
        rows = posterior.rows(np.arange(contexts.size), contexts)
        posterior.advance(rows, step)
        return thompson_arms(
            posterior.alpha[rows],
            posterior.beta[rows],
            policy=self.policy,
            objective=self.objective,
            rng=self.rng,
            supply=supply if self.objective.needs_supply else None,
        )


DECIDERS: dict[str, type[_Decider]] = {
    KIND_ORACLE: _Oracle,
    KIND_RANDOM: _Random,
    KIND_EPSILON_GREEDY: _EpsilonGreedy,
    KIND_THOMPSON: _Thompson,
}


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
    posterior = Posterior(seeds, len(market.contexts), market.prices.size, spec.forgetting())
    decider = DECIDERS[spec.kind](spec, market, horizon, seed)
    arms = np.zeros((seeds, horizon), dtype=np.int64)
    accepted = np.zeros((seeds, horizon), dtype=bool)
    for step in range(horizon):
        if spec.learns:
            _deliver(posterior, streams, arms, accepted, step)
        contexts = streams.contexts[:, step]
        supply = Supply(streams.requests[:, step], streams.drivers[:, step])
        chosen = decider.decide(posterior, contexts, step, supply)
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
    rows = posterior.rows(seeds, streams.contexts[seeds, steps])
    posterior.learn(rows, arms[seeds, steps], accepted[seeds, steps], float(step))


__all__ = ["OBJECTIVE_REVENUE", "MarketStreams", "PolicyRun", "make_streams", "simulate"]
