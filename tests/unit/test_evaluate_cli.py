"""``dynpricing evaluate`` from a dump: the table, the stable JSON report, the plot, the errors."""

from __future__ import annotations

import json
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dynpricing.cli import main as dynpricing
from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.market import load_market
from dynpricing.evaluate.dump import write_dump
from dynpricing.evaluate.records import DECISION, RawRecord
from dynpricing.evaluate.simulate import log_market
from dynpricing.statefile import write_json_atomic

REPORT_KEYS = {"format", "version", "source", "prices", "join", "counts", "logged", "targets"}
ESTIMATE_KEYS = {"value", "std_error", "ci_low", "ci_high"}
PNG_MAGIC = b"\x89PNG"


@pytest.fixture(scope="module")
def market_path() -> Path:
    return Path(str(resources.files("dynpricing").joinpath("data", "l6.json")))


@pytest.fixture
def dump(tmp_path: Path, market_path: Path) -> Path:
    market = load_market(json.loads(market_path.read_text()))
    config = BanditConfig(prices=tuple(market.prices.tolist()))
    path = tmp_path / "log.jsonl"
    write_dump(path, log_market(market, 400, seed=1, config=config).records, {"test": True})
    return path


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    bandit = Bandit(BanditConfig(policy="ts"))
    row = bandit.context_index("Airport", "high")
    bandit.update([row] * 10, [2] * 10, [True] * 10, now=0.0)
    path = tmp_path / "bandit_stats.json"
    write_json_atomic(path, bandit.to_document())
    return path


def run(*argv: str | Path) -> int:
    return dynpricing(["evaluate", *map(str, argv)])


def test_a_dump_is_evaluated_into_a_table_and_a_stable_report(
    dump: Path, snapshot: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, png = tmp_path / "report.json", tmp_path / "report.png"
    status = run(
        "--input", dump,
        "--target", "fixed:low=1.0,medium=1.2,high=1.5",
        "--target", "ts-revenue",
        "--target", f"snapshot:{snapshot}",
        "--target", "replay:ts-revenue",
        "--json", out, "--plot", png,
    )  # fmt: skip
    assert status == 0
    table = capsys.readouterr().out
    assert "ts-revenue" in table
    assert "DR" in table
    assert "observed revenue" in table
    doc: dict[str, Any] = json.loads(out.read_text())
    assert set(doc) == REPORT_KEYS | {"warnings"}
    assert doc["counts"]["decisions_scored"] == 400
    assert set(doc["targets"]) == {
        "fixed:low=1.0,medium=1.2,high=1.5",
        "ts-revenue",
        f"snapshot:{snapshot}",
        "replay:ts-revenue",
    }
    for name, target in doc["targets"].items():
        expected = {"replay"} if target["kind"] == "replay" else {"ips", "snips", "dr"}
        assert set(target["estimates"]) <= expected, name
        for estimate in target["estimates"].values():
            assert set(estimate) == ESTIMATE_KEYS
            assert estimate["ci_low"] <= estimate["value"] <= estimate["ci_high"]
    assert doc["targets"]["ts-revenue"]["kind"] == "informed"
    assert doc["targets"][f"snapshot:{snapshot}"]["kind"] == "snapshot"
    assert doc["logged"]["policies"] == [Bandit(BanditConfig()).policy_name]  # the default
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_the_same_dump_gives_the_same_report(dump: Path, tmp_path: Path) -> None:
    first, second, more = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    for out in (first, second):
        assert run("--input", dump, "--target", "ts-revenue", "--json", out) == 0
    assert json.loads(first.read_text()) == json.loads(second.read_text())
    # another target beside it leaves its result alone
    assert (
        run("--input", dump, "--target", "fixed:1.2", "--target", "ts-revenue", "--json", more) == 0
    )
    alone = json.loads(first.read_text())["targets"]["ts-revenue"]
    assert json.loads(more.read_text())["targets"]["ts-revenue"] == alone


def test_the_engines_settings_set_the_join_rules(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DYNPRICING_ENGINE_DECISION_TIMEOUT_S", "42")
    monkeypatch.setenv("DYNPRICING_ENGINE_EXPIRED_AS", "drop")
    out = tmp_path / "r.json"
    assert run("--input", dump, "--target", "fixed:1.2", "--json", out) == 0
    join = json.loads(out.read_text())["join"]
    assert (join["decision_timeout_s"], join["expired_as"]) == (42.0, "drop")
    assert (
        run("--input", dump, "--target", "fixed:1.2", "--json", out, "--expired-as", "reject") == 0
    )
    assert json.loads(out.read_text())["join"]["expired_as"] == "reject"


def test_a_truncated_dump_is_an_error_not_a_number(
    dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) - 40])
    assert run("--input", dump, "--target", "fixed:1.2") == 2
    assert "not a JSON line (a truncated or corrupted dump)" in capsys.readouterr().err


