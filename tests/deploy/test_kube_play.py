"""The chart's own pods, run by ``podman kube play`` against the test broker.

``helm template`` renders the chart with an external-Kafka values file that points
at the test broker and at the images built from the Dockerfile; the rendered
ConfigMaps, the state's PersistentVolumeClaim and the Deployments run as
rendered, apart from the edits that sharing one host network needs (listed in
``TEST_EDITS`` and checked to be the only ones). So the environment names, the
mounts, the security context, the command and the probe paths are the
chart's. Then the chart's `helm test` pod runs its check against the engine.

What podman does not do as Kubernetes would (docs/deployment.md): it turns an
emptyDir into a named volume rather than a fresh directory per pod, ignores
fsGroup, and turns the liveness probe into a ``curl`` health check that needs
systemd timers (there are none here; the images have no curl either). So the
test asks every rendered probe's path itself.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from tests.deploy.podman_support import LEARN_DEADLINE_S, Container, Podman
from tests.deploy.support import CHART, PRICING, SERVICES, Manifest, by_kind, render_release
from tests.integration.services_support import metric_value
from tests.kafka_support import free_port, unique, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.tools]

PLAYED_KINDS = ("ConfigMap", "PersistentVolumeClaim", "Deployment")
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")
HELM_TEST_DEADLINE_S = 60
# Every change the test makes to the rendered objects. Kubernetes gives each pod
# its own network namespace; here all pods share the host's, so:
TEST_EDITS = (
    "pod spec: hostNetwork true (every pod on the host network, traffic on 127.0.0.1)",
    "container: ports removed (nothing to map on the host network)",
    "ConfigMap: <SERVICE>_HTTP_PORT set to a free port per service (one network, three servers)",
    "ConfigMap: <SERVICE>_HTTP_HOST 127.0.0.1 (what 0.0.0.0 is in a network of its own)",
    "probes: httpGet.port, the named port 'http', replaced by that port's number",
    "helm test pod: each Service's URL replaced by http://127.0.0.1:<that service's port>",
)
# The chart's modes the test plays, and the topics (values keys) each gets.
MODES = ("embedded",)
TOPIC_KEYS = ("demand", "decisions", "outcomes", "deadLetters", "model")


@dataclass
class Played:
    """What ``podman kube play`` started in one of the chart's modes: per service its
    pod's container and port; the topics the pods were given, not yet created."""

    mode: str
    containers: dict[str, Container]
    manifests: list[Manifest]
    topics: dict[str, str]  # values key -> topic name

    @property
    def learner(self) -> Container:
        """The service that learns: the engine, or the learner."""
        return self.containers[PRICING[self.mode][-1]]


def component(manifest: Manifest) -> str:
    return str(manifest["metadata"]["labels"]["app.kubernetes.io/component"])


def external_kafka_values(
    mode: str, bootstrap: str, topics: dict[str, str], images: dict[str, str]
) -> dict[str, Any]:
    """An external-Kafka values file: the mode, the test broker, its topics, the built
    images."""

    def image(service: str) -> dict[str, str]:
        repository, tag = images[service].rsplit(":", 1)
        return {"repository": repository, "tag": tag, "pullPolicy": "Never"}

    return {
        "mode": mode,
        "kafka": {
            "strimzi": {"enabled": False},
            "external": {"bootstrapServers": bootstrap, "securityProtocol": "PLAINTEXT"},
        },
        "topics": {key: {"name": name} for key, name in topics.items()},
        "engine": {
            "image": image("engine"),
            "settings": {"groupId": unique("engine"), "snapshotIntervalS": 1.0, "seed": 7},
        },
        "decider": {"image": image("decider"), "settings": {"groupId": unique("decider")}},
        "learner": {
            "image": image("learner"),
            "settings": {"groupId": unique("learner"), "snapshotIntervalS": 1.0},
        },
        "producer": {"image": image("producer"), "settings": {"rate": 200, "seed": 5}},
        "simulator": {
            "image": image("simulator"),
            "settings": {"groupId": unique("simulator"), "seed": 11},
        },
    }


def edit_for_the_host_network(
    manifests: list[Manifest], ports: dict[str, int]
) -> tuple[list[Manifest], set[str]]:
    """Copies of the played objects with TEST_EDITS applied; the edits made."""
    made: set[str] = set()
    out = []
    for original in manifests:
        m = copy.deepcopy(original)
        kind = m["kind"]
        if kind == "ConfigMap":
            p = f"DYNPRICING_{component(m).upper()}_"
            m["data"][p + "HTTP_PORT"] = str(ports[component(m)])
            m["data"][p + "HTTP_HOST"] = "127.0.0.1"
            made |= {TEST_EDITS[2], TEST_EDITS[3]}
        pod = m["spec"]["template"]["spec"] if kind == "Deployment" else m.get("spec")
        if kind in {"Deployment", "Pod"}:
            pod["hostNetwork"] = True
            made.add(TEST_EDITS[0])
            for container in pod["containers"]:
                if container.pop("ports", None) is not None:
                    made.add(TEST_EDITS[1])
                for probe in PROBES:
                    if probe in container:
                        container[probe]["httpGet"]["port"] = ports[component(m)]
                        made.add(TEST_EDITS[4])
        if kind == "Pod":
            command = pod["containers"][0]["command"]
            for index in range(3, len(command), 2):  # python -c SCRIPT (URL METRIC)...
                host = command[index].split("//")[1].split(":")[0]
                (service,) = [s for s in ports if host.endswith(f"-{s}")]
                command[index] = f"http://127.0.0.1:{ports[service]}"
            made.add(TEST_EDITS[5])
        out.append(m)
    return out, made


