"""The three images, built from the real Dockerfile and run with podman as the chart
runs them (uid 10001, read-only root, a tmpfs /tmp, no capabilities, the engine's
state directory on a volume) against the test broker.

Locally, without podman or the base image (`make podman-base`), these skip with
the reason; under CI=true they fail.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable

import pytest

from tests.deploy.podman_support import (
    Container,
    Podman,
    base_python_version,
    run_container,
    total_outcomes,
)
from tests.deploy.support import REPO
from tests.integration.services_support import Topics, metric_value
from tests.kafka_support import free_port, unique

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.tools]

DEMAND_RATE = 200
TOPIC_PARTITIONS = 3


def service_env(
    service: str, bootstrap: str, topics: Topics, port: int, **settings: object
) -> dict[str, str]:
    """The contract's variables for one service on the test broker and topics."""
    p = f"DYNPRICING_{service.upper()}_"
    env = {
        f"{p}KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        f"{p}TOPICS__DEMAND": topics.demand,
        f"{p}TOPICS__DECISIONS": topics.decisions,
        f"{p}TOPICS__OUTCOMES": topics.outcomes,
        f"{p}TOPICS__DEAD_LETTERS": topics.dead_letters,
        f"{p}HTTP_HOST": "127.0.0.1",
        f"{p}HTTP_PORT": str(port),
        f"{p}LOG_FORMAT": "json",
        f"{p}CREATE_TOPICS": "false",
    }
    env.update({f"{p}{k.upper()}": str(v) for k, v in settings.items()})
    return env


def test_base_image_python_is_the_dockerfiles_python_and_the_projects(
    podman: Podman,
) -> None:
    """The stand-in base (Debian bookworm's python3) has the minor version of the
    Dockerfile's pinned python:3.11-slim-bookworm and meets requires-python."""
    version = base_python_version(podman.binary)
    pinned = re.search(
        r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)\.\d+-", (REPO / "Dockerfile").read_text(), re.M
    )
    assert pinned, "Dockerfile pins no python:<x.y.z> base"
    assert version.rsplit(".", 1)[0] == pinned.group(1), version
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    minimum = re.fullmatch(r">=(\d+)\.(\d+)", requires)
    assert minimum, requires
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (int(minimum.group(1)), int(minimum.group(2)))


def test_images_run_as_the_chart_runs_them_learn_stop_cleanly_and_resume(
    podman: Podman,
    images: dict[str, str],
    kafka_bootstrap: str,
    topic_factory: Callable[..., str],
) -> None:
    topics = Topics.create(topic_factory, TOPIC_PARTITIONS)
    state = podman.volume(unique("dp-state"))
    on_volume = (f"--volume={state}:/var/lib/dynpricing",)
    group = unique("engine")

    def start(service: str, extra: tuple[str, ...] = (), **settings: object) -> Container:
        port = free_port()
        env = service_env(service, kafka_bootstrap, topics, port, **settings)
        return run_container(podman, images[service], service, port=port, env=env, extra=extra)

    engine = start("engine", on_volume, group_id=group, snapshot_interval_s=1, seed=7)
    simulator = start("simulator", group_id=unique("simulator"), seed=11)
    engine.wait_ready()
    simulator.wait_ready()
    producer = start("producer", rate=DEMAND_RATE, seed=5)
    producer.wait_ready()

    # The loop learns: outcomes learnt grow, the simulator measures regret.
    engine.wait_learning(beyond=engine.wait_learning(beyond=0) + 100)
    assert metric_value(simulator.metrics(), "dynpricing_regret_total", {}) > 0

    # What the process inside gets: uid 10001, no capabilities, a read-only root
    # with a writable /tmp; and each image's own HEALTHCHECK passes.
    probe = (
        "import os, pathlib; status = pathlib.Path('/proc/self/status').read_text();"
        "cap = status.split('CapEff:')[1].split()[0];"
        "pathlib.Path('/tmp/probe').write_text('x');"
        "root_rw = os.access('/', os.W_OK) or os.access('/opt/venv', os.W_OK);"
        "print(os.getuid(), os.getgid(), cap, root_rw)"
    )
    seen = podman("exec", engine.name, "python", "-c", probe).stdout.split()
    assert seen == ["10001", "10001", "0000000000000000", "False"], seen
    for container in (engine, simulator, producer):
        podman("healthcheck", "run", container.name)

    # SIGTERM: every service exits 0; the engine leaves its state on the volume.
    assert producer.terminate() == 0
    assert engine.terminate() == 0
    saved = json.loads((podman.volume_path(state) / "bandit_stats.json").read_text())
    learnt = total_outcomes(saved)
    assert learnt > 100

    # A new engine container on the same volume resumes from that state.
    resumed = start("engine", on_volume, group_id=group, snapshot_interval_s=1, seed=7)
    resumed.wait_ready()
    assert resumed.outcomes_learnt() >= learnt
    assert simulator.terminate() == 0
    assert resumed.terminate() == 0
