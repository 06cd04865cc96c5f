"""The real services on the secured broker, each as its own role with exactly its env file.

The whole loop runs under SASL_SSL/SCRAM and under mutual TLS; then each way of
getting credentials or permissions wrong is tried on a real service process:
it must exit with code 4 and one error line naming the cause, never hang or
retry forever, never become ready, never print a secret, and write nothing.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dynpricing.kafka_errors import EXIT_KAFKA_REFUSED
from dynpricing.security import certs, local
from dynpricing.security.permissions import Names
from tests.integration.services_support import Service, ServiceRunner, Topics, engine_settings
from tests.kafka_support import unique, wait_until
from tests.security_support import SecuredBroker

pytestmark = [pytest.mark.kafka]
MODES = ["sasl-scram", "mtls"]
EVENTS = 4_000
RATE = 1_000
EXIT_DEADLINE_S = 60.0


class SecuredRunner(ServiceRunner):
    """Services on the secured broker: fresh topics and groups, every role's ACLs on them,
    and each service started with exactly its role's env file from ``kafka up``."""

    def __init__(self, secured: SecuredBroker, workdir: Path) -> None:
        topics = Topics.create(secured.make_topic, 3)
        super().__init__(secured.bootstrap, topics, workdir)
        self.secured = secured
        self.names = Names(
            demand=topics.demand,
            decisions=topics.decisions,
            outcomes=topics.outcomes,
            dead_letters=topics.dead_letters,
            engine_group=unique("engine"),
            simulator_group=unique("simulator"),
        )
        secured.grant(self.names)

    def start_as(self, name: str, *, anonymous: bool = False, **settings: object) -> Service:
        """Start service ``name`` with exactly its role's env file (``settings`` override it);
        ``anonymous``: TLS to the broker, no user and no certificate."""
        prefix = local.env_prefix(name) + "KAFKA__"
        own: dict[str, object] = {
            f"kafka__{key[len(prefix) :].lower()}": value
            for key, value in self.secured.role_env(name).items()
        }
        if anonymous:
            keep = ("kafka__bootstrap_servers", "kafka__ssl_ca_location")
            own = {k: v for k, v in own.items() if k in keep}
            own["kafka__security_protocol"] = "SSL"
        groups = {"engine": self.names.engine_group, "simulator": self.names.simulator_group}
        if name in groups:
            own["group_id"] = groups[name]
        return self.start(name, **{**own, **settings})


def _runner(secured: SecuredBroker, workdir: Path) -> Iterator[SecuredRunner]:
    services = SecuredRunner(secured, workdir)
    yield services
    services.stop_all()


@pytest.fixture(params=MODES)
def secured_runner(
    request: pytest.FixtureRequest, secured_kafka: Callable[[str], Any], tmp_path: Path
) -> Iterator[SecuredRunner]:
    yield from _runner(secured_kafka(request.param), tmp_path)


@pytest.fixture
def scram_runner(secured_kafka: Callable[[str], Any], tmp_path: Path) -> Iterator[SecuredRunner]:
    yield from _runner(secured_kafka("sasl-scram"), tmp_path)


@pytest.fixture
def mtls_runner(secured_kafka: Callable[[str], Any], tmp_path: Path) -> Iterator[SecuredRunner]:
    yield from _runner(secured_kafka("mtls"), tmp_path)


def _secrets(secured: SecuredBroker, role: str) -> list[str]:
    """The role's password, or the body lines of its private key (mtls)."""
    settings = secured.settings(role)
    if settings.sasl_password is not None:
        return [settings.sasl_password.get_secret_value()]
    assert settings.ssl_key_location is not None
    pem = Path(settings.ssl_key_location).read_text()
    return [line for line in pem.splitlines() if not line.startswith("-----")]


