"""``dynpricing producer``: publish demand events at a rate, for a count or forever.

With a ``SEED`` the stream is reproducible: the same demand in the same order
under the same event ids. Replicas must not publish one stream twice, so the
seed and the event ids mix in the replica's identity (``REPLICA_ID``, the host
name by default: each pod's own name). Set ``REPLICA_ID`` yourself to reproduce
a replica's stream elsewhere.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Sequence

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from dynpricing import events
from dynpricing.kafka_io import OutputProducer, wall_clock
from dynpricing.producer.demand import DemandModel
from dynpricing.service import Running, Shell, run_service
from dynpricing.settings import ProducerSettings

TICK_S = 0.01  # pacing granularity at a fixed rate
UNPACED_CHUNK = 1000  # events per loop turn when producing as fast as possible
PROGRESS_INTERVAL_S = 10.0
EXIT_DELIVERY_FAILED = 3
ID_PREFIX_HEX = 12  # hex digits of the event id prefix (48 bits)


def stream_of(seed: int | None, replica_id: str) -> tuple[np.random.Generator, str]:
    """The random generator and the event id prefix of one replica's stream.

    Seeded: both follow from the seed *and* the replica, so one seed on two
    replicas gives two streams, and the same pair always the same one.
    Unseeded: random.
    """
    if seed is None:
        return np.random.default_rng(), uuid.uuid4().hex[:ID_PREFIX_HEX]
    digest = hashlib.sha256(f"{seed}/{replica_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "big")), digest[16:].hex()[
        :ID_PREFIX_HEX
    ]


class DemandPublisher:
    """Turns model samples into demand events on the topic, counting per location."""

    def __init__(
        self, settings: ProducerSettings, registry: CollectorRegistry, producer: OutputProducer
    ) -> None:
        self.settings = settings
        rng, self.id_prefix = stream_of(settings.seed, settings.replica_id)
        self.model = DemandModel(
            settings.locations, rng, settings.day_length_s, settings.burst_probability
        )
        self.producer = producer
        self.counter = Counter(
            "dynpricing_demand_events", "Demand events published", ("location",), registry=registry
        )
        self._children = {loc: self.counter.labels(loc) for loc in settings.locations}

    @property
    def sent(self) -> int:
        """Events handed to the producer: the producer counts them, and numbers the ids."""
        return self.producer.sent

    def publish(self, n: int, elapsed_s: float) -> None:
        now = wall_clock()
        topic = self.settings.topics.demand
        for _ in range(n):
            sample = self.model.sample(elapsed_s)
            event = events.DemandEvent(
                event_id=f"{self.id_prefix}-{self.sent}",
                timestamp=now,
                location=sample.location,
                active_requests=sample.active_requests,
                available_drivers=sample.available_drivers,
            )
            self.producer.send(topic, events.encode_demand(event), sample.location)
            self._children[sample.location].inc()
        self.producer.poll(0)
        self.producer.raise_if_failed()


def _due(settings: ProducerSettings, publisher: DemandPublisher, elapsed_s: float) -> int:
    """How many events are due now: paced by the rate, capped by the count."""
    due = UNPACED_CHUNK if settings.rate == 0 else int(elapsed_s * settings.rate) - publisher.sent
    if settings.count:
        due = min(due, settings.count - publisher.sent)
    return max(due, 0)


class ProducerService(Running):
    """Publishes until the count is reached or SIGTERM; a bounded flush at the end."""

    def __init__(self, shell: Shell, publisher: DemandPublisher) -> None:
        self.shell = shell
        self.publisher = publisher
        self.settings = publisher.settings

    def run(self) -> int:
        shell, publisher, settings = self.shell, self.publisher, self.settings
        started = time.monotonic()
        next_progress = started + PROGRESS_INTERVAL_S
        while not shell.stop.is_set():
            elapsed = time.monotonic() - started
            publisher.publish(_due(settings, publisher, elapsed), elapsed)
            shell.tick(publisher.producer.producer)
            if settings.count and publisher.sent >= settings.count:
                break
            if time.monotonic() >= next_progress:
                shell.log.info("demand_published", events=publisher.sent)
                next_progress += PROGRESS_INTERVAL_S
            if settings.rate:
                shell.stop.wait(TICK_S)
        return self._finish()

    def _finish(self) -> int:
        shell, producer = self.shell, self.publisher.producer
        stopping = shell.stop.is_set()
        budget = shell.remaining() if stopping else None
        undelivered = producer.flush(budget) if budget is not None else producer.flush()
        producer.raise_if_failed()
        if undelivered:
            shell.log.warning("demand_not_delivered", undelivered=undelivered)
            producer.purge()
            return EXIT_DELIVERY_FAILED
        shell.log.info(
            "producer_stopped", events=self.publisher.sent, signal=shell.stop.signal_name
        )
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Wire settings, the shell, metrics and the producer; then publish."""
    del argv
    settings = ProducerSettings()
    # only what it uses: its principal may describe nothing else
    topics = [settings.topics.demand]
    return run_service("producer", settings, lambda shell: start(shell, settings), topics=topics)


def start(shell: Shell, settings: ProducerSettings) -> ProducerService:
    publisher = DemandPublisher(settings, shell.registry, shell.producer("demand-producer"))
    shell.log.info(
        "producer_started",
        rate=settings.rate,
        count=settings.count,
        locations=list(settings.locations),
        event_id_prefix=publisher.id_prefix,
        replica_id=settings.replica_id,
    )
    return ProducerService(shell, publisher)
