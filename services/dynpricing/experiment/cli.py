"""``dynpricing experiment``: run policies against a market file and report.

The only place in the experiment that talks to a person: the summary table
goes to stdout, the progress bar to stderr and only on a terminal.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, TextIO, cast

from dynpricing.core.errors import PricingError
from dynpricing.core.market import Market, load_market
from dynpricing.experiment import families
from dynpricing.experiment.policies import (
    BUILTIN_POLICIES,
    DEFAULT_POLICY_NAME,
    PolicySpec,
    parse_policy,
    with_adaptive,
    with_half_life,
)
from dynpricing.experiment.scoring import (
    PolicyScore,
    curve_rows,
    results_document,
    score,
)
from dynpricing.experiment.simulation import make_streams, simulate
from dynpricing.statefile import read_json, write_json_atomic

DEFAULT_HORIZON = 20_000
DEFAULT_SEEDS = 50
CSV_POINTS = 400  # curve points per policy in --csv
PROGRESS_WIDTH = 30  # characters of the progress bar
BUNDLED_MARKET = "l6.json"


def build_parser() -> argparse.ArgumentParser:
    """The experiment's own argument parser (``dynpricing experiment --help``)."""
    parser = argparse.ArgumentParser(
        prog="dynpricing experiment",
        description="Run pricing policies offline against a market with known acceptance curves.",
    )
    parser.add_argument("--market", type=Path, help="market file (default: the bundled L6)")
    parser.add_argument(
        "--policy",
        action="append",
        metavar="NAME",
        help=f"policy to run, repeatable (default: all of {', '.join(BUILTIN_POLICIES)}); "
        "NAME+hl<H> adds forgetting with half-life H decisions, NAME+adaptive the engine's "
        "adaptive forgetting",
    )
    parser.add_argument("--horizon", type=_positive_int, default=DEFAULT_HORIZON)
    parser.add_argument("--seeds", type=_positive_int, default=DEFAULT_SEEDS)
    parser.add_argument("--seed", type=int, default=0, help="base seed of all random streams")
    parser.add_argument(
        "--delay-mean",
        type=float,
        default=0.0,
        metavar="D",
        help="mean of the exponential feedback delay, in decisions (0 = immediate)",
    )
    parser.add_argument(
        "--half-life",
        type=float,
        default=None,
        metavar="H",
        help="also run each learning policy with forgetting at this half-life (decisions)",
    )
    parser.add_argument(
        "--adaptive",
        action="store_true",
        help="also run each learning policy with the engine's adaptive forgetting",
    )
    parser.add_argument(
        "--families",
        action="store_true",
        help="instead of one market, run the policies (default: ts-revenue and the default "
        "policy) on every bundled market family and print paired differences to the first, "
        "then adaptive forgetting, the supply-aware objective and the delay ratio",
    )
    parser.add_argument(
        "--sections",
        default=",".join(families.SECTIONS),
        metavar="LIST",
        help=f"with --families, which of {','.join(families.SECTIONS)} to run (comma-separated)",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the results document")
    parser.add_argument("--csv", type=Path, metavar="OUT", help="write the curves behind --plot")
    parser.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the curves")
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def load_market_file(path: Path | None, bundled_name: str = BUNDLED_MARKET) -> Market:
    """A market from a file, or a bundled one (L6 by default) when no path is given."""
    if path is None:
        bundled = resources.files("dynpricing").joinpath("data", bundled_name)
        with resources.as_file(bundled) as local:
            doc = read_json(local)
    else:
        doc = read_json(path)
    if doc is None:
        raise PricingError(f"market file {path} does not exist")
    return load_market(doc)


def select_policies(
    names: Sequence[str] | None, half_life: float | None, adaptive: bool = False
) -> list[PolicySpec]:
    """The policies to run: the named ones (or all built-ins) plus forgetting variants."""
    specs = [parse_policy(name) for name in names] if names else list(BUILTIN_POLICIES.values())
    plain = [s for s in specs if s.learns and s.half_life is None and not s.adaptive]
    if half_life is not None:
        if not half_life > 0:
            raise PricingError(f"--half-life must be > 0, got {half_life}")
        specs += [with_half_life(s, half_life) for s in plain]
    if adaptive:
        specs += [with_adaptive(s) for s in plain]
    return specs


class ProgressBar:
    """A one-line progress bar on stderr; silent when stderr is not a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.stream = total, 0, stream
        self.enabled = stream.isatty()
        self.label = ""

    def advance(self, steps: int) -> None:
        """Count finished steps and redraw."""
        self.done += steps
        if self.enabled:
            filled = PROGRESS_WIDTH * self.done // max(self.total, 1)
            bar = "#" * filled + "." * (PROGRESS_WIDTH - filled)
            percent = 100 * self.done // max(self.total, 1)
            self.stream.write(f"\r[{bar}] {percent:3d}% {self.label:<32}")
            self.stream.flush()

    def close(self) -> None:
        """End the progress line."""
        if self.enabled:
            self.stream.write("\n")


def run_experiment(args: argparse.Namespace) -> tuple[Market, list[PolicyScore], dict[str, object]]:
    """Simulate every selected policy on shared market streams and score them."""
    market = load_market_file(args.market)
    if args.delay_mean < 0:
        raise PricingError(f"--delay-mean must be >= 0, got {args.delay_mean}")
    specs = select_policies(args.policy, args.half_life, args.adaptive)
    streams = make_streams(market, args.horizon, args.seeds, args.delay_mean, args.seed)
    progress = ProgressBar(args.horizon * len(specs))
    scores = []
    for spec in specs:
        progress.label = spec.name
        run = simulate(spec, market, streams, args.seed, progress.advance)
        scores.append(score(run, market, streams))
    progress.close()
    document = results_document(market.name, streams, args.delay_mean, DEFAULT_POLICY_NAME, scores)
    return market, scores, document


def format_table(document: dict[str, object]) -> str:
    """The summary table printed on stdout."""
    policies = cast(dict[str, dict[str, Any]], document["policies"])
    width = max(len("policy"), *(len(name) for name in policies))
    lines = [
        f"market {document['market']}, horizon {document['horizon']}, "
        f"{document['seeds']} seeds, delay mean {document['delay_mean']}, "
        f"default policy {document['default_policy']}",
        f"{'policy':<{width}}  {'oracle revenue %':>16}  {'regret':>16}  "
        f"{'optimal arm':>11}  {'acceptance':>10}",
    ]
    for name, m in policies.items():
        pct, regret = m["oracle_revenue_pct"], m["regret"]
        lines.append(
            f"{name:<{width}}  {pct['mean']:>8.2f} ± {pct['ci95']:<5.2f}  "
            f"{regret['mean']:>8.1f} ± {regret['ci95']:<5.1f}  "
            f"{m['optimal_arm_share']:>11.3f}  {m['acceptance_rate']:>10.3f}"
        )
    return "\n".join(lines)


def write_csv(path: Path, scores: Sequence[PolicyScore]) -> None:
    """The curves behind the plot, one row per (policy, decision count)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["policy", "decisions", "cumulative_regret", "rolling_oracle_revenue_pct"])
        writer.writerows(curve_rows(scores, CSV_POINTS))


