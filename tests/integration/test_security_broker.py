"""The secured local broker refuses what the table does not allow, and says why.

Each secured mode runs one broker for the session (``secured_kafka``). Clients
here are plain librdkafka clients with the services' :class:`KafkaWatch`, so
these tests pin down the broker's behaviour and the classifier's reading of it;
tests/integration/test_security_services.py runs the real services.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from pydantic import SecretStr

from dynpricing import broker, kafka_errors
from dynpricing.kafka_errors import KafkaRefusedError, KafkaWatch, Refusal
from dynpricing.security import certs, local, provision
from dynpricing.security.permissions import Names, flatten, roles
from dynpricing.settings import KafkaSettings, librdkafka_config
from tests.kafka_support import unique, wait_until
from tests.security_support import SecuredBroker, rendered_acls, users_by_role

pytestmark = [pytest.mark.kafka]
MODES = ["sasl-scram", "mtls"]
REFUSAL_DEADLINE_S = 30.0


@pytest.fixture(params=MODES)
def secured(request: pytest.FixtureRequest, secured_kafka: Callable[[str], Any]) -> SecuredBroker:
    result: SecuredBroker = secured_kafka(request.param)
    return result


@pytest.fixture
def names(secured: SecuredBroker) -> Names:
    """Fresh topics and groups with every role's ACLs on them."""
    given = Names(
        demand=secured.make_topic("demand"),
        decisions=secured.make_topic("decisions"),
        outcomes=secured.make_topic("outcomes"),
        dead_letters=secured.make_topic("dead"),
        model=secured.make_topic("model"),
        engine_group=unique("engine"),
        simulator_group=unique("simulator"),
        decider_group=unique("decider"),
        learner_group=unique("learner"),
    )
    secured.grant(given)
    return given


def _produce_until_refused(settings: KafkaSettings, topic: str) -> Refusal:
    """Produce one message the way the services do and return the refusal the watch saw."""
    watch = KafkaWatch(settings)
    producer = Producer(
        {**librdkafka_config(settings), **watch.callbacks(), "enable.idempotence": True}
    )
    failed: list[KafkaError] = []
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: failed.append(err))

    def refused() -> Refusal | None:
        try:
            producer.poll(0.2)
        except KafkaRefusedError as exc:
            return exc.refusal
        if failed and failed[0] is not None:
            return kafka_errors.classify(failed[0], settings, operation="Write", topic=topic)
        return None

    return wait_until(refused, deadline_s=REFUSAL_DEADLINE_S, what="the broker's refusal")


def _consume_until_refused(settings: KafkaSettings, topic: str, group: str) -> Refusal:
    watch = KafkaWatch(settings)
    consumer = Consumer(
        {
            **librdkafka_config(settings),
            **watch.callbacks(),
            "group.id": group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])

    def refused() -> Refusal | None:
        try:
            msg = consumer.poll(0.2)
        except KafkaRefusedError as exc:
            return exc.refusal
        if msg is None or msg.error() is None:
            return None
        return kafka_errors.classify(msg.error(), settings, operation="Read", group=group)

    try:
        return wait_until(refused, deadline_s=REFUSAL_DEADLINE_S, what="the broker's refusal")
    finally:
        consumer.close()


def test_kafka_up_enforces_exactly_the_tables_acls_for_every_role(secured: SecuredBroker) -> None:
    configured = broker.configured_names()
    defaults = set(vars(configured).values()) | {configured.engine_group + "-recovery"}
    for role in roles(configured):
        enforced = provision.enforced_acls(secured.admin, local.principal_name(role.name))
        on_defaults = {acl for acl in enforced if acl.name in defaults}  # tests add their own
        assert on_defaults == flatten(role.grants), role.name


@pytest.mark.tools
def test_the_charts_users_carry_exactly_the_acls_the_local_broker_enforces(
    secured: SecuredBroker,
) -> None:
    """Chart (helm template, default values) and broker (kafka up, default settings)."""
    from tests.deploy.support import render  # noqa: PLC0415 - needs helm, only here

    scenario = "full-values" if secured.mode == "sasl-scram" else "strimzi-tls-user-values"
    users = users_by_role(render("helm3", scenario))
    assert users
    configured = broker.configured_names()
    defaults = set(vars(configured).values()) | {configured.engine_group + "-recovery"}
    for role_name, user in users.items():
        enforced = provision.enforced_acls(secured.admin, local.principal_name(role_name))
        assert rendered_acls(user) == {acl for acl in enforced if acl.name in defaults}


def test_each_role_does_its_job_with_exactly_its_env_file(
    secured: SecuredBroker, names: Names
) -> None:
    secured.produce_as("producer", names.demand, [b"a", b"b"])
    secured.produce_as("engine", names.decisions, [b"d"])
    secured.produce_as("simulator", names.outcomes, [b"o"])
    assert sum(secured.end_offsets(names.demand).values()) == 2
    consumer = Consumer(
        secured.conf(
            "simulator", **{"group.id": names.simulator_group, "auto.offset.reset": "earliest"}
        )
    )
    consumer.subscribe([names.decisions])
    try:
        msg = wait_until(lambda: consumer.poll(0.5), what="a decision read as the simulator")
        assert msg.error() is None, msg.error()
        assert msg.value() == b"d"
        consumer.commit(msg, asynchronous=False)
    finally:
        consumer.close()


