"""Target policies: the probability each would have given every price, per logged decision.

Three kinds, each a frozen or predictable decision rule, so the off-policy
estimators apply:

- :class:`FixedPrices`: one price per context (deterministic).
- :class:`FrozenPolicy`: a snapshot's posterior (``bandit_stats.json``) that never
  learns; its Thompson choice probabilities per context.
- :class:`InformedPolicy`: a built-in policy (any policy, objective, prior,
  half-life) that learns exactly what the engine learnt, when the engine learnt
  it, and is asked at every logged decision what it would have chosen then.

Choice probabilities of Thompson rules are estimated with the core's own
:meth:`Bandit.propensities` (many posterior draws): the estimate is unbiased,
and the estimators then evaluate exactly the policy that draws from it.
A policy that learns from its *own* choices needs the replay method
(:mod:`dynpricing.evaluate.replay`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.contexts import CONTEXT_KEY_SEPARATOR
from dynpricing.core.errors import PricingError
from dynpricing.core.grid import arm_index
from dynpricing.core.policies import OBJECTIVES, POLICIES
from dynpricing.evaluate.dataset import EvaluationLog

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FROZEN_DRAWS = 16_384  # posterior draws per context for a frozen policy's probabilities
INFORMED_DRAWS = 512  # draws per decision (per posterior change) for a learning rule
ANY_CONTEXT = "*"


class Target(Protocol):
    """A target policy: per logged decision, a probability for every price."""

    @property
    def name(self) -> str: ...

    def probabilities(self, log: EvaluationLog, rng: np.random.Generator) -> FloatArray:
        """``(decisions, prices)``, each row summing to 1."""
        ...


@dataclass(frozen=True)
class FixedPrices:
    """A price multiplier per context; rules by ``location|level``, location, level, or ``*``."""

    name: str
    rules: Mapping[str, float]

    def price_for(self, location: str, level: str) -> float:
        for key in (f"{location}{CONTEXT_KEY_SEPARATOR}{level}", location, level, ANY_CONTEXT):
            if key in self.rules:
                return self.rules[key]
        raise PricingError(
            f"fixed-price target {self.name!r} has no price for context {location}|{level}; "
            f"add a rule for it or '*'"
        )

    def probabilities(self, log: EvaluationLog, rng: np.random.Generator) -> FloatArray:
        del rng  # deterministic
        arms = np.array(
            [arm_index(log.prices, self.price_for(*context)) for context in log.contexts],
            dtype=np.int64,
        )
        return _one_hot(arms[log.decisions.contexts], log.prices.size)


def parse_fixed_prices(name: str, spec: str) -> FixedPrices:
    """``1.2`` (everywhere) or ``low=1.0,medium=1.2,high=1.5`` or ``Airport|high=1.5,*=1.2``."""
    rules: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.rpartition("=")
        key = key.strip() if sep else ANY_CONTEXT
        try:
            price = float(value)
        except ValueError:
            raise PricingError(f"fixed price {value!r} in {name!r} is not a number") from None
        if not price > 0:
            raise PricingError(f"fixed price {price} in {name!r} must be > 0")
        if key in rules:
            raise PricingError(f"fixed-price target {name!r} names {key!r} twice")
        rules[key] = price
    if not rules:
        raise PricingError(f"fixed-price target {name!r} names no price")
    return FixedPrices(name=name, rules=rules)


@dataclass(frozen=True)
class FrozenPolicy:
    """A restored bandit that never learns: its choice probabilities depend on context only.

    Contexts the snapshot has never seen get the prior, as the engine would
    give them; :meth:`unseen_contexts` says which.
    """

    name: str
    bandit: Bandit
    draws: int = FROZEN_DRAWS

    def unseen_contexts(self, log: EvaluationLog) -> list[tuple[str, str]]:
        known = set(self.bandit.contexts())
        return [context for context in log.contexts if context not in known]

    def probabilities(self, log: EvaluationLog, rng: np.random.Generator) -> FloatArray:
        bandit = _frozen_copy(self.bandit, self.draws)
        per_context = np.stack(
            [bandit.propensities(bandit.context_index(*c), rng, now=0.0) for c in log.contexts]
        )
        probabilities: FloatArray = per_context[log.decisions.contexts]
        return probabilities


def _frozen_copy(bandit: Bandit, draws: int) -> Bandit:
    """The same posterior with forgetting off and ``draws`` propensity draws."""
    config = BanditConfig(
        prices=tuple(float(p) for p in bandit.prices),
        prior_alpha=bandit.config.prior_alpha,
        prior_beta=bandit.config.prior_beta,
        objective=bandit.config.objective,
        policy=bandit.config.policy,
        half_life=None,
        propensity_draws=draws,
    )
    copy, _ = Bandit.from_document(bandit.to_document(), config)
    return copy


@dataclass(frozen=True)
class InformedPolicy:
    """A built-in policy that learns what the engine learnt and decides each logged event.

    At decision i it holds the posterior of every outcome the engine had
    learnt by that decision's time (its own choices never feed back), so its
    probabilities are fixed before decision i's outcome is drawn: IPS and DR
    are unbiased for its expected revenue on the logged decisions.
    """

    name: str
    config: BanditConfig
    draws: int = INFORMED_DRAWS

    def probabilities(self, log: EvaluationLog, rng: np.random.Generator) -> FloatArray:
        bandit = Bandit(_with_draws(self.config, self.draws, log))
        rows = np.array([bandit.context_index(*c) for c in log.contexts], dtype=np.int64)
        learning = log.learning
        result = np.empty((log.decisions.size, log.prices.size))
        learnt = 0
        for i, (time, context) in enumerate(zip(log.times, log.decisions.contexts, strict=True)):
            upto = int(np.searchsorted(learning.times, time, side="right"))
            if upto > learnt:
                bandit.update(
                    rows[learning.contexts[learnt:upto]],
                    learning.arms[learnt:upto],
                    learning.accepted[learnt:upto],
                    now=float(learning.times[upto - 1]),
                )
                learnt = upto
            result[i] = bandit.propensities(int(rows[context]), rng, now=float(time))
        return result


def _with_draws(config: BanditConfig, draws: int, log: EvaluationLog) -> BanditConfig:
    if len(config.prices) != log.prices.size or not np.allclose(config.prices, log.prices):
        raise PricingError(
            f"target grid {list(config.prices)} != the log's grid {log.prices.tolist()}"
        )
    return replace(config, propensity_draws=draws)


def _one_hot(arms: IntArray, n_arms: int) -> FloatArray:
    table = np.zeros((arms.size, n_arms))
    table[np.arange(arms.size), arms] = 1.0
    return table


POLICY_SETTINGS = ("half_life", "prior_alpha", "prior_beta", "forgetting_floor")


def parse_policy(spec: str, prices: tuple[float, ...]) -> BanditConfig:
    """A built-in policy: ``<policy>-<objective>`` then optional ``:name=value,...`` settings.

    Settings are ``half_life`` (seconds, as the engine's ``HALF_LIFE_S``),
    ``prior_alpha``, ``prior_beta`` and ``forgetting_floor``, e.g.
    ``ts-revenue:half_life=3600``.
    """
    name, _, settings = spec.partition(":")
    policy, objective = _policy_and_objective(name)
    values: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in settings.split(","))):
        key, sep, text = part.partition("=")
        if not sep or key not in POLICY_SETTINGS:
            raise PricingError(
                f"bad setting {part!r} in {spec!r}; expected name=value with name one of "
                f"{list(POLICY_SETTINGS)}"
            )
        try:
            values[key] = float(text)
        except ValueError:
            raise PricingError(f"setting {key} in {spec!r} is not a number: {text!r}") from None
    default = BanditConfig(prices=prices, policy=policy, objective=objective)
    return replace(
        default,
        half_life=values.get("half_life", default.half_life),
        prior_alpha=values.get("prior_alpha", default.prior_alpha),
        prior_beta=values.get("prior_beta", default.prior_beta),
        forgetting_floor=values.get("forgetting_floor", default.forgetting_floor),
    )


def _policy_and_objective(name: str) -> tuple[str, str]:
    for objective in OBJECTIVES:
        suffix = f"-{objective}"
        if name.endswith(suffix) and name[: -len(suffix)] in POLICIES:
            return name[: -len(suffix)], objective
    known = [f"{p}-{o}" for p in POLICIES for o in OBJECTIVES]
    raise PricingError(f"unknown policy {name!r}; known: {known}")
