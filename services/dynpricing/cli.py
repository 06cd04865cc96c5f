"""The ``dynpricing`` command: one entry point, one subcommand per job.

Each subcommand imports its module lazily, so ``dynpricing kafka down`` does not
load numpy and a broken optional dependency only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from dynpricing import broker
from dynpricing.kafka_errors import EXIT_KAFKA_REFUSED, KafkaRefusedError
from dynpricing.security import local

# subcommand -> module whose ``main(argv) -> int`` runs it
DELEGATED = {
    "engine": "dynpricing.engine.app",
    "decider": "dynpricing.decider.app",
    "producer": "dynpricing.producer.app",
    "simulator": "dynpricing.simulator.app",
    "experiment": "dynpricing.experiment.cli",
    "evaluate": "dynpricing.evaluate.cli",
    "bench": "dynpricing.bench.cli",
    "topics": "dynpricing.topics",
    "run": "dynpricing.run.cli",
    "permissions": "dynpricing.security.cli",
}


def _kafka(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="dynpricing kafka", description="Run a local single-node Kafka broker (KRaft)."
    )
    parser.add_argument("action", choices=["up", "down", "status", "fetch", "reap"])
    parser.add_argument("--port", type=int, default=broker.DEFAULT_PORT)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument(
        "--under", type=Path, default=None, help="reap: stop every broker with data below this"
    )
    parser.add_argument(
        "--security",
        choices=local.SECURITY_MODES,
        default="plaintext",
        help="up: plaintext, sasl-scram (SASL_SSL) or mtls (TLS client certificates)",
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="restart on the existing data directory instead of starting from scratch",
    )
    args = parser.parse_args(argv)
    layout = broker.BrokerLayout(port=args.port, data_dir=args.data_dir, security=args.security)
    try:
        if args.action == "reap":
            count = broker.stop_all_under(args.under or layout.root / ".run")
            print(f"stopped {count} leftover broker(s)")
        elif args.action == "fetch":
            print(f"Kafka {broker.KAFKA_VERSION} jars in {broker.fetch_jars(layout)}")
        elif args.action == "up":
            proc = broker.start(layout, fresh=not args.keep_data)
            print(f"Kafka {broker.KAFKA_VERSION} ready on {layout.bootstrap} (pid {proc.pid})")
            print(local.describe_clients(layout.security, layout.files, layout.bootstrap))
            proc.returncode = 0  # detached on purpose: `dynpricing kafka down` stops it
        elif args.action == "down":
            stopped = broker.stop(layout)
            print("Kafka broker stopped" if stopped else "no local Kafka broker was running")
        else:
            print(broker.status(layout))
    except broker.BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch ``dynpricing <subcommand> ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    commands = ["kafka", *DELEGATED]
    if not args or args[0] in {"-h", "--help"} or args[0] not in commands:
        print("usage: dynpricing {" + ",".join(commands) + "} ...", file=sys.stderr)
        return 0 if args and args[0] in {"-h", "--help"} else 2
    command, rest = args[0], args[1:]
    if command == "kafka":
        return _kafka(rest)
    module = importlib.import_module(DELEGATED[command])
    try:
        result: int = module.main(rest)
    except KafkaRefusedError as exc:
        return _refused(command, exc)
    return result


def _refused(command: str, exc: KafkaRefusedError) -> int:
    """One line and a distinct exit code: the broker will not serve these credentials or
    permissions, so a restart loop would only repeat it (docs/security.md)."""
    import structlog  # noqa: PLC0415 - configured by the service that raised

    structlog.get_logger(command).error(
        "kafka_refused", cause=exc.refusal.cause, reason=exc.refusal.message
    )
    return EXIT_KAFKA_REFUSED


if __name__ == "__main__":
    sys.exit(main())
