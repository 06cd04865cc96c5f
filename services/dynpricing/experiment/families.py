"""``dynpricing experiment --families``: the default policy against plain TS on every family.

Four sections, each computed on the bundled markets with common random
numbers (every policy of a market sees the same arrivals, outcomes, delays
and supply), so each comparison is a paired difference per seed with its 95 %
confidence half-width:

1. **robustness**: each policy against the first (plain revenue TS by
   default) on every family, stationary and drifting.
2. **forgetting**: the default's adaptive forgetting against no forgetting
   and against fixed half-lives; on drifting families against the best fixed
   half-life in hindsight, on stationary ones what forgetting costs.
3. **supply**: revenue of the rides that can be served (as % of that
   objective's own oracle) for the default policy with the plain revenue
   objective and with ``revenue-supply``, on every family.
4. **delay**: the default's regret with exponential feedback delay of mean
   ``DELAY_MEAN`` decisions on L6, against its regret without delay.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from dynpricing.core.market import Market
from dynpricing.experiment.policies import (
    ADAPTIVE_SUFFIX,
    DEFAULT_POLICY_NAME,
    PolicySpec,
    parse_policy,
    with_half_life,
)
from dynpricing.experiment.scoring import (
    FloatArray,
    mean_ci,
    score,
    served_revenue_pct,
)
from dynpricing.experiment.simulation import MarketStreams, make_streams, simulate

STATIONARY_FAMILIES = (
    "l6",
    "linear",
    "elasticity",
    "cliff",
    "near-tie",
    "near-tie-steep",
    "plateau",
    "non-monotone",
    "context-skew",
    "large-grid",
    "many-contexts",
)
DRIFTING_FAMILIES = ("l6-drift", "l6-trend", "l6-one-shift", "l6-like-shift")
FAMILY_FILES = STATIONARY_FAMILIES + DRIFTING_FAMILIES  # bundled markets compared by --families
FAMILY_POLICIES = ("ts-revenue", DEFAULT_POLICY_NAME)
FIXED_HALF_LIVES = (1000.0, 2000.0, 4000.0, 8000.0)  # decisions; the hindsight candidates
SUPPLY_SUFFIX = "-supply"  # revenue-supply variant of a *-revenue policy name
DELAY_MEAN = 1000.0
DELAY_MARKET = "l6"
SECTIONS = ("robustness", "forgetting", "supply", "delay")

LoadMarket = Callable[[str], Market]


@dataclass
class FamilyRuns:
    """Simulated runs of one market, cached by policy name (a policy runs once per market)."""

    market: Market
    streams: MarketStreams
    seed: int
    _runs: dict[str, tuple[FloatArray, FloatArray, FloatArray]]

    def measures(self, spec: PolicySpec) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Per seed: % of oracle revenue, regret, % of the served-revenue oracle."""
        if spec.name not in self._runs:
            run = simulate(spec, self.market, self.streams, self.seed)
            scored = score(run, self.market, self.streams)
            served = served_revenue_pct(run, self.market, self.streams)
            self._runs[spec.name] = (scored.oracle_revenue_pct, scored.regret, served)
        return self._runs[spec.name]


def _runs(
    load: LoadMarket, family: str, args: argparse.Namespace, delay: float | None = None
) -> FamilyRuns:
    market = load(family)
    mean = args.delay_mean if delay is None else delay
    streams = make_streams(market, args.horizon, args.seeds, mean, args.seed)
    return FamilyRuns(market, streams, args.seed, {})


def _diff(values: FloatArray, reference: FloatArray) -> str:
    diff = mean_ci(values - reference)
    return f"{diff['mean']:+.2f} ± {diff['ci95']:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def robustness(
    load: LoadMarket,
    args: argparse.Namespace,
    specs: Sequence[PolicySpec],
    cache: dict[str, FamilyRuns],
) -> list[str]:
    """Each policy's % of oracle revenue and its paired difference to the first policy."""
    reference = specs[0]
    rows = []
    for family in FAMILY_FILES:
        runs = cache.setdefault(family, _runs(load, family, args))
        base = runs.measures(reference)[0]
        cells = [runs.market.name, f"{mean_ci(base)['mean']:.2f}"]
        for spec in specs[1:]:
            pct = runs.measures(spec)[0]
            cells.append(f"{mean_ci(pct)['mean']:.2f} ({_diff(pct, base)})")
        rows.append(cells)
    header = ["market", reference.name] + [f"{s.name} (difference)" for s in specs[1:]]
    title = (
        f"## robustness: % of oracle revenue, paired difference to {reference.name} "
        f"(± 95 % half-width)"
    )
    return [title, "", *_table(header, rows)]


