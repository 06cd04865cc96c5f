"""``make run``'s learning table: scores from the simulator's metrics, drawn in place on a TTY."""

from __future__ import annotations

import io

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest

from dynpricing.run.learning_table import Scores, TableView, parse_scores, table_lines

PRICES = [1.0, 1.2, 1.5, 2.0]


def _metrics(answers: list[tuple[str, str, float, float, float]]) -> str:
    """Simulator-style counters after the given (location, level, price, revenue, oracle)."""
    registry = CollectorRegistry()
    labels = ("location", "demand_level")
    revenue = Counter("dynpricing_expected_revenue", "r", labels, registry=registry)
    oracle = Counter("dynpricing_oracle_revenue", "o", labels, registry=registry)
    regret = Counter("dynpricing_regret", "g", labels, registry=registry)
    outcomes = Counter(
        "dynpricing_simulated_outcomes", "n", (*labels, "price", "accepted"), registry=registry
    )
    for location, level, price, earned, best in answers:
        revenue.labels(location, level).inc(earned)
        oracle.labels(location, level).inc(best)
        regret.labels(location, level).inc(best - earned)
        outcomes.labels(location, level, f"{price:g}", "true").inc()
    return generate_latest(registry).decode()


def test_scores_are_read_per_context_from_the_simulator_counters() -> None:
    text = _metrics([("A", "low", 1.2, 0.9, 1.0), ("A", "low", 1.5, 0.5, 1.0)])
    scores = parse_scores(text)[("A", "low")]
    assert scores.revenue == pytest.approx(1.4)
    assert scores.oracle == pytest.approx(2.0)
    assert scores.regret == pytest.approx(0.6)
    assert scores.chosen == {1.2: 1.0, 1.5: 1.0}
    assert scores.share_pct() == pytest.approx(70.0)


def test_the_table_shows_oracle_share_and_regret_overall_and_per_context_with_recent_prices() -> (
    None
):
    before = parse_scores(_metrics([("A", "low", 1.0, 1.0, 1.0)]))
    now = parse_scores(
        _metrics(
            [("A", "low", 1.0, 1.0, 1.0)]
            + [("A", "low", 1.5, 0.8, 1.0)] * 3
            + [("B", "high", 2.0, 1.0, 1.0)]
        )
    )
    lines = table_lines(now, before, PRICES, 12, 5.0, pending=3)
    assert lines[0].startswith("outcomes learnt: 12  pending: 3")
    overall = next(line for line in lines if line.startswith("overall"))
    # 4.4 of 5.0 oracle revenue in all, 3.4 of 4.0 since the last frame; 0.6 regret
    assert overall.split()[1:4] == ["88.00", "85.00", "0.6"]
    a_low = next(line for line in lines if line.startswith("A|low"))
    assert a_low.split()[1:] == ["85.00", "80.00", "0.6", "0", "0", "100", "0"]
    b_high = next(line for line in lines if line.startswith("B|high"))
    assert b_high.split()[-4:] == ["0", "0", "0", "100"]


def test_contexts_without_decisions_show_dashes_not_errors() -> None:
    lines = table_lines({("A", "low"): Scores()}, {}, PRICES, None, 5.0)
    row = next(line for line in lines if line.startswith("A|low"))
    assert row.split()[1:3] == ["-", "-"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_each_frame_replaces_the_previous_one() -> None:
    screen = _Terminal()
    view = TableView(screen)
    view.show(["a", "b", "c"])
    view.show(["d", "e"])
    assert screen.getvalue() == "a\nb\nc\n\x1b[3F\x1b[Jd\ne\n"


def test_elsewhere_each_frame_is_plain_lines() -> None:
    log = io.StringIO()
    view = TableView(log)
    view.show(["a", "b"])
    view.show(["c"])
    assert "\x1b" not in log.getvalue()
    assert log.getvalue() == "\na\nb\n\nc\n"
