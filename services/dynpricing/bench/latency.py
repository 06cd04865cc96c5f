"""Decision latency at a fixed offered load, from the demand event's timestamp to arrival.

One engine serves every rate in turn. A load generator process offers demand
at the rate, each event stamped with the wall clock when it is created; the
bench consumes the decisions topic and takes, per decision, its arrival time
at this consumer minus the event's timestamp (carried in the decision as
``event_timestamp``). The first ``WARMUP_FRACTION`` of each rate is left out.

Before any of it, ``warm_up`` offers the highest rate through a relay for a
while and throws the figures away: a broker that has just started runs its
code interpreted until the JVM has compiled it, and its first tens of
seconds are several times slower than the rest of its life.

The pass-through relay is measured the same way, from the same load generator
to the same consumer (its output is the demand event itself, so the time is
the event's own ``timestamp``): the part of the latency that is Kafka, the
clients and the machine, not pricing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Consumer, TopicPartition

from dynpricing.bench.kafka_env import BenchError, BenchKafka, unique, watermarks
from dynpricing.bench.processes import Child, EngineProcess, EngineSetup, python_module
from dynpricing.bench.relay import ASSIGNED
from dynpricing.settings import librdkafka_config

RATES = (1000, 10_000)
WARMUP_FRACTION = 0.1
DRAIN_S = 15.0
POLL_S = 0.1
DRAIN_BATCH = 10_000
READY_S = 30.0
WARMUP_S = 20.0
ENGINE_TIME = "event_timestamp"  # a decision carries its demand event's time here
RELAY_TIME = "timestamp"  # the relay republishes the demand event itself


@dataclass(frozen=True)
class LatencyResult:
    rate: int
    decisions: int
    p50_ms: float
    p99_ms: float
    p999_ms: float


def _consumer(kafka: BenchKafka, topic: str) -> Consumer:
    """Reads ``topic`` from its current end, with no group rebalance in the way."""
    consumer = Consumer(
        {
            **librdkafka_config(kafka.settings),
            "group.id": unique("bench-latency"),
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    start = []
    for partition in range(kafka.partitions):
        _, high = watermarks(consumer, TopicPartition(topic, partition))
        start.append(TopicPartition(topic, partition, high))
    consumer.assign(start)
    return consumer


def _collect(
    consumer: Consumer, loadgen: Child, expected: int, prefix: str, time_field: str
) -> list[float]:
    """Latency in seconds of every output message for this rate's events, as they arrive."""
    latencies: list[float] = []
    drain_until: float | None = None
    tag = f'"event_id":"{prefix}-'.encode()
    while len(latencies) < expected:
        if drain_until is None and not loadgen.alive():
            drain_until = time.monotonic() + DRAIN_S
        if drain_until is not None and time.monotonic() > drain_until:
            break
        first = consumer.poll(POLL_S)
        if first is None:
            continue
        batch = [first, *consumer.consume(DRAIN_BATCH, 0)]
        arrived = time.time()
        for msg in batch:
            value = msg.value()
            if msg.error() is None and value is not None and tag in value:
                latencies.append(arrived - orjson.loads(value)[time_field])
    return latencies


def _percentiles(rate: int, latencies: list[float]) -> LatencyResult:
    kept = np.asarray(latencies[int(len(latencies) * WARMUP_FRACTION) :]) * 1000.0
    if kept.size == 0:
        raise BenchError(f"no decisions arrived at {rate} events/s")
    p50, p99, p999 = np.percentile(kept, [50, 99, 99.9]).tolist()
    return LatencyResult(rate, int(kept.size), p50, p99, p999)


def measure(
    kafka: BenchKafka, setup: EngineSetup, rate: int, seconds: float, output: tuple[str, str]
) -> LatencyResult:
    """Offer ``rate`` events/s to the demand topic and time them on ``output``.

    ``output`` is (topic, the field holding the demand event's time).
    """
    topic, time_field = output
    prefix = unique(f"r{rate}")
    consumer = _consumer(kafka, topic)
    argv = python_module(
        "dynpricing.bench.loadgen", kafka.bootstrap, setup.demand, str(rate), str(seconds), prefix
    )
    loadgen = Child(argv, dict(os.environ), setup.workdir / f"loadgen-{rate}.log")
    try:
        latencies = _collect(consumer, loadgen, int(rate * seconds), prefix, time_field)
    finally:
        loadgen.stop()
        consumer.close()
    return _percentiles(rate, latencies)


def run(kafka: BenchKafka, seconds: float, workdir: Path) -> list[LatencyResult]:
    """The engine's latency at each rate (one engine serves them all)."""
    setup = EngineSetup(kafka.bootstrap, workdir)
    kafka.create_topics(setup.topics)
    engine = EngineProcess(setup, "engine-latency")
    try:
        engine.wait_ready()
        results = []
        for rate in RATES:
            results.append(measure(kafka, setup, rate, seconds, (setup.decisions, ENGINE_TIME)))
            if not engine.alive():
                raise BenchError(f"engine exited during the latency run:\n{engine.tail()}")
        return results
    finally:
        engine.stop()


def warm_up(kafka: BenchKafka, seconds: float, workdir: Path) -> None:
    """Unmeasured load at the highest rate through a relay, so the broker runs compiled."""
    if seconds > 0:
        run_relay(kafka, seconds, workdir, rates=(max(RATES),))


def run_relay(
    kafka: BenchKafka, seconds: float, workdir: Path, rates: tuple[int, ...] = RATES
) -> list[LatencyResult]:
    """The pass-through relay's latency at each rate, on fresh topics per rate."""
    results = []
    for rate in rates:
        setup = EngineSetup(kafka.bootstrap, workdir)
        kafka.create_topics(setup.topics)
        count = str(int(rate * seconds))
        argv = python_module(
            "dynpricing.bench.relay", kafka.bootstrap, setup.demand, setup.decisions, count
        )
        relay = Child(argv, dict(os.environ), workdir / f"relay-latency-{rate}.log")
        try:
            _wait_assigned(relay)
            results.append(measure(kafka, setup, rate, seconds, (setup.decisions, RELAY_TIME)))
        finally:
            relay.stop()
    return results


def _wait_assigned(relay: Child) -> None:
    end = time.monotonic() + READY_S
    while ASSIGNED not in relay.tail():
        if not relay.alive():
            raise BenchError(f"relay exited before it was assigned:\n{relay.tail()}")
        if time.monotonic() > end:
            raise BenchError(f"relay not assigned after {READY_S:.0f}s:\n{relay.tail()}")
        time.sleep(POLL_S)
