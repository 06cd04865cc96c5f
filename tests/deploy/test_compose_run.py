"""docker-compose's three services, run with podman from the built images with the
compose file's own environment, volumes and security options.

There is no Docker engine and no registry here, so the third-party images the
file names (apache/kafka, prom/prometheus, grafana/grafana) cannot run; each is
stood in for (docs/deployment.md):
- ``kafka``: the project's own broker (the same Apache Kafka 4.4.0, KRaft, one
  node), reachable inside the containers under the file's host name ``kafka``
  (``--add-host kafka:127.0.0.1``);
- ``kafka-topics``: its topic list, parsed from the file, created by the test;
- ``prometheus``: Debian's prometheus 2.42 (the version compose pins) with the
  file's scrape config, in test_live_monitoring.py; Grafana's dashboards are
  checked as PromQL there, Grafana itself is not run.

The edits a shared host network needs are listed in ``TEST_EDITS``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.podman_support import Container, Podman, total_outcomes
from tests.deploy.support import COMPOSE_SERVICES, REPO
from tests.integration.services_support import metric_value
from tests.kafka_support import create_topics, free_port, local_broker, unique

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.tools]

TEST_EDITS = (
    "network: the host's (--network host) instead of compose's bridge; `ports` not published",
    "environment: <SERVICE>_HTTP_PORT a free port (one network, three servers)",
    "environment: <SERVICE>_HTTP_HOST 127.0.0.1 (what 0.0.0.0 is in a network of its own)",
    "environment: the broker port in KAFKA__BOOTSTRAP_SERVERS, the test broker's free port",
    "volumes: named volumes get a per-test project prefix (compose prefixes the project name)",
)


# Every key a compose service may use here, and what the test does with it: a
# key the file gains must be added (and honoured) here first.
HANDLED_KEYS = {
    "build": "the image built from the same Dockerfile target",
    "image": "the tag compose gives that build; the test's own tag instead",
    "depends_on": "kafka-topics: the test creates its topics before any service",
    "environment": "--env, with TEST_EDITS",
    "ports": "not published (TEST_EDITS)",
    "volumes": "--volume, named volumes with the project prefix",
    "read_only": "--read-only",
    "tmpfs": "--tmpfs",
    "security_opt": "--security-opt",
    "cap_drop": "--cap-drop",
    "restart": "--restart",
}


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8")))


def topic_specs(doc: dict[str, Any]) -> dict[str, int]:
    """topic -> partitions, from the kafka-topics one-shot's script."""
    script = " ".join(doc["services"]["kafka-topics"]["command"])
    specs = dict(re.findall(r"\b([a-z_]+):(\d+)\b", script.split("for spec in", 1)[1]))
    return {topic: int(partitions) for topic, partitions in specs.items()}


def podman_args(
    name: str, svc: dict[str, Any], project: str, ports: dict[str, int], broker_port: int
) -> tuple[list[str], int]:
    """``podman run`` arguments for one compose service, with TEST_EDITS applied."""
    assert set(svc) <= set(HANDLED_KEYS), f"{name}: {sorted(set(svc) - set(HANDLED_KEYS))}"
    env = dict(svc["environment"])
    prefix = f"DYNPRICING_{name.upper()}_"
    http_port = ports[name]
    env[prefix + "HTTP_PORT"] = str(http_port)
    env[prefix + "HTTP_HOST"] = "127.0.0.1"
    host, _, _ = env[prefix + "KAFKA__BOOTSTRAP_SERVERS"].rpartition(":")
    env[prefix + "KAFKA__BOOTSTRAP_SERVERS"] = f"{host}:{broker_port}"
    args = ["--network=host", f"--add-host={host}:127.0.0.1"]
    args += [f"--env={k}={v}" for k, v in env.items()]
    for volume in svc.get("volumes", []):
        source, _, target = volume.partition(":")
        args.append(f"--volume={project}_{source}:{target}")
    if svc.get("read_only"):
        args.append("--read-only")
    args += [f"--tmpfs={path}" for path in svc.get("tmpfs", [])]
    args += [f"--security-opt={opt}" for opt in svc.get("security_opt", [])]
    args += [f"--cap-drop={cap}" for cap in svc.get("cap_drop", [])]
    if "restart" in svc:
        args.append(f"--restart={svc['restart']}")
    return args, http_port


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of its own: compose's fixed topic and group names stay out of the
    session broker, which other tests share."""
    with local_broker(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


class ComposeProject:
    """The compose services as podman containers of one project."""

    def __init__(self, podman: Podman, images: dict[str, str], broker_port: int) -> None:
        self.podman = podman
        self.images = images
        self.broker_port = broker_port
        self.name = unique("dpcompose")
        self.doc = compose()
        self.ports = {service: free_port() for service in COMPOSE_SERVICES}

    def up(self, service: str) -> Container:
        svc = self.doc["services"][service]
        assert svc["build"]["target"] == service
        args, port = podman_args(service, svc, self.name, self.ports, self.broker_port)
        for volume in svc.get("volumes", []):
            name = f"{self.name}_{volume.partition(':')[0]}"
            if self.podman("volume", "exists", name, check=False).returncode != 0:
                self.podman.volume(name)
        container = unique(f"{self.name}-{service}")
        self.podman("run", "--detach", f"--name={container}", self.podman.label(), *args,
                    self.images[service])  # fmt: skip
        return Container(self.podman, container, port)

    def volume_path(self, volume: str) -> Path:
        return self.podman.volume_path(f"{self.name}_{volume}")


def test_compose_services_run_from_the_images_with_the_files_settings(
    podman: Podman, images: dict[str, str], kafka: str
) -> None:
    doc = compose()
    assert set(topic_specs(doc)) == {
        v for k, v in doc["services"]["engine"]["environment"].items() if "_TOPICS__" in k
    }
    for topic, partitions in topic_specs(doc).items():
        create_topics(kafka, [topic], partitions)
    project = ComposeProject(podman, images, int(kafka.rpartition(":")[2]))

    engine = project.up("engine")
    simulator = project.up("simulator")
    producer = project.up("producer")
    for container in (engine, simulator, producer):
        container.wait_ready()

    engine.wait_learning(beyond=engine.wait_learning(beyond=0) + 100)
    assert metric_value(simulator.metrics(), "dynpricing_regret_total", {}) > 0
    seen = podman(
        "exec", engine.name, "python", "-c",
        "import os; print(os.getuid(), open('/proc/self/status').read()"
        ".split('CapEff:')[1].split()[0], os.access('/', os.W_OK))",
    ).stdout.split()  # fmt: skip
    assert seen == ["10001", "0000000000000000", "False"], seen

    # `docker compose down` sends SIGTERM: every service exits 0, and the
    # engine's learning stays on the engine-state volume for the next `up`.
    for container in (producer, engine, simulator):
        assert container.stop() == 0, container.logs()
    state_volume = next(v for v in doc["volumes"] if v == "engine-state")
    saved = json.loads((project.volume_path(state_volume) / "bandit_stats.json").read_text())
    assert total_outcomes(saved) > 100
    again = project.up("engine")
    again.wait_ready()
    assert int(again.json("/state")["total_outcomes"]) >= total_outcomes(saved)
    assert again.stop() == 0