def play(podman: Podman, path: Path, manifests: list[Manifest]) -> None:
    path.write_text(yaml.safe_dump_all(manifests, sort_keys=False), encoding="utf-8")
    podman("kube", "play", path, timeout=300)


@pytest.fixture(params=MODES)
def played(
    request: pytest.FixtureRequest,
    podman: Podman,
    images: dict[str, str],
    kafka_bootstrap: str,
    tmp_path: Path,
) -> Iterator[Played]:
    mode = str(request.param)
    topics = {key: unique(key.lower()) for key in TOPIC_KEYS}
    values = tmp_path / "external-kafka-values.yaml"
    settings = external_kafka_values(mode, kafka_bootstrap, topics, images)
    values.write_text(yaml.safe_dump(settings))
    release = unique("kp")
    rendered = render_release(release, values)
    ports = {service: free_port() for service in SERVICES}
    chosen = [m for m in rendered if m["kind"] in PLAYED_KINDS]
    assert {m["kind"] for m in chosen} == set(PLAYED_KINDS)
    manifests, made = edit_for_the_host_network(chosen, ports)
    assert made == set(TEST_EDITS) - {TEST_EDITS[5]}
    path = tmp_path / "play.yaml"
    try:
        play(podman, path, manifests)
        containers = {
            component(d): Container(
                podman,
                f"{d['metadata']['name']}-pod-0-{component(d)}",
                ports[component(d)],
            )
            for d in by_kind(manifests, "Deployment")
        }
        yield Played(mode, containers, rendered, topics)
    finally:
        podman("kube", "down", path, check=False, timeout=120)
        for claim in by_kind(manifests, "PersistentVolumeClaim"):
            podman("volume", "rm", "--force", claim["metadata"]["name"], check=False)


def alive_but_not_ready(container: Container) -> bool | None:
    """/healthz answers 200 and /readyz does not: up, waiting for Kafka's topics."""
    try:
        healthy = container.get("/healthz")[0] == 200
    except OSError:
        return None
    if not healthy:
        return None
    assert container.get("/readyz")[0] != 200, f"{container.name} ready without its topics"
    return True


def create_topics_as_the_chart_sizes_them(bootstrap: str, topics: dict[str, str]) -> None:
    """The topics the KafkaTopics would make, with the chart's partitions and configs."""
    sizes = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))["topics"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [
        NewTopic(name, int(sizes[key]["partitions"]), 1, config=sizes[key].get("config", {}))
        for key, name in topics.items()
    ]
    for future in admin.create_topics(new).values():
        future.result(timeout=30)


def outcomes_learnt(container: Container) -> float:
    """Outcomes the engine or the learner has learnt (its metric, summed)."""
    return metric_value(container.metrics(), "dynpricing_outcomes_applied_total", {})


def wait_learning(container: Container) -> None:
    """Until the service has learnt 100 outcomes more than when asked."""
    before = outcomes_learnt(container)
    wait_until(
        lambda: True if outcomes_learnt(container) >= before + 100 else None,
        deadline_s=LEARN_DEADLINE_S,
        what=f"{container.name} learning",
    )


def test_chart_pods_wait_for_their_topics_then_turn_ready_and_learn(
    played: Played, podman: Podman, kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The pods start before their topics exist (as under Strimzi, whose Topic
    Operator makes them): alive and serving /healthz, so the liveness and startup
    probes pass, but not ready, and none creates a topic. Once the topics exist
    they turn ready."""
    assert set(played.containers) == {*PRICING[played.mode], "producer", "simulator"}
    for container in played.containers.values():
        wait_until(lambda c=container: alive_but_not_ready(c), what=f"{container.name} /healthz")
    existing = AdminClient({"bootstrap.servers": kafka_bootstrap}).list_topics(timeout=10).topics
    assert not set(played.topics.values()) & set(existing), "a service created a topic"
    create_topics_as_the_chart_sizes_them(kafka_bootstrap, played.topics)
    for container in played.containers.values():
        assert container.running(), container.logs()
        container.wait_ready()
    # Every probe the chart renders answers on its path.
    for deployment in by_kind(played.manifests, "Deployment"):
        spec = deployment["spec"]["template"]["spec"]["containers"][0]
        container = played.containers[component(deployment)]
        for probe in PROBES:
            path = spec[probe]["httpGet"]["path"]
            assert container.get(path)[0] == 200, (component(deployment), probe, path)

    # The security context reached the processes.
    probe = (
        "import os, pathlib; status = pathlib.Path('/proc/self/status').read_text();"
        "pathlib.Path('/tmp/probe').write_text('x');"
        "print(os.getuid(), status.split('CapEff:')[1].split()[0], os.access('/', os.W_OK))"
    )
    for name in PRICING[played.mode]:
        seen = podman("exec", played.containers[name].name, "python", "-c", probe).stdout.split()
        assert seen == ["10001", "0000000000000000", "False"], (name, seen)

    wait_learning(played.learner)

    # The chart's `helm test` pod, run as rendered (but for the Services' URLs).
    ports = {name: c.port for name, c in played.containers.items()}
    test_pod, _ = edit_for_the_host_network(by_kind(played.manifests, "Pod"), ports)
    assert len(test_pod) == 1
    path = tmp_path / "helm-test.yaml"
    try:
        play(podman, path, test_pod)
        name = f"{test_pod[0]['metadata']['name']}-{test_pod[0]['spec']['containers'][0]['name']}"
        waited = podman("wait", name, timeout=HELM_TEST_DEADLINE_S)
        logs = podman("logs", name, check=False)
        assert waited.stdout.strip() == "0", logs.stdout + logs.stderr
        assert "pricing services ready and exporting metrics" in logs.stdout
    finally:
        podman("kube", "down", path, check=False, timeout=120)
