"""Demand at a fixed offered rate, stamped when each event is created.

Run as ``python -m dynpricing.bench.loadgen BOOTSTRAP TOPIC RATE SECONDS``. The
event timestamp is the wall clock at creation, so latency measured from it
includes the producer's own batching, as a real client's would.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

import numpy as np

from dynpricing import events
from dynpricing.kafka_io import OutputProducer, make_producer, wall_clock
from dynpricing.settings import KafkaSettings

TICK_S = 0.0005
LOCATIONS = tuple(f"zone-{i}" for i in range(8))
SEED = 7


def demand_event(event_id: str, rng: np.random.Generator, now: float) -> events.DemandEvent:
    """A demand event at one of a few locations, with a random demand level."""
    requests, drivers = (int(x) for x in rng.integers(1, 40, size=2))
    location = LOCATIONS[int(rng.integers(len(LOCATIONS)))]
    return events.DemandEvent(event_id, now, location, requests, drivers)


def offer(bootstrap: str, topic: str, rate: float, seconds: float, prefix: str) -> int:
    """Produce ``rate`` events/s for ``seconds``; returns how many were sent."""
    producer = OutputProducer(
        make_producer(KafkaSettings(bootstrap_servers=bootstrap), "bench-loadgen")
    )
    rng = np.random.default_rng(SEED)
    total = int(rate * seconds)
    sent = 0
    start = time.monotonic()
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            event = demand_event(f"{prefix}-{sent}", rng, wall_clock())
            producer.send(topic, events.encode_demand(event), event.location)
            sent += 1
        producer.poll(0)
        time.sleep(TICK_S)
    producer.flush()
    producer.raise_if_failed()
    return sent


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dynpricing.bench.loadgen")
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("rate", type=float)
    parser.add_argument("seconds", type=float)
    parser.add_argument("prefix")
    args = parser.parse_args(argv)
    offer(args.bootstrap, args.topic, args.rate, args.seconds, args.prefix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
