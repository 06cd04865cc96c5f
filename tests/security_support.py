"""Test support for the secured local brokers: per-role clients, topics and ACLs on them."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from dynpricing import broker
from dynpricing.security import local, provision
from dynpricing.security.local import SecurityMode
from dynpricing.security.permissions import Acl, Names, roles
from dynpricing.settings import KafkaSettings, librdkafka_config
from tests.kafka_support import free_port, start_broker, unique

ConfValue = str | int | float | bool
Manifest = dict[str, Any]


@dataclass
class SecuredBroker:
    """A local broker in a secured mode, and what a test needs to use it as each role."""

    layout: broker.BrokerLayout
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, mode: SecurityMode, data_dir: Path) -> SecuredBroker:
        layout = broker.BrokerLayout(port=free_port(), data_dir=data_dir, security=mode)
        return cls(layout, start_broker(layout))

    def stop(self) -> None:
        self.__dict__.pop("admin", None)  # closes the cached client before its broker goes
        broker.stop(self.layout, self.proc)

    @property
    def mode(self) -> SecurityMode:
        return self.layout.security

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    def settings(self, role: str) -> KafkaSettings:
        """The role's Kafka settings, read from the env file ``kafka up`` wrote for it."""
        return local.kafka_settings_from_env(self.layout.client_env(role), role)

    def role_env(self, role: str) -> dict[str, str]:
        """Exactly the role's env file: ``DYNPRICING_<ROLE>_KAFKA__*``."""
        return self.layout.client_env(role)

    def conf(self, role: str, **extra: ConfValue) -> dict[str, ConfValue]:
        return {**librdkafka_config(self.settings(role)), **extra}

    @cached_property
    def admin(self) -> AdminClient:
        """The super user's client, kept: a dropped client abandons its futures."""
        return AdminClient(self.layout.admin_config())

    def make_topic(self, prefix: str = "test", partitions: int = 1) -> str:
        name = unique(prefix)
        futures = self.admin.create_topics([NewTopic(name, partitions, 1)])
        futures[name].result(timeout=30)
        return name

    def grant(self, names: Names) -> None:
        """Every role's ACLs from the table, for these (test-unique) names."""
        principals = {local.principal_name(r.name): r for r in roles(names)}
        provision.grant(self.admin, principals)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermarks, read as the super user."""
        consumer = Consumer(self.conf(local.ADMIN_ROLE, **{"group.id": unique("admin-reader")}))
        try:
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            return {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            }
        finally:
            consumer.close()

    def read_all(self, topic: str) -> list[bytes | None]:
        """Every message's value in ``topic`` up to its current end, read as the super user."""
        ends = self.end_offsets(topic)
        consumer = Consumer(self.conf(local.ADMIN_ROLE, **{"group.id": unique("admin-reader")}))
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        values: list[bytes | None] = []
        try:
            while len(values) < sum(ends.values()):
                for msg in consumer.consume(1000, 1.0):
                    assert msg.error() is None, msg.error()
                    values.append(msg.value())
        finally:
            consumer.close()
        return values

    def produce_as(self, role: str, topic: str, values: list[bytes]) -> None:
        producer = Producer(self.conf(role, **{"enable.idempotence": True}))
        for value in values:
            producer.produce(topic, value)
        assert producer.flush(30) == 0


def rendered_acls(user: Manifest) -> frozenset[Acl]:
    """A KafkaUser's ACLs in the table's terms (one per resource and operation)."""
    return frozenset(
        Acl(acl["resource"]["type"], acl["resource"]["name"], op)
        for acl in user["spec"]["authorization"]["acls"]
        for op in acl["operations"]
        if acl["resource"].get("patternType", "literal") == "literal"
    )


def users_by_role(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        u["metadata"]["labels"]["app.kubernetes.io/component"]: u
        for u in manifests
        if u.get("kind") == "KafkaUser"
    }
