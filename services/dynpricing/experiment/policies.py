"""The policies the experiment can run, by name.

Thompson policies call the same decision functions as the engine's bandit
(:mod:`dynpricing.core.policies`); the others are yardsticks: the oracle knows
the true curves, ``random`` knows nothing, ``epsilon-greedy`` is the classic
non-Bayesian learner. A ``+hl<H>`` suffix adds forgetting with a fixed
half-life of ``H`` decisions to any learning policy (``monotone-ts-revenue+hl3000``);
``+adaptive`` adds the engine's default adaptive forgetting
(``shrink-ts-revenue+adaptive`` is what the engine runs by default).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from dynpricing.core.errors import PricingError
from dynpricing.core.forgetting import AdaptiveForgetting, Forgetting, HalfLife, NoForgetting
from dynpricing.core.policies import (
    DEFAULT_POLICY,
    OBJECTIVE_ACCEPTANCE,
    OBJECTIVE_REVENUE,
    OBJECTIVES,
    POLICIES,
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
ADAPTIVE_SUFFIX = "+adaptive"


@dataclass(frozen=True)
class PolicySpec:
    """How one experiment policy decides and forgets."""

    name: str
    kind: str
    core_policy: str = POLICY_TS
    objective: str = OBJECTIVE_REVENUE
    half_life: float | None = None  # fixed forgetting, in decisions
    adaptive: bool = False  # the engine's default adaptive forgetting
    epsilon: float = DEFAULT_EPSILON

    @property
    def learns(self) -> bool:
        """Whether the policy keeps a posterior (and so can forget)."""
        return self.kind in {KIND_THOMPSON, KIND_EPSILON_GREEDY}

    def forgetting(self) -> Forgetting:
        """The core's forgetting rule for this policy, the same objects the engine uses."""
        if self.half_life is not None:
            return HalfLife(self.half_life)
        if self.adaptive:
            return AdaptiveForgetting()
        return NoForgetting()


def _thompson(core_policy: str, objective: str) -> PolicySpec:
    name = policy_name(core_policy, objective)
    return PolicySpec(name=name, kind=KIND_THOMPSON, core_policy=core_policy, objective=objective)


def with_adaptive(spec: PolicySpec) -> PolicySpec:
    """The adaptive-forgetting variant of a learning policy, named ``<name>+adaptive``."""
    return replace(spec, name=f"{spec.name}{ADAPTIVE_SUFFIX}", adaptive=True, half_life=None)


DEFAULT_POLICY_NAME = policy_name(DEFAULT_POLICY, OBJECTIVE_REVENUE) + ADAPTIVE_SUFFIX
BUILTIN_POLICIES: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (
        PolicySpec(name="oracle", kind=KIND_ORACLE),
        PolicySpec(name="random", kind=KIND_RANDOM),
        PolicySpec(name="epsilon-greedy", kind=KIND_EPSILON_GREEDY),
        _thompson(POLICY_TS, OBJECTIVE_ACCEPTANCE),
        _thompson(POLICY_TS, OBJECTIVE_REVENUE),
        _thompson(POLICY_SHAPE_TS, OBJECTIVE_REVENUE),
        with_adaptive(_thompson(DEFAULT_POLICY, OBJECTIVE_REVENUE)),
    )
}
EXTRA_POLICIES: dict[str, PolicySpec] = {
    spec.name: spec
    for spec in (_thompson(policy, objective) for policy in POLICIES for objective in OBJECTIVES)
    if spec.name not in BUILTIN_POLICIES
}


def parse_policy(name: str) -> PolicySpec:
    """A policy by name, with an optional ``+hl<H>`` or ``+adaptive`` forgetting suffix."""
    base, _, half_life_text = name.partition(HALF_LIFE_SUFFIX)
    adaptive = not half_life_text and base.endswith(ADAPTIVE_SUFFIX)
    if adaptive:
        base = base.removesuffix(ADAPTIVE_SUFFIX)
    spec = BUILTIN_POLICIES.get(base) or EXTRA_POLICIES.get(base)
    if spec is None:
        known = sorted({*BUILTIN_POLICIES, *EXTRA_POLICIES})
        raise PricingError(
            f"unknown policy {name!r}; known: {known} (+hl<H> or +adaptive adds forgetting)"
        )
    if (adaptive or half_life_text) and not spec.learns:
        raise PricingError(f"policy {base!r} does not learn, so it cannot forget")
    if adaptive:
        return with_adaptive(spec)
    if not half_life_text:
        return spec
    try:
        half_life = float(half_life_text)
    except ValueError:
        raise PricingError(f"bad half-life in policy {name!r}") from None
    if not half_life > 0:
        raise PricingError(f"half-life in policy {name!r} must be > 0")
    return with_half_life(spec, half_life)


def with_half_life(spec: PolicySpec, half_life: float) -> PolicySpec:
    """The forgetting variant of a learning policy, named ``<name>+hl<H>``."""
    base = spec.name.removesuffix(ADAPTIVE_SUFFIX)
    return replace(
        spec, name=f"{base}{HALF_LIFE_SUFFIX}{half_life:g}", half_life=half_life, adaptive=False
    )
