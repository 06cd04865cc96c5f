"""The shell every service runs in: settings, logging, signals, HTTP, Kafka, loop, shutdown.

One order for the engine, the producer and the simulator (:func:`run_service`):

1. settings from the environment, logging, SIGTERM/SIGINT handlers;
2. ``/healthz`` and ``/metrics`` served at once, ``/readyz`` answering 503;
3. the service's local preparation (the engine reads its state file);
4. the broker: an unreachable one is retried with a log line and a growing
   pause until it answers or the service is stopped, never an exit; a broker
   that *refuses* the client (credentials, certificates, ACLs:
   :mod:`dynpricing.kafka_errors`) ends the service with one line and exit 4;
5. the topics: created when missing (``CREATE_TOPICS=true``, the default), or
   waited for, not ready, with a log line naming them;
6. the service's clients and loop; ``/readyz`` turns 200 once it works, and
   back to 503 while the broker is unreachable;
7. on SIGTERM the loop ends and the service shuts down within
   ``SHUTDOWN_TIMEOUT_S``: every step has its share of the budget, and a
   watchdog ends the process at the bound if anything hangs all the same.

Also here, once for all services: the check of each consumed message's error,
dead letters, and offset commits that warn instead of failing (the engine's
state file, or a replay, covers what Kafka's committed offsets miss).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import structlog
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry, Counter

from dynpricing import events
from dynpricing.kafka_errors import (
    EXIT_KAFKA_REFUSED,
    KafkaRefusedError,
    KafkaWatch,
    classify,
    denied,
    preflight,
)
from dynpricing.kafka_io import (
    DeliveryFailedError,
    OutputProducer,
    StopFlag,
    ensure_topics,
    make_consumer,
    make_producer,
    missing_topics,
    origin_of,
    transient,
    wall_clock,
)
from dynpricing.observability import Health, HttpServer, JsonView, configure_logging
from dynpricing.settings import ServiceSettings

EXIT_DELIVERY_FAILED = 3
EXIT_SHUTDOWN_TIMED_OUT = 5
EXIT_KAFKA_FATAL = 6
CONNECT_TIMEOUT_S = 5.0  # one attempt to reach the broker
RETRY_FIRST_S = 1.0  # pause after the first failed attempt, doubled up to RETRY_MAX_S
RETRY_MAX_S = 15.0
PROBE_INTERVAL_S = 1.0  # while the broker is unreachable: how often the loop looks again
PROBE_TIMEOUT_S = 1.0
SHUTDOWN_MARGIN_S = 1.0  # of SHUTDOWN_TIMEOUT_S, left for the interpreter to exit
CLOSE_TIMEOUT_S = 3.0  # at most, per client, of what is left of the budget
COMMIT_POLL_S = 0.05
CONSUME_ERROR_LOG_INTERVAL_S = 30.0

P = TypeVar("P")


class Stopped(Exception):  # noqa: N818 - not an error: the service was asked to stop
    """Raised out of a start-up wait when SIGTERM arrives."""


class ServiceExit(Exception):  # noqa: N818 - an outcome with an exit code, logged by the shell
    """Ends the service at start-up with an exit code and one log line (event and fields)."""

    def __init__(self, code: int, event: str, **fields: object) -> None:
        super().__init__(event)
        self.code = code
        self.event = event
        self.fields = fields


class Running:
    """A started service: runs its loop until stopped, shuts down, returns the exit code."""

    def run(self) -> int:
        raise NotImplementedError


class KafkaLink:
    """What every client of one service is told to call back, and what it learns from it.

    Refusals (wrong password, unknown CA, ACLs) go to the security watch, which
    raises them out of the ``poll`` that served them. ``_ALL_BROKERS_DOWN``
    marks the broker unreachable: ``/readyz`` answers 503 until the loop's probe
    (a metadata request every second meanwhile) is answered again.
    """

    def __init__(self, settings: ServiceSettings, health: Health, log: Any) -> None:
        self.settings = settings
        self.health = health
        self.log = log
        self.watch = KafkaWatch(settings.kafka, warn=log.warning, debug=log.debug)
        self.down_since: float | None = None
        self._next_probe = 0.0

    def callbacks(self) -> dict[str, Any]:
        return {"error_cb": self._on_error, "logger": self.watch}

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal() or err.code() == KafkaError._FATAL:
            raise KafkaException(err)  # the client is unusable: out of the poll that served it
        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.down_since is None:
            self.down_since = time.monotonic()
            self.health.set_connected(False)
            self.log.warning("kafka_unreachable", error=err.str(), ready=False)
        self.watch.on_error(err)

    def up(self) -> None:
        """Something worked: the broker is there (again)."""
        if self.down_since is None and self.health.connected:
            return
        if self.down_since is not None:
            self.log.info("kafka_reachable", down_s=round(time.monotonic() - self.down_since, 1))
            self.down_since = None
        self.watch.mark_connected()
        self.health.set_connected(True)

    def probe(self, client: Any, topic: str) -> None:
        """While the broker is marked unreachable, ask it for metadata now and then."""
        now = time.monotonic()
        if self.down_since is None or now < self._next_probe:
            return
        self._next_probe = now + PROBE_INTERVAL_S
        try:
            client.list_topics(topic, timeout=PROBE_TIMEOUT_S)
        except KafkaException as exc:
            if not transient(exc):
                raise
            return
        self.up()


class Shell:
    """What a service gets from the shell: its settings and the shared machinery."""

    def __init__(  # noqa: PLR0917 - built once, by run_service
        self,
        name: str,
        settings: ServiceSettings,
        stop: StopFlag,
        registry: CollectorRegistry,
        health: Health,
        views: dict[str, JsonView],
        topics: Sequence[str],
    ) -> None:
        self.name = name
        self.settings = settings
        self.topics = list(topics)  # the ones it uses: a principal may describe only those
        self.group: str | None = None  # its consumer group, named in refusals
        self.log = structlog.get_logger(name)
        self.stop = stop
        self.registry = registry
        self.health = health
        self.views = views  # served by /<name>; a service may add its own once started
        self.link = KafkaLink(settings, health, self.log)
        self.commit_note = "the offsets are committed again at the next chance"
        self._closers: list[tuple[str, Callable[[], None]]] = []
        self._consume_errors_said: dict[int, float] = {}
        self._commits_answered = 0
        self._commit_failed = False

    # ---- clients ----------------------------------------------------------------------

    def consumer(self, group_id: str, client_id: str, **extra: Any) -> Consumer:
        """The service's consumer, closed (bounded) when the service ends."""
        self.group = group_id
        consumer = make_consumer(
            self.settings.kafka,
            group_id,
            client_id,
            {**self.link.callbacks(), "on_commit": self._on_commit},
            **extra,
        )
        self._closers.append((client_id, consumer.close))
        return consumer

    def producer(self, client_id: str, **extra: Any) -> OutputProducer:
        """The service's producer: dead letters that are too large shrink to their summary."""
        raw = make_producer(self.settings.kafka, client_id, self.link.callbacks(), **extra)
        shrink = {self.settings.topics.dead_letters: events.shrink_dead_letter}
        return OutputProducer(raw, shrink=shrink, stop=self.stop, log=self.log)

    # ---- start-up ---------------------------------------------------------------------

    def until_done(self, call: Callable[[], P], what: str) -> P:
        """Retry a request while the broker is unreachable or still starting; Stopped on SIGTERM."""
        pause = RETRY_FIRST_S
        attempt = 0
        while True:
            self.link.watch.raise_if_refused()
            try:
                return call()
            except KafkaException as exc:
                refusal = _refusal(exc, self.settings)
                if refusal is not None:
                    raise KafkaRefusedError(refusal) from exc
                if not transient(exc):
                    raise
                attempt += 1
                self.log.warning(
                    "kafka_unreachable",
                    doing=what,
                    attempt=attempt,
                    retry_in_s=pause,
                    bootstrap=self.settings.kafka.bootstrap_servers,
                    error=str(exc.args[0].str() if exc.args else exc),
                )
            if self.stop.wait(pause):
                raise Stopped
            pause = min(RETRY_MAX_S, pause * 2)

    def connect(self) -> None:
        """Until the broker answers and the topics exist (created when allowed)."""
        topics = self.topics
        kafka, callbacks = self.settings.kafka, self.link.callbacks()
        if self.settings.create_topics:
            self.until_done(
                lambda: ensure_topics(
                    kafka, topics, callbacks, CONNECT_TIMEOUT_S, [self.settings.topics.model]
                ),
                "creating topics",
            )
            self.link.up()
            return
        while True:
            missing = self.until_done(
                lambda: missing_topics(kafka, topics, callbacks, CONNECT_TIMEOUT_S),
                "looking for topics",
            )
            self.link.up()
            if not missing:
                return
            self.log.warning(
                "topics_missing", topics=missing, create_topics=False, retry_in_s=RETRY_MAX_S
            )
            if self.stop.wait(RETRY_MAX_S):
                raise Stopped

    # ---- the loop ---------------------------------------------------------------------

    def at_once(self, call: Callable[[], None]) -> None:
        """A broker request from the loop: if the broker is away, it is asked again next
        time instead of waited for (and while it is known to be away, not even tried)."""
        if self.link.down_since is not None:
            return
        try:
            call()
        except KafkaException as exc:
            if not transient(exc):
                raise

    def tick(self, client: Any) -> None:
        """Once per loop turn: alive, and while the broker is away, look for it again."""
        self.health.tick()
        self.link.watch.raise_if_refused()
        self.link.probe(client, self.topics[0])

    def usable(self, msg: Message, group: str | None = None) -> bool:
        """The consume-error check of every message: a message to handle, or not.

        End-of-partition events are no messages; a fatal error or a refusal
        (an ACL on the topic) raises; any other error is logged (at most every
        :data:`CONSUME_ERROR_LOG_INTERVAL_S` per code) and skipped.
        """
        err = msg.error()
        if err is None:
            return True
        if err.fatal() or err.code() == KafkaError._FATAL:
            raise KafkaException(err)
        if err.code() == KafkaError._PARTITION_EOF:
            return False
        refusal = classify(
            err, self.settings.kafka, operation="Read", topic=msg.topic(), group=group or self.group
        )
        if refusal is not None:
            self.link.watch.refuse(refusal)
        self._say_consume_error(err)
        return False

    def _say_consume_error(self, err: KafkaError) -> None:
        now = time.monotonic()
        if now - self._consume_errors_said.get(err.code(), -1e9) >= CONSUME_ERROR_LOG_INTERVAL_S:
            self._consume_errors_said[err.code()] = now
            self.log.warning("consume_error", code=err.name(), error=err.str())

    # ---- commits ----------------------------------------------------------------------

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        del partitions  # the offsets are in the log line of the commit that fails again
        self._commits_answered += 1
        refusal = None if err is None else denied(err, "Commit", group=self.group)
        if refusal is not None:
            self.link.watch.refuse(refusal)  # raises out of the poll that served this
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            self._commit_failed = True
            self.log.warning("offset_commit_failed", error=err.str(), note=self.commit_note)

    def commit(self, consumer: Consumer, offsets: Iterable[TopicPartition]) -> None:
        """Commit without waiting: the answer is logged when it comes, never awaited."""
        wanted = list(offsets)
        if not wanted:
            return
        try:
            consumer.commit(offsets=wanted, asynchronous=True)
        except KafkaException as exc:
            self.log.warning("offset_commit_failed", error=str(exc), note=self.commit_note)

    def commit_before(self, consumer: Consumer, offsets: list[TopicPartition], end: float) -> bool:
        """The last commit, on shutdown: waited for until ``end`` at the latest."""
        if not offsets:
            return True
        answered = self._commits_answered
        self._commit_failed = False
        try:
            consumer.pause(consumer.assignment())  # poll below serves the answer, fetches nothing
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            self.log.warning("offset_commit_failed", error=str(exc), note=self.commit_note)
            return False
        while self._commits_answered == answered and time.monotonic() < end:
            consumer.poll(COMMIT_POLL_S)
        return self._commits_answered > answered and not self._commit_failed

    # ---- shutdown ---------------------------------------------------------------------

    @property
    def shutdown_deadline(self) -> float:
        """When the service's own shutdown must be over (monotonic clock)."""
        started = self.stop.set_at if self.stop.set_at is not None else time.monotonic()
        return started + max(0.0, self.settings.shutdown_timeout_s - SHUTDOWN_MARGIN_S)

    def remaining(self) -> float:
        return max(0.0, self.shutdown_deadline - time.monotonic())

    def close_clients(self) -> bool:
        """Close every consumer, each bounded; False if one did not finish in time."""
        finished = True
        for name, close in reversed(self._closers):
            limit = min(CLOSE_TIMEOUT_S, self.remaining())
            if not _bounded(close, limit):
                self.log.warning("client_close_timed_out", client=name, waited_s=round(limit, 1))
                finished = False
        self._closers.clear()
        return finished


