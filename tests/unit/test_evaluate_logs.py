"""Logs as they really come: the engine's join rules, bad decisions, stray outcomes, broken dumps.

Every problem must end as a clear error or a counted exclusion, never as a
silently different number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dynpricing.evaluate.dataset import NoUsableDecisionsError
from dynpricing.evaluate.dump import DumpError, read_dump, write_dump
from dynpricing.evaluate.evaluation import NamedTarget, evaluation_log, run_evaluation
from dynpricing.evaluate.logjoin import JoinRules
from dynpricing.evaluate.records import DECISION, OUTCOME, RawRecord
from dynpricing.evaluate.targets import parse_fixed_prices
from dynpricing.settings import EngineSettings

PRICES = (1.0, 1.5, 2.0)
T0 = 1_764_000_000.0


def decision(i: int, *, price: float = 1.5, at: float | None = None, **fields: Any) -> RawRecord:
    body: dict[str, Any] = {
        "schema_version": 2,
        "decision_id": f"d{i}",
        "event_id": f"e{i}",
        "timestamp": T0 + i if at is None else at,
        "location": "Airport",
        "demand_level": "high",
        "context": ["Airport", "high"],
        "price_multiplier": price,
        "propensity": 0.5,
        "policy": "shape-ts-revenue",
        "model_version": "shape-ts-revenue:0",
    }
    body.update(fields)
    body = {k: v for k, v in body.items() if v is not DROP}
    return RawRecord(DECISION, 0, i, json.dumps(body).encode())


DROP = object()


def outcome(
    decision_id: str, at: float, accepted: bool = True, offset: int = 0, **fields: Any
) -> RawRecord:
    body: dict[str, Any] = {"decision_id": decision_id, "timestamp": at, "accepted": accepted}
    body.update(fields)
    return RawRecord(OUTCOME, 0, offset, json.dumps(body).encode())


def answered(n: int, **fields: Any) -> list[RawRecord]:
    """n decisions at 1.5, each accepted one second later."""
    records = [decision(i, **fields) for i in range(n)]
    return records + [outcome(f"d{i}", T0 + i + 1, offset=i) for i in range(n)]


def counts(records: list[RawRecord], **rules: Any) -> dict[str, int]:
    return evaluation_log(records, PRICES, JoinRules(**rules))[1].counts


def report(records: list[RawRecord], **rules: Any) -> dict[str, Any]:
    target = NamedTarget(parse_fixed_prices("fixed:1.5", "1.5"), "fixed")
    return run_evaluation(
        records,
        prices=PRICES,
        rules=JoinRules(**rules),
        targets=[target],
        replays=[],
        seed=0,
        source={},
    )


def test_the_join_defaults_are_the_engines() -> None:
    defaults = {name: f.default for name, f in EngineSettings.model_fields.items()}
    rules = JoinRules()
    assert rules.decision_timeout_s == defaults["decision_timeout_s"]
    assert rules.expired_as == defaults["expired_as"]
    assert rules.resolved_memory == defaults["resolved_memory"]
    assert rules.max_pending == defaults["max_pending"]


def test_decisions_without_propensity_are_counted_and_not_scored() -> None:
    """The engine's parser would read a missing propensity as 1.0; evaluation must not."""
    records = [*answered(4), decision(10, propensity=DROP), outcome("d10", T0 + 11, offset=10)]
    found = report(records)
    assert found["counts"]["no_propensity"] == 1
    assert found["counts"]["decisions_scored"] == 4
    assert any("no propensity" in w for w in found["warnings"])
    # the scored value is exactly that of the four good decisions (weight 2, reward 1.5)
    assert found["targets"]["fixed:1.5"]["estimates"]["ips"]["value"] == pytest.approx(3.0)


@pytest.mark.parametrize("bad", [0, 0.0, -0.2, 1.5, "0.5", True, None])
def test_propensities_that_are_not_probabilities_are_counted(bad: object) -> None:
    records = [*answered(3), decision(7, propensity=bad), outcome("d7", T0 + 8, offset=7)]
    found = counts(records)
    reason = "no_propensity" if bad is None else "invalid_propensity"
    assert found[reason] == 1
    assert found["decisions_scored"] == 3


def test_a_propensity_of_exactly_one_is_valid() -> None:
    assert counts(answered(2, propensity=1))["decisions_scored"] == 2


def test_outcomes_without_a_decision_are_counted_by_kind() -> None:
    stray = [
        outcome("ghost-1", T0 + 1, context=["Airport", "high"], chosen_price=1.5),
        outcome("ghost-2", T0 + 2),
        outcome("ghost-3", T0 + 3, context=["Airport", "high"], chosen_price=1.7),
    ]
    found = counts(answered(2) + stray)
    assert found["outcomes_without_decision"] == 1  # learnt by context, as the engine does
    assert found["unknown_decision"] == 1
    assert found["outcome_price_not_on_grid"] == 1
    assert found["decisions_scored"] == 2


