"""``dynpricing bench``: run the measurements, print a table, optionally write JSON."""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from dynpricing.bench import core, latency, state, throughput
from dynpricing.bench.kafka_env import BenchError, BenchKafka, bench_broker
from dynpricing.bench.report import Results
from dynpricing.broker import BrokerError
from dynpricing.settings import BOOTSTRAP_ENV
from dynpricing.statefile import write_json_atomic

SECTIONS = ("throughput", "latency", "core", "state")
DEFAULT_EVENTS = 1_000_000
DEFAULT_LATENCY_S = 20.0
DEFAULT_CORE_S = 2.0
DEFAULT_STATE_CONTEXTS = 250_000


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dynpricing bench", description=__doc__)
    p.add_argument(
        "--bootstrap",
        default=os.environ.get(BOOTSTRAP_ENV),
        help="use this broker instead of starting one (also KAFKA_BOOTSTRAP_SERVERS)",
    )
    p.add_argument(
        "--events",
        type=int,
        default=DEFAULT_EVENTS,
        help="demand events preloaded for the throughput run",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=throughput.ROUNDS,
        help="engine and relay runs each over the same events, alternating (best counts)",
    )
    p.add_argument(
        "--latency-seconds",
        type=float,
        default=DEFAULT_LATENCY_S,
        help="seconds of offered load per latency rate",
    )
    p.add_argument(
        "--latency-warmup-seconds",
        type=float,
        default=latency.WARMUP_S,
        help="seconds of unmeasured load before the latency runs (0: none)",
    )
    p.add_argument(
        "--core-seconds",
        type=float,
        default=DEFAULT_CORE_S,
        help="seconds per decision-core measurement",
    )
    p.add_argument(
        "--state-contexts",
        type=int,
        default=DEFAULT_STATE_CONTEXTS,
        help="contexts (x 4 prices = arms) in the state-at-scale run",
    )
    p.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these sections",
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep logs and state files here (default: a temporary directory)",
    )
    p.add_argument("--json", type=Path, default=None, help="write the results to this file")
    return p


def measure(args: argparse.Namespace, workdir: Path) -> Results:
    results = Results()
    if "core" in args.only:
        results.core = core.run(args.core_seconds)
    if not {"throughput", "latency", "state"} & set(args.only):
        return results
    with bench_broker(args.bootstrap, workdir) as bootstrap:
        kafka = BenchKafka(bootstrap)
        if "throughput" in args.only:
            results.throughput = throughput.run(kafka, args.events, workdir, args.rounds)
        if "latency" in args.only:
            latency.warm_up(kafka, args.latency_warmup_seconds, workdir)
            results.latency_relay = latency.run_relay(kafka, args.latency_seconds, workdir)
            results.latency = latency.run(kafka, args.latency_seconds, workdir)
        if "state" in args.only:
            results.state = state.run(kafka, args.state_contexts, workdir)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dynpricing-bench-") as temp:
        workdir = args.workdir or Path(temp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            results = measure(args, workdir)
        except (BenchError, BrokerError) as exc:
            print(f"bench failed: {exc}")
            return 1
    print(results.table())
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, results.to_document())
    return 0