def once(call: Callable[[], P], what: str) -> P:
    """:meth:`Shell.until_done`'s signature, without the retries: for requests from the loop,
    inside :meth:`Shell.at_once`."""
    del what
    return call()


def _refusal(exc: KafkaException, settings: ServiceSettings) -> Any:
    err = exc.args[0] if exc.args else None
    return classify(err, settings.kafka) if isinstance(err, KafkaError) else None


def _bounded(call: Callable[[], None], timeout_s: float) -> bool:
    """Run ``call`` on a helper thread and wait at most ``timeout_s`` for it."""
    worker = threading.Thread(target=call, name="bounded-close", daemon=True)
    worker.start()
    worker.join(timeout_s)
    return not worker.is_alive()


class DeadLetters:
    """Refused messages to the dead-letter topic, with their reason, counted and logged."""

    def __init__(self, shell: Shell, producer: OutputProducer, counter: Counter) -> None:
        self._producer = producer
        self._topic = shell.settings.topics.dead_letters
        self._counter = counter
        self._log = shell.log

    def send(self, msg: Message, reason: str, detail: str) -> None:
        origin = origin_of(msg)
        value = events.encode_dead_letter(msg.value(), reason, detail, origin, wall_clock())
        self._producer.send(self._topic, value, events.dead_letter_key(msg.key()))
        self._counter.labels(reason).inc()
        self._log.info(
            "dead_lettered",
            reason=reason,
            detail=detail,
            topic=origin.topic,
            partition=origin.partition,
            offset=origin.offset,
        )


