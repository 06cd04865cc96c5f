"""The one definition of what each role of the platform may do on Kafka.

Every component runs as its own principal and gets exactly the operations its
code performs, nothing more. From :func:`roles` come both the local broker's
ACLs (:func:`acl_bindings`, applied by ``dynpricing kafka up --security ...``)
and the Helm chart's KafkaUser ACLs (``dynpricing permissions --format chart``
writes them to the chart's data file, which a test compares with this table),
so the two cannot drift apart.

What the code needs, and why (Kafka 4 semantics):

- Reading a topic is ``Read``; metadata and watermark (ListOffsets) requests
  need ``Describe``, which Kafka already implies from ``Read`` or ``Write``. It
  is listed anyway, so the table says what the code calls.
- A consumer group: ``Read`` to join it and commit offsets, ``Describe`` to
  fetch committed offsets (implied by ``Read``, listed for the same reason).
  A consumer with a ``group.id`` looks up the group's coordinator even when it
  only assigns partitions and never commits; that needs ``Describe`` alone.
- Idempotent producers need no cluster ``IdempotentWrite`` since Kafka 3.0
  (KIP-679): ``Write`` on a topic is enough.
- No role creates topics: the operator (``kafka up``, Strimzi KafkaTopics, or
  whoever runs the shared cluster) does. No role uses transactions, so there
  are no transactional ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Literal

from dynpricing.settings import TopicSettings

ResourceType = Literal["topic", "group", "transactionalId", "cluster"]
Operation = Literal["Read", "Write", "Describe"]

READ: tuple[Operation, ...] = ("Describe", "Read")
WRITE: tuple[Operation, ...] = ("Describe", "Write")
READ_WRITE: tuple[Operation, ...] = ("Describe", "Read", "Write")
GROUP: tuple[Operation, ...] = ("Describe", "Read")
FIND_GROUP: tuple[Operation, ...] = ("Describe",)  # a group.id only for FindCoordinator
RECOVERY_GROUP_SUFFIX = "-recovery"  # the engine's reader of its own published decisions


@dataclass(frozen=True)
class Grant:
    """Operations allowed on one literally named resource."""

    resource: ResourceType
    name: str
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Role:
    """One principal: which service runs as it and what it may do."""

    name: str
    grants: tuple[Grant, ...]

    @property
    def env_prefix(self) -> str:
        """The settings prefix of the service that runs as this role."""
        return f"DYNPRICING_{self.name.upper()}_"


@dataclass(frozen=True)
class Names:
    """The topic and group names the table is written in terms of.

    They come from the services' settings (:meth:`from_settings`). The chart
    builds the table from placeholders (:meth:`placeholders`) and fills in its
    own values, so names are configured once, in one place, on each side.
    """

    demand: str = "demand_events"
    decisions: str = "pricing_decisions"
    outcomes: str = "pricing_outcomes"
    dead_letters: str = "pricing_dead_letters"
    model: str = "pricing_model"  # issue #12: the learner's compacted model topic
    engine_group: str = "dynpricing-engine"
    simulator_group: str = "dynpricing-simulator"
    decider_group: str = "dynpricing-decider"
    learner_group: str = "dynpricing-learner"

    @classmethod
    def from_settings(
        cls, topics: TopicSettings, engine_group: str, simulator_group: str, **more: str
    ) -> Names:
        return cls(
            demand=topics.demand,
            decisions=topics.decisions,
            outcomes=topics.outcomes,
            dead_letters=topics.dead_letters,
            engine_group=engine_group,
            simulator_group=simulator_group,
            **more,
        )

    @classmethod
    def placeholders(cls) -> Names:
        """Every name as ``${field}``, for a renderer that substitutes its own values."""
        return cls(**{f.name: "${" + f.name + "}" for f in fields(cls)})


def _topic(name: str, operations: tuple[Operation, ...]) -> Grant:
    return Grant("topic", name, operations)


def _group(name: str, operations: tuple[Operation, ...] = GROUP) -> Grant:
    return Grant("group", name, operations)


def roles(names: Names) -> tuple[Role, ...]:
    """Every role of the platform with its grants, in a stable order."""
    n = names
    return (
        Role(
            "engine",  # embedded decider + learner (dynpricing engine)
            (
                _topic(n.demand, READ),
                _topic(n.outcomes, READ),
                _topic(n.decisions, READ_WRITE),  # writes decisions, re-reads them to recover
                _topic(n.dead_letters, WRITE),
                _group(n.engine_group),
                # The recovery reader assigns partitions and never commits, but
                # librdkafka still looks up its group's coordinator: Describe.
                _group(n.engine_group + RECOVERY_GROUP_SUFFIX, FIND_GROUP),
            ),
        ),
        Role(
            "decider",
            (
                _topic(n.demand, READ),
                _topic(n.model, READ),
                _topic(n.decisions, WRITE),
                _topic(n.dead_letters, WRITE),
                _group(n.decider_group),
            ),
        ),
        Role(
            "learner",
            (
                _topic(n.decisions, READ),
                _topic(n.outcomes, READ),
                _topic(n.model, WRITE),
                _topic(n.dead_letters, WRITE),
                _group(n.learner_group),
            ),
        ),
        Role("producer", (_topic(n.demand, WRITE),)),
        Role(
            "simulator",
            (
                _topic(n.decisions, READ),
                _topic(n.outcomes, WRITE),
                _topic(n.dead_letters, WRITE),
                _group(n.simulator_group),
            ),
        ),
    )


ROLE_NAMES = tuple(role.name for role in roles(Names()))


def role(names: Names, name: str) -> Role:
    """One role by name; ``KeyError`` names the roles that exist."""
    for candidate in roles(names):
        if candidate.name == name:
            return candidate
    raise KeyError(f"no role {name!r}; roles are {', '.join(ROLE_NAMES)}")


@dataclass(frozen=True, order=True)
class Acl:
    """One allowed (resource, operation) pair: the unit both Kafka and Strimzi count in."""

    resource: str
    name: str
    operation: str


def flatten(grants: Iterable[Grant]) -> frozenset[Acl]:
    """The grants as single ACLs, for comparing any two renderings of the table."""
    return frozenset(Acl(g.resource, g.name, op) for g in grants for op in g.operations)


def strimzi_acls(role: Role) -> list[dict[str, object]]:
    """The role's grants as Strimzi ``KafkaUser.spec.authorization.acls`` entries."""
    return [
        {
            "resource": {"type": g.resource, "name": g.name, "patternType": "literal"},
            "operations": list(g.operations),
        }
        for g in role.grants
    ]


CHART_HEADER = """\
# Generated by `dynpricing permissions --format chart` from the table in
# services/dynpricing/security/permissions.py; do not edit by hand (a test
# compares the two). ${...} names are filled in from the chart's values.
"""


def chart_yaml() -> str:
    """The table with ``${field}`` names, as the chart's KafkaUser template reads it."""
    lines = [CHART_HEADER.rstrip("\n"), "roles:"]
    for r in roles(Names.placeholders()):
        lines.append(f"  {r.name}:")
        for g in r.grants:
            resource = f'type: {g.resource}, name: "{g.name}", patternType: literal'
            lines.append(f"    - resource: {{{resource}}}")
            lines.append(f"      operations: [{', '.join(g.operations)}]")
    return "\n".join(lines) + "\n"
