"""``make run SECURITY=sasl-scram``: the whole loop on a secured local broker, one role each."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.kafka_support import free_port, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def test_make_run_with_sasl_scram_learns_with_every_service_as_its_own_role(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNPRICING_", "KAFKA_"))}
    for service in ("ENGINE", "PRODUCER", "SIMULATOR"):
        env[f"DYNPRICING_{service}_HTTP_PORT"] = str(free_port())
        env[f"DYNPRICING_{service}_HTTP_HOST"] = "127.0.0.1"
    data = tmp_path / "kafka"
    command = [sys.executable, "-m", "dynpricing.cli", "run", "--security", "sasl-scram"]
    command += ["--kafka-port", str(free_port()), "--kafka-data-dir", str(data)]
    command += ["--state", str(tmp_path / "bandit_stats.json"), "--logs", str(tmp_path / "logs")]
    proc = subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()

    def learnt() -> int | None:
        reports = [ln for ln in list(lines) if ln.startswith("outcomes learnt:")]
        count = int(reports[-1].split()[2]) if reports else 0
        if proc.poll() is not None:
            raise AssertionError("".join(lines))
        return count if count > 0 else None

    try:
        wait_until(learnt, deadline_s=120, what="outcomes learnt on the secured broker")
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(90)
        reader.join(10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert code == 0, "".join(lines)
    logs = {p.stem: p.read_text() for p in (tmp_path / "logs").glob("*.log")}
    assert set(logs) == {"engine", "producer", "simulator"}
    password = (data / "clients" / "engine.env").read_text().split("SASL_PASSWORD=")[1].strip()
    assert all(password not in text for text in logs.values())
    assert all("kafka_refused" not in text for text in logs.values())