def test_the_whole_loop_learns_every_outcome_once_each_service_as_its_own_role(
    secured_runner: SecuredRunner, tmp_path: Path
) -> None:
    runner = secured_runner
    engine = runner.start_as(
        "engine", **engine_settings(tmp_path, group_id=runner.names.engine_group)
    )
    simulator = runner.start_as("simulator", seed=3)
    engine.wait_ready()
    simulator.wait_ready()
    producer = runner.start_as("producer", count=EVENTS, rate=RATE, seed=9)

    def some_learnt() -> int | None:
        learnt = int(engine.state()["total_outcomes"])
        return learnt if learnt > EVENTS // 4 else None

    wait_until(some_learnt, deadline_s=60, what="outcomes learnt before the crash")
    engine.kill()  # the restart re-reads its published decisions under <group>-recovery
    engine = runner.restart(engine)
    engine.wait_ready()
    assert producer.proc.wait(60) == 0

    def all_learnt() -> dict[str, Any] | None:
        state = engine.state()
        return state if state["total_outcomes"] >= EVENTS else None

    state = wait_until(all_learnt, deadline_s=120, what=f"{EVENTS} outcomes learnt")
    assert state["total_outcomes"] == EVENTS
    secured = runner.secured
    decisions = [json.loads(v or b"") for v in secured.read_all(runner.topics.decisions)]
    assert len({d["decision_id"] for d in decisions}) == len(decisions) == EVENTS
    assert secured.end_offsets(runner.topics.dead_letters) == {0: 0}
    view = json.dumps(engine.state())
    assert engine.terminate() == 0
    logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*.log"))
    for role in ("engine", "producer", "simulator", "admin"):
        for secret in _secrets(secured, role):
            assert secret not in logs
            assert secret not in view


def _refused(service: Service) -> str:
    """Wait for the service to exit, checking it never became ready; its log."""

    def exited() -> int | None:
        if service.alive():
            # not serving HTTP (yet), or cut off mid-answer by the exit
            with contextlib.suppress(OSError, http.client.HTTPException):
                assert service.get("/readyz")[0] != 200, f"{service.name} became ready"
            return None
        return service.proc.returncode

    code = wait_until(exited, deadline_s=EXIT_DEADLINE_S, what=f"{service.name} to give up")
    log = service.log_path.read_text(errors="replace")
    assert code == EXIT_KAFKA_REFUSED, log
    return log


def _reason(service: Service) -> str:
    """The one error line the operator sees (the log is JSON lines), after the exit."""
    log = _refused(service)
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    errors = [line for line in lines if line.get("level") == "error"]
    assert len(errors) == 1, log
    assert errors[0]["event"] == "kafka_refused", errors
    reason: str = errors[0]["reason"]
    return reason


def _nothing_in(runner: SecuredRunner, *topics: str) -> None:
    for topic in topics:
        assert set(runner.secured.end_offsets(topic).values()) == {0}, topic


def test_a_wrong_password_stops_the_service_with_one_line_and_no_secret(
    scram_runner: SecuredRunner,
) -> None:
    wrong = "wrong-" + unique("pw")
    service = scram_runner.start_as(
        "producer", kafka__sasl_password=wrong, log_level="debug", count=10
    )
    assert _reason(service) == (
        "wrong user name or password: user 'dynpricing-producer' could not authenticate "
        "with SCRAM-SHA-512"
    )
    assert wrong not in service.log_path.read_text(errors="replace")
    _nothing_in(scram_runner, scram_runner.topics.demand)


def test_a_service_without_tls_on_the_tls_listener_stops_and_says_so(
    secured_runner: SecuredRunner,
) -> None:
    service = secured_runner.start_as("simulator", kafka__security_protocol="PLAINTEXT")
    assert "security.protocol is PLAINTEXT but the listener expects TLS" in _reason(service)
    _nothing_in(secured_runner, secured_runner.topics.outcomes)


