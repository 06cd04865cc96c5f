"""``dynpricing run``: the whole pricing loop on one machine, for ``make run``.

Starts the local broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` names one), creates
the topics, starts the engine, the simulator and the producer as child
processes (their logs go to ``.run/logs/``), and prints what the engine learns.
Ctrl+C or SIGTERM stops the producer first, then the engine (which snapshots to
``bandit_stats.json``), then the simulator, then the broker. A second run
resumes learning from the snapshot.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from dynpricing import broker
from dynpricing.kafka_io import ensure_topics
from dynpricing.run.learning_table import LearningMonitor
from dynpricing.security import local
from dynpricing.security.local import SECURITY_MODES, SecurityMode
from dynpricing.settings import KafkaSettings, TopicSettings

PROGRESS_INTERVAL_S = 5.0
STOP_TIMEOUT_S = 30.0
START_ORDER = ("engine", "simulator", "producer")
STOP_ORDER = ("producer", "engine", "simulator")
ENGINE_PORT_ENV = "DYNPRICING_ENGINE_HTTP_PORT"
DEFAULT_ENGINE_PORT = 8000
SIMULATOR_PORT_ENV = "DYNPRICING_SIMULATOR_HTTP_PORT"
DEFAULT_SIMULATOR_PORT = 8002


def _service_env(bootstrap: str, state_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["KAFKA_BOOTSTRAP_SERVERS"] = bootstrap
    env.setdefault("DYNPRICING_ENGINE_STATE_PATH", str(state_path))
    env.setdefault("DYNPRICING_PRODUCER_RATE", "200")
    return env


def _layout(port: int, security: SecurityMode, data_dir: Path | None) -> broker.BrokerLayout:
    """Each mode keeps its own broker data (kept between runs), so switching never mixes them."""
    if data_dir is None and security != "plaintext":
        data_dir = broker.BrokerLayout(port=port).data.with_name(f"kafka-{port}-{security}")
    return broker.BrokerLayout(port=port, security=security, data_dir=data_dir)


def _role_env(layout: broker.BrokerLayout, name: str) -> dict[str, str]:
    """A service's own credentials from ``kafka up`` (secured modes only)."""
    return {} if layout.security == "plaintext" else layout.client_env(name)


def _admin_settings(layout: broker.BrokerLayout, bootstrap: str) -> KafkaSettings:
    """Topics are made by the super user on a secured broker (no role may create them)."""
    if layout.security == "plaintext":
        return KafkaSettings(bootstrap_servers=bootstrap)
    return local.kafka_settings_from_env(layout.client_env(local.ADMIN_ROLE), local.ADMIN_ROLE)


def _start(name: str, env: dict[str, str], logs: Path) -> subprocess.Popen[bytes]:
    with (logs / f"{name}.log").open("ab") as log:  # the child keeps its own copy
        return subprocess.Popen(
            [sys.executable, "-m", "dynpricing.cli", name],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> int:
    worst = 0
    for name in STOP_ORDER:
        proc = procs.get(name)
        if proc is None or proc.poll() is not None:
            continue
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        print(f"{name} stopped (exit {code})")
        worst = max(worst, abs(code))
    return worst


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dynpricing run", description=__doc__)
    parser.add_argument("--kafka-port", type=int, default=broker.DEFAULT_PORT)
    parser.add_argument("--state", type=Path, default=Path("bandit_stats.json"))
    parser.add_argument("--logs", type=Path, default=Path(".run/logs"))
    parser.add_argument(
        "--kafka-data-dir", type=Path, default=None, help="the local broker's data (kept)"
    )
    parser.add_argument(
        "--security",
        choices=SECURITY_MODES,
        default="plaintext",
        help="the local broker's mode; each service runs as its own role (docs/security.md)",
    )
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if bootstrap and args.security != "plaintext":
        parser.error("--security starts a local broker; unset KAFKA_BOOTSTRAP_SERVERS")
    layout = _layout(args.kafka_port, args.security, args.kafka_data_dir)
    broker_proc = None
    if not bootstrap:
        print(f"starting Kafka {broker.KAFKA_VERSION} on {layout.bootstrap} ({args.security}) ...")
        broker_proc = broker.start(layout, fresh=False)
        bootstrap = layout.bootstrap
    topics = TopicSettings()
    ensure_topics(_admin_settings(layout, bootstrap), topics.with_model(), compacted=[topics.model])
    args.logs.mkdir(parents=True, exist_ok=True)
    env = _service_env(bootstrap, args.state)
    procs = {
        name: _start(name, {**env, **_role_env(layout, name)}, args.logs) for name in START_ORDER
    }
    engine_port = int(env.get(ENGINE_PORT_ENV, DEFAULT_ENGINE_PORT))
    simulator_port = int(env.get(SIMULATOR_PORT_ENV, DEFAULT_SIMULATOR_PORT))
    print(f"pricing loop running on {bootstrap}; logs in {args.logs}/; state in {args.state}")
    print(f"engine state at http://127.0.0.1:{engine_port}/state; Ctrl+C stops")
    monitor = LearningMonitor(engine_port, simulator_port, sys.stdout, PROGRESS_INTERVAL_S)
    try:
        while not stop.wait(PROGRESS_INTERVAL_S):
            failed = [n for n, p in procs.items() if p.poll() is not None]
            if failed:
                print(f"stopped unexpectedly: {failed}; see {args.logs}/", file=sys.stderr)
                break
            monitor.refresh()
        monitor.view.interrupted()
    finally:
        print("\nstopping ...")
        worst = _stop_all(procs)
        if broker_proc is not None:
            broker.stop(layout, broker_proc)
            print("Kafka broker stopped")
    return worst
