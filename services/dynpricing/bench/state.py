"""State at scale: the engine's memory holding many arms, and its snapshot write/load time.

A snapshot with ``contexts`` contexts (x the default 4 prices) is built with the
core and the engine's own bookkeeping and timed through the engine's own paths:
``Bandit.to_document`` + ``write_json_atomic`` to write, and the engine's
``restore`` (``read_json`` + ``Bandit.from_document``) to load. Then a real
``dynpricing engine`` restores it and its resident memory is read from ``/proc``
after one snapshot interval, so a periodic snapshot is included.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dynpricing.bench.kafka_env import BenchKafka
from dynpricing.bench.processes import EngineProcess, EngineSetup
from dynpricing.core.bandit import Bandit
from dynpricing.core.contexts import DEMAND_LEVELS
from dynpricing.engine.app import bandit_config, restore
from dynpricing.engine.state import EngineBookkeeping
from dynpricing.settings import EngineSettings
from dynpricing.statefile import write_json_atomic

REPEATS = 3
OUTCOMES_PER_CONTEXT = 4
SETTLE_S = 1.0
SEED = 13


@dataclass(frozen=True)
class StateResult:
    arms: int
    rss_mb: float
    peak_rss_mb: float
    snapshot_write_s: float
    snapshot_load_s: float
    snapshot_mb: float


def populated(settings: EngineSettings, contexts: int) -> tuple[Bandit, EngineBookkeeping]:
    """A bandit with ``contexts`` contexts, each with a few outcomes on random arms."""
    bandit = Bandit(bandit_config(settings))
    for i in range(contexts):
        bandit.context_index(f"loc-{i // len(DEMAND_LEVELS):06d}", DEMAND_LEVELS[i % 3])
    rng = np.random.default_rng(SEED)
    n = contexts * OUTCOMES_PER_CONTEXT
    rows = np.repeat(np.arange(contexts), OUTCOMES_PER_CONTEXT)
    bandit.update(rows, rng.integers(len(bandit.prices), size=n), rng.random(n) < 0.4, 0.0)
    books = EngineBookkeeping.fresh(SEED, settings.max_pending, settings.resolved_memory)
    return bandit, books


def time_write(bandit: Bandit, books: EngineBookkeeping, path: Path) -> float:
    """Median seconds of the engine's snapshot write (document + atomic durable write)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        doc = bandit.to_document(extra=books.to_document(written_at=time.time()))
        write_json_atomic(path, doc)
        times.append(time.perf_counter() - start)
        del doc
    return statistics.median(times)


def time_load(settings: EngineSettings) -> float:
    """Median seconds of the engine's restore from the snapshot file."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        restore(settings)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def engine_rss(kafka: BenchKafka, workdir: Path, snapshot: Path) -> tuple[float, float]:
    """(RSS, peak RSS) in MB of a real engine restored from ``snapshot``."""
    setup = EngineSetup(kafka.bootstrap, workdir)
    kafka.create_topics(setup.topics)
    shutil.copyfile(snapshot, setup.state_path)
    engine = EngineProcess(setup, "engine-state")
    try:
        engine.wait_ready()
        time.sleep(EngineSettings().snapshot_interval_s + SETTLE_S)
        return engine.rss_mb()
    finally:
        engine.stop()


def run(kafka: BenchKafka, contexts: int, workdir: Path) -> StateResult:
    path = workdir / "state-at-scale.json"
    settings = EngineSettings(state_path=path)
    bandit, books = populated(settings, contexts)
    write_s = time_write(bandit, books, path)
    arms = contexts * len(bandit.prices)
    del bandit, books
    load_s = time_load(settings)
    rss, peak = engine_rss(kafka, workdir, path)
    size_mb = path.stat().st_size / 2**20
    return StateResult(arms, rss, peak, write_s, load_s, size_mb)
