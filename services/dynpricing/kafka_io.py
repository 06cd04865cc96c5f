"""Kafka clients as every service uses them: idempotent producer, manual-commit consumer.

Delivery reports are checked for every message: a failed delivery is recorded and
the owning loop treats it as fatal (it stops without snapshotting, so a restart
replays the input whose output was lost).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from dynpricing.events import Origin
from dynpricing.kafka_errors import (
    KafkaRefusedError,
    KafkaWatch,
    Operation,
    Refusal,
    denied,
    preflight,
)
from dynpricing.settings import KafkaSettings, librdkafka_config

PRODUCE_RETRY_POLL_S = 0.05
PRODUCE_MAX_RETRIES = 200
TOPIC_CREATE_TIMEOUT_S = 30.0
METADATA_STEP_S = 1.0  # one metadata request's wait, between serving the client's callbacks
TOPIC_WAIT_S = 5.0  # between looks for topics someone else must create
FLUSH_TIMEOUT_S = 15.0


class DeliveryFailedError(RuntimeError):
    """A message could not be delivered; its input must be replayed."""


@dataclass
class DeliveryTracker:
    """Counts delivered and failed messages from delivery reports.

    It also keeps the highest delivered offset per (topic, partition) (reports of
    one partition arrive in offset order, so the latest is the highest): a message
    produced later can only land above it, which is what recovery needs to know.
    A producer that counts what it hands over in ``sent`` can wait, on another
    thread, for the reports of everything sent up to a point
    (:func:`wait_for_reports`).
    """

    delivered: int = 0
    errors: list[str] = field(default_factory=list)
    highest: dict[tuple[str | None, int | None], int] = field(default_factory=dict)
    sent: int = 0
    refusal: Refusal | None = None  # the first delivery an ACL refused: never worth a retry

    @property
    def reported(self) -> int:
        """Messages with a delivery report so far, delivered or failed."""
        return self.delivered + len(self.errors)

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.errors.append(f"{msg.topic()}: {err}")
            self.refusal = self.refusal or denied(err, "Write", msg.topic())
            return
        self.delivered += 1
        offset = msg.offset()
        if offset is not None:
            self.highest[(msg.topic(), msg.partition())] = offset

    def raise_if_failed(self) -> None:
        if self.refusal is not None:
            raise KafkaRefusedError(self.refusal)
        if self.errors:
            raise DeliveryFailedError(f"{len(self.errors)} deliveries failed: {self.errors[:3]}")


ConfValue = str | int | float | bool


def watched(kafka: KafkaSettings, client_id: str) -> dict[str, Any]:
    """A client's ``error_cb`` and ``logger``: a refusal (wrong password, unknown CA,
    rejected certificate, wrong protocol) raises :class:`KafkaRefusedError` from the
    ``poll``/``consume``/``flush`` that served it; librdkafka's own lines go to the
    debug log instead of stderr."""
    refusal = preflight(kafka)  # an expired or missing certificate, named before connecting
    if refusal is not None:
        raise KafkaRefusedError(refusal)
    log = structlog.get_logger("kafka").bind(client=client_id)
    return KafkaWatch(kafka, warn=log.warning, debug=log.debug).callbacks()


def refuse_if_denied(
    error: KafkaError | BaseException,
    operation: Operation,
    topic: str | None = None,
    group: str | None = None,
) -> None:
    """Raise :class:`KafkaRefusedError` if ``error`` is an ACL denial; else return."""
    err = error.args[0] if isinstance(error, KafkaException) and error.args else error
    refusal = denied(err, operation, topic, group) if isinstance(err, KafkaError) else None
    if refusal is not None:
        raise KafkaRefusedError(refusal)


def make_producer(kafka: KafkaSettings, client_id: str, **extra: ConfValue) -> Producer:
    """Idempotent, batched producer (``linger.ms`` small so latency stays low)."""
    conf: dict[str, Any] = {
        **librdkafka_config(kafka),
        **watched(kafka, client_id),
        "client.id": client_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": kafka.linger_ms,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
    }
    conf.update(extra)
    return Producer(conf)


def make_consumer(kafka: KafkaSettings, group_id: str, client_id: str) -> Consumer:
    """Offsets are stored and committed by the service, after its work is durable."""
    return Consumer(
        {
            **librdkafka_config(kafka),
            **watched(kafka, client_id),
            "client.id": client_id,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            "partition.assignment.strategy": "range",
        }
    )


def produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | str | None,
    on_delivery: DeliveryTracker,
) -> None:
    """``produce`` then serve callbacks; on a full queue, poll and retry (bounded)."""
    for _ in range(PRODUCE_MAX_RETRIES):
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:
            producer.poll(PRODUCE_RETRY_POLL_S)
    raise DeliveryFailedError(f"producer queue stayed full while producing to {topic}")


def consume_batch(consumer: Consumer, max_messages: int, timeout_s: float) -> list[Message]:
    """Up to ``max_messages``, returned as soon as any is there (or ``[]`` after the timeout).

    ``Consumer.consume`` waits for a full batch or the whole timeout, which at a
    low rate turns every event's latency into the timeout. Waiting for the first
    message and then taking what is already fetched keeps batches full under
    load and latency low when traffic is light.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    rest: list[Message] = consumer.consume(max_messages - 1, 0) if max_messages > 1 else []
    return [first, *rest]


TRANSIENT_CODES = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
    }
)
RETRY_STEP_S = 0.25
REPORT_WAIT_STEP_S = 0.002
T = TypeVar("T")


