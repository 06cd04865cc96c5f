"""Security of the local broker: listeners, credentials, and each role's client settings.

Three modes (``dynpricing kafka up --security MODE``):

- ``plaintext``: no TLS, no authentication, no authorizer (the default).
- ``sasl-scram``: clients use SASL_SSL with SCRAM-SHA-512.
- ``mtls``: clients use SSL with a client certificate; the certificate's CN is
  the principal.

In both secured modes the controller listener is TLS with client certificates
too, so nothing on the node accepts an unauthenticated connection: the broker
reaches its own controller with its certificate (principal ``kafka-broker``).
KRaft's ``StandardAuthorizer`` runs with ``allow.everyone.if.no.acl.found=false``.
Two super users exist: ``kafka-broker`` (the broker's own principal, for
inter-broker and controller requests) and ``admin`` (for creating users, topics
and ACLs). No service runs as either; each role of
:mod:`dynpricing.security.permissions` gets its own principal
``dynpricing-<role>`` with exactly its ACLs.

Files, all under the broker's data directory:

- ``tls/``: the CA (certificate and key) and the broker's key store (PEM).
- ``clients/``: ``ca.crt``; per principal ``<role>.env`` (the service's
  ``DYNPRICING_<ROLE>_KAFKA__*`` settings, ``KEY=VALUE``) and, in ``mtls``,
  ``<role>.crt`` and ``<role>.key``; ``admin.env`` likewise for the super user.
  Files holding a password or key are readable by their owner only.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from dynpricing.security.permissions import ROLE_NAMES
from dynpricing.settings import KafkaSettings

SecurityMode = Literal["plaintext", "sasl-scram", "mtls"]
SECURITY_MODES: tuple[str, ...] = get_args(SecurityMode)
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 8192
BROKER_PRINCIPAL = "kafka-broker"
ADMIN_PRINCIPAL = "admin"
ADMIN_ROLE = "admin"  # the name of the super user's env file and settings prefix
ROLE_PRINCIPAL_PREFIX = "dynpricing-"
CA_NAME = "dynpricing local CA"
PASSWORD_BYTES = 24
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
# The certificate's subject "CN=name" becomes the principal "name".
PRINCIPAL_MAPPING = "RULE:^CN=([^,]+)$/$1/,DEFAULT"


def principal_name(role: str) -> str:
    """The Kafka user a role authenticates as (SCRAM user name or certificate CN)."""
    return ADMIN_PRINCIPAL if role == ADMIN_ROLE else ROLE_PRINCIPAL_PREFIX + role


def env_prefix(role: str) -> str:
    return f"DYNPRICING_{role.upper()}_"


@dataclass(frozen=True)
class SecurityFiles:
    """The paths of one broker's security material (see the module docstring)."""

    data: Path

    @property
    def tls(self) -> Path:
        return self.data / "tls"

    @property
    def clients(self) -> Path:
        return self.data / "clients"

    @property
    def ca_cert(self) -> Path:
        return self.tls / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.tls / "ca.key"

    @property
    def broker_store(self) -> Path:
        """The broker's key and certificate in one PEM file (Kafka's PEM key store)."""
        return self.tls / "broker.pem"

    @property
    def broker_password(self) -> Path:
        return self.tls / "broker.password"

    @property
    def client_ca(self) -> Path:
        return self.clients / "ca.crt"

    def env_file(self, role: str) -> Path:
        return self.clients / f"{role}.env"

    def client_cert(self, role: str) -> tuple[Path, Path]:
        """A role's certificate and key (``mtls``)."""
        return self.clients / f"{role}.crt", self.clients / f"{role}.key"


