"""Which Kafka errors mean "refused" rather than "not yet", and how to say so in one line.

A broker that is down or still starting is retried (the services' start-up
contract); a broker that *refuses* the client never changes its mind by being
asked again: a wrong password, a certificate it does not trust, a broker
certificate the client does not trust, a client speaking plaintext to a TLS
listener, or an ACL that does not allow an operation. Those end the service with
one line naming the cause and exit code :data:`EXIT_KAFKA_REFUSED`, instead of
librdkafka retrying (and logging) forever while ``/readyz`` stays false.

The signals were taken from a real secured broker (``dynpricing kafka up
--security sasl-scram|mtls``, librdkafka 2.x, Kafka 4), see
``tests/integration/test_security_errors.py``:

- wrong user or password: ``error_cb`` ``_AUTHENTICATION`` ("... invalid
  credentials ..."), once per reconnect;
- broker certificate from a CA the client does not trust: ``_SSL`` "certificate
  verify failed";
- client certificate missing, from another CA (TLS alert 42 "bad certificate")
  or expired (alert 46 "certificate unknown"): ``_TRANSPORT`` "ssl/tls alert";
- plaintext client on a TLS listener: no error at all, only ``_ALL_BROKERS_DOWN``
  and a log line "connection closed by peer ... in state APIVERSION_QUERY";
  TLS without SASL on a SASL_SSL listener: log "SSL connection closed by peer
  (after 0ms in state UP)". These two are heuristics, so they count as refused
  only after :data:`MISMATCH_THRESHOLD` such closes in a row before the client
  ever worked;
- ACLs: ``TOPIC_AUTHORIZATION_FAILED`` (metadata, delivery reports, consumed
  error messages), ``GROUP_AUTHORIZATION_FAILED`` (FindCoordinator, commits;
  its text does not name the group, so the caller says which),
  ``CLUSTER_AUTHORIZATION_FAILED`` (e.g. creating topics).

Nothing here prints a secret: messages are built from fixed text, names and
librdkafka's error text (which never holds a password), and :class:`KafkaWatch`
masks the configured password in anything it passes on all the same.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException

from dynpricing.settings import KafkaSettings

EXIT_KAFKA_REFUSED = 4
WARN_INTERVAL_S = 60.0  # a transient error of one kind is a warning at most this often
MISMATCH_THRESHOLD = 3  # closes in a row (one per reconnect, ~1 s apart) before giving up
QUICK_CLOSE_MS = 1000  # a close this soon after TLS came up is the listener refusing us
MASK = "***"
CONNECTION_FAILURE = "FAIL "  # librdkafka's log facility for a failed or closed connection

Cause = Literal["authentication", "tls", "authorization", "protocol"]
Operation = Literal["Read", "Write", "Describe", "Create", "Commit"]

AUTHORIZATION_CODES = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED: "transactional id",
}
AUTHENTICATION_CODES = frozenset(
    {
        KafkaError._AUTHENTICATION,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.UNSUPPORTED_SASL_MECHANISM,
        KafkaError.ILLEGAL_SASL_STATE,
    }
)
# librdkafka's text after "<proto>://host:port/<id>: " and before " (after Nms in state X)"
_BROKER_PREFIX = re.compile(r"^\S+://\S+?/\S+?: ")
_STATE_SUFFIX = re.compile(r" \(after (\d+)ms in state (\w+)\)$")
_ALERT = re.compile(r"ssl/tls alert ([a-z ]+?): SSL alert number (\d+)")
_SUBSCRIBED = re.compile(r"Subscribed topic not available: (\S+?):")


@dataclass(frozen=True)
class Refusal:
    """Why the broker will not serve this client: the cause and one line for the operator."""

    cause: Cause
    message: str


class KafkaRefusedError(RuntimeError):
    """The broker refused the client's credentials or permissions; retrying cannot help."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


def _detail(text: str) -> tuple[str, int | None, str | None]:
    """librdkafka's message without the broker prefix, plus the ms and state it names."""
    text = _BROKER_PREFIX.sub("", text.strip())
    match = _STATE_SUFFIX.search(text)
    if match is None:
        return text, None, None
    return text[: match.start()], int(match.group(1)), match.group(2)


def _authentication(err: KafkaError, kafka: KafkaSettings) -> Refusal:
    detail, _, _ = _detail(err.str())
    who = f"user {kafka.sasl_username!r}" if kafka.sasl_username else "the client"
    mechanism = kafka.sasl_mechanism or "SASL"
    if "invalid credentials" in detail:
        message = f"wrong user name or password: {who} could not authenticate with {mechanism}"
    else:
        message = f"authentication failed for {who} with {mechanism}: {detail}"
    return Refusal("authentication", message)


