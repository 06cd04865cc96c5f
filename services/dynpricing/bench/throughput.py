"""Saturation throughput: the engine and the pass-through relay over the same preloaded topic.

Both rates are taken from the output topic's own timestamps (the producer's
CreateTime of the first and the last message), so start-up, group joins and
shutdown are not part of either figure. Outcome processing is measured on the
same engine after a restart: one outcome per published decision is preloaded,
and ``dynpricing_outcomes_applied_total`` is sampled until all are applied.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from dynpricing import events
from dynpricing.bench.kafka_env import BenchError, BenchKafka, Delivered, read_values, unique
from dynpricing.bench.loadgen import LOCATIONS, SEED
from dynpricing.bench.processes import Child, EngineProcess, EngineSetup, python_module
from dynpricing.kafka_io import wall_clock

MIN_RATE_PER_S = 1000.0  # deadlines assume at least this rate
DEADLINE_SLACK_S = 120.0
SAMPLE_EVERY_S = 0.05
ACCEPT_PROBABILITY = 0.3
APPLIED_METRIC = "dynpricing_outcomes_applied_total"
ROUNDS = 2  # engine and relay runs each, alternating; the best of each counts


@dataclass(frozen=True)
class Throughput:
    events: int
    engine_per_s: float
    relay_per_s: float
    outcomes_per_s: float

    @property
    def ratio(self) -> float:
        return self.engine_per_s / self.relay_per_s if self.relay_per_s else 0.0


def _deadline(n: int) -> float:
    return n / MIN_RATE_PER_S + DEADLINE_SLACK_S


def demand_values(n: int, now: float) -> list[tuple[bytes, bytes]]:
    """``n`` (key, value) demand events over a few locations and all demand levels."""
    rng = np.random.default_rng(SEED)
    where = rng.integers(len(LOCATIONS), size=n).tolist()
    requests = rng.integers(1, 40, size=n).tolist()
    drivers = rng.integers(1, 40, size=n).tolist()
    keys = [loc.encode() for loc in LOCATIONS]
    return [
        (
            keys[w],
            events.encode_demand(events.DemandEvent(f"e{i}", now, LOCATIONS[w], r, d)),
        )
        for i, (w, r, d) in enumerate(zip(where, requests, drivers, strict=True))
    ]


def outcome_values(decisions: list[bytes], now: float) -> list[tuple[bytes, bytes]]:
    """One outcome per decision, accepted with a fixed probability, keyed by its context."""
    rng = np.random.default_rng(SEED + 1)
    accepted = (rng.random(len(decisions)) < ACCEPT_PROBABILITY).tolist()
    out = []
    for raw, ok in zip(decisions, accepted, strict=True):
        decision = orjson.loads(raw)
        outcome = events.Outcome(decision["decision_id"], now, ok)
        out.append((decision["location"].encode(), events.encode_outcome(outcome)))
    return out


def preload(kafka: BenchKafka, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    delivered = Delivered()
    kafka.produce_all(topic, values, delivered)
    if delivered.failed:
        raise BenchError(f"{delivered.failed} preloaded messages to {topic} failed")


def measure_engine(kafka: BenchKafka, setup: EngineSetup, n: int) -> float:
    """Decisions/s of one engine draining ``n`` preloaded demand events."""
    engine = EngineProcess(setup, "engine-throughput")
    try:
        kafka.wait_for_count(setup.decisions, n, _deadline(n), engine.alive)
    finally:
        code = engine.stop()
    if code != 0:
        raise BenchError(f"engine exited with {code}:\n{engine.tail()}")
    count, span = kafka.time_span_s(setup.decisions)
    if count != n or kafka.count(setup.dead_letters):
        raise BenchError(f"engine published {count} decisions for {n} events (or dead letters)")
    return (count - 1) / span if span > 0 else 0.0


def measure_relay(kafka: BenchKafka, source: str, n: int, workdir: Path) -> float:
    """Messages/s of the pass-through relay over the same topic."""
    target = unique("bench-relayed")
    kafka.create_topics([target])
    argv = python_module("dynpricing.bench.relay", kafka.bootstrap, source, target, str(n))
    relay = Child(argv, dict(os.environ), workdir / "relay.log")
    try:
        code = relay.wait(_deadline(n))
    finally:
        relay.stop()
    if code != 0:
        raise BenchError(f"relay exited with {code}:\n{relay.tail()}")
    count, span = kafka.time_span_s(target)
    return (count - 1) / span if span > 0 else 0.0


def measure_outcomes(kafka: BenchKafka, setup: EngineSetup, n: int) -> float:
    """Outcomes applied/s by the engine restarted on its own state, one per decision."""
    decisions = read_values(kafka.bootstrap, setup.decisions, n, _deadline(n))
    preload(kafka, setup.outcomes, outcome_values(decisions, wall_clock()))
    del decisions
    engine = EngineProcess(setup, "engine-outcomes")
    try:
        samples = _sample_applied(engine, n, _deadline(n))
    finally:
        engine.stop()
    return _rate(samples)


def _sample_applied(engine: EngineProcess, n: int, deadline_s: float) -> list[tuple[float, float]]:
    """(time, outcomes applied) from ``/metrics`` until all ``n`` are applied."""
    samples: list[tuple[float, float]] = []
    end = time.monotonic() + deadline_s
    while not samples or samples[-1][1] < n:
        if not engine.alive() or time.monotonic() > end:
            raise BenchError(f"outcomes applied: {samples[-1:]} of {n}:\n{engine.tail()}")
        applied = engine.metric_sum(APPLIED_METRIC)
        if applied is not None:
            samples.append((time.monotonic(), applied))
        time.sleep(SAMPLE_EVERY_S)
    return samples


def _rate(samples: list[tuple[float, float]]) -> float:
    """Growth per second from the last sample before any was applied to the first with all."""
    before = [s for s in samples if s[1] == 0]
    t0, c0 = before[-1] if before else samples[0]
    t1, c1 = samples[-1]
    return (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


def run(kafka: BenchKafka, n: int, workdir: Path, rounds: int = ROUNDS) -> Throughput:
    """Preload ``n`` demand events; measure the relay and the engine alternately, then outcomes.

    Each side runs ``rounds`` times over the same topic, alternating so that a
    broker warming up or a noisy neighbour does not favour one side, and its
    best round counts. Every engine round is a fresh engine (its own decisions
    topic, group and state); the last one then measures outcome processing.
    """
    first = EngineSetup(kafka.bootstrap, workdir)
    kafka.create_topics(first.topics)
    preload(kafka, first.demand, demand_values(n, wall_clock()))
    engine_rates: list[float] = []
    relay_rates: list[float] = []
    setup = first
    for round_ in range(rounds):
        relay_rates.append(measure_relay(kafka, first.demand, n, workdir))
        if round_:
            setup = EngineSetup(kafka.bootstrap, workdir, demand=first.demand)
            kafka.create_topics(setup.topics[1:])
        engine_rates.append(measure_engine(kafka, setup, n))
    outcomes_rate = measure_outcomes(kafka, setup, n)
    return Throughput(n, max(engine_rates), max(relay_rates), outcomes_rate)
