"""Fixtures for tests that run the real services as processes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.services_support import ServiceRunner, Topics

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