def test_a_service_that_does_not_trust_the_brokers_ca_says_unknown_ca(
    secured_runner: SecuredRunner, tmp_path: Path
) -> None:
    other = certs.write_ca(certs.new_authority("another CA"), tmp_path / "other-ca.crt")
    service = secured_runner.start_as("engine", kafka__ssl_ca_location=str(other))
    expected = f"unknown CA: the broker's certificate is not signed by a CA in {other}"
    assert _reason(service).startswith(expected)
    _nothing_in(secured_runner, secured_runner.topics.decisions)


def test_an_anonymous_service_is_refused(secured_runner: SecuredRunner) -> None:
    service = secured_runner.start_as("producer", anonymous=True, count=10)
    reason = _reason(service)
    if secured_runner.secured.mode == "mtls":
        assert "rejected the client certificate (no client certificate configured)" in reason
    else:
        assert "the listener expects SASL" in reason
    _nothing_in(secured_runner, secured_runner.topics.demand)


def test_a_certificate_from_another_ca_is_refused(
    mtls_runner: SecuredRunner, tmp_path: Path
) -> None:
    other = certs.new_authority("another CA")
    files = certs.write_issued(other, "dynpricing-engine", tmp_path, "foreign")
    service = mtls_runner.start_as(
        "engine", kafka__ssl_certificate_location=files.cert, kafka__ssl_key_location=files.key
    )
    reason = _reason(service)
    assert reason.startswith(f"the broker rejected the client certificate {files.cert}")
    assert "not signed by a CA the broker trusts" in reason
    _nothing_in(mtls_runner, mtls_runner.topics.decisions)


def test_an_expired_certificate_is_named_before_connecting(
    mtls_runner: SecuredRunner, tmp_path: Path
) -> None:
    files = mtls_runner.secured.layout.files
    ca = certs.load_authority(files.ca_cert, files.ca_key)
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    own = certs.write_issued(ca, "dynpricing-producer", tmp_path, "old", not_after=ended)
    service = mtls_runner.start_as(
        "producer", kafka__ssl_certificate_location=own.cert, kafka__ssl_key_location=own.key
    )
    pattern = rf"the client certificate {own.cert} \(CN=dynpricing-producer\) expired at .* UTC"
    assert re.fullmatch(pattern, _reason(service))
    _nothing_in(mtls_runner, mtls_runner.topics.demand)


def test_the_producers_principal_may_not_touch_the_decisions_topic(
    secured_runner: SecuredRunner,
) -> None:
    decisions = secured_runner.topics.decisions
    service = secured_runner.start_as("producer", topics__demand=decisions, count=10)
    assert _reason(service) == (
        f"ACL denied: this principal may not Describe on topic '{decisions}' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    )
    _nothing_in(secured_runner, decisions)


def test_the_simulators_principal_may_not_read_demand(secured_runner: SecuredRunner) -> None:
    demand = secured_runner.topics.demand
    secured_runner.secured.produce_as("producer", demand, [b"{}"])
    service = secured_runner.start_as("simulator", topics__decisions=demand)
    assert _reason(service) == (
        f"ACL denied: this principal may not Describe on topic '{demand}' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    )
    _nothing_in(secured_runner, secured_runner.topics.outcomes)


GROUP_CASES = {
    # service: (another role's group it tries, the operation refused, the topic it writes)
    "simulator": ("engine_group", "Describe", "outcomes"),  # assigns, only finds the group
    "engine": ("simulator_group", "Describe", "decisions"),  # assigns, only finds the group
}


@pytest.mark.parametrize("name", sorted(GROUP_CASES))
def test_a_service_may_not_use_another_roles_consumer_group(
    secured_runner: SecuredRunner, tmp_path: Path, name: str
) -> None:
    other, operation, written = GROUP_CASES[name]
    group = getattr(secured_runner.names, other)
    settings = engine_settings(tmp_path) if name == "engine" else {}
    service = secured_runner.start_as(name, **{**settings, "group_id": group})
    assert _reason(service) == (
        f"ACL denied: this principal may not {operation} on group '{group}' "
        "(GROUP_AUTHORIZATION_FAILED)"
    )
    _nothing_in(secured_runner, getattr(secured_runner.topics, written))