@dataclass(frozen=True)
class Secrets:
    """Passwords made for one broker (SCRAM only); kept in files, never logged."""

    broker: str
    roles: Mapping[str, str]  # role (and "admin") -> password


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (blank lines and ``#`` comments skipped)."""
    result: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            result[key.strip()] = value
    return result


def kafka_settings_from_env(env: Mapping[str, str], role: str) -> KafkaSettings:
    """The ``KafkaSettings`` a role's env file describes (for admin tools and tests)."""
    prefix = env_prefix(role) + "KAFKA__"
    values = {k[len(prefix) :].lower(): v for k, v in env.items() if k.startswith(prefix)}
    return KafkaSettings.model_validate(values)


def client_settings(
    mode: SecurityMode, files: SecurityFiles, bootstrap: str, role: str, password: str | None
) -> dict[str, str]:
    """A role's Kafka settings (the names after ``DYNPRICING_<ROLE>_KAFKA__``)."""
    settings = {"BOOTSTRAP_SERVERS": bootstrap}
    if mode == "plaintext":
        return {**settings, "SECURITY_PROTOCOL": "PLAINTEXT"}
    settings["SSL_CA_LOCATION"] = str(files.client_ca)
    if mode == "sasl-scram":
        if password is None:
            raise ValueError(f"no SCRAM password for {role}")
        return {
            **settings,
            "SECURITY_PROTOCOL": "SASL_SSL",
            "SASL_MECHANISM": SCRAM_MECHANISM,
            "SASL_USERNAME": principal_name(role),
            "SASL_PASSWORD": password,
        }
    cert, key = files.client_cert(role)
    return {
        **settings,
        "SECURITY_PROTOCOL": "SSL",
        "SSL_CERTIFICATE_LOCATION": str(cert),
        "SSL_KEY_LOCATION": str(key),
    }


def env_lines(role: str, settings: Mapping[str, str]) -> str:
    prefix = env_prefix(role) + "KAFKA__"
    return "".join(f"{prefix}{key}={value}\n" for key, value in settings.items())


def write_private(path: Path, data: bytes) -> Path:
    """Write a file only its owner can read (keys, and files that hold a password)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(data)
    return path


def make_material(mode: SecurityMode, files: SecurityFiles) -> Secrets:
    """Create the CA, certificates and passwords, or read back those made before.

    A restart with ``--keep-data`` keeps them, so clients' files stay valid.
    """
    if files.ca_cert.is_file() and files.broker_store.is_file():
        return _read_secrets(mode, files)
    from dynpricing.security import certs  # noqa: PLC0415 - only `kafka up` needs cryptography

    ca = certs.new_authority(CA_NAME)
    write_private(files.ca_key, certs.key_pem(ca.key))
    certs.write_ca(ca, files.ca_cert)
    certs.write_ca(ca, files.client_ca)
    cert, key = certs.issue(ca, BROKER_PRINCIPAL, server=True)
    write_private(files.broker_store, certs.key_pem(key) + certs.cert_pem(cert))
    everyone = (ADMIN_ROLE, *ROLE_NAMES)
    if mode == "mtls":
        for role in everyone:
            certs.write_issued(ca, principal_name(role), files.clients, role)
        return Secrets(broker="", roles={})
    passwords = {role: secrets.token_urlsafe(PASSWORD_BYTES) for role in everyone}
    broker = secrets.token_urlsafe(PASSWORD_BYTES)
    write_private(files.broker_password, broker.encode())
    return Secrets(broker=broker, roles=passwords)


def _read_secrets(mode: SecurityMode, files: SecurityFiles) -> Secrets:
    if mode != "sasl-scram":
        return Secrets(broker="", roles={})
    passwords = {}
    for role in (ADMIN_ROLE, *ROLE_NAMES):
        env = read_env_file(files.env_file(role))
        passwords[role] = env[env_prefix(role) + "KAFKA__SASL_PASSWORD"]
    broker = files.broker_password.read_text()
    return Secrets(broker=broker, roles=passwords)


def write_client_files(
    mode: SecurityMode, files: SecurityFiles, bootstrap: str, material: Secrets
) -> None:
    """One ``<role>.env`` per role and one for the super user, only the owner may read."""
    for role in (ADMIN_ROLE, *ROLE_NAMES):
        settings = client_settings(mode, files, bootstrap, role, material.roles.get(role))
        write_private(files.env_file(role), env_lines(role, settings).encode())


def _jaas(user: str, password: str) -> str:
    module = "org.apache.kafka.common.security.scram.ScramLoginModule"
    return f'{module} required username="{user}" password="{password}";'


def listener_properties(
    mode: SecurityMode, files: SecurityFiles, host: str, port: int, controller_port: int
) -> dict[str, str]:
    """The listener and authorizer part of ``server.properties`` for a secured mode."""
    client_protocol = "SASL_SSL" if mode == "sasl-scram" else "SSL"
    props = {
        "listeners": f"CLIENT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"CLIENT://{host}:{port}",
        "inter.broker.listener.name": "CLIENT",
        "listener.security.protocol.map": f"CLIENT:{client_protocol},CONTROLLER:SSL",
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(files.broker_store),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(files.ca_cert),
        "ssl.principal.mapping.rules": PRINCIPAL_MAPPING,
        "listener.name.controller.ssl.client.auth": "required",
        "authorizer.class.name": AUTHORIZER,
        "allow.everyone.if.no.acl.found": "false",
        "super.users": f"User:{BROKER_PRINCIPAL};User:{ADMIN_PRINCIPAL}",
    }
    if mode == "mtls":
        props["listener.name.client.ssl.client.auth"] = "required"
    return props


def scram_properties(secrets_: Secrets) -> dict[str, str]:
    """The broker authenticates to its own SASL listener as ``kafka-broker``."""
    return {
        "sasl.enabled.mechanisms": SCRAM_MECHANISM,
        "sasl.mechanism.inter.broker.protocol": SCRAM_MECHANISM,
        "listener.name.client.scram-sha-512.sasl.jaas.config": _jaas(
            BROKER_PRINCIPAL, secrets_.broker
        ),
    }


def format_arguments(mode: SecurityMode, material: Secrets) -> list[str]:
    """``kafka-storage format`` options: SCRAM credentials that must exist before start.

    The broker's own and the super user's; the roles' users are made later,
    through the admin API, like an operator would.
    """
    if mode != "sasl-scram":
        return []
    users = {BROKER_PRINCIPAL: material.broker, ADMIN_PRINCIPAL: material.roles[ADMIN_ROLE]}
    args = []
    for user, password in users.items():
        args += ["--add-scram", f"{SCRAM_MECHANISM}=[name={user},password={password}]"]
    return args


def describe_clients(mode: SecurityMode, files: SecurityFiles, bootstrap: str) -> str:
    """What ``kafka up`` prints: how clients connect, where each role's settings are.

    Passwords stay in the env files; this text names the files, never a secret.
    """
    if mode == "plaintext":
        return f"clients: KAFKA_BOOTSTRAP_SERVERS={bootstrap} (PLAINTEXT, no authentication)"
    example = client_settings(mode, files, bootstrap, "<role>", "<in the env file>")
    lines = [f"security: {mode}; client settings (DYNPRICING_<SERVICE>_KAFKA__*):"]
    lines += [f"  {key}={value}" for key, value in example.items()]
    lines.append(f"each role's settings, exactly: {files.clients}/<role>.env")
    lines += [
        f"  {role:<10} principal User:{principal_name(role)}  {files.env_file(role)}"
        for role in (*ROLE_NAMES, ADMIN_ROLE)
    ]
    lines.append(f"start a service as its role: set -a; . {files.env_file('engine')}; set +a")
    return "\n".join(lines)