_CLIENT_CERT_ALERTS = {
    "bad certificate": "none was sent, or it is not signed by a CA the broker trusts",
    "unknown ca": "it is signed by a CA the broker does not trust",
    "certificate unknown": "the broker cannot accept it (expired, not yet valid or unusable)",
    "certificate expired": "it has expired",
    "certificate revoked": "it has been revoked",
    "certificate required": "the listener requires one and none was sent",
    "unsupported certificate": "its key usage does not allow client authentication",
}


def _tls(err: KafkaError, kafka: KafkaSettings) -> Refusal | None:
    detail, _, state = _detail(err.str())
    if "certificate verify failed" in detail:
        where = kafka.ssl_ca_location or "the system's CA store"
        return Refusal(
            "tls",
            f"unknown CA: the broker's certificate is not signed by a CA in {where} "
            "(set KAFKA__SSL_CA_LOCATION to the cluster's CA)",
        )
    alert = _ALERT.search(detail)
    if alert is not None and alert.group(1) in _CLIENT_CERT_ALERTS:
        cert = kafka.ssl_certificate_location or "(no client certificate configured)"
        reason = _CLIENT_CERT_ALERTS[alert.group(1)]
        return Refusal(
            "tls",
            f"the broker rejected the client certificate {cert} "
            f"(TLS alert {alert.group(2)} '{alert.group(1)}'): {reason}",
        )
    if state == "SSL_HANDSHAKE":
        return Refusal("tls", f"TLS handshake with the broker failed: {detail}")
    return None


def _authorization(
    err: KafkaError, operation: Operation | None, topic: str | None, group: str | None
) -> Refusal:
    kind = AUTHORIZATION_CODES[err.code()]
    if kind == "topic":
        subscribed = _SUBSCRIBED.search(err.str())
        name = topic or (subscribed.group(1) if subscribed else None)
    elif kind == "group":
        name = group
    else:
        name = None
    target = kind if name is None else f"{kind} {name!r}"
    op = {"Commit": "Read (commit offsets)"}.get(operation or "", operation or "the operation")
    return Refusal(
        "authorization",
        f"ACL denied: this principal may not {op} on {target} ({err.name()})",
    )


def denied(
    err: KafkaError,
    operation: Operation | None = None,
    topic: str | None = None,
    group: str | None = None,
) -> Refusal | None:
    """The refusal an ACL error means (no settings needed); None for any other error."""
    if err.code() not in AUTHORIZATION_CODES:
        return None
    return _authorization(err, operation, topic, group)


def classify(
    err: KafkaError,
    kafka: KafkaSettings,
    *,
    operation: Operation | None = None,
    topic: str | None = None,
    group: str | None = None,
) -> Refusal | None:
    """A refusal if ``err`` says the broker will never serve this request; else None.

    ``operation``, ``topic`` and ``group`` are what the caller was doing, so the
    line names them even where the broker's error does not (a group
    authorization error never names the group).
    """
    code = err.code()
    if code in AUTHENTICATION_CODES:
        return _authentication(err, kafka)
    if code in AUTHORIZATION_CODES:
        return denied(err, operation, topic, group)
    if code in {KafkaError._SSL, KafkaError._TRANSPORT}:
        return _tls(err, kafka)
    return None


def refusal_of(
    exc: BaseException,
    kafka: KafkaSettings,
    *,
    operation: Operation | None = None,
    topic: str | None = None,
    group: str | None = None,
) -> Refusal | None:
    """:func:`classify` for a raised ``KafkaException`` (anything else: None)."""
    if isinstance(exc, KafkaRefusedError):
        return exc.refusal
    if not isinstance(exc, KafkaException) or not exc.args:
        return None
    err = exc.args[0]
    if not isinstance(err, KafkaError):
        return None
    return classify(err, kafka, operation=operation, topic=topic, group=group)


def mismatch(message: str, protocol: str) -> Refusal | None:
    """A librdkafka log line that shows the listener speaks another security protocol.

    One such line could be a broker going away at the wrong moment; the watch
    gives up only after several in a row.
    """
    detail, ms, state = _detail(message.split("]: ", 1)[-1])
    if "connection closed by peer" not in detail.lower() or ms is None:
        return None
    if state == "APIVERSION_QUERY" and protocol in {"PLAINTEXT", "SASL_PLAINTEXT"}:
        return Refusal(
            "protocol",
            f"the broker closes every connection before answering: security.protocol is "
            f"{protocol} but the listener expects TLS (use SSL or SASL_SSL and a CA)",
        )
    if state == "UP" and ms < QUICK_CLOSE_MS and protocol == "SSL":
        return Refusal(
            "protocol",
            "the broker closes every connection right after TLS: the listener expects "
            "SASL (security.protocol SASL_SSL with a user and password), not SSL alone",
        )
    return None


