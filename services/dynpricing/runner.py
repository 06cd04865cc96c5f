"""``dynpricing run``: the whole pricing loop on one machine, for ``make run``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Sequence

from dynpricing import broker


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynpricing run")
    parser.add_argument("--kafka-port", type=int, default=broker.DEFAULT_PORT)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    layout = broker.BrokerLayout(port=args.kafka_port)
    proc = None
    if not bootstrap:
        proc = broker.start(layout, fresh=False)
        bootstrap = layout.bootstrap
    print(f"Kafka broker ready on {bootstrap}; services are not wired yet. Ctrl+C stops.")
    try:
        stop.wait()
    finally:
        if proc is not None:
            broker.stop(layout, proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
