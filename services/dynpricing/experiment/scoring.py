"""Scoring a policy run with the benchmark's measures (see the benchmark README).

Decisions are scored by *expected* revenue under the true curves; the realised
accept/reject is noise and only feeds the learner and the acceptance rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dynpricing.core.market import Market
from dynpricing.core.objectives import expected_served
from dynpricing.experiment.simulation import MarketStreams, PolicyRun, acceptance_by_step

FloatArray = npt.NDArray[np.float64]

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
ROLLING_WINDOW = 500  # decisions per point of the rolling oracle-revenue share


@dataclass(frozen=True)
class PolicyScore:
    """Per-seed measures and seed-averaged curves of one policy."""

    name: str
    oracle_revenue_pct: FloatArray  # (seeds,)
    regret: FloatArray  # (seeds,)
    optimal_arm_share: FloatArray  # (seeds,)
    acceptance_rate: FloatArray  # (seeds,)
    cumulative_regret: FloatArray  # (horizon,) mean over seeds
    rolling_oracle_pct: FloatArray  # (horizon,) share of oracle revenue in the trailing window


def score(run: PolicyRun, market: Market, streams: MarketStreams) -> PolicyScore:
    """The benchmark measures of one run, per seed, plus the curves behind the plot."""
    phase, acceptance = acceptance_by_step(market, streams.horizon)
    revenue_table = acceptance * market.prices
    phases = np.broadcast_to(phase, streams.contexts.shape)
    per_arm = revenue_table[phases, streams.contexts]  # (seeds, horizon, arms)
    earned = np.take_along_axis(per_arm, run.arms[..., None].astype(np.int64), axis=-1)[..., 0]
    best = per_arm.max(axis=-1)
    lost = best - earned
    return PolicyScore(
        name=run.name,
        oracle_revenue_pct=100.0 * earned.sum(axis=1) / best.sum(axis=1),
        regret=lost.sum(axis=1),
        optimal_arm_share=(per_arm.argmax(axis=-1) == run.arms).mean(axis=1),
        acceptance_rate=run.accepted.mean(axis=1),
        cumulative_regret=np.cumsum(lost.mean(axis=0)),
        rolling_oracle_pct=_rolling_share(earned.mean(axis=0), best.mean(axis=0)),
    )


def served_revenue_pct(run: PolicyRun, market: Market, streams: MarketStreams) -> FloatArray:
    """Per seed: expected revenue of the rides that can be served, as % of its own oracle's.

    Each event stands for its ``requests`` customers, who accept with the true
    probability of the chosen price, and at most its ``drivers`` acceptances
    are served; the oracle knows the curves and each event's supply.
    """
    phase, acceptance = acceptance_by_step(market, streams.horizon)
    phases = np.broadcast_to(phase, streams.contexts.shape)
    per_arm = acceptance[phases, streams.contexts]  # (seeds, horizon, arms)
    served = expected_served(
        per_arm.reshape(-1, market.prices.size),
        streams.requests.reshape(-1),
        streams.drivers.reshape(-1),
    ).reshape(per_arm.shape)
    revenue = served * market.prices
    earned = np.take_along_axis(revenue, run.arms[..., None].astype(np.int64), axis=-1)[..., 0]
    pct: FloatArray = 100.0 * earned.sum(axis=1) / revenue.max(axis=-1).sum(axis=1)
    return pct


def _rolling_share(earned: FloatArray, best: FloatArray) -> FloatArray:
    """100 x trailing-window sum of earned / of oracle revenue (shorter window at the start)."""
    window = min(ROLLING_WINDOW, earned.size)
    cum_earned = np.concatenate([[0.0], np.cumsum(earned)])
    cum_best = np.concatenate([[0.0], np.cumsum(best)])
    end = np.arange(1, earned.size + 1)
    start = np.maximum(end - window, 0)
    share: FloatArray = (
        100.0 * (cum_earned[end] - cum_earned[start]) / (cum_best[end] - cum_best[start])
    )
    return share


def mean_ci(values: FloatArray) -> dict[str, float]:
    """Mean over seeds and the 95 % confidence half-width (0 for a single seed)."""
    mean = float(np.mean(values))
    if values.size < 2:
        return {"mean": mean, "ci95": 0.0}
    return {"mean": mean, "ci95": float(Z_95 * np.std(values, ddof=1) / math.sqrt(values.size))}


def results_document(
    market_name: str,
    streams: MarketStreams,
    delay_mean: float,
    default_policy: str,
    scores: Sequence[PolicyScore],
) -> dict[str, object]:
    """The ``--json`` document, in the shape documented in ``docs/experiments.md``."""
    return {
        "market": market_name,
        "horizon": streams.horizon,
        "seeds": streams.seeds,
        "delay_mean": delay_mean,
        "default_policy": default_policy,
        "policies": {
            s.name: {
                "oracle_revenue_pct": mean_ci(s.oracle_revenue_pct),
                "regret": mean_ci(s.regret),
                "optimal_arm_share": float(np.mean(s.optimal_arm_share)),
                "acceptance_rate": float(np.mean(s.acceptance_rate)),
            }
            for s in scores
        },
    }


def curve_rows(scores: Sequence[PolicyScore], points: int) -> list[tuple[str, int, float, float]]:
    """(policy, decisions so far, cumulative regret, rolling oracle %) at ``points`` steps."""
    rows: list[tuple[str, int, float, float]] = []
    for s in scores:
        horizon = s.cumulative_regret.size
        steps = np.unique(np.linspace(1, horizon, min(points, horizon)).round().astype(np.int64))
        rows.extend(
            (s.name, int(t), float(s.cumulative_regret[t - 1]), float(s.rolling_oracle_pct[t - 1]))
            for t in steps
        )
    return rows
