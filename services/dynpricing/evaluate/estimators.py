"""Off-policy estimators: what a target policy would have earned on logged decisions.

Pure numpy, no I/O. The input is one row per usable logged decision (its
context, the arm the logging policy chose, the probability it had of choosing
it, whether the customer accepted) and the target policy's probability of
every arm for that same decision. The estimand is the target's expected
revenue per decision on the logged contexts:

    V = (1/n) * sum_i sum_a target[i, a] * price[a] * P(accept | context_i, a)

Every estimator returns that number with a 95 % normal interval from its own
variance (the sample variance of its per-decision terms). Under a logging
policy that learns, each decision's term is a martingale difference around its
conditional mean, so the same variance holds (it is conservative: it also
counts how the conditional means differ). See ``docs/evaluation.md``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

Z_95 = 1.959963984540054  # two-sided 95 % normal quantile
CROSS_FIT_FOLDS = 5  # the reward model for decision i is fitted on the other folds
MODEL_PRIOR_STRENGTH = 2.0  # pseudo-decisions pulling a cell's acceptance to its arm's mean
UNSEEN_ACCEPTANCE = 0.5  # an arm never priced in any training fold
TINY_PROPENSITY = 0.02  # about 1/(64+1): the resolution of the engine's propensity estimate
TINY_WEIGHT_SHARE_WARN = 0.10  # warn when decisions with tiny propensities carry this much weight
UNSUPPORTED_SHARE_WARN = 0.01  # warn when the target puts this much mass where the log never went
MAX_WEIGHT_SHARE_WARN = 0.05  # warn when one decision carries this share of all weight ...
MAX_WEIGHT_RATIO_WARN = 10.0  # ... and its weight is this many times the mean weight
MIN_SUPPORT = 1  # logged decisions a (context, price) cell needs to count as supported

ESTIMATORS = ("ips", "snips", "dr")


class EstimationError(ValueError):
    """The logged data cannot give an estimate (no decisions, bad shapes or values)."""


@dataclass(frozen=True)
class LoggedDecisions:
    """The usable logged decisions, one row each, in log order.

    ``propensities`` are the logging policy's probabilities of the chosen arms
    (in (0, 1]); ``folds`` assign each decision to a cross-fitting fold.
    """

    contexts: IntArray
    arms: IntArray
    propensities: FloatArray
    accepted: BoolArray
    prices: FloatArray
    folds: IntArray
    n_contexts: int

    def __post_init__(self) -> None:
        n = self.contexts.size
        sizes = {self.arms.size, self.propensities.size, self.accepted.size, self.folds.size}
        if sizes != {n}:
            raise EstimationError(f"logged columns differ in length: {sorted(sizes | {n})}")
        if n == 0:
            raise EstimationError("no usable logged decisions")
        p = self.propensities
        if not np.all((p > 0) & (p <= 1)):
            raise EstimationError("logged propensities must be in (0, 1]")
        if self.arms.min() < 0 or self.arms.max() >= self.prices.size:
            raise EstimationError(f"arms must be in [0, {self.prices.size})")
        if self.contexts.min() < 0 or self.contexts.max() >= self.n_contexts:
            raise EstimationError(f"contexts must be in [0, {self.n_contexts})")

    @property
    def size(self) -> int:
        return int(self.contexts.size)

    @property
    def rewards(self) -> FloatArray:
        """Revenue of each logged decision: its price if accepted, else 0."""
        rewards: FloatArray = self.prices[self.arms] * self.accepted
        return rewards


@dataclass(frozen=True)
class Interval:
    """An estimate with its standard error and 95 % confidence interval."""

    value: float
    std_error: float
    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def covers(self, truth: float) -> bool:
        return self.low <= truth <= self.high


@dataclass(frozen=True)
class Diagnostics:
    """How far the log supports the target, and what the estimates lean on."""

    decisions: int
    effective_sample_size: float  # (sum w)^2 / sum w^2, in decisions
    mean_weight: Interval  # E[w] = 1 when propensities are right and the log covers the target
    max_weight: float
    max_weight_share: float  # largest single weight / sum of weights
    tiny_propensities: int  # logged propensities below TINY_PROPENSITY
    tiny_weight_share: float  # share of the target's weight on those decisions
    unsupported_share: float  # target mass on (context, price) cells the log never priced
    warnings: tuple[str, ...]
    ips_dr_gap: Interval | None = None  # mean of (IPS - DR) terms: 0 when both are unbiased


@dataclass(frozen=True)
class Evaluation:
    """Every estimator's answer for one target, and the diagnostics behind them."""

    estimates: dict[str, Interval]
    diagnostics: Diagnostics


