"""The policies the experiment can run, by name.

Thompson policies call the same decision functions as the engine's bandit
(:mod:`dynpricing.core.policies`); the others are yardsticks: the oracle knows
the true curves, ``random`` knows nothing, ``epsilon-greedy`` is the classic
non-Bayesian learner. A ``+hl<H>`` suffix adds forgetting with half-life ``H``
decisions to any learning policy, e.g. ``monotone-ts-revenue+hl3000``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dynpricing.core.errors import PricingError
from dynpricing.core.policies import (
    DEFAULT_POLICY,
    OBJECTIVE_ACCEPTANCE,
    OBJECTIVE_REVENUE,
    POLICY_MONOTONE_TS,
    POLICY_SHAPE_TS,
    POLICY_TS,
    policy_name,
)

KIND_ORACLE = "oracle"
KIND_RANDOM = "random"
KIND_EPSILON_GREEDY = "epsilon-greedy"
KIND_THOMPSON = "thompson"
DEFAULT_EPSILON = 0.1  # share of decisions spent exploring uniformly
HALF_LIFE_SUFFIX = "+hl"


@dataclass(frozen=True)
class PolicySpec:
    """How one experiment policy decides."""

    name: str
    kind: str
    core_policy: str = POLICY_TS
    objective: str = OBJECTIVE_REVENUE
    half_life: float | None = None
    epsilon: float = DEFAULT_EPSILON

    @property
    def learns(self) -> bool:
        """Whether the policy keeps a posterior (and so can forget)."""
        return self.kind in {KIND_THOMPSON, KIND_EPSILON_GREEDY}


def _thompson(core_policy: str, objective: str) -> PolicySpec:
    name = policy_name(core_policy, objective)
    return PolicySpec(name=name, kind=KIND_THOMPSON, core_policy=core_policy, objective=objective)


BUILTIN_POLICIES: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        PolicySpec(name="oracle", kind=KIND_ORACLE),
        PolicySpec(name="random", kind=KIND_RANDOM),
        PolicySpec(name="epsilon-greedy", kind=KIND_EPSILON_GREEDY),
        _thompson(POLICY_TS, OBJECTIVE_ACCEPTANCE),
        _thompson(POLICY_TS, OBJECTIVE_REVENUE),
        _thompson(POLICY_SHAPE_TS, OBJECTIVE_REVENUE),
    )
}
EXTRA_POLICIES: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        _thompson(POLICY_MONOTONE_TS, OBJECTIVE_REVENUE),
        _thompson(POLICY_MONOTONE_TS, OBJECTIVE_ACCEPTANCE),
        _thompson(POLICY_SHAPE_TS, OBJECTIVE_ACCEPTANCE),
    )
}
DEFAULT_POLICY_NAME = policy_name(DEFAULT_POLICY, OBJECTIVE_REVENUE)


def parse_policy(name: str) -> PolicySpec:
    """A policy by name, with an optional ``+hl<H>`` forgetting suffix."""
    base, _, half_life_text = name.partition(HALF_LIFE_SUFFIX)
    spec = BUILTIN_POLICIES.get(base) or EXTRA_POLICIES.get(base)
    if spec is None:
        known = sorted({*BUILTIN_POLICIES, *EXTRA_POLICIES})
        raise PricingError(f"unknown policy {name!r}; known: {known} (+hl<H> adds forgetting)")
    if not half_life_text:
        return spec
    if not spec.learns:
        raise PricingError(f"policy {base!r} does not learn, so it cannot forget")
    try:
        half_life = float(half_life_text)
    except ValueError:
        raise PricingError(f"bad half-life in policy {name!r}") from None
    if not half_life > 0:
        raise PricingError(f"half-life in policy {name!r} must be > 0")
    return with_half_life(spec, half_life)


def with_half_life(spec: PolicySpec, half_life: float) -> PolicySpec:
    """The forgetting variant of a learning policy, named ``<name>+hl<H>``."""
    return replace(spec, name=f"{spec.name}{HALF_LIFE_SUFFIX}{half_life:g}", half_life=half_life)