def test_only_the_first_outcome_of_a_decision_counts() -> None:
    records = [
        decision(0),
        outcome("d0", T0 + 1, accepted=False, offset=0),
        outcome("d0", T0 + 2, accepted=True, offset=1),
    ]
    found = report(records)
    assert found["counts"]["duplicate_outcomes"] == 1
    assert found["logged"]["observed"]["value"] == 0.0  # the rejection, not the acceptance


def test_a_late_outcome_leaves_its_decision_expired_as_a_rejection() -> None:
    records = [decision(0), outcome("d0", T0 + 400, accepted=True), decision(1, at=T0 + 401)]
    found = report(records, decision_timeout_s=300.0)
    assert found["counts"]["late_outcomes"] == 1
    assert found["counts"]["expired_as_reject"] == 1
    assert found["counts"]["pending_at_end"] == 1  # d1: the log ends before its timeout
    assert found["logged"]["observed"]["value"] == 0.0
    assert any("scored as rejections" in w for w in found["warnings"])


def test_expired_decisions_are_dropped_when_the_engine_drops_them() -> None:
    records = [decision(0), decision(1, at=T0 + 1), outcome("d1", T0 + 2), decision(2, at=T0 + 500)]
    found = counts(records, expired_as="drop")
    assert found["expired_dropped"] == 1
    assert found["decisions_scored"] == 1


def test_a_decision_published_twice_counts_once() -> None:
    records = [*answered(2), decision(0)]
    found = counts(records)
    assert found["duplicate_decision"] == 1
    assert found["decisions_scored"] == 2


def test_every_decision_read_is_scored_or_counted_under_one_reason() -> None:
    records = [
        *answered(5),
        decision(20, propensity=DROP),
        outcome("d20", T0 + 21, offset=20),
        decision(21, propensity=3),
        outcome("d21", T0 + 22, offset=21),
        decision(22, price=1.7),
        RawRecord(DECISION, 0, 23, b"{not json"),
        decision(0),
        decision(24, at=T0 + 1000),
    ]
    found = counts(records)
    reasons = (
        "no_propensity",
        "invalid_propensity",
        "price_not_on_grid",
        "invalid_decision",
        "duplicate_decision",
        "pending_at_end",
        "expired_dropped",
    )
    assert found["decisions_read"] == 11
    assert sum(found.get(r, 0) for r in reasons) + found["decisions_scored"] == 11


def test_outcomes_for_locations_the_engine_does_not_serve_are_counted() -> None:
    stray = outcome("ghost", T0 + 1, context=["Harbour", "low"], chosen_price=1.5)
    found = counts([*answered(2), stray], locations=("Airport",))
    assert found["outcome_unknown_location"] == 1
    assert "outcomes_without_decision" not in found


def test_a_log_with_nothing_to_score_says_why() -> None:
    records = [decision(0, propensity=DROP), outcome("d0", T0 + 1)]
    with pytest.raises(NoUsableDecisionsError, match="no_propensity"):
        evaluation_log(records, PRICES, JoinRules())


def test_reading_order_does_not_change_the_result() -> None:
    records = answered(30)
    forward = report(records)
    backward = report(list(reversed(records)))
    assert forward["targets"] == backward["targets"]
    assert forward["counts"] == backward["counts"]


# ---- dumps -----------------------------------------------------------------------------


def test_a_dump_reads_back_the_same_records(tmp_path: Path) -> None:
    records = [*answered(3), RawRecord(DECISION, 2, 9, b"\xff\xfe not utf-8", b"k", 123)]
    path = tmp_path / "log.jsonl"
    assert write_dump(path, records, {"topic": "x"}) == len(records)
    read, source = read_dump(path)
    assert read == records
    assert source == {"topic": "x"}


def test_a_dump_cut_mid_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_dump(path, answered(3), {})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DumpError, match="not a JSON line"):
        read_dump(path)


def test_a_dump_without_its_end_line_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_dump(path, answered(3), {})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    with pytest.raises(DumpError, match="truncated dump"):
        read_dump(path)


def test_a_dump_missing_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    write_dump(path, answered(3), {})
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))
    with pytest.raises(DumpError, match="promises"):
        read_dump(path)


def test_a_file_that_is_not_a_dump_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.json"
    path.write_text('{"format": "dynpricing.bandit_stats"}\n')
    with pytest.raises(DumpError, match="not an evaluation dump"):
        read_dump(path)
