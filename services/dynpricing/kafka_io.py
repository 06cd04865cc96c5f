"""Kafka clients as every service uses them: idempotent producer, manual-commit consumer.

The producer is always wrapped in :class:`OutputProducer`, which owns the delivery
callback: it counts what it hands over (``sent``) and what is reported, keeps the
highest delivered offset per partition, and records failures. A checkpoint waits
for the reports of everything sent before it, so callers never count by hand.
A failed delivery is fatal to the owning loop (it stops without snapshotting, so a
restart replays the input whose output was lost).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any, TypeVar

import structlog
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from dynpricing.events import Origin
from dynpricing.kafka_errors import KafkaRefusedError, KafkaWatch, Operation, denied, preflight
from dynpricing.settings import KafkaSettings, librdkafka_config

PRODUCE_RETRY_POLL_S = 0.05  # while the producer's queue is full
PRODUCE_MAX_RETRIES = 200  # without a stop flag to end the wait: 10 s
QUEUE_FULL_LOG_INTERVAL_S = 10.0
TOPIC_CREATE_TIMEOUT_S = 30.0
METADATA_TIMEOUT_S = 5.0
METADATA_STEP_S = 1.0  # one metadata request's wait, between serving the client's callbacks
FLUSH_TIMEOUT_S = 15.0
REPORT_WAIT_STEP_S = 0.002
TOO_LARGE_CODES = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})

ConfValue = str | int | float | bool
Key = bytes | str | None
Shrink = Callable[[bytes], bytes]
"""A smaller stand-in for a message the broker finds too large (dead letters have one)."""


class DeliveryFailedError(RuntimeError):
    """A message could not be delivered; its input must be replayed."""

    def __init__(self, message: str, error: KafkaError | None = None) -> None:
        super().__init__(message)
        self.error = error


class MessageTooLargeError(ValueError):
    """A message larger than the producer accepts, on a topic without a smaller stand-in."""


@dataclass(frozen=True)
class Failure:
    topic: str | None
    error: KafkaError

    def __str__(self) -> str:
        return f"{self.topic}: {self.error.str()}"


class OutputProducer:
    """The one way services produce; it owns the delivery callback and the counts.

    ``sent`` counts the messages handed to librdkafka, ``reported`` those with a
    delivery report (delivered or failed), ``highest`` the highest delivered
    offset per (topic, partition): reports of one partition arrive in offset
    order, so a message produced later can only land above it, which is what
    recovery needs to know. A thread other than the producer's can wait for the
    reports of everything sent up to a point (:meth:`wait_for_reports`): they
    arrive through the producing thread's own :meth:`poll`.

    A message the broker finds too large is replaced, once, by its topic's
    ``shrink`` stand-in (a dead letter without the original bytes); the
    replacement's report then stands for the original's.
    """

    def __init__(
        self,
        producer: Producer,
        *,
        shrink: Mapping[str, Shrink] | None = None,
        stop: StopFlag | None = None,
        log: Any = None,
    ) -> None:
        self.producer = producer
        self.sent = 0
        self.delivered = 0
        self.failures: list[Failure] = []
        self.highest: dict[tuple[str | None, int | None], int] = {}
        self._shrink = shrink or {}
        self._stop = stop
        self._log = log
        self._queue_full_logged = 0.0

    @property
    def reported(self) -> int:
        """Messages with a delivery report so far, delivered or failed."""
        return self.delivered + len(self.failures)

    @property
    def in_flight(self) -> int:
        return self.sent - self.reported

    # ---- producing --------------------------------------------------------------------

    def send(self, topic: str, value: bytes, key: Key) -> None:
        """Hand one message over (a full queue is waited out, see :meth:`_when_room`)."""
        self.send_many(topic, (value,), (key,))

    def send_many(self, topic: str, values: Sequence[bytes], keys: Sequence[Key]) -> None:
        """Hand messages over in order; ``sent`` counts each one handed, even on an error."""
        produce = self.producer.produce
        report = self._on_delivery
        handed = 0
        try:
            for value, key in zip(values, keys, strict=True):
                try:
                    produce(topic, value=value, key=key, on_delivery=report)
                except BufferError:
                    self._when_room(topic, value, key)
                except KafkaException as exc:
                    self._too_large(exc, topic, value, key)
                handed += 1
        finally:
            self.sent += handed

    def _when_room(self, topic: str, value: bytes, key: Key) -> None:
        """The queue is full (the broker is slow or away): serve reports until there is room.

        With a stop flag the wait lasts until there is room or the service is
        stopped; without one it is bounded (:data:`PRODUCE_MAX_RETRIES`).
        """
        attempts = 0
        while True:
            self.producer.poll(PRODUCE_RETRY_POLL_S)
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._on_delivery)
                return
            except BufferError:
                attempts += 1
            if self._stop is None and attempts >= PRODUCE_MAX_RETRIES:
                raise DeliveryFailedError(f"producer queue stayed full while producing to {topic}")
            if self._stop is not None and self._stop.is_set():
                raise DeliveryFailedError(f"stopped while the queue to {topic} was full")
            self._say_queue_full(topic)

    def _say_queue_full(self, topic: str) -> None:
        now = time.monotonic()
        if self._log is not None and now - self._queue_full_logged > QUEUE_FULL_LOG_INTERVAL_S:
            self._queue_full_logged = now
            self._log.warning("producer_queue_full", topic=topic, in_flight=self.in_flight)

    def _too_large(self, exc: KafkaException, topic: str, value: bytes, key: Key) -> None:
        err = exc.args[0] if exc.args else None
        if not isinstance(err, KafkaError) or err.code() not in TOO_LARGE_CODES:
            raise exc
        shrink = self._shrink.get(topic)
        if shrink is None:
            raise MessageTooLargeError(f"{len(value)} bytes for {topic}: {err.str()}") from exc
        self.producer.produce(topic, value=shrink(value), key=key, on_delivery=self._on_delivery)

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.delivered += 1
            offset = msg.offset()
            if offset is not None:
                self.highest[(msg.topic(), msg.partition())] = offset
            return
        topic = msg.topic()
        shrink = self._shrink.get(topic) if topic is not None else None
        value = msg.value()
        if err.code() in TOO_LARGE_CODES and topic and shrink is not None and value is not None:
            shrunk = shrink(value)
            if len(shrunk) < len(value):  # the stand-in's report will stand for this one
                self.producer.produce(
                    topic, value=shrunk, key=msg.key(), on_delivery=self._on_delivery
                )
                return
        self.failures.append(Failure(topic, err))

    # ---- reports ----------------------------------------------------------------------

    def poll(self, timeout_s: float = 0.0) -> None:
        self.producer.poll(timeout_s)

    def raise_if_failed(self) -> None:
        """Raise for the first failed delivery: a refusal (an ACL) or a failure."""
        for failure in self.failures:
            refusal = denied(failure.error, "Write", failure.topic)
            if refusal is not None:
                raise KafkaRefusedError(refusal)
        if self.failures:
            first = self.failures[0]
            raise DeliveryFailedError(
                f"{len(self.failures)} deliveries failed: {[str(f) for f in self.failures[:3]]}",
                first.error,
            )

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Wait up to ``timeout_s`` for every report; how many messages still have none."""
        self.producer.flush(timeout_s)
        return self.in_flight

    def wait_for_reports(
        self, upto: int, abandon: threading.Event | None = None, timeout_s: float | None = None
    ) -> bool:
        """Block until the first ``upto`` messages have reports; raise if any failed.

        For a thread other than the producer's: it only waits, never polls. False
        if ``abandon`` was set or ``timeout_s`` passed first. Without a timeout
        the wait ends anyway once librdkafka gives up on a message
        (``message.timeout.ms``), as a failure.
        """
        end = None if timeout_s is None else time.monotonic() + timeout_s
        while self.reported < upto:
            if (abandon is not None and abandon.is_set()) or (
                end is not None and time.monotonic() > end
            ):
                return False
            time.sleep(REPORT_WAIT_STEP_S)
        self.raise_if_failed()
        return True

    def purge(self) -> None:
        """Drop what is still queued (shutdown without a broker): nothing waits for it."""
        self.producer.purge(in_queue=True, in_flight=True, blocking=False)
        self.producer.poll(0)


