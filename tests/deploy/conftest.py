"""Fixtures of the tests that run the images with podman."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.deploy.podman_support import Podman, build_images, find_podman
from tests.kafka_support import unique


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """podman with the project's configuration; removes what the session started."""
    runner = find_podman(unique("run"))
    try:
        yield runner
    finally:
        runner.clean_up()


@pytest.fixture(scope="session")
def images(podman: Podman) -> dict[str, str]:
    """service -> image built from the Dockerfile's target of that name."""
    return build_images(podman)
