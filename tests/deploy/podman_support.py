"""Run the project's images with podman, on the host network, against the test broker.

podman reads the project's ``tools/podman/containers.conf`` (runc, cgroupfs,
rlimits no higher than the host's). The images build from the real Dockerfile
with one change: the ``PYTHON_IMAGE`` base is the local stand-in that
``make podman-base`` makes (no registry is reachable here). All traffic stays on
127.0.0.1: every container shares the host's network.

Everything a test starts carries the label ``dynpricing.test=<run id>`` and is
removed when the test session ends, whatever happened.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.deploy.support import REPO, SERVICES, deploy_mk_variable, http_get, tool
from tests.kafka_support import unavailable, unique, wait_until

CONTAINERS_CONF = REPO / "tools" / "podman" / "containers.conf"
BUILD_TIMEOUT_S = 900
COMMAND_TIMEOUT_S = 120
READY_DEADLINE_S = 90.0
LEARN_DEADLINE_S = 90.0
STOP_TIMEOUT_S = 40
# The system CA bundle folder, mounted read-only into the build so that pip
# trusts the same certificates as the host (a TLS-intercepting proxy included).
CA_FOLDER = Path("/etc/ssl/certs")
RUN_LABEL = "dynpricing.test"
# The chart's container security settings, as podman flags (values.yaml
# podSecurityContext and securityContext; tmpSizeLimit).
AS_THE_CHART_RUNS_IT = (
    "--user=10001:10001",
    "--read-only",
    "--tmpfs=/tmp:size=64m",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
)


BASE_IMAGE = deploy_mk_variable("PODMAN_BASE_IMAGE")


class Podman:
    """The podman command with the project's configuration."""

    def __init__(self, binary: Path, run_id: str) -> None:
        self.binary = binary
        self.run_id = run_id
        self.env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}

    def __call__(
        self, *args: str | Path, timeout: float = COMMAND_TIMEOUT_S, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), *map(str, args)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, (
                f"podman {' '.join(map(str, args))} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def label(self) -> str:
        return f"--label={RUN_LABEL}={self.run_id}"

    def volume(self, name: str) -> str:
        self("volume", "create", self.label(), name)
        return name

    def volume_path(self, name: str) -> Path:
        return Path(self("volume", "inspect", "--format", "{{.Mountpoint}}", name).stdout.strip())

    def clean_up(self) -> None:
        """Remove every container, pod and volume this run made."""
        selector = f"label={RUN_LABEL}={self.run_id}"
        self("rm", "--force", "--volumes", "--time", "5", "--filter", selector, check=False)
        self("volume", "prune", "--force", "--filter", selector, check=False)


def find_podman(run_id: str) -> Podman:
    """podman with the local base image, or skip (locally) / fail (CI=true)."""
    binary = tool("podman")
    podman = Podman(binary, run_id)
    if podman("image", "exists", BASE_IMAGE, check=False).returncode != 0:
        unavailable(
            f"the podman base image {BASE_IMAGE}", "run `make podman-base` (debootstrap; root)"
        )
    return podman


def image_tag() -> str:
    """One tag per checkout, so two clones testing at once keep their images apart."""
    return "test-" + hashlib.sha256(str(REPO).encode()).hexdigest()[:10]


def build_images(podman: Podman) -> dict[str, str]:
    """The three Dockerfile targets, built from the real Dockerfile; only the base is
    the local one. The build stage's layers are shared, so the second and third
    targets only add their own few instructions."""
    images = {}
    for service in SERVICES:
        image = f"localhost/dynpricing-{service}:{image_tag()}"
        podman(
            "build",
            "--format=docker",  # keeps HEALTHCHECK, which OCI images drop
            "--layers",
            "--network=host",
            f"--volume={CA_FOLDER}:{CA_FOLDER}:ro",
            f"--build-arg=PYTHON_IMAGE={BASE_IMAGE}",
            f"--target={service}",
            f"--tag={image}",
            "--file",
            REPO / "Dockerfile",
            REPO,
            timeout=BUILD_TIMEOUT_S,
        )
        images[service] = image
    return images


@dataclass
class Container:
    """One running container, reached on 127.0.0.1:<port>."""

    podman: Podman
    name: str
    port: int

    def get(self, path: str) -> tuple[int, bytes]:
        return http_get(self.port, path)

    def running(self) -> bool:
        out = self.podman("inspect", "--format", "{{.State.Running}}", self.name, check=False)
        return out.stdout.strip() == "true"

    def logs(self) -> str:
        return self.podman("logs", self.name, check=False).stdout[-4000:]

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        def probe() -> bool | None:
            try:
                if self.get("/readyz")[0] == 200:
                    return True
            except OSError:
                pass
            if not self.running():
                raise AssertionError(f"{self.name} stopped:\n{self.logs()}")
            return None

        wait_until(probe, deadline_s=deadline_s, what=f"{self.name} /readyz")

    def json(self, path: str) -> dict[str, Any]:
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        result: dict[str, Any] = json.loads(body)
        return result

    def outcomes_learnt(self) -> int:
        """The engine's count of outcomes learnt (/state)."""
        return int(self.json("/state")["total_outcomes"])

    def wait_learning(self, beyond: int) -> int:
        """Wait until the engine has learnt more than ``beyond`` outcomes; the count."""

        def grown() -> int | None:
            learnt = self.outcomes_learnt()
            return learnt if learnt > beyond else None

        return wait_until(grown, deadline_s=LEARN_DEADLINE_S, what=f"more than {beyond} outcomes")

    def metrics(self) -> str:
        status, body = self.get("/metrics")
        assert status == 200, status
        return body.decode()

    def terminate(self) -> int:
        """SIGTERM, then the container's exit code."""
        self.podman("kill", "--signal", "TERM", self.name)
        waited = self.podman("wait", self.name, timeout=STOP_TIMEOUT_S)
        return int(waited.stdout.strip().splitlines()[-1])

    def stop(self) -> int:
        """``podman stop`` (SIGTERM, SIGKILL after the grace period, as `compose
        down` does; a restart policy does not bring it back), then the exit code."""
        self.podman("stop", f"--time={STOP_TIMEOUT_S}", self.name, timeout=2 * STOP_TIMEOUT_S)
        state = self.podman("inspect", "--format", "{{.State.ExitCode}}", self.name)
        return int(state.stdout.strip())


def run_container(
    podman: Podman,
    image: str,
    service: str,
    *,
    port: int,
    env: dict[str, str],
    extra: tuple[str, ...] = (),
) -> Container:
    """``podman run -d`` on the host network, as the chart runs the service."""
    name = unique(f"dp-{service}")
    args = ["run", "--detach", f"--name={name}", podman.label(), "--network=host"]
    args += [*AS_THE_CHART_RUNS_IT, *extra]
    args += [f"--env={k}={v}" for k, v in env.items()]
    podman(*args, image, service)
    return Container(podman, name, port)


def total_outcomes(document: Any) -> int:
    """The ``total_outcomes`` count anywhere in a state document."""
    if isinstance(document, dict):
        if "total_outcomes" in document:
            return int(document["total_outcomes"])
        for value in document.values():
            found = total_outcomes(value)
            if found >= 0:
                return found
    if isinstance(document, list):
        for value in document:
            found = total_outcomes(value)
            if found >= 0:
                return found
    return -1


@functools.cache
def base_python_version(podman_binary: Path) -> str:
    env = {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}
    out = subprocess.run(
        [str(podman_binary), "run", "--rm", "--network=host", BASE_IMAGE, "python", "-V"],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=True,
    )
    return out.stdout.strip().split()[-1]
