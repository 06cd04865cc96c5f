"""``dynpricing evaluate``: what a pricing policy would have earned on the logged traffic.

The one place in evaluation that talks to a person and touches files and
Kafka: it reads the window (topics, or a dump), builds the targets, and prints
the table; ``--json`` and ``--plot`` write the same report. ``--simulate`` runs
the coverage check against a market file instead. See ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from pydantic import ValidationError

from dynpricing import events
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import PricingError
from dynpricing.core.market import Market, load_market
from dynpricing.core.policies import DEFAULT_POLICY, OBJECTIVE_REVENUE, POLICY_TS
from dynpricing.evaluate.dataset import NoUsableDecisionsError
from dynpricing.evaluate.dump import DumpError, read_dump, write_dump
from dynpricing.evaluate.estimators import EstimationError
from dynpricing.evaluate.evaluation import NamedTarget, run_evaluation
from dynpricing.evaluate.kafka_log import KafkaReadError, Window, read_log
from dynpricing.evaluate.logjoin import (
    EXPIRED_AS_DROP,
    EXPIRED_AS_REJECT,
    EXPIRED_DROP,
    PENDING_AT_END,
    JoinRules,
)
from dynpricing.evaluate.records import (
    INVALID_DECISION,
    INVALID_PROPENSITY,
    NO_PROPENSITY,
    PRICE_NOT_ON_GRID,
    RawRecord,
)
from dynpricing.evaluate.replay import ReplayTarget
from dynpricing.evaluate.report import format_coverage, format_report, plot_report
from dynpricing.evaluate.simulate import CoverageSetup, run_coverage
from dynpricing.evaluate.targets import (
    FrozenPolicy,
    InformedPolicy,
    parse_fixed_prices,
    parse_policy,
)
from dynpricing.experiment.cli import ProgressBar
from dynpricing.security.permissions import RECOVERY_GROUP_SUFFIX
from dynpricing.settings import EngineSettings
from dynpricing.statefile import read_json, write_json_atomic

FIXED_PREFIX = "fixed:"
SNAPSHOT_PREFIX = "snapshot:"
REPLAY_PREFIX = "replay:"
ORACLE = "oracle"
SIMULATE_TARGETS = (
    f"{FIXED_PREFIX}{ORACLE}",
    f"{POLICY_TS}-{OBJECTIVE_REVENUE}",
    f"{DEFAULT_POLICY}-{OBJECTIVE_REVENUE}",
    f"{REPLAY_PREFIX}{POLICY_TS}-{OBJECTIVE_REVENUE}",
)
DEFAULT_SIMULATE_SEEDS = 50
DEFAULT_SIMULATE_HORIZON = 5000
EXIT_USAGE = 2
EXIT_KAFKA = 1
SCORED_EXCLUSIONS = (  # a logged decision that is not scored, and why
    NO_PROPENSITY,
    INVALID_PROPENSITY,
    INVALID_DECISION,
    PRICE_NOT_ON_GRID,
    PENDING_AT_END,
    EXPIRED_DROP,
)


def build_parser() -> argparse.ArgumentParser:
    """The command's arguments (``dynpricing evaluate --help``)."""
    parser = argparse.ArgumentParser(
        prog="dynpricing evaluate",
        description="Estimate what target pricing policies would have earned on the logged "
        "decisions and outcomes (off-policy evaluation: IPS, SNIPS, doubly robust, replay).",
    )
    source = parser.add_argument_group("where the log comes from (default: the Kafka topics)")
    source.add_argument("--input", type=Path, metavar="DUMP", help="a dump written by --dump")
    source.add_argument("--dump", type=Path, metavar="OUT", help="write the window to this dump")
    source.add_argument("--bootstrap-servers", help="default: the engine's Kafka settings")
    source.add_argument("--decisions-topic", help="default: the engine's TOPICS__DECISIONS")
    source.add_argument("--outcomes-topic", help="default: the engine's TOPICS__OUTCOMES")
    source.add_argument(
        "--group-id",
        help="never joined nor committed (default: the engine's recovery group, which the "
        "engine's credentials may describe)",
    )
    source.add_argument("--since", type=_time, help="Unix seconds or ISO 8601 with a time zone")
    source.add_argument("--until", type=_time, help="end of the window (exclusive)")
    source.add_argument("--from-offset", type=_offset, help="decisions from this offset on")
    source.add_argument("--to-offset", type=_offset, help="decisions before this offset")
    targets = parser.add_argument_group("target policies")
    targets.add_argument(
        "--target",
        action="append",
        default=[],
        metavar="SPEC",
        help="repeatable: fixed:1.2 | fixed:low=1.0,medium=1.2,high=1.5 | "
        "snapshot:bandit_stats.json | ts-revenue[:half_life=600,...] (learns what the engine "
        "learnt) | replay:ts-revenue[:...] (learns from its own choices)",
    )
    targets.add_argument("--replay-floor", type=float, help="acceptance floor of the replay")
    rules = parser.add_argument_group("grid and join rules (default: the engine's settings)")
    rules.add_argument("--prices", type=_prices, help="price multipliers, e.g. 1.0,1.2,1.5,2.0")
    rules.add_argument("--decision-timeout-s", type=float)
    rules.add_argument("--expired-as", choices=[EXPIRED_AS_REJECT, EXPIRED_AS_DROP])
    rules.add_argument("--resolved-memory", type=int)
    output = parser.add_argument_group("output")
    output.add_argument("--json", type=Path, metavar="OUT", help="write the report document")
    output.add_argument("--plot", type=Path, metavar="OUT.png", help="draw the estimates")
    output.add_argument("--seed", type=int, default=0, help="seed of the targets' draws")
    output.add_argument(
        "--strict", action="store_true", help="fail when any logged decision cannot be scored"
    )
    simulate = parser.add_argument_group("coverage check against a market file")
    simulate.add_argument("--simulate", type=Path, metavar="MARKET", help="a market file")
    simulate.add_argument("--seeds", type=_positive, default=DEFAULT_SIMULATE_SEEDS)
    simulate.add_argument("--horizon", type=_positive, default=DEFAULT_SIMULATE_HORIZON)
    simulate.add_argument(
        "--logging-draws",
        type=_positive,
        help="propensity draws of the logging policy (default: the engine's)",
    )
    return parser


