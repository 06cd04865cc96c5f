"""Fixtures for tests that run the real services as processes."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dynpricing import broker
from tests.integration.services_support import ServiceRunner, Topics
from tests.kafka_support import create_topics, free_port, start_broker, unique

SERVICE_TOPIC_PARTITIONS = 3


@pytest.fixture
def runner(
    kafka_bootstrap: str, topic_factory: Callable[..., str], tmp_path: Path
) -> Iterator[ServiceRunner]:
    """Fresh topics (three partitions each) and a launcher that kills what it started."""
    services = ServiceRunner(
        kafka_bootstrap, Topics.create(topic_factory, SERVICE_TOPIC_PARTITIONS), tmp_path
    )
    yield services
    services.stop_all()


class OwnBroker:
    """A broker of the test's own, to kill and restart on its data without harming others."""

    def __init__(self, data_dir: Path) -> None:
        self.layout = broker.BrokerLayout(port=free_port(), data_dir=data_dir)
        self.proc: subprocess.Popen[bytes] | None = start_broker(self.layout)

    @property
    def bootstrap(self) -> str:
        return self.layout.bootstrap

    def kill(self) -> None:
        """SIGKILL, as a crashed or evicted broker: nothing is flushed or closed."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None

    def restart(self) -> None:
        """Start again on the same data directory (``dynpricing kafka up --keep-data``)."""
        self.proc = start_broker(self.layout, fresh=False)

    def stop(self) -> None:
        broker.stop(self.layout, self.proc)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker for this test alone (on a free port, data under the test's folder)."""
    started = OwnBroker(tmp_path / "own-kafka")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def own_runner(own_broker: OwnBroker, tmp_path: Path) -> Iterator[ServiceRunner]:
    """Services on ``own_broker``, with fresh topics of three partitions."""

    def make_topic(prefix: str = "test", partitions: int = 1) -> str:
        name = unique(prefix)
        create_topics(own_broker.bootstrap, [name], partitions)
        return name

    services = ServiceRunner(
        own_broker.bootstrap, Topics.create(make_topic, SERVICE_TOPIC_PARTITIONS), tmp_path
    )
    yield services
    services.stop_all()