def retrying(
    call: Callable[[], T],
    deadline_s: float,
    operation: Operation = "Describe",
    group: str | None = None,
    between: Callable[[], None] | None = None,
) -> T:
    """Call a synchronous admin/metadata request, retrying transient broker states.

    A topic created a moment ago may have no partition leader yet and a group
    coordinator may still be loading; such errors pass, an ACL denial raises
    :class:`KafkaRefusedError` (naming ``group``), others raise at once.
    ``between`` runs after each transient failure (e.g. :func:`raise_group_refusal`).
    """
    end = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            refuse_if_denied(exc, operation, group=group)
            err = exc.args[0]
            transient = err.retriable() or err.code() in TRANSIENT_CODES
            if not transient or time.monotonic() > end:
                raise
            if between is not None:
                between()
            time.sleep(RETRY_STEP_S)


def raise_group_refusal(consumer: Consumer, group: str) -> None:
    """Raise the refusal of ``group`` a consumer holds, if any.

    A group the principal may not describe makes ``committed()`` time out, while
    the reason (FindCoordinator: GROUP_AUTHORIZATION_FAILED) waits in the
    consumer's queue. Served only while nothing is assigned, so no message is lost.
    """
    if consumer.assignment():
        return
    msg = consumer.poll(0)
    err = None if msg is None else msg.error()
    if err is not None:
        refuse_if_denied(err, "Describe", group=group)


def origin_of(msg: Message) -> Origin:
    """Topic, partition and offset of a consumed message (always set when it has no error)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message without topic, partition or offset")
    return Origin(topic, partition, offset)


def _admin(kafka: KafkaSettings) -> AdminClient:
    """Asking for a missing topic by name must never create it (on brokers that would)."""
    conf = {**librdkafka_config(kafka), **watched(kafka, "admin")}
    return AdminClient({**conf, "allow.auto.create.topics": False})


def _topic_error(admin: AdminClient, name: str) -> KafkaError | None:
    """The broker's answer about one topic, serving the client's callbacks meanwhile.

    Each topic is asked for by name: a listing of all topics leaves out those
    this principal may not describe, which would look like missing topics.
    """
    end = time.monotonic() + TOPIC_CREATE_TIMEOUT_S
    while True:
        admin.poll(0)  # a refusal seen by error_cb raises here
        try:
            topic = admin.list_topics(name, timeout=METADATA_STEP_S).topics[name]
        except KafkaException:
            if time.monotonic() > end:
                raise
            continue  # not answered yet (broker starting or unreachable): ask again
        error: KafkaError | None = topic.error
        return error


def missing_topics(kafka: KafkaSettings, topics: Iterable[str]) -> list[str]:
    """The topics among ``topics`` that the broker does not have (yet).

    A topic this principal may not describe is a refusal, not a missing topic.
    """
    admin = _admin(kafka)
    missing = []
    for name in dict.fromkeys(topics):
        error = _topic_error(admin, name)
        if error is None:
            continue
        refuse_if_denied(error, "Describe", topic=name)
        if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise KafkaException(error)
        missing.append(name)
    return missing


def wait_for_topics(kafka: KafkaSettings, topics: Iterable[str], stop: StopFlag, log: Any) -> bool:
    """Wait until every topic exists, saying which are missing; False if stopped first.

    For services that must not create topics (``CREATE_TOPICS=false``): whoever
    manages them (Strimzi's Topic Operator, an administrator) creates them.
    """
    wanted = list(topics)
    while not stop.is_set():
        missing = missing_topics(kafka, wanted)
        if not missing:
            return True
        log.warning("topics_missing", topics=missing, create_topics=False, retry_in_s=TOPIC_WAIT_S)
        stop.wait(TOPIC_WAIT_S)
    return False


def ensure_topics(kafka: KafkaSettings, topics: Iterable[str]) -> None:
    """Create missing topics (partitions/replication from settings); existing ones are kept."""
    wanted = [
        NewTopic(name, kafka.topic_partitions, kafka.topic_replication_factor)
        for name in missing_topics(kafka, topics)
    ]
    if not wanted:
        return
    admin = _admin(kafka)  # kept while its futures resolve: a dropped client abandons them
    for name, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=TOPIC_CREATE_TIMEOUT_S)
        except KafkaException as exc:
            refuse_if_denied(exc, "Create", topic=name)
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def flush(producer: Producer, tracker: DeliveryTracker, timeout_s: float = FLUSH_TIMEOUT_S) -> None:
    """Wait for every queued message; raise if any is undelivered or failed."""
    remaining = producer.flush(timeout_s)
    if remaining:
        raise DeliveryFailedError(f"{remaining} messages still queued after {timeout_s}s")
    tracker.raise_if_failed()


def wait_for_reports(tracker: DeliveryTracker, sent: int, timeout_s: float) -> None:
    """Block until the first ``sent`` messages have their reports; raise if any failed.

    For a thread other than the producer's: the reports arrive through the
    producer thread's own ``poll`` calls, so this only waits and never polls.
    """
    end = time.monotonic() + timeout_s
    while tracker.reported < sent:
        if time.monotonic() > end:
            raise DeliveryFailedError(
                f"{sent - tracker.reported} messages without a delivery report after {timeout_s}s"
            )
        time.sleep(REPORT_WAIT_STEP_S)
    tracker.raise_if_failed()


class StopFlag:
    """Set by SIGTERM or SIGINT (Kubernetes sends SIGTERM); loops check it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self._event.set()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


def wall_clock() -> float:
    """Unix seconds; the one clock services stamp events with."""
    return time.time()