class DeliveredCommits:
    """Offsets committed only once the output they cover is delivered, never waited for.

    Each :meth:`turn` (the caller runs one every commit interval) commits the
    positions noted at the previous turn if the producer has reports for every
    message it had been handed by then, and notes the positions of now. A
    failed delivery raises (the service stops; a restart redoes that input).
    Used by the services that commit what they consumed: the simulator and the
    deciders.
    """

    def __init__(self, shell: Shell, consumer: Consumer, producer: OutputProducer) -> None:
        self._shell = shell
        self._consumer = consumer
        self._producer = producer
        self._noted: tuple[int, list[TopicPartition]] | None = None

    def turn(self, positions: list[TopicPartition]) -> None:
        producer = self._producer
        producer.raise_if_failed()
        if self._noted is not None and producer.reported >= self._noted[0]:
            self._shell.commit(self._consumer, self._noted[1])
            self._noted = None
        if self._noted is None:
            self._noted = (producer.sent, positions)

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop what was noted for partitions this member no longer owns."""
        if self._noted is None:
            return
        gone = {(tp.topic, tp.partition) for tp in partitions}
        sent, noted = self._noted
        self._noted = (sent, [tp for tp in noted if (tp.topic, tp.partition) not in gone])


class _Watchdog:
    """Ends the process when a shutdown overruns its bound, whatever hangs."""

    def __init__(self, stop: StopFlag, timeout_s: float, log: Any) -> None:
        self._timeout_s = timeout_s
        self._log = log
        self._timer: threading.Timer | None = None
        stop.on_set(self._arm)

    def _arm(self) -> None:
        self._timer = threading.Timer(self._timeout_s, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self._log.error("shutdown_timed_out", after_s=self._timeout_s)
        sys.stderr.flush()
        os._exit(EXIT_SHUTDOWN_TIMED_OUT)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def run_service(
    name: str,
    settings: ServiceSettings,
    start: Callable[[Shell], Running],
    *,
    prepare: Callable[[Shell], None] | None = None,
    topics: Sequence[str] | None = None,
    http_views: dict[str, JsonView] | None = None,
) -> int:
    """The whole life of one service (see the module docstring); returns its exit code."""
    configure_logging(settings.log_level, settings.log_format)
    stop = StopFlag()
    stop.install()
    registry, health = CollectorRegistry(), Health()
    views: dict[str, JsonView] = dict(http_views or {})
    http = HttpServer(settings.http_host, settings.http_port, registry, health, views)
    http.start()
    used = settings.topics.all() if topics is None else topics
    shell = Shell(name, settings, stop, registry, health, views, used)
    log = shell.log
    watchdog = _Watchdog(stop, settings.shutdown_timeout_s, log)
    log.info("service_starting", http_port=http.port, bootstrap=settings.kafka.bootstrap_servers)
    code = EXIT_DELIVERY_FAILED  # kept if an exception is on its way out of _run
    try:
        code = _run(shell, start, prepare)
    finally:
        health.set_ready(False)
        closed = shell.close_clients()
        http.stop()
        watchdog.cancel()
    if not closed:  # a client stuck in librdkafka (no broker): its destructor would be too
        sys.stderr.flush()
        os._exit(code)
    return code


def _run(
    shell: Shell, start: Callable[[Shell], Running], prepare: Callable[[Shell], None] | None
) -> int:
    log = shell.log
    try:
        if prepare is not None:
            prepare(shell)
        refusal = preflight(shell.settings.kafka)
        if refusal is not None:
            raise KafkaRefusedError(refusal)
        shell.connect()
        running = start(shell)
        shell.health.set_ready(True)
        return running.run()
    except Stopped:
        log.info("stopped_while_starting", signal=shell.stop.signal_name)
        return 0
    except ServiceExit as exc:
        log.error(exc.event, **exc.fields)
        return exc.code
    except KafkaRefusedError as exc:
        log.error("kafka_refused", cause=exc.refusal.cause, reason=exc.refusal.message)
        return EXIT_KAFKA_REFUSED
    except DeliveryFailedError as exc:
        log.error("delivery_failed", error=str(exc))
        return EXIT_DELIVERY_FAILED
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if not isinstance(err, KafkaError) or not (err.fatal() or err.code() == KafkaError._FATAL):
            raise
        log.error("kafka_fatal", error=err.str(), note="the client cannot go on; a restart can")
        return EXIT_KAFKA_FATAL
