"""The permission table: every role its own principal, exactly the access its code needs."""

from __future__ import annotations

from pathlib import Path

from dynpricing.security import permissions
from dynpricing.security.permissions import Acl, Names, chart_yaml, flatten, role, roles
from dynpricing.settings import EngineSettings, SimulatorSettings, TopicSettings

NAMES = Names()
CHART_FILE = Path(__file__).resolve().parents[2] / "charts/dynamic-pricing/files/kafka-acls.yaml"


def _acls(name: str) -> frozenset[Acl]:
    return flatten(role(NAMES, name).grants)


def test_every_role_the_platform_has_is_in_the_table_once() -> None:
    assert [r.name for r in roles(NAMES)] == [
        "engine",
        "decider",
        "learner",
        "producer",
        "simulator",
    ]


def test_the_producer_may_only_write_demand() -> None:
    assert _acls("producer") == {
        Acl("topic", "demand_events", "Describe"),
        Acl("topic", "demand_events", "Write"),
    }


def test_the_simulator_reads_decisions_with_its_group_and_never_reads_demand() -> None:
    acls = _acls("simulator")
    assert Acl("topic", "pricing_decisions", "Read") in acls
    assert Acl("group", "dynpricing-simulator", "Read") in acls
    assert Acl("topic", "pricing_outcomes", "Write") in acls
    assert not {a for a in acls if a.name == "demand_events"}
    assert Acl("topic", "pricing_decisions", "Write") not in acls


def test_the_engine_has_its_group_and_the_recovery_readers_group() -> None:
    acls = _acls("engine")
    assert Acl("group", "dynpricing-engine", "Read") in acls
    assert Acl("group", "dynpricing-engine-recovery", "Describe") in acls
    assert Acl("group", "dynpricing-engine-recovery", "Read") not in acls  # it never commits
    assert Acl("topic", "pricing_decisions", "Read") in acls  # recovery re-reads decisions
    assert Acl("topic", "pricing_decisions", "Write") in acls


def test_decider_and_learner_split_the_engine_as_issue_12_designs() -> None:
    decider, learner = _acls("decider"), _acls("learner")
    assert Acl("topic", "pricing_model", "Read") in decider
    assert Acl("topic", "pricing_model", "Write") not in decider
    assert Acl("topic", "pricing_model", "Write") in learner
    assert Acl("topic", "demand_events", "Read") not in learner
    assert Acl("topic", "pricing_outcomes", "Read") not in decider


def test_no_role_creates_topics_touches_the_cluster_or_uses_transactions() -> None:
    every = {acl for r in roles(NAMES) for acl in flatten(r.grants)}
    assert {a.resource for a in every} == {"topic", "group"}
    assert {a.operation for a in every} == {"Describe", "Read", "Write"}


def test_no_two_roles_share_a_consumer_group() -> None:
    groups = [a.name for r in roles(NAMES) for a in flatten(r.grants) if a.resource == "group"]
    owners = {
        g: {r.name for r in roles(NAMES) if g in {a.name for a in flatten(r.grants)}}
        for g in groups
    }
    assert all(len(names) == 1 for names in owners.values()), owners


def test_names_follow_the_services_settings() -> None:
    topics = TopicSettings(demand="d", decisions="x", outcomes="o", dead_letters="dl")
    names = Names.from_settings(topics, "eg", "sg")
    acls = flatten(role(names, "engine").grants)
    assert {a.name for a in acls} == {"d", "x", "o", "dl", "eg", "eg-recovery"}
    assert (
        Names.from_settings(
            TopicSettings(), EngineSettings().group_id, SimulatorSettings().group_id
        )
        == Names()
    )


def test_the_charts_data_file_is_the_tables_output() -> None:
    """Regenerate with: dynpricing permissions --format chart --output <this file>."""
    assert CHART_FILE.read_text() == chart_yaml()


def test_the_chart_table_names_every_name_as_a_placeholder() -> None:
    placeholders = Names.placeholders()
    text = chart_yaml()
    for field in ("demand", "decisions", "outcomes", "dead_letters", "model", "engine_group"):
        assert f'"${{{field}}}' in text
    assert placeholders.engine_group == "${engine_group}"
    assert permissions.ROLE_NAMES == ("engine", "decider", "learner", "producer", "simulator")
