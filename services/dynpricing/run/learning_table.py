"""The learning table ``dynpricing run`` shows while the loop runs.

What a user wants first is how well the loop prices: expected revenue as a
share of the oracle's and regret (the simulator knows both and exports them
per context on its ``/metrics``), overall and per context, next to the prices
the engine has been choosing. On a terminal the table is redrawn in place;
anywhere else each refresh is printed as plain lines.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from prometheus_client.parser import text_string_to_metric_families

Context = tuple[str, str]  # (location, demand level)
REVENUE = "dynpricing_expected_revenue"
ORACLE = "dynpricing_oracle_revenue"
REGRET = "dynpricing_regret"
OUTCOMES = "dynpricing_simulated_outcomes"
MAX_CONTEXT_ROWS = 24  # the busiest contexts shown; the overall line covers them all
FETCH_TIMEOUT_S = 2.0
CURSOR_UP_AND_CLEAR = "\x1b[{lines}F\x1b[J"  # up to the first line of the last frame, clear below


@dataclass
class Scores:
    """Cumulative figures of one context (or of all) from the simulator's counters."""

    revenue: float = 0.0
    oracle: float = 0.0
    regret: float = 0.0
    chosen: dict[float, float] = field(default_factory=dict)  # price -> decisions answered

    @property
    def decisions(self) -> float:
        return sum(self.chosen.values())

    def share_pct(self) -> float | None:
        """Expected revenue as a percentage of the oracle's (None before any decision)."""
        return 100.0 * self.revenue / self.oracle if self.oracle > 0 else None

    def minus(self, earlier: Scores | None) -> Scores:
        """What happened since ``earlier`` (the same counters read before)."""
        if earlier is None:
            return self
        return Scores(
            revenue=self.revenue - earlier.revenue,
            oracle=self.oracle - earlier.oracle,
            regret=self.regret - earlier.regret,
            chosen={p: n - earlier.chosen.get(p, 0.0) for p, n in self.chosen.items()},
        )

    def add(self, other: Scores) -> None:
        self.revenue += other.revenue
        self.oracle += other.oracle
        self.regret += other.regret
        for price, count in other.chosen.items():
            self.chosen[price] = self.chosen.get(price, 0.0) + count


def parse_scores(metrics_text: str) -> dict[Context, Scores]:
    """Per-context scores from the simulator's ``/metrics`` exposition text."""
    scores: dict[Context, Scores] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name not in (REVENUE, ORACLE, REGRET, OUTCOMES):
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # the _created samples
            labels = sample.labels
            context = (labels.get("location", "?"), labels.get("demand_level", "?"))
            entry = scores.setdefault(context, Scores())
            if family.name == OUTCOMES:
                price = float(labels.get("price", "nan"))
                entry.chosen[price] = entry.chosen.get(price, 0.0) + sample.value
            elif family.name == REVENUE:
                entry.revenue = sample.value
            elif family.name == ORACLE:
                entry.oracle = sample.value
            else:
                entry.regret = sample.value
    return scores


def _pct(value: float | None) -> str:
    return "     -" if value is None or math.isnan(value) else f"{value:6.2f}"


def _shares(scores: Scores, prices: Sequence[float]) -> str:
    """Share of recent decisions at each price, e.g. ``  5  80  15   0``."""
    total = scores.decisions
    if total <= 0:
        return " ".join(f"{'-':>5}" for _ in prices)
    return " ".join(f"{100.0 * scores.chosen.get(p, 0.0) / total:5.0f}" for p in prices)


def table_lines(
    now: Mapping[Context, Scores],
    before: Mapping[Context, Scores],
    prices: Sequence[float],
    outcomes_learnt: int | None,
    interval_s: float,
    *,
    pending: int | None = None,
) -> list[str]:
    """The table: overall first, then the busiest contexts.

    Columns: revenue as % of the oracle's since the start and over the last
    interval, regret since the start, and the share (%) of the last
    interval's decisions at each price.
    """
    overall, recent_overall = Scores(), Scores()
    rows = []
    for context, scores in now.items():
        recent = scores.minus(before.get(context))
        overall.add(scores)
        recent_overall.add(recent)
        rows.append((context, scores, recent))
    rows.sort(key=lambda row: -row[1].decisions)
    learnt = "-" if outcomes_learnt is None else str(outcomes_learnt)
    waiting = "-" if pending is None else str(pending)
    price_header = " ".join(f"{p:>5g}" for p in prices)
    lines = [
        f"outcomes learnt: {learnt}  pending: {waiting}  decisions scored: {overall.decisions:.0f}",
        f"{'':<24} {'revenue, % of oracle':>17} {'':>10}  % of the last {interval_s:g}s' "
        "decisions at each price",
        f"{'context':<24} {'total':>8} {f'last {interval_s:g}s':>8} {'regret':>10}  {price_header}",
    ]
    for name, scores, recent in [("overall", overall, recent_overall)] + [
        (f"{loc}|{level}", s, r) for (loc, level), s, r in rows[:MAX_CONTEXT_ROWS]
    ]:
        lines.append(
            f"{name:<24} {_pct(scores.share_pct()):>8} {_pct(recent.share_pct()):>8} "
            f"{scores.regret:>10.1f}  {_shares(recent, prices)}"
        )
    if len(rows) > MAX_CONTEXT_ROWS:
        lines.append(f"... {len(rows) - MAX_CONTEXT_ROWS} quieter contexts not shown")
    return lines


class TableView:
    """Writes each frame; on a terminal it replaces the previous frame in place."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.in_place = stream.isatty()
        self._drawn = 0  # lines of the frame on screen

    def show(self, lines: Iterable[str]) -> None:
        frame = list(lines)
        if self.in_place and self._drawn:
            self.stream.write(CURSOR_UP_AND_CLEAR.format(lines=self._drawn))
        elif not self.in_place:
            self.stream.write("\n")
        self.stream.write("\n".join(frame) + "\n")
        self.stream.flush()
        self._drawn = len(frame)

    def interrupted(self) -> None:
        """Something else was printed: the next frame starts below it."""
        self._drawn = 0


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - local
            text: str = response.read().decode()
            return text
    except OSError:
        return None


class LearningMonitor:
    """Reads the engine's ``/state`` and the simulator's ``/metrics``; draws one frame each call."""

    def __init__(self, engine_port: int, simulator_port: int, stream: TextIO, interval_s: float):
        self.state_url = f"http://127.0.0.1:{engine_port}/state"
        self.metrics_url = f"http://127.0.0.1:{simulator_port}/metrics"
        self.view = TableView(stream)
        self.interval_s = interval_s
        self._before: dict[Context, Scores] = {}

    def refresh(self) -> bool:
        """Draw a frame; False (and nothing drawn) while either service is unreachable."""
        state_text, metrics_text = _fetch(self.state_url), _fetch(self.metrics_url)
        if state_text is None or metrics_text is None:
            return False
        state = json.loads(state_text)
        scores = parse_scores(metrics_text)
        prices = [float(p) for p in state["prices"]]
        learnt, pending = int(state["total_outcomes"]), int(state["pending_decisions"])
        frame = table_lines(scores, self._before, prices, learnt, self.interval_s, pending=pending)
        self.view.show(frame)
        self._before = scores
        return True
