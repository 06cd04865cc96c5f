"""Apply the permission table to a live broker: SCRAM users and ACLs, as the super user.

Used by ``dynpricing kafka up --security ...`` for the configured names, and by
tests for the uniquely named topics and groups they create. Both create and
then wait until the broker itself reports the new users and ACLs (the broker
answers describe requests from its own copy of the metadata), so a client
started afterwards is never refused by a permission still on its way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from dynpricing.security.permissions import Acl, Role, flatten

REQUEST_TIMEOUT_S = 30.0
VISIBLE_DEADLINE_S = 30.0
VISIBLE_POLL_S = 0.1
SCRAM_ITERATIONS = 8192
ANY_HOST = "*"

_RESOURCE = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "transactionalId": ResourceType.TRANSACTIONAL_ID,
    "cluster": ResourceType.BROKER,
}
_OPERATION = {
    "Read": AclOperation.READ,
    "Write": AclOperation.WRITE,
    "Describe": AclOperation.DESCRIBE,
    "IdempotentWrite": AclOperation.IDEMPOTENT_WRITE,
}


class ProvisionError(RuntimeError):
    """Users or ACLs could not be created, or did not become visible in time."""


def acl_bindings(role: Role, principal: str) -> list[AclBinding]:
    """The role's grants as Kafka ACL bindings for ``User:<principal>``, any host."""
    return [
        AclBinding(
            _RESOURCE[acl.resource],
            acl.name,
            ResourcePatternType.LITERAL,
            f"User:{principal}",
            ANY_HOST,
            _OPERATION[acl.operation],
            AclPermissionType.ALLOW,
        )
        for acl in sorted(flatten(role.grants))
    ]


def enforced_acls(admin: AdminClient, principal: str) -> frozenset[Acl]:
    """The ALLOW ACLs the broker holds for ``User:<principal>``, in the table's terms."""
    names = {v: k for k, v in _RESOURCE.items()}
    ops = {v: k for k, v in _OPERATION.items()}
    query = AclBindingFilter(
        ResourceType.ANY,
        None,  # type: ignore[arg-type] # None matches any name (the stubs say str)
        ResourcePatternType.ANY,
        f"User:{principal}",
        None,  # type: ignore[arg-type] # any host
        AclOperation.ANY,
        AclPermissionType.ANY,
    )
    found = admin.describe_acls(query, request_timeout=REQUEST_TIMEOUT_S).result()
    return frozenset(
        Acl(names[b.restype], b.name, ops[b.operation])
        for b in found
        if b.permission_type == AclPermissionType.ALLOW
    )


def _wait(what: str, done: Callable[[], bool]) -> None:
    end = time.monotonic() + VISIBLE_DEADLINE_S
    while not done():
        if time.monotonic() > end:
            raise ProvisionError(f"{what} not visible on the broker after {VISIBLE_DEADLINE_S}s")
        time.sleep(VISIBLE_POLL_S)


def grant(admin: AdminClient, principals: Mapping[str, Role]) -> None:
    """Create every role's ACLs (principal -> role) and wait until the broker has them."""
    bindings = [b for p, role in principals.items() for b in acl_bindings(role, p)]
    for binding, future in admin.create_acls(bindings, request_timeout=REQUEST_TIMEOUT_S).items():
        try:
            future.result()
        except Exception as exc:
            raise ProvisionError(f"creating ACL {binding} failed: {exc}") from exc
    for principal, role in principals.items():
        _wait(f"ACLs of {principal}", _holds(admin, principal, flatten(role.grants)))


def _holds(admin: AdminClient, principal: str, wanted: frozenset[Acl]) -> Callable[[], bool]:
    return lambda: wanted <= enforced_acls(admin, principal)


def create_scram_users(admin: AdminClient, passwords: Mapping[str, str]) -> None:
    """Create (or reset) SCRAM-SHA-512 users; wait until the broker knows each one."""
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upserts: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(user, info, password.encode())
        for user, password in passwords.items()
    ]
    futures = admin.alter_user_scram_credentials(upserts, request_timeout=REQUEST_TIMEOUT_S)
    for user, future in futures.items():
        try:
            future.result()
        except Exception as exc:
            raise ProvisionError(f"creating SCRAM user {user} failed: {exc}") from exc
    _wait("SCRAM users", lambda: _known_users(admin, passwords) == set(passwords))


def _known_users(admin: AdminClient, users: Iterable[str]) -> set[str]:
    futures = admin.describe_user_scram_credentials(list(users), request_timeout=REQUEST_TIMEOUT_S)
    assert isinstance(futures, dict)  # one future per user when users are named
    known = set()
    for user, future in futures.items():
        try:
            if future.result().scram_credential_infos:
                known.add(user)
        except Exception:  # noqa: S112 - RESOURCE_NOT_FOUND until the user exists
            continue
    return known