def masked(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


LogSink = Callable[..., Any]


class KafkaWatch:
    """The ``error_cb`` and ``logger`` of a Kafka client (kafka_io gives each its own).

    Give each client ``**watch.callbacks()``. A transient error is a warning at
    most once a minute per kind (at debug in between); librdkafka's own log
    lines go to debug instead of stderr. The first refusal is kept and raised as
    :class:`KafkaRefusedError` from the callback, so it leaves the
    ``poll``/``consume``/``flush`` that served it; :meth:`raise_if_refused`
    raises it again for code that checks between calls. Call
    :meth:`mark_connected` once the client has worked: after that, a closed
    connection is a broker going away, never a protocol mismatch.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        warn: LogSink | None = None,
        debug: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kafka = kafka
        self._warn = warn
        self._debug = debug
        self._secrets = [kafka.sasl_password.get_secret_value()] if kafka.sasl_password else []
        self._warned: dict[int, float] = {}  # error code -> when it was last a warning
        self._clock = clock
        self._mismatches = 0
        self._connected = False
        self.refusal: Refusal | None = None

    def callbacks(self) -> dict[str, Any]:
        return {"error_cb": self.on_error, "logger": self}

    def mark_connected(self) -> None:
        self._connected = True
        self._mismatches = 0

    def raise_if_refused(self) -> None:
        if self.refusal is not None:
            raise KafkaRefusedError(self.refusal)

    def refuse(self, refusal: Refusal) -> None:
        """Record a refusal found by the caller (delivery report, commit, metadata) and raise."""
        if self.refusal is None:
            self.refusal = Refusal(refusal.cause, masked(refusal.message, self._secrets))
        raise KafkaRefusedError(self.refusal)

    def on_error(self, err: KafkaError) -> None:
        refusal = classify(err, self.kafka)
        if refusal is not None:
            self.refuse(refusal)
        now = self._clock()
        if now - self._warned.get(err.code(), -WARN_INTERVAL_S) >= WARN_INTERVAL_S:
            self._warned[err.code()] = now
            self._emit(self._warn, "kafka_client_error", code=err.name(), error=err.str())
        else:
            self._emit(self._debug, "kafka_client_error", code=err.name(), error=err.str())

    def log(self, level: int, fmt: str, *args: object) -> None:
        """The ``logging.Logger.log`` interface librdkafka's ``logger`` setting calls."""
        message = fmt % args if args else fmt
        self._emit(self._debug, "librdkafka", level=level, message=message)
        if self._connected:
            return
        refusal = mismatch(message, self.kafka.security_protocol)
        if refusal is None:
            if message.startswith(CONNECTION_FAILURE):  # another kind of failure: start again
                self._mismatches = 0
            return
        self._mismatches += 1
        if self._mismatches >= MISMATCH_THRESHOLD:
            self.refuse(refusal)

    def _emit(self, sink: LogSink | None, event: str, **fields: object) -> None:
        if sink is None:
            return
        sink(event, **{k: masked(str(v), self._secrets) for k, v in fields.items()})


def preflight(kafka: KafkaSettings, now: dt.datetime | None = None) -> Refusal | None:
    """Problems with the client's own TLS files, found before any connection.

    A missing file or an expired client certificate would otherwise reach the
    operator as a TLS alert from the broker, which cannot say which.
    """
    files = {
        "KAFKA__SSL_CA_LOCATION": kafka.ssl_ca_location,
        "KAFKA__SSL_CERTIFICATE_LOCATION": kafka.ssl_certificate_location,
        "KAFKA__SSL_KEY_LOCATION": kafka.ssl_key_location,
    }
    for setting, location in files.items():
        if location and not os.access(location, os.R_OK):
            return Refusal("tls", f"{setting} names {location}, which cannot be read")
    if not kafka.ssl_certificate_location:
        return None
    from cryptography import x509  # noqa: PLC0415 - only clients with a certificate need it

    try:
        cert = x509.load_pem_x509_certificate(Path(kafka.ssl_certificate_location).read_bytes())
    except ValueError:
        return Refusal("tls", f"{kafka.ssl_certificate_location} is not a PEM certificate")
    now = now or dt.datetime.now(dt.UTC)
    subject = cert.subject.rfc4514_string()
    if now > cert.not_valid_after_utc:
        return Refusal(
            "tls",
            f"the client certificate {kafka.ssl_certificate_location} ({subject}) "
            f"expired at {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC",
        )
    if now < cert.not_valid_before_utc:
        return Refusal(
            "tls",
            f"the client certificate {kafka.ssl_certificate_location} ({subject}) "
            f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
        )
    return None


def unauthorized_topics(metadata_topics: Mapping[str, Any]) -> list[str]:
    """Topics a metadata answer says this principal may not describe."""
    return sorted(
        name
        for name, topic in metadata_topics.items()
        if topic.error is not None and topic.error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    )