def watched(kafka: KafkaSettings, client_id: str) -> dict[str, Any]:
    """A client's ``error_cb`` and ``logger``, for clients made outside a service shell:
    a refusal (wrong password, unknown CA, rejected certificate, wrong protocol)
    raises :class:`KafkaRefusedError` from the ``poll``/``consume``/``flush`` that
    served it; librdkafka's own lines go to the debug log instead of stderr."""
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


def assign_new_partitions(
    consumer: Consumer,
    topics: Sequence[str],
    group: str,
    known: Mapping[tuple[str, int], int],
    call: Callable[[Callable[[], Any], str], Any],
) -> list[TopicPartition]:
    """Assign the topics' partitions not assigned yet, without joining a group's rebalances.

    Each starts at its ``known`` offset, else the group's committed one, else the
    beginning. ``call`` runs each broker request (the shell retries them while
    the broker is away). A single instance that assigns itself every partition
    takes them back at once after a restart, where a group member would wait
    for its predecessor's session to time out.
    """
    wanted: list[TopicPartition] = []
    for topic in topics:
        metadata = call(
            partial(consumer.list_topics, topic, timeout=METADATA_TIMEOUT_S), "listing partitions"
        )
        wanted += [TopicPartition(topic, p) for p in sorted(metadata.topics[topic].partitions)]
    current = {(tp.topic, tp.partition) for tp in consumer.assignment()}
    new = [tp for tp in wanted if (tp.topic, tp.partition) not in current]
    if not new:
        return []
    unknown = [tp for tp in new if (tp.topic, tp.partition) not in known]
    committed = (
        call(lambda: _committed(consumer, unknown, group), "reading committed offsets")
        if unknown
        else {}
    )
    for tp in new:
        where = (tp.topic, tp.partition)
        tp.offset = known.get(where, committed.get(where, OFFSET_BEGINNING))
    consumer.incremental_assign(new)
    return new


