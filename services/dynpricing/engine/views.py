"""What people see of a bandit: ``/state``, the learning summary, the per-arm gauges.

Shared by the engine, the learner and the deciders (whose ``/state`` shows their
model copy). Each function copies what it needs under the caller's lock, then
formats without holding it.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from dynpricing.core.bandit import Bandit
from dynpricing.core.contexts import context_key
from dynpricing.engine.metrics import METRIC_CONTEXT_LIMIT, LearningMetrics

SUMMARY_CONTEXT_LIMIT = 12


def summary(bandit: Bandit, lock: threading.Lock) -> list[dict[str, Any]]:
    """Per context: the best price by posterior mean revenue, and pulls per arm."""
    with lock:
        stats = bandit.arm_stats(SUMMARY_CONTEXT_LIMIT)
        names = bandit.contexts(SUMMARY_CONTEXT_LIMIT)
    prices = bandit.prices
    rows = []
    for context, (location, level) in enumerate(names):
        revenue = prices * stats.posterior_mean[context]
        rows.append(
            {
                "context": context_key(location, level),
                "best_price": float(prices[int(np.argmax(revenue))]),
                "pulls": [int(x) for x in stats.pulls[context]],
            }
        )
    return rows


def state_document(bandit: Bandit, lock: threading.Lock, **extra: Any) -> dict[str, Any]:
    """``/state``: per context and arm the posterior, counts and mean; ``extra`` fields too."""
    with lock:
        stats = bandit.arm_stats()
        names = bandit.contexts()
        total = int(bandit.total_outcomes)
    prices = [float(p) for p in bandit.prices]
    contexts = []
    for context, (location, level) in enumerate(names):
        arms = [
            {
                "price": price,
                "alpha": float(stats.alpha[context, arm]),
                "beta": float(stats.beta[context, arm]),
                "successes": float(stats.successes[context, arm]),
                "failures": float(stats.failures[context, arm]),
                "pulls": float(stats.pulls[context, arm]),
                "posterior_mean": float(stats.posterior_mean[context, arm]),
            }
            for arm, price in enumerate(prices)
        ]
        contexts.append({"location": location, "demand_level": level, "arms": arms})
    return {
        "policy": bandit.policy_name,
        "prices": prices,
        "total_outcomes": total,
        **extra,
        "contexts": contexts,
    }


def refresh_arm_gauges(bandit: Bandit, lock: threading.Lock, metrics: LearningMetrics) -> None:
    """Posterior means and pulls of the first contexts (bounded labels)."""
    with lock:
        stats = bandit.arm_stats(METRIC_CONTEXT_LIMIT)
        names = bandit.contexts(METRIC_CONTEXT_LIMIT)
    labels = [f"{float(p):g}" for p in bandit.prices]
    for context, (location, level) in enumerate(names):
        for arm, price in enumerate(labels):
            mean = float(stats.posterior_mean[context, arm])
            metrics.posterior_mean.labels(location, level, price).set(mean)
            pulls = float(stats.pulls[context, arm])
            metrics.arm_pulls.labels(location, level, price).set(pulls)