def compare_families(args: argparse.Namespace) -> str:
    """The ``--families`` report (see :mod:`dynpricing.experiment.families`).

    The policies share every market stream, so the per-seed difference cancels
    the market noise and its confidence interval is much tighter than either
    policy's own.
    """
    names = args.policy or list(families.FAMILY_POLICIES)
    specs = select_policies(names, args.half_life, args.adaptive)
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(families.SECTIONS))
    if unknown or not sections:
        raise PricingError(f"--sections: expected some of {list(families.SECTIONS)}, got {unknown}")
    return families.report(
        lambda name: load_market_file(None, f"{name}.json"), args, specs, sections, _print_now
    )


def _print_now(text: str) -> None:
    print(text, flush=True)


def _report(args: argparse.Namespace) -> None:
    """Run one market, print the table and write the requested files."""
    market, scores, document = run_experiment(args)
    print(format_table(document))
    if args.json:
        write_json_atomic(args.json, document)
    if args.csv:
        write_csv(args.csv, scores)
    if args.plot:
        from dynpricing.experiment.plot import plot_curves  # noqa: PLC0415 - matplotlib is optional

        title = f"{market.name}: {args.horizon} decisions, {args.seeds} seeds"
        plot_curves(scores, args.plot, title)


def main(argv: list[str] | None = None) -> int:
    """Entry point wired to ``dynpricing experiment``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        if args.families:
            compare_families(args)  # prints each section as soon as it is ready
        else:
            _report(args)
    except PricingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