def _committed(
    consumer: Consumer, partitions: list[TopicPartition], group: str
) -> dict[tuple[str, int], int]:
    """The group's committed offsets. A group this principal may not use makes the request
    time out while the refusal waits in the consumer: that is raised instead."""
    try:
        found = consumer.committed(partitions, timeout=METADATA_TIMEOUT_S)
    except KafkaException:
        raise_group_refusal(consumer, group)
        raise
    return {(tp.topic, tp.partition): tp.offset for tp in found if tp.offset >= 0}


def make_producer(
    kafka: KafkaSettings,
    client_id: str,
    callbacks: dict[str, Any] | None = None,
    **extra: ConfValue,
) -> Producer:
    """Idempotent, batched producer (``linger.ms`` small so latency stays low).

    ``callbacks`` are the service shell's; without them the client watches for
    refusals itself (:func:`watched`).
    """
    conf: dict[str, Any] = {
        **librdkafka_config(kafka),
        **(callbacks if callbacks is not None else watched(kafka, client_id)),
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


def make_consumer(
    kafka: KafkaSettings,
    group_id: str,
    client_id: str,
    callbacks: dict[str, Any] | None = None,
    **extra: ConfValue,
) -> Consumer:
    """Offsets are stored and committed by the service, after its work is durable."""
    conf: dict[str, Any] = {
        **librdkafka_config(kafka),
        **(callbacks if callbacks is not None else watched(kafka, client_id)),
        "client.id": client_id,
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 50,
        "partition.assignment.strategy": "range",
    }
    conf.update(extra)
    return Consumer(conf)


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
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._WAIT_COORD,
    }
)
RETRY_STEP_S = 0.25
T = TypeVar("T")


def transient(exc: KafkaException) -> bool:
    """An error that a broker still starting, restarting or electing a leader explains."""
    err = exc.args[0] if exc.args else None
    return isinstance(err, KafkaError) and (err.retriable() or err.code() in TRANSIENT_CODES)


def retrying(
    call: Callable[[], T],
    deadline_s: float,
    operation: Operation = "Describe",
    group: str | None = None,
    between: Callable[[], None] | None = None,
) -> T:
    """Call a synchronous admin/metadata request, retrying transient broker states.

    A topic created a moment ago may have no partition leader yet and a group
    coordinator may still be loading; such errors pass until the deadline, an
    ACL denial raises :class:`KafkaRefusedError` (naming ``group``), others
    raise at once. ``between`` runs after each transient failure (e.g.
    :func:`raise_group_refusal`).
    """
    end = time.monotonic() + deadline_s
    while True:
        try:
            return call()
        except KafkaException as exc:
            refuse_if_denied(exc, operation, group=group)
            if not transient(exc) or time.monotonic() > end:
                raise
            if between is not None:
                between()
            time.sleep(RETRY_STEP_S)


