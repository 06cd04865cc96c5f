"""The processes a measurement runs: the real engine, the relay, the load generator.

Each is a child process of the bench, started with ``sys.executable`` so it runs
the same installed package, and stopped with SIGTERM (SIGKILL after a bound).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from dynpricing.bench.kafka_env import BenchError, free_port, unique

STOP_TIMEOUT_S = 60.0
READY_TIMEOUT_S = 120.0
HTTP_TIMEOUT_S = 2.0
WAIT_STEP_S = 0.05
PAGE_KB = 1024


@dataclass(frozen=True)
class EngineSetup:
    """Fresh topics, group and state path for one engine; everything else is the default."""

    bootstrap: str
    workdir: Path
    demand: str = field(default_factory=lambda: unique("bench-demand"))
    decisions: str = field(default_factory=lambda: unique("bench-decisions"))
    outcomes: str = field(default_factory=lambda: unique("bench-outcomes"))
    dead_letters: str = field(default_factory=lambda: unique("bench-dead-letters"))
    group_id: str = field(default_factory=lambda: unique("bench-engine"))
    state_name: str = field(default_factory=lambda: unique("bandit_stats") + ".json")

    @property
    def topics(self) -> list[str]:
        return [self.demand, self.decisions, self.outcomes, self.dead_letters]

    @property
    def state_path(self) -> Path:
        return self.workdir / self.state_name

    def env(self, http_port: int) -> dict[str, str]:
        prefix = "DYNPRICING_ENGINE_"
        own = {
            "KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "TOPICS__DEMAND": self.demand,
            "TOPICS__DECISIONS": self.decisions,
            "TOPICS__OUTCOMES": self.outcomes,
            "TOPICS__DEAD_LETTERS": self.dead_letters,
            "GROUP_ID": self.group_id,
            "STATE_PATH": str(self.state_path),
            "HTTP_PORT": str(http_port),
            "HTTP_HOST": "127.0.0.1",
            "LOG_FORMAT": "json",
        }
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(prefix)}
        return {**inherited, **{prefix + k: v for k, v in own.items()}}


class Child:
    """A child process whose output goes to a log file in the bench's work directory."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{self.log.stem} still running after {timeout_s:.0f}s") from None

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()

    def tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def rss_mb(self) -> tuple[float, float]:
        """(current, peak) resident set size in MB, from ``/proc`` (Linux)."""
        fields = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            fields[name] = value.strip()
        return _kb(fields["VmRSS"]) / PAGE_KB, _kb(fields["VmHWM"]) / PAGE_KB


def _kb(value: str) -> float:
    return float(value.split(maxsplit=1)[0])


class EngineProcess(Child):
    """``dynpricing engine`` configured only through its environment, as users run it."""

    def __init__(self, setup: EngineSetup, name: str) -> None:
        self.setup = setup
        self.http_port = free_port()
        argv = [sys.executable, "-m", "dynpricing.cli", "engine"]
        super().__init__(argv, setup.env(self.http_port), setup.workdir / f"{name}.log")

    def _get(self, path: str) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, b""
        except (urllib.error.URLError, OSError):
            return 0, b""

    def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until ``/readyz`` says 200 (partitions assigned), or fail with the log's tail."""
        end = time.monotonic() + timeout_s
        while self._get("/readyz")[0] != 200:
            if not self.alive():
                raise BenchError(f"engine exited with {self.proc.returncode}:\n{self.tail()}")
            if time.monotonic() > end:
                raise BenchError(f"engine not ready after {timeout_s:.0f}s:\n{self.tail()}")
            time.sleep(WAIT_STEP_S)

    def metric_sum(self, name: str) -> float | None:
        """Sum over labels of one sample name on ``/metrics``; None if unreachable."""
        status, body = self._get("/metrics")
        if status != 200:
            return None
        total = 0.0
        for family in text_string_to_metric_families(body.decode()):
            total += sum(s.value for s in family.samples if s.name == name)
        return total


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
