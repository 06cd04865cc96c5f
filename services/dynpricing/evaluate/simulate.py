"""Prove the estimators where the truth is known: log a policy on a market, evaluate, compare.

Each seed runs the engine's own bandit (the default policy) against a market
file in-process, in batches as the engine consumes them, and writes the very
records engine and simulator would put on the topics: decision messages with
their propensity and model version, outcome messages as the simulator encodes
them. Those records then go through the same parsing, join, targets and
estimators as a log read from Kafka. The market knows every price's true
acceptance, so each target's true value on the logged decisions is known
exactly (given its choice probabilities) and every interval can be checked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from dynpricing import events
from dynpricing.core.bandit import Bandit, BanditConfig, DecisionBatch
from dynpricing.core.contexts import context_key
from dynpricing.core.market import Market
from dynpricing.evaluate.dataset import EvaluationLog
from dynpricing.evaluate.estimators import ESTIMATORS, Interval, evaluate
from dynpricing.evaluate.evaluation import evaluation_log
from dynpricing.evaluate.logjoin import JoinRules
from dynpricing.evaluate.records import DECISION, OUTCOME, RawRecord
from dynpricing.evaluate.replay import ReplayTarget, replay
from dynpricing.evaluate.targets import Target

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

START_TIME_S = 1_764_000_000.0  # simulated wall clock of the first decision
BATCH_SIZE = 10  # demand events the engine decides at once
BATCH_INTERVAL_S = 0.05  # 200 events/s, make run's producer rate
OUTCOME_DELAY_S = 0.02  # outcomes arrive before the next batch, as with the simulator's zero delay
LOGGER_STREAM, MARKET_STREAM, EVALUATION_STREAM, LEARNING_CURVE_STREAM = 0, 1, 2, 3
CURVE_RUNS = 400  # independent runs averaged for a learning target's expected revenue curve
REPLAY = "replay"


@dataclass(frozen=True)
class LoggedRun:
    """The records of one simulated run, in the order they were produced."""

    records: list[RawRecord]
    policy: str


def log_market(
    market: Market, horizon: int, seed: int, config: BanditConfig, batch: int = BATCH_SIZE
) -> LoggedRun:
    """Run the logging policy for ``horizon`` decisions and return what the topics would hold.

    Batches of ``batch`` demand events are decided at once, as the engine
    consumes them; their outcomes come back before the next batch. A market
    with drift moves its curves at its fractions of the horizon.
    """
    bandit = Bandit(config)
    rng = np.random.default_rng([seed, LOGGER_STREAM])
    market_rng = np.random.default_rng([seed, MARKET_STREAM])
    rows = np.array([bandit.context_index(*c) for c in market.contexts], dtype=np.int64)
    records: list[RawRecord] = []
    for step, start in enumerate(range(0, horizon, batch)):
        now = START_TIME_S + step * BATCH_INTERVAL_S
        contexts = market_rng.choice(
            len(market.contexts), size=min(batch, horizon - start), p=market.weights
        )
        decided = bandit.decide(rows[contexts], rng, now)
        acceptance = market.acceptance(start / horizon)[contexts, decided.arms]
        won = market_rng.random(contexts.size) < acceptance
        batch_run = _Batch(seed, start, now, f"{bandit.policy_name}:{bandit.total_outcomes}")
        records += batch_run.records(market, contexts, decided, won, bandit.policy_name)
        bandit.update(rows[contexts], decided.arms, won, now + OUTCOME_DELAY_S)
    return LoggedRun(records=records, policy=bandit.policy_name)


@dataclass(frozen=True)
class _Batch:
    """One batch's decision and outcome messages, encoded as engine and simulator do."""

    seed: int
    start: int  # index of the batch's first decision (and its records' offset)
    now: float
    model_version: str

    def records(
        self,
        market: Market,
        contexts: IntArray,
        decided: DecisionBatch,
        won: npt.NDArray[np.bool_],
        policy: str,
    ) -> list[RawRecord]:
        out = []
        for j, (context, arm) in enumerate(
            zip(contexts.tolist(), decided.arms.tolist(), strict=True)
        ):
            location, level = market.contexts[context]
            multiplier = float(market.prices[arm])
            offset = self.start + j
            event_id = f"sim-{self.seed}-{offset}"
            decision_id = f"0-{offset}-{event_id}"
            value = events.decision_bytes(
                decision_id, event_id, self.now, self.now, location, level, multiplier,
                None, float(decided.propensities[j]), policy, self.model_version,
            )  # fmt: skip
            key = context_key(location, level).encode()
            outcome = events.Outcome(
                decision_id, self.now + OUTCOME_DELAY_S, bool(won[j]), location, level, multiplier
            )
            encoded = events.encode_outcome(outcome, revenue=multiplier if won[j] else 0.0)
            out += [
                RawRecord(DECISION, 0, offset, value, key),
                RawRecord(OUTCOME, 0, offset, encoded, key),
            ]
        return out


def logged_evaluation(run: LoggedRun, market: Market) -> EvaluationLog:
    """The run's records through the same parsing, join and arrays as a Kafka log."""
    return evaluation_log(run.records, market.prices.tolist(), JoinRules())[1]


def market_rows(log: EvaluationLog, market: Market) -> IntArray:
    """The market's row of each of the log's contexts."""
    index = {context: i for i, context in enumerate(market.contexts)}
    return np.array([index[c] for c in log.contexts], dtype=np.int64)


