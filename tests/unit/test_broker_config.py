"""The local broker's configuration is a single-node one that tests can rely on."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from dynpricing import broker


def _props(layout: broker.BrokerLayout) -> dict[str, str]:
    lines = broker.server_properties(layout).splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_every_internal_topic_is_single_replica_and_rebalances_start_at_once(
    tmp_path: Path,
) -> None:
    props = _props(broker.BrokerLayout(port=19092, data_dir=tmp_path))
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
        "share.coordinator.state.topic.replication.factor",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"


def test_broker_listens_on_loopback_at_the_configured_port_with_controller_next_to_it(
    tmp_path: Path,
) -> None:
    props = _props(broker.BrokerLayout(port=19092, data_dir=tmp_path))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "logs")


def test_stop_without_a_running_broker_reports_nothing_was_running(tmp_path: Path) -> None:
    layout = broker.BrokerLayout(port=19092, data_dir=tmp_path)
    (tmp_path / broker.PID_FILE).write_text("999999999")
    assert broker.stop(layout) is False
    assert not (tmp_path / broker.PID_FILE).exists()


def test_reap_finds_no_broker_where_only_stale_pid_files_are(tmp_path: Path) -> None:
    for name in ("a", "b/c"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / broker.PID_FILE).write_text("999999998")
    assert broker.stop_all_under(tmp_path) == 0
    assert not list(tmp_path.rglob(broker.PID_FILE))


def test_cluster_ids_are_22_url_safe_characters_and_never_look_like_an_option() -> None:
    ids = [broker.cluster_id() for _ in range(2000)]  # ~1 in 64 random ids would start with '-'
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert all(
        set(i) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        for i in ids
    )
    assert len(set(ids)) == len(ids)


def test_the_jvm_gets_kafkas_own_gc_settings_unless_the_user_sets_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = broker.BrokerLayout(port=19092, data_dir=tmp_path)
    monkeypatch.setattr(broker, "_java", lambda: "java")
    monkeypatch.delenv("KAFKA_JVM_PERFORMANCE_OPTS", raising=False)
    command = broker._java_cmd(layout, "kafka.Kafka")
    assert {"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"} <= set(command)
    assert command.index("-XX:MaxGCPauseMillis=20") < command.index("kafka.Kafka")
    monkeypatch.setenv("KAFKA_JVM_PERFORMANCE_OPTS", "-XX:+UseSerialGC")
    command = broker._java_cmd(layout, "kafka.Kafka")
    assert "-XX:+UseSerialGC" in command
    assert "-XX:MaxGCPauseMillis=20" not in command


def test_no_cache_or_tool_folder_is_committed() -> None:
    """A committed worktree link (``.cache -> /work/main/.cache``) replaces the fetched
    broker jars wherever it is checked out, and no broker starts there any more."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", ".cache", ".tools", ".venv", ".run"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked == [], "git rm --cached " + " ".join(tracked)
