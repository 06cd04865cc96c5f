"""The chart's KafkaUsers are the package's permission table, role by role.

The ACLs come from files/kafka-acls.yaml, which ``dynpricing permissions
--format chart`` writes from ``dynpricing.security.permissions`` (a unit test
keeps the file equal to the table). Here the *rendered* users are compared with
the table filled in with the names the rendered services are configured with,
so a chart that drifted from the table, or from its own services, fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dynpricing.security.permissions import (
    RECOVERY_GROUP_SUFFIX,
    Names,
    flatten,
    role,
)
from tests.deploy.support import (
    REPO,
    Manifest,
    by_kind,
    deployments,
    env_of,
    one,
    render,
    render_release,
    scenario_file,
)
from tests.security_support import rendered_acls, users_by_role

pytestmark = pytest.mark.tools
USER_SCENARIOS = ("full-values", "strimzi-tls-user-values")
# Which rendered setting names each of the table's names, and in which service.
NAMED_BY = {
    "demand": "TOPICS__DEMAND",
    "decisions": "TOPICS__DECISIONS",
    "outcomes": "TOPICS__OUTCOMES",
    "dead_letters": "TOPICS__DEAD_LETTERS",
    "model": "TOPICS__MODEL",
}
GROUP_OF = {
    "engine_group": "engine",
    "decider_group": "decider",
    "learner_group": "learner",
    "simulator_group": "simulator",
}


def configured_names(manifests: list[Manifest]) -> Names:
    """The names the rendered services are configured with; a service that is not
    deployed leaves its group at the table's default."""
    found = deployments(manifests)
    envs = {c: env_of(manifests, c) for c in found}
    any_env = next(iter(envs.items()))
    topics = {}
    for field, setting in NAMED_BY.items():
        seen = {env[f"DYNPRICING_{c.upper()}_{setting}"] for c, env in envs.items()}
        assert len(seen) == 1, f"services disagree on {setting}: {seen} ({any_env[0]}...)"
        topics[field] = seen.pop()
    groups = {
        field: envs[c][f"DYNPRICING_{c.upper()}_GROUP_ID"]
        for field, c in GROUP_OF.items()
        if c in envs
    }
    return Names(**topics, **groups)


@pytest.mark.parametrize("mode", ["split", "embedded"])
@pytest.mark.parametrize("scenario", USER_SCENARIOS)
def test_each_deployed_role_gets_its_own_user_with_exactly_the_tables_acls(
    scenario: str, mode: str
) -> None:
    manifests = render_release("dp", scenario_file(scenario), sets=(f"mode={mode}",))
    names = configured_names(manifests)
    users = users_by_role(manifests)
    deployed = {
        d["metadata"]["labels"]["app.kubernetes.io/component"]
        for d in by_kind(manifests, "Deployment")
    }
    assert set(users) == deployed
    for name, user in users.items():
        assert rendered_acls(user) == flatten(role(names, name).grants), name
    assert len({u["metadata"]["name"] for u in users.values()}) == len(users)


def test_renamed_topics_and_groups_reach_the_acls(tmp_path: Path) -> None:
    values = tmp_path / "renamed.yaml"
    values.write_text(
        "topics:\n  demand: {name: d1}\n  decisions: {name: x1}\n  outcomes: {name: o1}\n"
        "  deadLetters: {name: dl1}\n"
        "  model: {name: m1}\n"
        "decider: {settings: {groupId: dg1}}\nlearner: {settings: {groupId: lg1}}\n"
        "simulator: {settings: {groupId: sg1}}\n"
    )
    manifests = render_release("dp", scenario_file("full-values"), values)
    names = configured_names(manifests)
    assert (names.demand, names.model) == ("d1", "m1")
    assert (names.decider_group, names.learner_group, names.simulator_group) == (
        "dg1",
        "lg1",
        "sg1",
    )
    for name, user in users_by_role(manifests).items():
        assert rendered_acls(user) == flatten(role(names, name).grants), name


def test_each_service_authenticates_as_its_own_role(tmp_path: Path) -> None:
    scram = render("helm3", "full-values")
    for component in deployments(scram):
        env = env_of(scram, component)
        user = one(scram, "KafkaUser", f"-{component}")["metadata"]["name"]
        p = f"DYNPRICING_{component.upper()}_"
        assert env[p + "KAFKA__SASL_USERNAME"] == user
        assert env[p + "KAFKA__SASL_PASSWORD"]["secretKeyRef"]["name"] == user
    tls = render("helm3", "strimzi-tls-user-values")
    for deployment in by_kind(tls, "Deployment"):
        component = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        volumes = deployment["spec"]["template"]["spec"]["volumes"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in volumes if "secret" in v}
        assert secrets["kafka-user"] == one(tls, "KafkaUser", f"-{component}")["metadata"]["name"]


def test_external_kafka_gives_a_role_its_own_credentials_over_the_shared_ones(
    tmp_path: Path,
) -> None:
    own = tmp_path / "roles.yaml"
    own.write_text(
        "kafka:\n  external:\n    roles:\n      engine:\n"
        "        username: dynpricing-engine\n        existingSecret: dynpricing-kafka-engine\n"
    )
    manifests = render_release("dp", scenario_file("external-kafka-values"), own)
    engine, producer = env_of(manifests, "engine"), env_of(manifests, "producer")
    assert engine["DYNPRICING_ENGINE_KAFKA__SASL_USERNAME"] == "dynpricing-engine"
    assert engine["DYNPRICING_ENGINE_KAFKA__SASL_PASSWORD"]["secretKeyRef"] == {
        "name": "dynpricing-kafka-engine",
        "key": "password",
    }
    assert producer["DYNPRICING_PRODUCER_KAFKA__SASL_USERNAME"] == "dynpricing"
    assert producer["DYNPRICING_PRODUCER_KAFKA__SASL_PASSWORD"]["secretKeyRef"] == {
        "name": "dynpricing-kafka",
        "key": "password",
    }


def test_the_engine_still_names_its_recovery_group_as_the_table_does() -> None:
    """The table grants "<GROUP_ID>-recovery"; the live secured test proves it is enough."""
    sources = "".join(
        p.read_text(encoding="utf-8") for p in (REPO / "services" / "dynpricing").rglob("*.py")
    )
    assert f'.group_id}}{RECOVERY_GROUP_SUFFIX}"' in sources