def stable_folds(ids: Sequence[str], folds: int = CROSS_FIT_FOLDS) -> IntArray:
    """A fold per decision from its id alone, so any reading order gives the same folds."""
    return np.fromiter(
        (zlib.crc32(i.encode()) % folds for i in ids), dtype=np.int64, count=len(ids)
    )


def normal_interval(terms: FloatArray) -> Interval:
    """Mean of per-decision terms with a 95 % normal interval (zero width for one term)."""
    mean = float(np.mean(terms))
    se = float(np.std(terms, ddof=1) / math.sqrt(terms.size)) if terms.size > 1 else 0.0
    return Interval(mean, se, mean - Z_95 * se, mean + Z_95 * se)


def importance_weights(data: LoggedDecisions, target: FloatArray) -> FloatArray:
    """target(chosen arm) / logged propensity, per decision."""
    _check_target(data, target)
    chosen = target[np.arange(data.size), data.arms]
    weights: FloatArray = chosen / data.propensities
    return weights


def ips_terms(data: LoggedDecisions, target: FloatArray) -> FloatArray:
    """Per-decision IPS terms w_i * r_i."""
    terms: FloatArray = importance_weights(data, target) * data.rewards
    return terms


def ips(data: LoggedDecisions, target: FloatArray) -> Interval:
    """Inverse propensity scoring: mean of w_i * r_i. Unbiased; high variance."""
    return normal_interval(ips_terms(data, target))


def snips(data: LoggedDecisions, target: FloatArray) -> Interval:
    """Self-normalised IPS: sum w r / sum w, with its delta-method variance.

    Slightly biased (O(1/n)) but bounded by the largest reward and far less
    variable than IPS when weights are uneven.
    """
    weights = importance_weights(data, target)
    total = float(weights.sum())
    if total <= 0:
        raise EstimationError("the target gives no weight to any logged decision")
    value = float((weights * data.rewards).sum() / total)
    mean_weight = total / data.size
    residual = weights * (data.rewards - value) / mean_weight
    n = data.size
    se = float(np.sqrt(np.sum(residual**2) / (n * (n - 1)))) if n > 1 else 0.0
    return Interval(value, se, value - Z_95 * se, value + Z_95 * se)


def reward_model(data: LoggedDecisions, folds: int = CROSS_FIT_FOLDS) -> FloatArray:
    """Cross-fitted expected revenue of every arm for each decision, shaped ``(n, arms)``.

    Row i comes from a model that never saw decision i's fold: the acceptance
    of each (context, price) cell is its accept rate in the other folds, pulled
    towards that price's rate over all contexts by ``MODEL_PRIOR_STRENGTH``
    pseudo-decisions (cells with little data borrow from the other contexts).
    """
    n_arms = data.prices.size
    cells = data.contexts * n_arms + data.arms
    n_cells = data.n_contexts * n_arms
    pulls = np.zeros((folds, n_cells))
    wins = np.zeros((folds, n_cells))
    np.add.at(pulls, (data.folds, cells), 1.0)
    np.add.at(wins, (data.folds, cells), data.accepted.astype(np.float64))
    acceptance = np.empty((folds, data.n_contexts, n_arms))
    for fold in range(folds):
        train_pulls = (pulls.sum(axis=0) - pulls[fold]).reshape(data.n_contexts, n_arms)
        train_wins = (wins.sum(axis=0) - wins[fold]).reshape(data.n_contexts, n_arms)
        arm_pulls, arm_wins = train_pulls.sum(axis=0), train_wins.sum(axis=0)
        arm_rate = np.where(arm_pulls > 0, arm_wins / np.maximum(arm_pulls, 1.0), UNSEEN_ACCEPTANCE)
        acceptance[fold] = (train_wins + MODEL_PRIOR_STRENGTH * arm_rate) / (
            train_pulls + MODEL_PRIOR_STRENGTH
        )
    predicted: FloatArray = acceptance[data.folds, data.contexts] * data.prices
    return predicted


def doubly_robust(
    data: LoggedDecisions, target: FloatArray, model: FloatArray | None = None
) -> Interval:
    """The reward model's value of the target, corrected by IPS on the model's residual.

    Unbiased when either the propensities or the (cross-fitted) model are
    right; the interval is narrow where the model explains the rewards.
    """
    return normal_interval(dr_terms(data, target, model))


def dr_terms(
    data: LoggedDecisions, target: FloatArray, model: FloatArray | None = None
) -> FloatArray:
    """Per-decision doubly robust terms: the model's value plus the weighted residual."""
    predicted = reward_model(data) if model is None else model
    weights = importance_weights(data, target)
    rows = np.arange(data.size)
    direct = (target * predicted).sum(axis=1)
    residual = data.rewards - predicted[rows, data.arms]
    terms: FloatArray = direct + weights * residual
    return terms


