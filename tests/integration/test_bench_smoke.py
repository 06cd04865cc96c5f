"""A tiny ``dynpricing bench`` on the real broker: it runs end to end and reports sane values.

No timing assertions: the figures of a tiny run on a shared machine mean nothing.
What is checked is that every section ran and the JSON has exactly the shape in
issue 6, with values that are possible at all.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from dynpricing.bench import cli

pytestmark = pytest.mark.kafka

EVENTS = 2000
STATE_CONTEXTS = 3000
PRICES = 4


def _positive(value: Any) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    workdir = tmp_path_factory.mktemp("bench")
    out = workdir / "bench.json"
    argv = [
        "--bootstrap", kafka_bootstrap, "--events", str(EVENTS), "--latency-seconds", "2",
        "--latency-warmup-seconds", "1",
        "--core-seconds", "0.05", "--state-contexts", str(STATE_CONTEXTS),
        "--workdir", str(workdir / "run"), "--json", str(out),
    ]  # fmt: skip
    assert cli.main(argv) == 0
    doc: dict[str, Any] = json.loads(Path(out).read_text())
    return doc


def test_bench_json_has_exactly_the_documented_shape(report: dict[str, Any]) -> None:
    assert set(report) == {"throughput", "latency", "latency_relay", "core", "state"}
    assert set(report["throughput"]) == {"engine_per_s", "relay_per_s", "ratio", "outcomes_per_s"}
    for through in ("latency", "latency_relay"):
        assert set(report[through]) == {"1000", "10000"}
        for figures in report[through].values():
            assert set(figures) == {"p50_ms", "p99_ms", "p999_ms"}
    assert set(report["core"]) == {"1", "100", "10000"}
    for figures in report["core"].values():
        assert set(figures) == {
            "ours_per_s",
            "mabwiser_per_s",
            "ratio",
            "ts_revenue_per_s",
            "ts_revenue_ratio",
        }
    assert set(report["state"]) == {"arms", "rss_mb", "snapshot_write_s", "snapshot_load_s"}


def test_bench_throughput_compares_engine_and_relay_on_the_same_events(
    report: dict[str, Any],
) -> None:
    figures = report["throughput"]
    assert all(_positive(figures[key]) for key in figures)
    assert figures["ratio"] == pytest.approx(figures["engine_per_s"] / figures["relay_per_s"])


def test_bench_latency_percentiles_are_ordered(report: dict[str, Any]) -> None:
    for through in ("latency", "latency_relay"):
        for figures in report[through].values():
            assert 0 < figures["p50_ms"] <= figures["p99_ms"] <= figures["p999_ms"]


def test_bench_core_ratio_is_ours_over_mabwiser(report: dict[str, Any]) -> None:
    for figures in report["core"].values():
        assert _positive(figures["ours_per_s"])
        assert _positive(figures["mabwiser_per_s"])
        assert figures["ratio"] == pytest.approx(figures["ours_per_s"] / figures["mabwiser_per_s"])
        assert _positive(figures["ts_revenue_per_s"])
        assert figures["ts_revenue_ratio"] == pytest.approx(
            figures["ts_revenue_per_s"] / figures["mabwiser_per_s"]
        )


def test_bench_state_counts_arms_and_measures_a_real_engine(report: dict[str, Any]) -> None:
    state = report["state"]
    assert state["arms"] == STATE_CONTEXTS * PRICES
    assert _positive(state["rss_mb"])
    assert _positive(state["snapshot_write_s"])
    assert _positive(state["snapshot_load_s"])