def forgetting(
    load: LoadMarket, args: argparse.Namespace, default: PolicySpec, cache: dict[str, FamilyRuns]
) -> list[str]:
    """Adaptive forgetting against none (stationary) and the best fixed half-life (drifting)."""
    still = _without_forgetting(default)
    rows = []
    for family in STATIONARY_FAMILIES:
        runs = cache.setdefault(family, _runs(load, family, args))
        adaptive, none = runs.measures(default)[0], runs.measures(still)[0]
        rows.append([runs.market.name, f"{mean_ci(none)['mean']:.2f}", "", "",
                     f"{mean_ci(adaptive)['mean']:.2f}", _diff(adaptive, none)])  # fmt: skip
    for family in DRIFTING_FAMILIES:
        runs = cache.setdefault(family, _runs(load, family, args))
        adaptive, none = runs.measures(default)[0], runs.measures(still)[0]
        fixed = {h: runs.measures(with_half_life(still, h))[0] for h in FIXED_HALF_LIVES}
        best = max(fixed, key=lambda h: float(np.mean(fixed[h])))
        rows.append([runs.market.name, f"{mean_ci(none)['mean']:.2f}", f"{best:g}",
                     f"{mean_ci(fixed[best])['mean']:.2f}", f"{mean_ci(adaptive)['mean']:.2f}",
                     _diff(adaptive, fixed[best])])  # fmt: skip
    header = [
        "market",
        f"{still.name}",
        "best fixed half-life",
        "its %",
        f"{default.name}",
        "adaptive - (best fixed or none)",
    ]
    title = (
        "## forgetting: % of oracle revenue; adaptive against no forgetting (stationary) "
        f"and the best of half-lives {', '.join(f'{h:g}' for h in FIXED_HALF_LIVES)} "
        "(drifting), paired"
    )
    return [title, "", *_table(header, rows)]


def supply(
    load: LoadMarket, args: argparse.Namespace, default: PolicySpec, cache: dict[str, FamilyRuns]
) -> list[str]:
    """Served revenue of the default with the revenue objective and with revenue-supply."""
    aware = _supply_variant(default)
    rows = []
    for family in FAMILY_FILES:
        runs = cache.setdefault(family, _runs(load, family, args))
        plain, served = runs.measures(default)[2], runs.measures(aware)[2]
        rows.append([runs.market.name, f"{mean_ci(plain)['mean']:.2f}",
                     f"{mean_ci(served)['mean']:.2f}", _diff(served, plain)])  # fmt: skip
    header = ["market", default.name, aware.name, "difference"]
    title = (
        "## supply: revenue of the rides drivers can serve, % of its own oracle "
        "(each event: its requests accept independently, at most its drivers are served)"
    )
    return [title, "", *_table(header, rows)]


def delay(load: LoadMarket, args: argparse.Namespace, specs: Sequence[PolicySpec]) -> list[str]:
    """Regret with feedback delay against regret without, on L6."""
    now, later = _runs(load, DELAY_MARKET, args, 0.0), _runs(load, DELAY_MARKET, args, DELAY_MEAN)
    rows = []
    for spec in specs:
        immediate, delayed = now.measures(spec)[1], later.measures(spec)[1]
        ratio = float(np.mean(delayed) / np.mean(immediate))
        rows.append([spec.name, _ci(immediate), _ci(delayed), f"{ratio:.3f}"])
    header = ["policy", "regret, no delay", f"regret, delay mean {DELAY_MEAN:g}", "ratio"]
    title = f"## delay: regret on {now.market.name}, feedback delayed by Exp(mean {DELAY_MEAN:g})"
    return [title, "", *_table(header, rows)]


def _ci(values: FloatArray) -> str:
    measured = mean_ci(values)
    return f"{measured['mean']:.1f} ± {measured['ci95']:.1f}"


def _without_forgetting(spec: PolicySpec) -> PolicySpec:
    return parse_policy(spec.name.removesuffix(ADAPTIVE_SUFFIX))


def _supply_variant(spec: PolicySpec) -> PolicySpec:
    base = spec.name.removesuffix(ADAPTIVE_SUFFIX)
    suffix = ADAPTIVE_SUFFIX if spec.adaptive else ""
    return parse_policy(f"{base}{SUPPLY_SUFFIX}{suffix}")


def report(
    load: LoadMarket,
    args: argparse.Namespace,
    specs: Sequence[PolicySpec],
    sections: Sequence[str] = SECTIONS,
    emit: Callable[[str], None] | None = None,
) -> str:
    """The sections asked for, as markdown tables (the first policy is the reference).

    ``emit`` receives each section's text as soon as it is computed (a long
    run shows its first tables early); the whole report is returned too.
    """
    default = parse_policy(DEFAULT_POLICY_NAME)
    cache: dict[str, FamilyRuns] = {}
    heading = (
        f"# {len(FAMILY_FILES)} market families, horizon {args.horizon}, {args.seeds} seeds, "
        f"seed {args.seed}, delay mean {args.delay_mean:g}; default policy {default.name}"
    )
    builders: dict[str, Callable[[], list[str]]] = {
        "robustness": lambda: robustness(load, args, specs, cache),
        "forgetting": lambda: forgetting(load, args, default, cache),
        "supply": lambda: supply(load, args, default, cache),
        "delay": lambda: delay(load, args, (specs[0], default)),
    }
    parts = [heading]
    if emit is not None:
        emit(heading)
    for section in sections:
        text = "\n".join(["", *builders[section]()])
        parts.append(text)
        if emit is not None:
            emit(text)
    return "\n".join(parts)
