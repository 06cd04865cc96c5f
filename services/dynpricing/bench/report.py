"""The bench's results: one JSON document (the shape in issue 6) and a printed table."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any

from dynpricing.bench.core import CoreResult
from dynpricing.bench.latency import LatencyResult
from dynpricing.bench.state import StateResult
from dynpricing.bench.throughput import Throughput
from dynpricing.core.policies import DEFAULT_POLICY


@dataclass
class Results:
    """What one run measured; a section left out of the run stays None."""

    throughput: Throughput | None = None
    latency: list[LatencyResult] = field(default_factory=list)
    latency_relay: list[LatencyResult] = field(default_factory=list)
    core: list[CoreResult] = field(default_factory=list)
    state: StateResult | None = None
    load_before: tuple[float, ...] = field(default_factory=os.getloadavg)

    def to_document(self) -> dict[str, Any]:
        t, s = self.throughput, self.state
        return {
            "throughput": None
            if t is None
            else {
                "engine_per_s": t.engine_per_s,
                "relay_per_s": t.relay_per_s,
                "ratio": t.ratio,
                "outcomes_per_s": t.outcomes_per_s,
            },
            "latency": _latency_document(self.latency),
            "latency_relay": _latency_document(self.latency_relay),
            "core": {
                str(c.batch): {
                    "ours_per_s": c.ours_per_s,
                    "mabwiser_per_s": c.mabwiser_per_s,
                    "ratio": c.ratio,
                    "ts_revenue_per_s": c.ts_revenue_per_s,
                    "ts_revenue_ratio": c.ts_revenue_ratio,
                }
                for c in self.core
            },
            "state": None
            if s is None
            else {
                "arms": s.arms,
                "rss_mb": s.rss_mb,
                "snapshot_write_s": s.snapshot_write_s,
                "snapshot_load_s": s.snapshot_load_s,
            },
        }

    def table(self) -> str:
        machine = f"{platform.machine()}, {_cpus()} CPUs, Python {platform.python_version()}"
        load = ", ".join(f"{x:.1f}" for x in self.load_before)
        lines = [f"machine: {machine}; load average before the run: {load}"]
        lines += _throughput_lines(self.throughput)
        lines += _latency_lines(self.latency, self.latency_relay)
        lines += _core_lines(self.core)
        lines += _state_lines(self.state)
        return "\n".join(lines)


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


def _throughput_lines(t: Throughput | None) -> list[str]:
    if t is None:
        return []
    return [
        "",
        f"| throughput ({t.events:,} events) | per second |",
        "|---|---:|",
        f"| engine decisions | {t.engine_per_s:,.0f} |",
        f"| pass-through relay | {t.relay_per_s:,.0f} |",
        f"| engine / relay | {t.ratio:.1%} |",
        f"| outcomes applied | {t.outcomes_per_s:,.0f} |",
    ]


def _latency_document(results: list[LatencyResult]) -> dict[str, dict[str, float]]:
    return {
        str(r.rate): {"p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "p999_ms": r.p999_ms} for r in results
    }


def _latency_lines(engine: list[LatencyResult], relay: list[LatencyResult]) -> list[str]:
    rows = [(r, "engine") for r in engine] + [(r, "pass-through relay") for r in relay]
    if not rows:
        return []
    lines = [
        f"| {r.rate:,}/s | {what} | {r.decisions:,} | {r.p50_ms:.2f} | {r.p99_ms:.2f} "
        f"| {r.p999_ms:.2f} |"
        for r, what in sorted(rows, key=lambda row: row[0].rate)
    ]
    header = "| offered load | through | messages | p50 ms | p99 ms | p99.9 ms |"
    return ["", header, "|---|---|---:|---:|---:|---:|", *lines]


def _core_lines(results: list[CoreResult]) -> list[str]:
    if not results:
        return []
    rows = [
        f"| {c.batch:,} | {c.ours_per_s:,.0f} | {c.ts_revenue_per_s:,.0f} "
        f"| {c.mabwiser_per_s:,.0f} | {c.ratio:.2f}x | {c.ts_revenue_ratio:.2f}x |"
        for c in results
    ]
    header = (
        f"| batch | ours ({DEFAULT_POLICY}) /s | ours (ts-revenue) /s | MABWiser TS /s "
        f"| {DEFAULT_POLICY} / MABWiser | ts-revenue / MABWiser |"
    )
    return ["", header, "|---:|---:|---:|---:|---:|---:|", *rows]


def _state_lines(s: StateResult | None) -> list[str]:
    if s is None:
        return []
    return [
        "",
        f"| state ({s.arms:,} arms) | value |",
        "|---|---:|",
        f"| engine RSS | {s.rss_mb:.0f} MB (peak {s.peak_rss_mb:.0f} MB) |",
        f"| snapshot write | {s.snapshot_write_s:.2f} s ({s.snapshot_mb:.0f} MB file) |",
        f"| snapshot load | {s.snapshot_load_s:.2f} s |",
    ]