def _time(text: str) -> float:
    try:
        return events.parse_timestamp(float(text) if _is_number(text) else text, "time")
    except events.InvalidEvent as exc:
        raise argparse.ArgumentTypeError(exc.detail) from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _offset(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _prices(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(p) for p in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None


def join_rules(args: argparse.Namespace, engine: EngineSettings) -> JoinRules:
    """The engine's join settings, each overridable on the command line."""
    return JoinRules(
        decision_timeout_s=_given(args.decision_timeout_s, engine.decision_timeout_s),
        expired_as=_given(args.expired_as, engine.expired_as),
        resolved_memory=_given(args.resolved_memory, engine.resolved_memory),
        max_pending=engine.max_pending,
        locations=engine.locations,
    )


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def snapshot_target(spec: str, path: Path, prices: tuple[float, ...]) -> FrozenPolicy:
    """A frozen policy from a ``bandit_stats.json``: its own policy, objective and prior."""
    doc = read_json(path)
    if doc is None:
        raise PricingError(f"snapshot {path} does not exist")
    prior = doc.get("prior")
    if not isinstance(prior, dict):
        prior = {}
    config = BanditConfig(
        prices=prices,
        prior_alpha=float(prior.get("alpha", 1.0)),
        prior_beta=float(prior.get("beta", 1.0)),
        objective=str(doc.get("objective", OBJECTIVE_REVENUE)),
        policy=str(doc.get("policy", DEFAULT_POLICY)),
    )
    bandit, _ = Bandit.from_document(doc, config)
    return FrozenPolicy(name=spec, bandit=bandit)


def parse_target(
    spec: str, prices: tuple[float, ...], floor: float | None
) -> NamedTarget | ReplayTarget:
    """A scored target, or a replayed one, from its command-line spec."""
    if spec.startswith(FIXED_PREFIX):
        return NamedTarget(parse_fixed_prices(spec, spec[len(FIXED_PREFIX) :]), "fixed")
    if spec.startswith(SNAPSHOT_PREFIX):
        path = Path(spec[len(SNAPSHOT_PREFIX) :])
        return NamedTarget(snapshot_target(spec, path, prices), "snapshot")
    if spec.startswith(REPLAY_PREFIX):
        return ReplayTarget(spec, parse_policy(spec[len(REPLAY_PREFIX) :], prices), floor)
    return NamedTarget(InformedPolicy(spec, parse_policy(spec, prices)), "informed")


def split_targets(
    targets: Sequence[NamedTarget | ReplayTarget],
) -> tuple[list[NamedTarget], list[ReplayTarget]]:
    scored = [t for t in targets if isinstance(t, NamedTarget)]
    return scored, [t for t in targets if isinstance(t, ReplayTarget)]


def read_window(
    args: argparse.Namespace, engine: EngineSettings, rules: JoinRules
) -> tuple[list[RawRecord], dict[str, object]]:
    """The records from a dump, or from the topics (and written to ``--dump`` if asked)."""
    if args.input is not None:
        records, written = read_dump(args.input)
        return records, {**written, "dump": str(args.input)}
    kafka = engine.kafka
    if args.bootstrap_servers:
        kafka = kafka.model_copy(update={"bootstrap_servers": args.bootstrap_servers})
    decisions = args.decisions_topic or engine.topics.decisions
    outcomes = args.outcomes_topic or engine.topics.outcomes
    window = Window(args.since, args.until, args.from_offset, args.to_offset)
    group = args.group_id or f"{engine.group_id}{RECOVERY_GROUP_SUFFIX}"
    records = read_log(kafka, decisions, outcomes, window, rules.decision_timeout_s, group_id=group)
    source: dict[str, object] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "decisions_topic": decisions,
        "outcomes_topic": outcomes,
        "window": window.describe(),
    }
    if args.dump is not None:
        count = write_dump(args.dump, records, source)
        print(f"wrote {count} records to {args.dump}", file=sys.stderr)
    return records, source


def evaluate_log(args: argparse.Namespace) -> int:
    """Read the window, score every target, print and write the report."""
    engine = EngineSettings()
    rules = join_rules(args, engine)
    prices = args.prices or engine.prices
    scored, replayed = split_targets(
        [parse_target(spec, prices, args.replay_floor) for spec in args.target]
    )
    records, source = read_window(args, engine, rules)
    if not scored and not replayed:
        if args.dump is None:
            raise PricingError("no --target given; name at least one policy to evaluate")
        return 0
    doc = run_evaluation(
        records,
        prices=prices,
        rules=rules,
        targets=scored,
        replays=replayed,
        seed=args.seed,
        source=source,
    )
    _check_strict(args, doc)
    print(format_report(doc))
    _write_outputs(args, doc)
    return 0


def _check_strict(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    excluded = {k: v for k, v in doc["counts"].items() if k in SCORED_EXCLUSIONS and v}
    if args.strict and excluded:
        raise PricingError(f"--strict: logged decisions that cannot be scored: {excluded}")


def _write_outputs(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    if args.json is not None:
        write_json_atomic(args.json, doc)
    if args.plot is not None:
        plot_report(doc, args.plot)


def simulation_target(spec: str, market: Market, floor: float | None) -> NamedTarget | ReplayTarget:
    """A coverage-check target; ``fixed:oracle`` is the market's best price per context."""
    if spec != f"{FIXED_PREFIX}{ORACLE}":
        return parse_target(spec, tuple(float(p) for p in market.prices), floor)
    rules = ",".join(
        f"{location}|{level}={market.prices[arm]}"
        for (location, level), arm in zip(market.contexts, market.oracle_arms(), strict=True)
    )
    return NamedTarget(parse_fixed_prices(spec, rules), "fixed")


def simulate(args: argparse.Namespace) -> int:
    """The coverage check: log the default policy on a market, estimate the targets."""
    doc = read_json(args.simulate)
    if doc is None:
        raise PricingError(f"market file {args.simulate} does not exist")
    market = load_market(doc)
    specs = args.target or [
        spec for spec in SIMULATE_TARGETS if not (market.drift and spec.startswith(REPLAY_PREFIX))
    ]
    scored, replayed = split_targets(
        [simulation_target(spec, market, args.replay_floor) for spec in specs]
    )
    if market.drift and replayed:
        raise PricingError(
            "the replay's truth is its learning curve on a market that does not change; "
            f"market {market.name!r} drifts, so leave out the replay targets"
        )
    logging = BanditConfig(prices=tuple(float(p) for p in market.prices))
    if args.logging_draws is not None:
        logging = replace(logging, propensity_draws=args.logging_draws)
    setup = CoverageSetup(
        market=market,
        horizon=args.horizon,
        seeds=args.seeds,
        seed=args.seed,
        logging=logging,
        targets=[n.target for n in scored],
        learning=replayed,
    )
    progress = ProgressBar(args.seeds, sys.stderr)
    result = run_coverage(setup, progress.advance)
    progress.close()
    print(format_coverage(result))
    if args.json is not None:
        write_json_atomic(args.json, result)
    return 0


def _checked_plot_dependency(args: argparse.Namespace) -> None:
    if args.plot is None:
        return
    try:
        import matplotlib  # noqa: F401, PLC0415 - only to fail early with a clear message
    except ImportError:
        raise PricingError("--plot needs matplotlib: pip install 'dynpricing[plot]'") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point wired to ``dynpricing evaluate``; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _checked_plot_dependency(args)
        if args.simulate is not None:
            return simulate(args)
        return evaluate_log(args)
    except (
        PricingError,
        DumpError,
        EstimationError,
        NoUsableDecisionsError,
        ValidationError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KafkaReadError, KafkaException) as exc:
        print(f"error reading Kafka: {exc}", file=sys.stderr)
        return EXIT_KAFKA
