"""``dynpricing run`` (what ``make run`` starts): learns, stops on Ctrl+C, resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.kafka_support import free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class LocalRun:
    """One ``dynpricing run`` process whose output is collected line by line."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dynpricing.cli",
                "run",
                "--state",
                str(workdir / "bandit_stats.json"),
                "--logs",
                str(workdir / "logs"),
            ],
            env=env,
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def learnt(self) -> int | None:
        """Outcomes learnt in the latest progress report, if one is above zero."""
        reports = [ln for ln in self.lines if ln.startswith("outcomes learnt:")]
        if not reports:
            return None
        count = int(reports[-1].split()[2])
        return count if count > 0 else None

    def interrupt(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(90)
        self._reader.join(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return code


def test_local_run_learns_stops_cleanly_on_ctrl_c_and_resumes_from_its_state(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNPRICING_")}
    env["KAFKA_BOOTSTRAP_SERVERS"] = kafka_bootstrap
    for service in ("ENGINE", "PRODUCER", "SIMULATOR"):
        env[f"DYNPRICING_{service}_HTTP_PORT"] = str(free_port())
        env[f"DYNPRICING_{service}_HTTP_HOST"] = "127.0.0.1"
    env["DYNPRICING_ENGINE_SNAPSHOT_INTERVAL_S"] = "1"

    first = LocalRun(env, tmp_path)
    try:
        learnt = wait_until(first.learnt, deadline_s=90, what="a progress report with outcomes")
    finally:
        code = first.interrupt()
    assert code == 0, "\n".join(first.lines)
    assert "engine stopped (exit 0)" in first.lines
    saved = json.loads((tmp_path / "bandit_stats.json").read_text())
    assert saved["engine"]["offsets"]

    second = LocalRun(env, tmp_path)
    try:
        wait_until(second.learnt, deadline_s=90, what="a progress report after the restart")
    finally:
        assert second.interrupt() == 0, "\n".join(second.lines)
    starts = [
        json.loads(line)
        for line in (tmp_path / "logs" / "engine.log").read_text().splitlines()
        if '"engine_started"' in line
    ]
    assert [s["restored"] for s in starts] == [False, True]
    assert starts[1]["outcomes"] >= learnt