def origin_of(msg: Message) -> Origin:
    """Topic, partition and offset of a consumed message (always set when it has no error)."""
    topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
    if topic is None or partition is None or offset is None:
        raise ValueError("message without topic, partition or offset")
    return Origin(topic, partition, offset)


def admin_client(kafka: KafkaSettings, callbacks: dict[str, Any] | None = None) -> AdminClient:
    """Asking for a missing topic by name must never create it (on brokers that would)."""
    conf = {
        **librdkafka_config(kafka),
        **(callbacks if callbacks is not None else watched(kafka, "admin")),
    }
    return AdminClient({**conf, "allow.auto.create.topics": False})


def _topic_error(admin: AdminClient, name: str, timeout_s: float) -> KafkaError | None:
    """The broker's answer about one topic, serving the client's callbacks meanwhile.

    Each topic is asked for by name: a listing of all topics leaves out those
    this principal may not describe, which would look like missing topics.
    """
    end = time.monotonic() + timeout_s
    while True:
        admin.poll(0)  # a refusal seen by error_cb raises here
        try:
            topic = admin.list_topics(name, timeout=min(METADATA_STEP_S, timeout_s)).topics[name]
        except KafkaException:
            if time.monotonic() > end:
                raise
            continue  # not answered yet (broker starting or unreachable): ask again
        error: KafkaError | None = topic.error
        return error


def missing_topics(
    kafka: KafkaSettings,
    topics: Iterable[str],
    callbacks: dict[str, Any] | None = None,
    timeout_s: float = TOPIC_CREATE_TIMEOUT_S,
) -> list[str]:
    """The topics among ``topics`` that the broker does not have (yet).

    A topic this principal may not describe is a refusal, not a missing topic.
    ``timeout_s`` bounds the wait for each answer (an unreachable broker raises).
    """
    admin = admin_client(kafka, callbacks)
    missing = []
    for name in dict.fromkeys(topics):
        error = _topic_error(admin, name, timeout_s)
        if error is None:
            continue
        refuse_if_denied(error, "Describe", topic=name)
        if error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
            raise KafkaException(error)
        missing.append(name)
    return missing


COMPACTED = {"cleanup.policy": "compact"}  # a topic that keeps the latest value per key


def ensure_topics(
    kafka: KafkaSettings,
    topics: Iterable[str],
    callbacks: dict[str, Any] | None = None,
    timeout_s: float = TOPIC_CREATE_TIMEOUT_S,
    compacted: Iterable[str] = (),
) -> None:
    """Create missing topics (partitions/replication from settings); existing ones are kept.

    Those named in ``compacted`` (the model topic) are created with
    ``cleanup.policy=compact``. ``timeout_s`` bounds the metadata requests that
    say which are missing.
    """
    compact = set(compacted)
    wanted = [
        NewTopic(
            name,
            kafka.topic_partitions,
            kafka.topic_replication_factor,
            config=dict(COMPACTED) if name in compact else {},
        )
        for name in missing_topics(kafka, topics, callbacks, timeout_s)
    ]
    if not wanted:
        return
    admin = admin_client(kafka, callbacks)  # kept while its futures resolve
    for name, future in admin.create_topics(wanted).items():
        try:
            future.result(timeout=TOPIC_CREATE_TIMEOUT_S)
        except KafkaException as exc:
            refuse_if_denied(exc, "Create", topic=name)
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


class StopFlag:
    """Set by SIGTERM or SIGINT (Kubernetes sends SIGTERM); loops check it between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None
        self.set_at: float | None = None
        self._listeners: list[Callable[[], None]] = []

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def on_set(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` (from the signal handler) when the flag is set."""
        self._listeners.append(listener)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.signal_name = signal.Signals(signum).name
        self.set()

    def set(self) -> None:
        if self._event.is_set():
            return
        self.set_at = time.monotonic()
        self._event.set()
        for listener in self._listeners:
            listener()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout_s: float) -> bool:
        return self._event.wait(timeout_s)


def wall_clock() -> float:
    """Unix seconds; the one clock services stamp events with."""
    return time.time()