def true_value(
    log: EvaluationLog, market: Market, probabilities: FloatArray, horizon: int
) -> float:
    """The target's expected revenue per decision on the logged contexts, from the market.

    Each decision is valued with the curves of its moment (drift included):
    :func:`log_market` stamps batch ``k`` at ``START_TIME_S + k * BATCH_INTERVAL_S``.
    """
    steps = np.rint((log.times - START_TIME_S) / BATCH_INTERVAL_S).astype(np.int64)
    fractions = steps * BATCH_SIZE / horizon
    rows = market_rows(log, market)[log.decisions.contexts]
    revenue = np.empty_like(probabilities)
    for fraction in np.unique(fractions):
        at = fractions == fraction
        revenue[at] = market.expected_revenue(float(fraction))[rows[at]]
    return float((probabilities * revenue).sum(axis=1).mean())


@dataclass
class Tally:
    """One (target, estimator) pair over seeds."""

    truths: list[float] = field(default_factory=list)
    estimates: list[float] = field(default_factory=list)
    widths: list[float] = field(default_factory=list)
    covered: list[bool] = field(default_factory=list)
    usable: list[int] = field(default_factory=list)

    def add(self, truth: float, interval: Interval, usable: int) -> None:
        self.truths.append(truth)
        self.estimates.append(interval.value)
        self.widths.append(interval.width)
        self.covered.append(interval.covers(truth))
        self.usable.append(usable)

    def summary(self) -> dict[str, float | int]:
        seeds = len(self.covered)
        return {
            "seeds": seeds,
            "true_value": float(np.mean(self.truths)),
            "mean_estimate": float(np.mean(self.estimates)),
            "mean_bias": float(np.mean(np.subtract(self.estimates, self.truths))),
            "mean_interval_width": float(np.mean(self.widths)),
            "coverage": float(np.mean(self.covered)),
            "covered": int(np.sum(self.covered)),
            "mean_usable_decisions": float(np.mean(self.usable)),
        }


Progress = Callable[[int], None]


@dataclass(frozen=True)
class CoverageSetup:
    """What one coverage run does."""

    market: Market
    horizon: int
    seeds: int
    seed: int
    logging: BanditConfig
    targets: Sequence[Target]
    learning: Sequence[ReplayTarget] = ()
    curve_runs: int = CURVE_RUNS


def run_coverage(setup: CoverageSetup, progress: Progress | None = None) -> dict[str, object]:
    """Log, evaluate and compare for every seed; the per-(target, estimator) summary."""
    tallies: dict[tuple[str, str], Tally] = {}
    replayed: dict[str, list[tuple[Interval, int]]] = {t.name: [] for t in setup.learning}
    for s in range(setup.seeds):
        seed = setup.seed + s
        run = log_market(setup.market, setup.horizon, seed, setup.logging)
        log = logged_evaluation(run, setup.market)
        rng = np.random.default_rng([seed, EVALUATION_STREAM])
        for target in setup.targets:
            probabilities = target.probabilities(log, rng)
            truth = true_value(log, setup.market, probabilities, setup.horizon)
            result = evaluate(log.decisions, probabilities)
            for name in ESTIMATORS:
                tally = tallies.setdefault((target.name, name), Tally())
                tally.add(truth, result.estimates[name], log.decisions.size)
        for learner in setup.learning:
            result_replay = replay(log, learner.config, rng, floor=learner.floor)
            if result_replay.value is not None:
                replayed[learner.name].append((result_replay.value, result_replay.usable))
        if progress is not None:
            progress(1)
    for learner in setup.learning:
        runs = replayed[learner.name]
        if not runs:
            continue
        curve = learning_curve(
            setup.market, learner.config, max(u for _, u in runs), setup.curve_runs, setup.seed
        )
        tally = tallies.setdefault((learner.name, REPLAY), Tally())
        for interval, usable in runs:
            tally.add(float(curve[:usable].mean()), interval, usable)
    return coverage_document(setup, tallies)


def learning_curve(
    market: Market, config: BanditConfig, steps: int, runs: int, seed: int
) -> FloatArray:
    """Expected revenue of a learning policy's n-th decision, averaged over independent runs.

    Every run is its own set of contexts in one bandit, so a step of all runs
    is one vectorised decision; outcomes are learnt before the next decision,
    as in the replay.
    """
    bandit = Bandit(config)
    rng = np.random.default_rng([seed, LEARNING_CURVE_STREAM])
    table = np.array(
        [
            [
                bandit.context_index(f"run{r}:{location}", level)
                for location, level in market.contexts
            ]
            for r in range(runs)
        ],
        dtype=np.int64,
    )
    acceptance, revenue = market.acceptance(), market.expected_revenue()
    curve = np.empty(steps)
    every = np.arange(runs)
    for step in range(steps):
        contexts = rng.choice(len(market.contexts), size=runs, p=market.weights)
        rows = table[every, contexts]
        arms = bandit.choose(rows, rng, now=float(step))
        curve[step] = revenue[contexts, arms].mean()
        won = rng.random(runs) < acceptance[contexts, arms]
        bandit.update(rows, arms, won, now=float(step))
    return curve


def coverage_document(
    setup: CoverageSetup, tallies: dict[tuple[str, str], Tally]
) -> dict[str, object]:
    """The ``--simulate --json`` document: per target and estimator, truth and coverage."""
    targets: dict[str, dict[str, object]] = {}
    for (target, estimator), tally in tallies.items():
        targets.setdefault(target, {})[estimator] = tally.summary()
    return {
        "format": "dynpricing.evaluate.coverage",
        "version": 1,
        "market": setup.market.name,
        "horizon": setup.horizon,
        "seeds": setup.seeds,
        "seed": setup.seed,
        "logging_policy": f"{setup.logging.policy}-{setup.logging.objective}",
        "logging_propensity_draws": setup.logging.propensity_draws,
        "targets": targets,
    }
