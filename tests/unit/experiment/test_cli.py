"""``dynpricing experiment``: flags, the JSON document's shape, CSV, plot and table."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from dynpricing.experiment.cli import load_market_file, main
from dynpricing.experiment.families import FAMILY_FILES
from dynpricing.experiment.policies import BUILTIN_POLICIES, DEFAULT_POLICY_NAME

SMALL = ["--horizon", "300", "--seeds", "3"]


def test_json_has_exactly_the_documented_shape(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results.json"
    assert main([*SMALL, "--delay-mean", "5", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert set(document) == {
        "market",
        "horizon",
        "seeds",
        "delay_mean",
        "default_policy",
        "policies",
    }
    assert document["market"] == "L6"
    assert (document["horizon"], document["seeds"], document["delay_mean"]) == (300, 3, 5.0)
    assert document["default_policy"] == DEFAULT_POLICY_NAME
    assert list(document["policies"]) == list(BUILTIN_POLICIES)  # every built-in without --policy
    for measures in document["policies"].values():
        assert set(measures) == {
            "oracle_revenue_pct",
            "regret",
            "optimal_arm_share",
            "acceptance_rate",
        }
        assert set(measures["oracle_revenue_pct"]) == {"mean", "ci95"}
        assert set(measures["regret"]) == {"mean", "ci95"}
    assert document["policies"]["oracle"]["oracle_revenue_pct"]["mean"] == pytest.approx(100.0)
    table = capsys.readouterr().out
    assert "shape-ts-revenue" in table
    assert "oracle revenue %" in table


def test_half_life_adds_forgetting_variants_of_learning_policies(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    args = [*SMALL, "--policy", "oracle", "--policy", "ts-revenue", "--half-life", "100"]
    assert main([*args, "--json", str(out)]) == 0
    assert list(json.loads(out.read_text())["policies"]) == [
        "oracle",
        "ts-revenue",
        "ts-revenue+hl100",
    ]


def test_csv_and_plot_hold_the_curves(tmp_path: Path) -> None:
    curves, figure = tmp_path / "curves.csv", tmp_path / "curves.png"
    assert main([*SMALL, "--policy", "random", "--csv", str(curves), "--plot", str(figure)]) == 0
    rows = list(csv.DictReader(curves.read_text().splitlines()))
    assert set(rows[0]) == {
        "policy",
        "decisions",
        "cumulative_regret",
        "rolling_oracle_revenue_pct",
    }
    assert rows[-1]["decisions"] == "300"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_market_file_can_be_given_and_bad_ones_exit_with_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    market = tmp_path / "market.json"
    market.write_text(
        json.dumps({"prices": [1.0, 2.0], "contexts": [{"location": "A", "demand_level": "low"}]})
    )
    assert main([*SMALL, "--market", str(market)]) == 2
    assert "contexts[0]: give exactly one of" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "greedy"], "unknown policy 'greedy'"),
        (["--policy", "oracle+hl10"], "does not learn"),
        (["--delay-mean", "-1"], "--delay-mean must be >= 0"),
        (["--market", "/nonexistent/market.json"], "does not exist"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*SMALL, *args]) == 2
    assert message in capsys.readouterr().err


def test_no_progress_bar_when_stderr_is_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*SMALL, "--policy", "random"]) == 0
    assert capsys.readouterr().err == ""


def test_families_reports_every_family_forgetting_supply_and_delay(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--families", "--horizon", "60", "--seeds", "2"]) == 0
    out = capsys.readouterr().out
    sections = out.split("\n## ")
    assert [s.split(":")[0] for s in sections[1:]] == [
        "robustness",
        "forgetting",
        "supply",
        "delay",
    ]
    robustness, forgetting, supply, delay = sections[1:]
    for family in FAMILY_FILES:
        name = load_market_file(None, f"{family}.json").name
        assert f"\n| {name} |" in robustness
        assert f"\n| {name} |" in supply
        assert f"\n| {name} |" in forgetting
    assert f"| ts-revenue | {DEFAULT_POLICY_NAME} (difference) |" in robustness
    assert "±" in robustness
    assert "shrink-ts-revenue-supply+adaptive" in supply
    assert "| best fixed half-life |" in forgetting
    assert f"\n| {DEFAULT_POLICY_NAME} |" in delay


def test_families_runs_only_the_sections_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--families", "--horizon", "40", "--seeds", "2", "--sections", "delay"]) == 0
    out = capsys.readouterr().out
    assert "## delay" in out
    assert "## robustness" not in out
    assert main(["--families", "--sections", "nonsense"]) == 2
