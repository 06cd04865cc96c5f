"""``dynpricing evaluate`` on real topics: the same answer from Kafka and from its dump.

Decisions and outcomes go to real topics on the test broker, keyed by context
over three partitions as the engine and simulator write them; evaluation reads
every partition, writes its dump, and the dump evaluated again gives the very
same report. A last test runs the real engine and simulator and evaluates their
log, so the live records stay evaluable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Producer

from dynpricing.cli import main as dynpricing
from dynpricing.core.bandit import BanditConfig
from dynpricing.core.market import Market, load_market
from dynpricing.evaluate.records import DECISION, RawRecord
from dynpricing.evaluate.simulate import log_market
from dynpricing.security.permissions import Names
from tests.integration.services_support import ServiceRunner, engine_settings
from tests.kafka_support import unique, wait_until

pytestmark = pytest.mark.kafka

PARTITIONS = 3
HORIZON = 600
TARGETS = ("fixed:low=1.0,medium=1.2,high=1.5", "ts-revenue", "replay:ts-revenue")
SAME = ("counts", "logged", "targets", "warnings", "prices", "join")


@pytest.fixture(scope="module")
def market() -> Market:
    raw = resources.files("dynpricing").joinpath("data", "l6.json").read_text()
    return load_market(json.loads(raw))


def publish(bootstrap: str, topics: dict[str, str], records: list[RawRecord]) -> None:
    """Each record to its topic, keyed by context, stamped with its own event time."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    failures: list[str] = []

    def report(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    for record in records:
        stamp = int(orjson.loads(record.value or b"{}")["timestamp"] * 1000)
        producer.produce(
            topics[record.kind],
            value=record.value,
            key=record.key,
            timestamp=stamp,
            on_delivery=report,
        )
    assert producer.flush(30) == 0
    assert not failures, failures


def evaluate(*argv: str | Path) -> dict[str, Any]:
    out = Path(str(argv[argv.index("--json") + 1]))
    assert dynpricing(["evaluate", *map(str, argv)]) == 0
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def target_args() -> list[str]:
    return [arg for spec in TARGETS for arg in ("--target", spec)]


@pytest.fixture
def logged(
    market: Market, kafka_bootstrap: str, topic_factory: Callable[..., str]
) -> tuple[dict[str, str], list[RawRecord]]:
    topics = {
        DECISION: topic_factory("decisions", PARTITIONS),
        "outcome": topic_factory("outcomes", PARTITIONS),
    }
    config = BanditConfig(prices=tuple(market.prices.tolist()))
    records = log_market(market, HORIZON, seed=21, config=config).records
    publish(kafka_bootstrap, topics, records)
    return topics, records


def kafka_args(bootstrap: str, topics: dict[str, str]) -> list[str]:
    return [
        "--bootstrap-servers", bootstrap,
        "--decisions-topic", topics[DECISION],
        "--outcomes-topic", topics["outcome"],
    ]  # fmt: skip


def test_kafka_and_its_dump_give_identical_reports(
    kafka_bootstrap: str, logged: tuple[dict[str, str], list[RawRecord]], tmp_path: Path
) -> None:
    topics, _ = logged
    dump = tmp_path / "window.jsonl"
    live = evaluate(
        *kafka_args(kafka_bootstrap, topics),
        "--dump", dump, *target_args(), "--json", tmp_path / "live.json",
    )  # fmt: skip
    again = evaluate("--input", dump, *target_args(), "--json", tmp_path / "dump.json")
    assert {k: live[k] for k in SAME} == {k: again[k] for k in SAME}
    assert live["counts"]["decisions_read"] == HORIZON
    assert live["counts"]["joined"] == HORIZON
    assert live["counts"]["decisions_scored"] == HORIZON
    partitions = {json.loads(line)["partition"] for line in dump.read_text().splitlines()[1:-1]}
    assert partitions == set(range(PARTITIONS))  # every partition was read


def test_a_time_window_and_an_offset_window_select_their_decisions(
    kafka_bootstrap: str, logged: tuple[dict[str, str], list[RawRecord]], tmp_path: Path
) -> None:
    topics, records = logged
    times = sorted(
        orjson.loads(r.value or b"{}")["timestamp"] for r in records if r.kind == DECISION
    )
    since, until = times[100], times[400]
    inside = sum(since <= t < until for t in times)
    found = evaluate(
        *kafka_args(kafka_bootstrap, topics),
        "--since", str(since), "--until", str(until),
        "--target", "fixed:1.2", "--json", tmp_path / "time.json",
    )  # fmt: skip
    assert found["counts"]["decisions_read"] == inside
    assert found["counts"]["joined"] == inside
    found = evaluate(
        *kafka_args(kafka_bootstrap, topics),
        "--from-offset", "10", "--to-offset", "60",
        "--target", "fixed:1.2", "--json", tmp_path / "offsets.json",
    )  # fmt: skip
    assert found["counts"]["decisions_read"] == 50 * PARTITIONS


def test_the_engines_live_log_is_evaluable(
    runner: ServiceRunner, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Engine, simulator and producer on the broker; every decision they log can be scored."""
    events = 1500
    engine = runner.start("engine", **engine_settings(tmp_path))
    simulator = runner.start("simulator", seed=3)
    engine.wait_ready()
    simulator.wait_ready()
    runner.start("producer", count=events, rate=1000, seed=4)
    wait_until(
        lambda: True if engine.state()["total_outcomes"] >= events else None,
        deadline_s=120,
        what=f"{events} outcomes learnt",
    )
    found = evaluate(
        "--bootstrap-servers", kafka_bootstrap,
        "--decisions-topic", runner.topics.decisions,
        "--outcomes-topic", runner.topics.outcomes,
        "--decision-timeout-s", "5",
        "--target", "fixed:1.2", "--target", "ts-revenue",
        "--json", tmp_path / "engine.json",
    )  # fmt: skip
    counts = found["counts"]
    assert counts["decisions_read"] == events
    assert counts["decisions_scored"] == events  # each has a propensity and an outcome
    assert found["logged"]["policies"] == [engine.state()["policy"]]
    for estimate in found["targets"]["ts-revenue"]["estimates"].values():
        assert 0.0 < estimate["value"] < 2.0


def test_a_missing_topic_is_a_clear_error(
    kafka_bootstrap: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status = dynpricing(
        [
            "evaluate", "--bootstrap-servers", kafka_bootstrap,
            "--decisions-topic", "no-such-decisions", "--target", "fixed:1.2",
        ]
    )  # fmt: skip
    assert status == 1
    assert "topic 'no-such-decisions' does not exist" in capsys.readouterr().err


def test_the_engines_credentials_read_a_secured_broker(
    secured_kafka: Callable[[str], Any],
    market: Market,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SASL/SCRAM with the table's ACLs: evaluate reads as the engine, nothing more granted.

    It reads like the engine's recovery reader (assigned partitions, nothing
    committed) under the engine's recovery group, the one group besides its
    own that the engine's principal may describe.
    """
    secured = secured_kafka("sasl-scram")
    names = Names(
        demand=secured.make_topic("demand"),
        decisions=secured.make_topic("decisions", PARTITIONS),
        outcomes=secured.make_topic("outcomes", PARTITIONS),
        dead_letters=secured.make_topic("dead"),
        model=secured.make_topic("model"),
        engine_group=unique("engine"),
        simulator_group=unique("simulator"),
        decider_group=unique("decider"),
        learner_group=unique("learner"),
    )
    secured.grant(names)
    config = BanditConfig(prices=tuple(market.prices.tolist()))
    records = log_market(market, 200, seed=8, config=config).records
    for role, kind, topic in (
        ("engine", DECISION, names.decisions),
        ("simulator", "outcome", names.outcomes),
    ):
        secured.produce_as(role, topic, [r.value or b"" for r in records if r.kind == kind])
    for key, value in secured.role_env("engine").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DYNPRICING_ENGINE_GROUP_ID", names.engine_group)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    found = evaluate(
        "--decisions-topic", names.decisions, "--outcomes-topic", names.outcomes,
        "--target", "fixed:1.2", "--json", tmp_path / "secured.json",
    )  # fmt: skip
    assert found["counts"]["decisions_scored"] == 200
    other = ["--group-id", unique("evaluate"), "--target", "fixed:1.2"]
    topics = ["--decisions-topic", names.decisions, "--outcomes-topic", names.outcomes]
    assert dynpricing(["evaluate", *topics, *other]) == 1  # a group it may not describe
    assert "Group authorization failed" in capsys.readouterr().err
