"""Session-wide fixtures: a real Kafka broker, unique topics and consumer groups.

The broker is the project's own local KRaft broker (``dynpricing.broker``) on a
free port in a temporary directory, unless ``KAFKA_BOOTSTRAP_SERVERS`` names one.
Locally, a broker that cannot start skips the Kafka tests with the reason; with
``CI=true`` it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kafka_support import create_topics, local_broker, unique


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker for the whole test session."""
    given = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if given:
        yield given
        return
    with local_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Any]]:
    """``secured_kafka("sasl-scram")`` or ``("mtls")``: a secured local broker, one per mode.

    Each starts on first use and serves the whole session (a start takes seconds,
    the certificates are made once); tests use unique topics and groups on it.
    """
    from tests.security_support import SecuredBroker  # noqa: PLC0415 - needs the broker module

    started: dict[str, SecuredBroker] = {}

    def get(mode: str) -> SecuredBroker:
        if mode not in started:
            started[mode] = SecuredBroker.start(mode, tmp_path_factory.mktemp(f"kafka-{mode}"))  # type: ignore[arg-type]
        return started[mode]

    yield get
    for secured in started.values():
        secured.stop()


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Callable[..., str]:
    """Create a uniquely named topic: ``topic_factory("demand", partitions=3)``."""

    def make(prefix: str = "test", partitions: int = 1) -> str:
        name = unique(prefix)
        create_topics(kafka_bootstrap, [name], partitions)
        return name

    return make


@pytest.fixture
def group_id() -> str:
    """A consumer group no other test uses."""
    return unique("group")


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