def diagnose(data: LoggedDecisions, target: FloatArray) -> Diagnostics:
    """Effective sample size, weight checks and support warnings for one target."""
    weights = importance_weights(data, target)
    total = float(weights.sum())
    squares = float((weights**2).sum())
    ess = total * total / squares if squares > 0 else 0.0
    tiny = data.propensities < TINY_PROPENSITY
    tiny_share = float(weights[tiny].sum() / total) if total > 0 else 0.0
    max_weight = float(weights.max())
    max_share = max_weight / total if total > 0 else 0.0
    unsupported = _unsupported_share(data, target)
    mean_weight = normal_interval(weights)
    warnings = _warnings(
        data,
        mean_weight=mean_weight,
        tiny=int(tiny.sum()),
        tiny_share=tiny_share,
        max_share=max_share,
        unsupported=unsupported,
    )
    return Diagnostics(
        decisions=data.size,
        effective_sample_size=ess,
        mean_weight=mean_weight,
        max_weight=max_weight,
        max_weight_share=max_share,
        tiny_propensities=int(tiny.sum()),
        tiny_weight_share=tiny_share,
        unsupported_share=unsupported,
        warnings=warnings,
    )


def _unsupported_share(data: LoggedDecisions, target: FloatArray) -> float:
    """Mean target mass on prices the log never charged in the decision's context."""
    n_arms = data.prices.size
    counts = np.bincount(data.contexts * n_arms + data.arms, minlength=data.n_contexts * n_arms)
    supported = counts.reshape(data.n_contexts, n_arms) >= MIN_SUPPORT
    return float((target * ~supported[data.contexts]).sum() / data.size)


def _warnings(
    data: LoggedDecisions,
    *,
    mean_weight: Interval,
    tiny: int,
    tiny_share: float,
    max_share: float,
    unsupported: float,
) -> tuple[str, ...]:
    found = []
    if unsupported >= UNSUPPORTED_SHARE_WARN:
        found.append(
            f"no support: the target puts {unsupported:.1%} of its decisions on prices the log "
            "never charged in that context; IPS and SNIPS cannot see them and DR relies on "
            "its reward model there"
        )
    if tiny and tiny_share >= TINY_WEIGHT_SHARE_WARN:
        found.append(
            f"tiny propensities: {tiny} decisions logged with propensity < {TINY_PROPENSITY} "
            f"carry {tiny_share:.1%} of the target's weight; such propensities are coarse "
            "estimates and the true ones may be smaller, so IPS may be biased low"
        )
    if max_share >= MAX_WEIGHT_SHARE_WARN and max_share * data.size >= MAX_WEIGHT_RATIO_WARN:
        found.append(f"one decision carries {max_share:.1%} of the target's weight")
    if not mean_weight.covers(1.0) and data.size > 1:
        found.append(
            f"importance weights average {mean_weight.value:.3f} "
            f"(95 % CI {mean_weight.low:.3f}-{mean_weight.high:.3f}), not 1: the logged "
            "propensities are off or the log misses part of the target"
        )
    return tuple(found)


def evaluate(data: LoggedDecisions, target: FloatArray) -> Evaluation:
    """IPS, SNIPS and doubly robust estimates of one target, with diagnostics."""
    by_ips, by_dr = ips_terms(data, target), dr_terms(data, target, reward_model(data))
    estimates = {
        "ips": normal_interval(by_ips),
        "snips": snips(data, target),
        "dr": normal_interval(by_dr),
    }
    gap = normal_interval(by_ips - by_dr)
    diagnostics = diagnose(data, target)
    if data.size > 1 and not gap.covers(0.0):
        warning = (
            f"IPS and DR disagree beyond their noise (IPS - DR = {gap.value:+.4f}, 95 % "
            f"interval {gap.low:+.4f} to {gap.high:+.4f}): the logged propensities are off for "
            "prices this target favours (coarse estimates of small probabilities) or the "
            "reward model is; DR is the safer estimate"
        )
        diagnostics = replace(diagnostics, warnings=(*diagnostics.warnings, warning))
    return Evaluation(estimates=estimates, diagnostics=replace(diagnostics, ips_dr_gap=gap))


def observed_value(data: LoggedDecisions) -> Interval:
    """The logging policy's own revenue per decision (the on-policy mean)."""
    return normal_interval(data.rewards)


def _check_target(data: LoggedDecisions, target: FloatArray) -> None:
    if target.shape != (data.size, data.prices.size):
        raise EstimationError(
            f"target probabilities shaped {target.shape}, expected {(data.size, data.prices.size)}"
        )
    if not np.all(target >= 0) or not np.allclose(target.sum(axis=1), 1.0, atol=1e-6):
        raise EstimationError("target probabilities must be >= 0 and sum to 1 per decision")
