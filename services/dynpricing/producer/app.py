"""``dynpricing producer``: publish demand events at a rate, for a count or forever."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter

from dynpricing import events
from dynpricing.kafka_io import (
    DeliveryFailedError,
    DeliveryTracker,
    StopFlag,
    ensure_topics,
    flush,
    make_producer,
    produce,
    wait_for_topics,
    wall_clock,
)
from dynpricing.observability import Health, HttpServer, configure_logging
from dynpricing.producer.demand import DemandModel
from dynpricing.settings import ProducerSettings

TICK_S = 0.01  # pacing granularity at a fixed rate
UNPACED_CHUNK = 1000  # events per loop turn when producing as fast as possible
PROGRESS_INTERVAL_S = 10.0
EXIT_DELIVERY_FAILED = 3


class DemandPublisher:
    """Turns model samples into demand events on the topic, counting per location."""

    def __init__(self, settings: ProducerSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        seed = settings.seed
        self.model = DemandModel(
            settings.locations,
            np.random.default_rng(seed),
            settings.day_length_s,
            settings.burst_probability,
        )
        self.producer = make_producer(settings.kafka, "demand-producer")
        self.tracker = DeliveryTracker()
        self.counter = Counter(
            "dynpricing_demand_events", "Demand events published", ("location",), registry=registry
        )
        self._children = {loc: self.counter.labels(loc) for loc in settings.locations}
        self.sent = 0
        self._id_prefix = (
            uuid.UUID(int=int(np.random.default_rng(seed).integers(2**63))).hex[:8]
            if seed is not None
            else uuid.uuid4().hex[:8]
        )

    def publish(self, n: int, elapsed_s: float) -> None:
        now = wall_clock()
        for _ in range(n):
            sample = self.model.sample(elapsed_s)
            event = events.DemandEvent(
                event_id=f"{self._id_prefix}-{self.sent}",
                timestamp=now,
                location=sample.location,
                active_requests=sample.active_requests,
                available_drivers=sample.available_drivers,
            )
            produce(
                self.producer,
                self.settings.topics.demand,
                events.encode_demand(event),
                sample.location,
                self.tracker,
            )
            self._children[sample.location].inc()
            self.sent += 1
        self.producer.poll(0)
        self.tracker.raise_if_failed()


def _due(settings: ProducerSettings, publisher: DemandPublisher, elapsed_s: float) -> int:
    """How many events are due now: paced by the rate, capped by the count."""
    due = UNPACED_CHUNK if settings.rate == 0 else int(elapsed_s * settings.rate) - publisher.sent
    if settings.count:
        due = min(due, settings.count - publisher.sent)
    return max(due, 0)


def run(
    settings: ProducerSettings, publisher: DemandPublisher, stop: StopFlag, health: Health
) -> None:
    log = structlog.get_logger("producer")
    started = time.monotonic()
    next_progress = started + PROGRESS_INTERVAL_S
    while not stop.is_set():
        elapsed = time.monotonic() - started
        publisher.publish(_due(settings, publisher, elapsed), elapsed)
        health.tick()
        if settings.count and publisher.sent >= settings.count:
            break
        if time.monotonic() >= next_progress:
            log.info("demand_published", events=publisher.sent)
            next_progress += PROGRESS_INTERVAL_S
        if settings.rate:
            stop.wait(TICK_S)
    flush(publisher.producer, publisher.tracker)
    log.info("producer_stopped", events=publisher.sent, signal=stop.signal_name)


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, logging, metrics and the producer; then publish."""
    del argv
    settings = ProducerSettings()
    configure_logging(settings.log_level, settings.log_format)
    log = structlog.get_logger("producer")
    stop = StopFlag()
    stop.install()
    topics = [settings.topics.demand]  # only what it uses: it may describe nothing else
    if settings.create_topics:
        ensure_topics(settings.kafka, topics)
    elif not wait_for_topics(settings.kafka, topics, stop, log):
        return 0
    registry = CollectorRegistry()
    health = Health()
    publisher = DemandPublisher(settings, registry)
    http = HttpServer(settings.http_host, settings.http_port, registry, health)
    http.start()
    health.set_ready(True)
    log.info(
        "producer_started",
        rate=settings.rate,
        count=settings.count,
        locations=list(settings.locations),
    )
    try:
        run(settings, publisher, stop, health)
    except DeliveryFailedError as exc:
        log.error("delivery_failed", error=str(exc))
        return EXIT_DELIVERY_FAILED
    finally:
        http.stop()
    return 0