def test_a_wrong_password_is_refused_and_nothing_is_written(
    secured_kafka: Callable[[str], Any], tmp_path: Path
) -> None:
    secured: SecuredBroker = secured_kafka("sasl-scram")
    topic = secured.make_topic("demand")
    settings = secured.settings("producer").model_copy(
        update={"sasl_password": SecretStr("not-the-password")}
    )
    refusal = _produce_until_refused(settings, topic)
    assert refusal.cause == "authentication"
    assert refusal.message == (
        "wrong user name or password: user 'dynpricing-producer' could not authenticate "
        "with SCRAM-SHA-512"
    )
    assert secured.end_offsets(topic) == {0: 0}


def test_a_client_without_tls_on_the_tls_listener_is_refused(secured: SecuredBroker) -> None:
    topic = secured.make_topic("demand")
    settings = KafkaSettings(bootstrap_servers=secured.bootstrap, security_protocol="PLAINTEXT")
    refusal = _produce_until_refused(settings, topic)
    assert refusal.cause == "protocol"
    assert "security.protocol is PLAINTEXT but the listener expects TLS" in refusal.message
    assert secured.end_offsets(topic) == {0: 0}


def test_a_client_that_does_not_trust_the_brokers_ca_says_unknown_ca(
    secured: SecuredBroker, tmp_path: Path
) -> None:
    other = certs.write_ca(certs.new_authority("another CA"), tmp_path / "other-ca.crt")
    settings = secured.settings("producer").model_copy(update={"ssl_ca_location": str(other)})
    refusal = _produce_until_refused(settings, secured.make_topic("demand"))
    assert refusal.cause == "tls"
    assert refusal.message.startswith(
        f"unknown CA: the broker's certificate is not signed by a CA in {other}"
    )


def _mtls_with(secured: SecuredBroker, files: certs.CertFiles) -> KafkaSettings:
    return secured.settings("producer").model_copy(
        update={
            "ssl_certificate_location": str(files.cert),
            "ssl_key_location": str(files.key),
        }
    )


def test_a_certificate_from_another_ca_is_refused(
    secured_kafka: Callable[[str], Any], tmp_path: Path
) -> None:
    secured: SecuredBroker = secured_kafka("mtls")
    topic = secured.make_topic("demand")
    foreign = certs.new_authority("another CA")
    files = certs.write_issued(foreign, "dynpricing-producer", tmp_path, "foreign")
    refusal = _produce_until_refused(_mtls_with(secured, files), topic)
    assert refusal.cause == "tls"
    assert f"the broker rejected the client certificate {files.cert}" in refusal.message
    assert "not signed by a CA the broker trusts" in refusal.message
    assert secured.end_offsets(topic) == {0: 0}


def test_an_expired_certificate_is_refused_by_the_broker_and_named_by_preflight(
    secured_kafka: Callable[[str], Any], tmp_path: Path
) -> None:
    secured: SecuredBroker = secured_kafka("mtls")
    topic = secured.make_topic("demand")
    ca = certs.load_authority(secured.layout.files.ca_cert, secured.layout.files.ca_key)
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    files = certs.write_issued(ca, "dynpricing-producer", tmp_path, "expired", not_after=ended)
    settings = _mtls_with(secured, files)
    refusal = _produce_until_refused(settings, topic)
    assert refusal.cause == "tls"
    assert "TLS alert 46 'certificate unknown'" in refusal.message
    early = kafka_errors.preflight(settings)
    assert early is not None
    assert "(CN=dynpricing-producer) expired at" in early.message
    assert secured.end_offsets(topic) == {0: 0}


def test_an_anonymous_client_is_refused(secured: SecuredBroker, names: Names) -> None:
    anonymous = KafkaSettings(
        bootstrap_servers=secured.bootstrap,
        security_protocol="SSL",
        ssl_ca_location=str(secured.layout.files.client_ca),
    )
    refusal = _produce_until_refused(anonymous, names.demand)
    if secured.mode == "mtls":
        assert refusal.cause == "tls"
        assert "(no client certificate configured)" in refusal.message
    else:
        assert refusal.cause == "protocol"
        assert "the listener expects SASL" in refusal.message
    assert secured.end_offsets(names.demand) == {0: 0}


def test_the_producers_principal_may_not_write_decisions(
    secured: SecuredBroker, names: Names
) -> None:
    refusal = _produce_until_refused(secured.settings("producer"), names.decisions)
    assert refusal.message == (
        f"ACL denied: this principal may not Write on topic '{names.decisions}' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    )
    assert secured.end_offsets(names.decisions) == {0: 0}


def test_the_simulators_principal_may_not_read_demand(secured: SecuredBroker, names: Names) -> None:
    secured.produce_as("producer", names.demand, [b"secret demand"])
    refusal = _consume_until_refused(
        secured.settings("simulator"), names.demand, names.simulator_group
    )
    assert refusal.message == (
        f"ACL denied: this principal may not Read on topic '{names.demand}' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    )


@pytest.mark.parametrize(
    ("role", "other_group"), [("simulator", "engine_group"), ("engine", "simulator_group")]
)
def test_no_principal_may_use_another_roles_consumer_group(
    secured: SecuredBroker, names: Names, role: str, other_group: str
) -> None:
    group = getattr(names, other_group)
    refusal = _consume_until_refused(secured.settings(role), names.decisions, group)
    assert refusal.message == (
        f"ACL denied: this principal may not Read on group '{group}' (GROUP_AUTHORIZATION_FAILED)"
    )
