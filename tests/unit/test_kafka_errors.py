"""The classifier tells refusals (never retried) from transient errors, in one clear line.

The error texts are the ones librdkafka produced against the real secured broker
(tests/integration/test_security_errors.py checks the same against the live one).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, KafkaException
from pydantic import SecretStr

from dynpricing import kafka_errors
from dynpricing.kafka_errors import KafkaRefusedError, KafkaWatch, classify, mismatch, preflight
from dynpricing.security import certs
from dynpricing.settings import KafkaSettings

SCRAM = KafkaSettings(
    bootstrap_servers="127.0.0.1:1",
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="dynpricing-engine",
    sasl_password=SecretStr("s3cret-pw"),
    ssl_ca_location="/etc/kafka/ca.crt",
)
MTLS = KafkaSettings(
    bootstrap_servers="127.0.0.1:1",
    security_protocol="SSL",
    ssl_ca_location="/etc/kafka/ca.crt",
    ssl_certificate_location="/etc/kafka/user.crt",
    ssl_key_location="/etc/kafka/user.key",
)
PLAIN = KafkaSettings(bootstrap_servers="127.0.0.1:1")

BAD_CREDENTIALS = (
    "sasl_ssl://127.0.0.1:35839/bootstrap: SASL authentication error: Authentication failed "
    "during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512 "
    "(after 325ms in state AUTH_REQ)"
)
UNKNOWN_CA = (
    "ssl://127.0.0.1:58267/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified, verify that "
    "ssl.ca.location is correctly configured or root CA certificates are installed (install "
    "ca-certificates package) (after 11ms in state SSL_HANDSHAKE)"
)
BAD_CERT = (
    "ssl://127.0.0.1:58267/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls "
    "alert bad certificate: SSL alert number 42 (after 1ms in state APIVERSION_QUERY)"
)
CERT_UNKNOWN = (
    "ssl://127.0.0.1:58267/bootstrap: Receive failed: error:0A000416:SSL routines::ssl/tls "
    "alert certificate unknown: SSL alert number 46 (after 3ms in state APIVERSION_QUERY)"
)
PLAINTEXT_ON_TLS = (
    "FAIL [rdkafka#producer-1] [thrd:127.0.0.1:58267/bootstrap]: 127.0.0.1:58267/bootstrap: "
    "Disconnected: connection closed by peer: receive 0 after POLLIN "
    "(after 1ms in state APIVERSION_QUERY)"
)
SSL_ON_SASL = (
    "FAIL [rdkafka#producer-2] [thrd:ssl://127.0.0.1:35839/bootstrap]: "
    "ssl://127.0.0.1:35839/bootstrap: Disconnected: SSL connection closed by peer "
    "(after 0ms in state UP)"
)
BROKER_DOWN = (
    "FAIL [rdkafka#producer-1] [thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: "
    "Connect to ipv4#127.0.0.1:9 failed: Connection refused (after 0ms in state CONNECT)"
)
IDLE_CLOSE = (
    "FAIL [rdkafka#producer-1] [thrd:ssl://127.0.0.1:1/1]: ssl://127.0.0.1:1/1: "
    "Disconnected: SSL connection closed by peer (after 600012ms in state UP)"
)


def test_wrong_password_names_the_user_and_mechanism_but_never_the_password() -> None:
    refusal = classify(KafkaError(KafkaError._AUTHENTICATION, BAD_CREDENTIALS), SCRAM)
    assert refusal is not None
    assert refusal.cause == "authentication"
    assert refusal.message == (
        "wrong user name or password: user 'dynpricing-engine' could not authenticate "
        "with SCRAM-SHA-512"
    )
    assert "s3cret" not in refusal.message


def test_other_sasl_failures_are_refusals_that_keep_librdkafkas_reason() -> None:
    text = (
        "sasl_ssl://127.0.0.1:1/bootstrap: SASL SCRAM-SHA-256 mechanism handshake failed: "
        "Broker: Unsupported SASL mechanism: broker's supported mechanisms: SCRAM-SHA-512 "
        "(after 301ms in state AUTH_HANDSHAKE)"
    )
    refusal = classify(KafkaError(KafkaError._AUTHENTICATION, text), SCRAM)
    assert refusal is not None
    assert "broker's supported mechanisms: SCRAM-SHA-512" in refusal.message
    assert "sasl_ssl://" not in refusal.message
    assert "after 301ms" not in refusal.message


def test_a_broker_certificate_from_an_unknown_ca_says_which_ca_file_was_used() -> None:
    refusal = classify(KafkaError(KafkaError._SSL, UNKNOWN_CA), MTLS)
    assert refusal is not None
    assert refusal.cause == "tls"
    assert refusal.message.startswith("unknown CA:")
    assert "/etc/kafka/ca.crt" in refusal.message


@pytest.mark.parametrize(
    ("text", "alert", "reason"),
    [
        (BAD_CERT, "TLS alert 42 'bad certificate'", "not signed by a CA the broker trusts"),
        (CERT_UNKNOWN, "TLS alert 46 'certificate unknown'", "expired"),
    ],
)
def test_a_client_certificate_the_broker_rejects_is_named_with_the_alert(
    text: str, alert: str, reason: str
) -> None:
    refusal = classify(KafkaError(KafkaError._TRANSPORT, text), MTLS)
    assert refusal is not None
    assert refusal.cause == "tls"
    assert "/etc/kafka/user.crt" in refusal.message
    assert alert in refusal.message
    assert reason in refusal.message


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused "
        "(after 0ms in state CONNECT)",
        "ssl://127.0.0.1:1/1: Disconnected (after 35000ms in state UP)",
    ],
)
def test_an_unreachable_or_restarting_broker_is_not_a_refusal(text: str) -> None:
    assert classify(KafkaError(KafkaError._TRANSPORT, text), MTLS) is None
    assert classify(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"), MTLS) is None
    assert classify(KafkaError(KafkaError._TIMED_OUT), MTLS) is None


def test_topic_denial_names_topic_and_operation() -> None:
    err = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    refusal = classify(err, SCRAM, operation="Write", topic="pricing_decisions")
    assert refusal is not None
    assert refusal.cause == "authorization"
    assert refusal.message == (
        "ACL denied: this principal may not Write on topic 'pricing_decisions' "
        "(TOPIC_AUTHORIZATION_FAILED)"
    )


def test_a_denied_subscription_takes_the_topic_from_librdkafkas_text() -> None:
    text = "Subscribed topic not available: demand_events: Broker: Topic authorization failed"
    refusal = classify(
        KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, text), SCRAM, operation="Read"
    )
    assert refusal is not None
    assert "may not Read on topic 'demand_events'" in refusal.message


def test_group_denial_names_the_group_the_caller_gives() -> None:
    err = KafkaError(
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        "FindCoordinator response error: Group authorization failed.",
    )
    refusal = classify(err, SCRAM, operation="Read", group="dynpricing-engine")
    assert refusal is not None
    assert refusal.message == (
        "ACL denied: this principal may not Read on group 'dynpricing-engine' "
        "(GROUP_AUTHORIZATION_FAILED)"
    )
    commit = classify(err, SCRAM, operation="Commit", group="g")
    assert commit is not None
    assert "may not Read (commit offsets) on group 'g'" in commit.message


def test_cluster_denial_is_a_refusal() -> None:
    refusal = classify(
        KafkaError(KafkaError.CLUSTER_AUTHORIZATION_FAILED), SCRAM, operation="Create"
    )
    assert refusal is not None
    assert "may not Create on cluster" in refusal.message


def test_refusal_of_reads_kafka_exceptions_and_passes_everything_else() -> None:
    exc = KafkaException(KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED))
    refusal = kafka_errors.refusal_of(exc, SCRAM, operation="Describe", topic="t")
    assert refusal is not None
    assert "may not Describe on topic 't'" in refusal.message
    assert kafka_errors.refusal_of(ValueError("x"), SCRAM) is None
    assert kafka_errors.refusal_of(KafkaException(KafkaError(KafkaError._TIMED_OUT)), SCRAM) is None


def test_plaintext_on_a_tls_listener_and_tls_on_a_sasl_listener_are_mismatches() -> None:
    plain = mismatch(PLAINTEXT_ON_TLS, "PLAINTEXT")
    assert plain is not None
    assert "security.protocol is PLAINTEXT but the listener expects TLS" in plain.message
    ssl = mismatch(SSL_ON_SASL, "SSL")
    assert ssl is not None
    assert "expects SASL" in ssl.message
    assert mismatch(BROKER_DOWN, "PLAINTEXT") is None
    assert mismatch(IDLE_CLOSE, "SSL") is None
    assert mismatch(SSL_ON_SASL, "SASL_SSL") is None


def test_the_watch_raises_a_wrong_password_at_once_from_the_callback() -> None:
    watch = KafkaWatch(SCRAM)
    with pytest.raises(KafkaRefusedError, match="wrong user name or password"):
        watch.on_error(KafkaError(KafkaError._AUTHENTICATION, BAD_CREDENTIALS))
    with pytest.raises(KafkaRefusedError, match="wrong user name or password"):
        watch.raise_if_refused()


def test_the_watch_gives_up_on_a_protocol_mismatch_only_after_several_closes_in_a_row() -> None:
    watch = KafkaWatch(PLAIN)
    for _ in range(kafka_errors.MISMATCH_THRESHOLD - 1):
        watch.log(20, PLAINTEXT_ON_TLS)
    watch.log(20, BROKER_DOWN)  # something else in between starts the count again
    for _ in range(kafka_errors.MISMATCH_THRESHOLD - 1):
        watch.log(20, PLAINTEXT_ON_TLS)
    watch.raise_if_refused()
    facility, name, rest = PLAINTEXT_ON_TLS.split(" ", 2)
    with pytest.raises(KafkaRefusedError, match="expects TLS"):  # as confluent-kafka calls it
        watch.log(20, "%s %s %s", facility, name, rest)


def test_once_connected_a_closed_connection_is_never_a_mismatch() -> None:
    watch = KafkaWatch(PLAIN)
    watch.mark_connected()
    for _ in range(kafka_errors.MISMATCH_THRESHOLD * 2):
        watch.log(20, PLAINTEXT_ON_TLS)
    watch.raise_if_refused()


def test_a_transient_error_is_a_warning_at_most_once_a_minute_per_kind() -> None:
    warned: list[dict[str, object]] = []
    debugged: list[dict[str, object]] = []
    now = [1000.0]
    watch = KafkaWatch(
        SCRAM,
        warn=lambda event, **f: warned.append({"event": event, **f}),
        debug=lambda event, **f: debugged.append({"event": event, **f}),
        clock=lambda: now[0],
    )
    down = KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down")
    for _ in range(3):
        watch.on_error(down)
    watch.on_error(KafkaError(KafkaError._TIMED_OUT))
    assert [w["code"] for w in warned] == ["_ALL_BROKERS_DOWN", "_TIMED_OUT"]
    assert len(debugged) == 2
    now[0] += kafka_errors.WARN_INTERVAL_S  # the broker goes away again, an hour later
    watch.on_error(down)
    assert [w["code"] for w in warned][-1] == "_ALL_BROKERS_DOWN"
    assert len(warned) == 3


def test_the_watch_masks_the_password_in_everything_it_passes_on() -> None:
    logged: list[str] = []
    watch = KafkaWatch(SCRAM, warn=lambda _event, **f: logged.append(repr(f)), debug=None)
    watch.on_error(KafkaError(KafkaError._TRANSPORT, "echo s3cret-pw from somewhere"))
    with pytest.raises(KafkaRefusedError) as raised:
        watch.refuse(kafka_errors.Refusal("authentication", "bad s3cret-pw"))
    assert "s3cret" not in str(raised.value)
    assert logged
    assert all("s3cret" not in line for line in logged)


def _cert(tmp_path: Path, not_after: dt.datetime | None = None) -> KafkaSettings:
    ca = certs.new_authority("test CA")
    files = certs.write_issued(ca, "dynpricing-engine", tmp_path, "user", not_after=not_after)
    ca_path = certs.write_ca(ca, tmp_path / "ca.crt")
    return MTLS.model_copy(
        update={
            "ssl_ca_location": str(ca_path),
            "ssl_certificate_location": str(files.cert),
            "ssl_key_location": str(files.key),
        }
    )


def test_preflight_names_an_expired_client_certificate_and_its_subject(tmp_path: Path) -> None:
    ended = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    refusal = preflight(_cert(tmp_path, not_after=ended))
    assert refusal is not None
    assert refusal.cause == "tls"
    assert f"{tmp_path}/user.crt (CN=dynpricing-engine) expired at" in refusal.message


def test_preflight_accepts_a_valid_certificate_and_no_certificate(tmp_path: Path) -> None:
    assert preflight(_cert(tmp_path)) is None
    assert preflight(PLAIN) is None


def test_preflight_names_a_missing_file_and_its_setting(tmp_path: Path) -> None:
    settings = _cert(tmp_path).model_copy(update={"ssl_ca_location": str(tmp_path / "nope")})
    refusal = preflight(settings)
    assert refusal is not None
    assert refusal.message == f"KAFKA__SSL_CA_LOCATION names {tmp_path}/nope, which cannot be read"