def test_strict_refuses_a_log_with_unscorable_decisions(
    tmp_path: Path, dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = dump.read_bytes().splitlines()
    record = json.loads(lines[1])
    value = json.loads(record["value"])
    del value["propensity"]
    record["value"] = json.dumps(value)
    lines[1] = json.dumps(record).encode()
    dump.write_bytes(b"\n".join(lines) + b"\n")
    assert run("--input", dump, "--target", "fixed:1.2") == 0
    assert "no propensity" in capsys.readouterr().out
    assert run("--input", dump, "--target", "fixed:1.2", "--strict") == 2
    assert "no_propensity" in capsys.readouterr().err


def test_without_a_target_nothing_is_estimated(
    dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--input", dump) == 2
    assert "no --target" in capsys.readouterr().err


def test_an_unknown_policy_is_named_in_the_error(
    dump: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("--input", dump, "--target", "greedy-revenue") == 2
    assert "unknown policy 'greedy-revenue'" in capsys.readouterr().err


def test_prices_off_the_grid_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    value = {
        "decision_id": "d",
        "timestamp": 1.0,
        "context": ["Airport", "high"],
        "price_multiplier": 3.0,
        "propensity": 0.5,
    }
    write_dump(path, [RawRecord(DECISION, 0, 0, json.dumps(value).encode())], {})
    assert run("--input", path, "--target", "fixed:1.2") == 2  # nothing left to score


def test_simulate_writes_the_coverage_document(
    market_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "coverage.json"
    assert run("--simulate", market_path, "--seeds", "2", "--horizon", "300", "--json", out) == 0
    doc = json.loads(out.read_text())
    assert doc["seeds"] == 2
    assert doc["horizon"] == 300
    assert {"fixed:oracle", "ts-revenue", "replay:ts-revenue"} <= set(doc["targets"])
    row = doc["targets"]["ts-revenue"]["dr"]
    assert {"true_value", "mean_estimate", "mean_interval_width", "coverage"} <= set(row)
    assert "coverage" in capsys.readouterr().out


def test_simulate_values_decisions_with_the_curves_of_their_moment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a drifting market the truth follows the drift; the replay, whose truth cannot, is out."""
    drifting = Path(str(resources.files("dynpricing").joinpath("data", "l6-drift.json")))
    out = tmp_path / "drift.json"
    assert run("--simulate", drifting, "--seeds", "1", "--horizon", "400", "--json", out) == 0
    targets = json.loads(out.read_text())["targets"]
    assert "replay:ts-revenue" not in targets
    market = load_market(json.loads(drifting.read_text()))
    before, after = market.expected_revenue(0.0), market.expected_revenue(1.0)
    oracle = before[np.arange(len(market.contexts)), market.oracle_arms()]
    after_oracle = after[np.arange(len(market.contexts)), market.oracle_arms()]
    # half the decisions before the shift (at 0.5), half after: the truth is about midway
    # (0.94 before, 1.17 after; the logged context mix moves it by about 0.01)
    truth = targets["fixed:oracle"]["dr"]["true_value"]
    assert truth == pytest.approx((oracle.mean() + after_oracle.mean()) / 2, abs=0.04)
    assert run("--simulate", drifting, "--seeds", "1", "--target", "replay:ts-revenue") == 2
    assert "drifts" in capsys.readouterr().err


def test_plot_without_matplotlib_says_how_to_install_it(
    dump: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any import of it now fails
    assert run("--input", dump, "--target", "fixed:1.2", "--plot", tmp_path / "p.png") == 2
    assert "pip install 'dynpricing[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()
