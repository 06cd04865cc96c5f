"""The learning state round-trips through its JSON document; misfits are refused."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import SnapshotError
from dynpricing.statefile import read_json, write_json_atomic

ENGINE = {"offsets": {"pricing_outcomes": {"0": 17}}, "pending": []}


def _trained(config: BanditConfig, seed: int = 0, n: int = 200) -> Bandit:
    bandit = Bandit(config)
    rng = np.random.default_rng(seed)
    for loc in ("Airport", "Downtown"):
        for level in ("low", "high"):
            bandit.context_index(loc, level)
    contexts = rng.integers(0, 4, n)
    batch = bandit.decide(contexts, rng, now=0.0)
    bandit.update(contexts, batch.arms, rng.random(n) < 0.5, now=5.0)
    return bandit


outcomes = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 3), st.booleans(), st.floats(0, 1e4)),
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(outcomes, st.sampled_from([None, 50.0]))
def test_snapshot_round_trip_is_identical(
    events: list[tuple[int, int, bool, float]], half_life: float | None
) -> None:
    config = BanditConfig(half_life=half_life)
    bandit = Bandit(config)
    for loc in ("A", "B", "C"):
        bandit.context_index(loc, "medium")
    for ctx, arm, won, now in sorted(events, key=lambda e: e[3]):
        bandit.update([ctx], [arm], [won], now=now)
    document = json.loads(json.dumps(bandit.to_document(ENGINE)))
    restored, engine = Bandit.from_document(document, config)
    assert engine == ENGINE
    assert restored.to_document(ENGINE) == bandit.to_document(ENGINE)
    assert restored.contexts() == bandit.contexts()
    assert restored.total_outcomes == bandit.total_outcomes


def test_a_restored_bandit_decides_exactly_like_the_original() -> None:
    config = BanditConfig()
    bandit = _trained(config)
    restored, _ = Bandit.from_document(bandit.to_document(), config)
    rows = np.arange(4).repeat(25)
    original = bandit.decide(rows, np.random.default_rng(3), now=9.0)
    again = restored.decide(rows, np.random.default_rng(3), now=9.0)
    np.testing.assert_array_equal(original.arms, again.arms)
    np.testing.assert_array_equal(original.propensities, again.propensities)


def test_the_document_is_versioned_and_carries_its_configuration() -> None:
    document = _trained(BanditConfig(half_life=60.0)).to_document({"k": 1})
    assert document["format"] == "dynpricing.bandit_stats"
    assert document["version"] == 2
    assert document["prices"] == [1.0, 1.2, 1.5, 2.0]
    assert document["prior"] == {"alpha": 1.0, "beta": 1.0}
    assert document["objective"] == "revenue"
    assert document["forgetting"] == {"kind": "half-life", "half_life": 60.0, "floor": 30.0}
    assert document["engine"] == {"k": 1}
    assert "rate_score" not in document["contexts"]  # kept only under adaptive forgetting


def test_adaptive_forgetting_keeps_its_rates_in_the_document() -> None:
    document = _trained(BanditConfig()).to_document()
    assert document["forgetting"] == {
        "kind": "adaptive",
        "half_life": None,
        "floor": 30.0,
        "half_lives": [2000.0, 1000.0, 500.0, 250.0],
    }
    contexts = document["contexts"]  # 4 contexts; 4 rates (never forgetting is the counts)
    assert np.asarray(contexts["rate_successes"]).shape == (4, 4, 4)
    assert np.asarray(contexts["rate_failures"]).shape == (4, 4, 4)
    assert np.asarray(contexts["rate_score"]).shape == (4, 5)


def _drifted(config: BanditConfig) -> Bandit:
    """A bandit whose adaptive forgetting has switched to a faster rate in one context."""
    bandit = _trained(config)
    rng = np.random.default_rng(1)
    for step in range(60):  # context 0's acceptance jumps from about 0.5 to 0.95
        arms = rng.integers(0, 4, 20)
        bandit.update(np.zeros(20, dtype=np.int64), arms, rng.random(20) < 0.95, now=10.0 + step)
    return bandit


def test_a_restored_adaptive_bandit_learns_and_decides_exactly_like_the_original() -> None:
    config = BanditConfig()
    bandit = _drifted(config)
    stats = bandit.arm_stats()
    lifetime = config.prior_alpha + stats.successes
    assert not np.array_equal(stats.alpha[0], lifetime[0])  # it forgets in context 0 ...
    np.testing.assert_array_equal(stats.alpha[1:], lifetime[1:])  # ... and only there
    restored, _ = Bandit.from_document(json.loads(json.dumps(bandit.to_document())), config)
    for bandit_now in (bandit, restored):
        bandit_now.update([0, 1, 2], [1, 2, 3], [False, True, False], now=99.0)
    assert restored.to_document() == bandit.to_document()
    rows = np.arange(4).repeat(25)
    original = bandit.decide(rows, np.random.default_rng(3), now=100.0)
    again = restored.decide(rows, np.random.default_rng(3), now=100.0)
    np.testing.assert_array_equal(original.arms, again.arms)
    np.testing.assert_array_equal(original.propensities, again.propensities)


def test_a_version_1_snapshot_migrates_to_adaptive_forgetting_from_its_posterior() -> None:
    legacy = _trained(BanditConfig(forgetting="none")).to_document()
    legacy["version"] = 1
    legacy["forgetting"] = {"half_life": None, "floor": 30.0}
    restored, _ = Bandit.from_document(legacy, BanditConfig())
    document = restored.to_document()
    assert document["version"] == 2
    np.testing.assert_array_equal(document["contexts"]["alpha"], legacy["contexts"]["alpha"])
    evidence = np.asarray(legacy["contexts"]["successes"], dtype=float)
    rates = np.asarray(document["contexts"]["rate_successes"])
    for rate in range(4):  # every rate starts from the posterior it had
        np.testing.assert_array_equal(rates[:, rate], evidence)
    assert np.all(np.asarray(document["contexts"]["rate_score"]) == 0.0)


def _mutated(path: str, value: Any) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(_trained(BanditConfig()).to_document())
    *parents, leaf = path.split(".")
    target = document
    for key in parents:
        target = target[key]
    target[leaf] = value
    return document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "prices",
            [1.0, 1.2],
            r"snapshot grid \[1\.0, 1\.2\] != configured grid \[1\.0, 1\.2, 1\.5, 2\.0\]",
        ),
        ("version", 3, "version 3 != expected"),
        ("format", "something-else", "format 'something-else'"),
        ("objective", "acceptance", "objective 'acceptance' != configured objective 'revenue'"),
        ("prior", {"alpha": 2.0, "beta": 1.0}, "prior .* != configured prior"),
        (
            "contexts.alpha",
            [[1.0, 1.0, 1.0, 1.0]],
            r"contexts.alpha: shape \(1, 4\) != expected \(4, 4\)",
        ),
        ("contexts.demand_level", ["low", "low", "low", "extreme"], "not a valid context"),
        ("contexts.demand_level", ["low", ["low"], "low", "low"], r"contexts\[1\] .* not a valid"),
        ("contexts.location", ["A", "B", 3, "D"], r"contexts\[2\] .* not a valid"),
        ("contexts.pulls", [[-1, 0, 0, 0]] * 4, "counts must be >= 0"),
        ("contexts.beta", [[0.0, 1.0, 1.0, 1.0]] * 4, "must be finite and > 0"),
        ("total_outcomes", -3, "total_outcomes must be a count"),
    ],
)
def test_a_snapshot_that_does_not_fit_is_refused_saying_how(
    path: str, value: Any, message: str
) -> None:
    with pytest.raises(SnapshotError, match=message):
        Bandit.from_document(_mutated(path, value), BanditConfig())


def test_a_snapshot_with_contexts_outside_fixed_locations_is_refused() -> None:
    document = _trained(BanditConfig()).to_document()
    with pytest.raises(SnapshotError, match="not among the configured locations"):
        Bandit.from_document(document, BanditConfig(locations=("Airport",)))


def test_a_snapshot_into_fixed_locations_keeps_rows_by_context() -> None:
    bandit = Bandit(BanditConfig())
    row = bandit.context_index("Downtown", "high")
    bandit.update([row], [2], [True], now=0.0)
    restored, _ = Bandit.from_document(
        bandit.to_document(), BanditConfig(locations=("Airport", "Downtown"))
    )
    index = restored.context_index("Downtown", "high")
    assert restored.arm_stats().successes[index].tolist() == [0, 0, 1, 0]


def test_state_file_is_written_atomically_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "bandit_stats.json"
    assert read_json(path) is None
    document = _trained(BanditConfig()).to_document(ENGINE)
    write_json_atomic(path, document)
    write_json_atomic(path, document)  # replacing an existing file works too
    assert read_json(path) == json.loads(json.dumps(document))
    assert [p.name for p in tmp_path.iterdir()] == ["bandit_stats.json"]


def test_an_unparseable_state_file_is_a_snapshot_error(tmp_path: Path) -> None:
    path = tmp_path / "bandit_stats.json"
    path.write_text('{"format": "dynpricing.bandit_stats", ')
    with pytest.raises(SnapshotError, match="not valid JSON"):
        read_json(path)
    path.write_text("[1, 2]")
    with pytest.raises(SnapshotError, match="expected a JSON object"):
        read_json(path)


def test_array_tables_write_the_same_json_as_list_tables(tmp_path: Path) -> None:
    bandit = _trained(BanditConfig(half_life=10.0))
    as_lists, as_arrays = tmp_path / "lists.json", tmp_path / "arrays.json"
    write_json_atomic(as_lists, bandit.to_document(ENGINE))
    write_json_atomic(as_arrays, bandit.to_document(ENGINE, arrays=True))
    assert as_arrays.read_bytes() == as_lists.read_bytes()
