"""A real single-node Apache Kafka broker (KRaft) on 127.0.0.1, without Docker.

The broker's official jars come from Maven Central through `tools/kafka/pom.xml`
(a pinned ``maven-dependency-plugin`` copies ``kafka_2.13`` and its runtime
dependencies into a git-ignored cache, once). This module formats KRaft storage,
starts one combined broker+controller process, waits until the admin client sees
it, and stops it with SIGTERM and then SIGKILL after a bound.

The process runs in its own session and its pid is kept in the data directory,
so ``dynpricing kafka up`` can return while the broker keeps running and a later
``dynpricing kafka down`` stops it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dynpricing.security import local
from dynpricing.security.local import SecurityMode

if TYPE_CHECKING:
    from dynpricing.security.permissions import Names

KAFKA_VERSION = "4.4.0"
DEFAULT_PORT = 9092
HOST = "127.0.0.1"
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.25
LOG_TAIL_LINES = 40
DEFAULT_HEAP = "-Xms256m -Xmx768m"
# What Kafka's own start scripts use: G1 aiming at 20 ms pauses (the JVM's default
# aim is 200 ms, which a latency-sensitive broker should not get).
DEFAULT_JVM_PERFORMANCE = (
    "-server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 "
    "-XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true"
)
PID_FILE = "broker.pid"
LOG_FILE = "broker.log"
MODE_FILE = "security-mode"


class BrokerError(RuntimeError):
    """The local broker could not be fetched, started or stopped."""


def repo_root() -> Path:
    """The checkout this package runs from (editable install) or the working directory."""
    here = Path(__file__).resolve().parents[2]
    if (here / "tools" / "kafka" / "pom.xml").is_file():
        return here
    return Path.cwd()


@dataclass(frozen=True)
class BrokerLayout:
    """Where the jars, the data and the logs of one local broker live."""

    port: int = DEFAULT_PORT
    root: Path = field(default_factory=repo_root)
    data_dir: Path | None = None
    security: SecurityMode = "plaintext"

    @property
    def controller_port(self) -> int:
        return self.port + 1

    @property
    def libs_dir(self) -> Path:
        return self.root / ".cache" / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def data(self) -> Path:
        return self.data_dir or self.root / ".run" / f"kafka-{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.data / PID_FILE

    @property
    def log_file(self) -> Path:
        return self.data / LOG_FILE

    @property
    def files(self) -> local.SecurityFiles:
        """Certificates, keys and each role's client settings (secured modes)."""
        return local.SecurityFiles(self.data)

    def client_env(self, role: str) -> dict[str, str]:
        """A role's ``DYNPRICING_<ROLE>_KAFKA__*`` settings, as written to its env file.

        The file is the truth when it exists, so ``kafka status`` and ``down``
        reach a secured broker without being told its mode.
        """
        path = self.files.env_file(role)
        if path.is_file():
            return local.read_env_file(path)
        return {f"{local.env_prefix(role)}KAFKA__BOOTSTRAP_SERVERS": self.bootstrap}

    def admin_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka settings of the super user (plaintext: just the address)."""
        from dynpricing.settings import librdkafka_config  # noqa: PLC0415

        admin = local.ADMIN_ROLE
        return librdkafka_config(local.kafka_settings_from_env(self.client_env(admin), admin))


def fetch_jars(layout: BrokerLayout) -> Path:
    """Download the pinned broker jars once; later calls find them in the cache."""
    marker = layout.libs_dir / f"kafka_2.13-{KAFKA_VERSION}.jar"
    if marker.is_file():
        return layout.libs_dir
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven ('mvn') is needed once to fetch the Kafka jars; install it")
    pom = layout.root / "tools" / "kafka" / "pom.xml"
    cmd = [mvn, "-q", "-B", "-f", str(pom), "package", f"-Dlibs.dir={layout.libs_dir}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not marker.is_file():
        raise BrokerError(f"fetching Kafka {KAFKA_VERSION} failed:\n{result.stdout}{result.stderr}")
    return layout.libs_dir


def server_properties(layout: BrokerLayout, material: local.Secrets | None = None) -> str:
    """Single-node settings: every internal topic with replication factor 1.

    The secured modes replace the listeners and add TLS, SASL and the
    authorizer (:func:`dynpricing.security.local.listener_properties`).
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{HOST}:{layout.controller_port}",
        "listeners": f"PLAINTEXT://{HOST}:{layout.port},CONTROLLER://{HOST}:{layout.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{layout.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(layout.data / "logs"),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.flush.interval.ms": "1000",
    }
    if layout.security != "plaintext":
        props.update(
            local.listener_properties(
                layout.security, layout.files, HOST, layout.port, layout.controller_port
            )
        )
    if layout.security == "sasl-scram":
        if material is None:
            raise BrokerError("a SASL broker needs its credentials")
        props.update(local.scram_properties(material))
    return "".join(f"{key}={value}\n" for key, value in props.items())


LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = OUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = OUT
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("Java 17+ ('java') is needed to run the local Kafka broker")
    return java


def _java_cmd(layout: BrokerLayout, main_class: str, *args: str) -> list[str]:
    heap = os.environ.get("KAFKA_HEAP_OPTS", DEFAULT_HEAP).split()
    performance = os.environ.get("KAFKA_JVM_PERFORMANCE_OPTS", DEFAULT_JVM_PERFORMANCE).split()
    return [
        _java(),
        *heap,
        *performance,
        f"-Dlog4j2.configurationFile={layout.data / 'log4j2.properties'}",
        "-cp",
        f"{layout.libs_dir}/*",
        main_class,
        *args,
    ]


def cluster_id() -> str:
    """A random KRaft cluster id, never starting with '-' (the storage tool's parser
    would take it for an option; Kafka's own ids avoid it the same way)."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def prepare(layout: BrokerLayout, *, fresh: bool) -> local.Secrets | None:
    """Write the config and format KRaft storage (wiping old data when ``fresh``).

    In a secured mode, first make (or find, with ``fresh=False``) the CA, the
    certificates and the passwords; they are returned for provisioning.
    """
    if fresh and layout.data.exists():
        shutil.rmtree(layout.data)
    layout.data.mkdir(parents=True, exist_ok=True)
    _check_mode(layout)
    material = None
    if layout.security != "plaintext":
        material = local.make_material(layout.security, layout.files)
        local.write_client_files(layout.security, layout.files, layout.bootstrap, material)
    config = layout.data / "server.properties"
    local.write_private(config, server_properties(layout, material).encode())
    (layout.data / "log4j2.properties").write_text(LOG4J2_PROPERTIES)
    if (layout.data / "logs" / "meta.properties").is_file():
        return material
    extra = local.format_arguments(layout.security, material) if material else []
    cmd = _java_cmd(
        layout, "kafka.tools.StorageTool", "format", "-t", cluster_id(), "-c", str(config), *extra
    )
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
    return material


def _check_mode(layout: BrokerLayout) -> None:
    """Kept data is only reused in the security mode it was made for."""
    marker = layout.data / MODE_FILE
    if marker.is_file() and marker.read_text().strip() != layout.security:
        raise BrokerError(
            f"{layout.data} was made for --security {marker.read_text().strip()}; "
            f"start without --keep-data to change the mode to {layout.security}"
        )
    marker.write_text(layout.security)


def log_tail(layout: BrokerLayout, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of the broker's log, for error messages."""
    if not layout.log_file.is_file():
        return "(no broker log)"
    return "\n".join(layout.log_file.read_text(errors="replace").splitlines()[-lines:])


def read_pid(layout: BrokerLayout) -> int | None:
    """The pid of a live broker started on this layout, if any."""
    try:
        pid = int(layout.pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def _is_ready(layout: BrokerLayout) -> bool:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keeps `kafka down` light

    admin = AdminClient({**layout.admin_config(), "socket.timeout.ms": 2000, "log_level": 0})
    try:
        metadata = admin.list_topics(timeout=2)
    except Exception:
        return False
    return len(metadata.brokers) > 0


def _wait_ready(layout: BrokerLayout, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"Kafka broker exited with {proc.returncode}:\n{log_tail(layout)}")
        if _is_ready(layout):
            return
        time.sleep(POLL_INTERVAL_S)
    stop(layout, proc)
    raise BrokerError(f"Kafka broker not ready after {READY_TIMEOUT_S:.0f}s:\n{log_tail(layout)}")


def start(
    layout: BrokerLayout, *, fresh: bool = True, names: Names | None = None
) -> subprocess.Popen[bytes]:
    """Start the broker (fetching jars first if needed); return its process once it is ready.

    Keep the returned handle and pass it to :func:`stop` when this process owns the
    broker; ``dynpricing kafka up`` lets it go and ``down`` finds it by its pid file.
    A secured broker is ready once every role's user and ACLs (for ``names``, by
    default the ones the services' settings give) are in place.
    """
    if read_pid(layout) is not None:
        raise BrokerError(f"a broker is already running for {layout.data} (pid file {PID_FILE})")
    fetch_jars(layout)
    material = prepare(layout, fresh=fresh)
    config = str(layout.data / "server.properties")
    with layout.log_file.open("ab") as log:
        proc = subprocess.Popen(
            _java_cmd(layout, "kafka.Kafka", config),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    layout.pid_file.write_text(str(proc.pid))
    _wait_ready(layout, proc)
    if material is not None:
        try:
            _provision(layout, material, names)
        except Exception:
            stop(layout, proc)
            raise
    return proc


def _provision(layout: BrokerLayout, material: local.Secrets, names: Names | None) -> None:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keeps `kafka down` light

    from dynpricing.security import permissions, provision  # noqa: PLC0415

    admin = AdminClient(layout.admin_config())
    roles = {
        local.principal_name(r.name): r for r in permissions.roles(names or configured_names())
    }
    try:
        if layout.security == "sasl-scram":
            users = {local.principal_name(r): material.roles[r] for r in permissions.ROLE_NAMES}
            provision.create_scram_users(admin, users)
        provision.grant(admin, roles)
    except provision.ProvisionError as exc:
        raise BrokerError(str(exc)) from exc


def configured_names() -> Names:
    """Topic and group names as the services' settings (environment included) give them."""
    from dynpricing.security.permissions import Names  # noqa: PLC0415
    from dynpricing.settings import EngineSettings, SimulatorSettings  # noqa: PLC0415

    engine = EngineSettings()
    return Names.from_settings(engine.topics, engine.group_id, SimulatorSettings().group_id)


def _wait_gone(pid: int, timeout_s: float, reap: Callable[[], None]) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        reap()
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(POLL_INTERVAL_S)
    return False


def _reaper(pid: int, proc: subprocess.Popen[bytes] | None) -> Callable[[], None]:
    def reap() -> None:
        if proc is not None:
            proc.poll()
            return
        # ChildProcessError: not our child, the broker was started by another process
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    return reap


def stop(
    layout: BrokerLayout,
    proc: subprocess.Popen[bytes] | None = None,
    timeout_s: float = STOP_TIMEOUT_S,
) -> bool:
    """SIGTERM the broker, SIGKILL it after ``timeout_s``; True if one was running."""
    pid = read_pid(layout)
    if pid is None:
        layout.pid_file.unlink(missing_ok=True)
        return False
    reap = _reaper(pid, proc if proc is not None and proc.pid == pid else None)
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, timeout_s, reap):
        os.kill(pid, signal.SIGKILL)
        _wait_gone(pid, timeout_s, reap)
    layout.pid_file.unlink(missing_ok=True)
    return True


def stop_all_under(root: Path) -> int:
    """Stop every broker whose data directory lies under ``root``; returns how many ran.

    ``make test`` calls this after pytest, whatever pytest's outcome, so that no
    broker a test started outlives the run.
    """
    stopped = 0
    for pid_file in sorted(root.rglob(PID_FILE)) if root.is_dir() else []:
        stopped += stop(BrokerLayout(data_dir=pid_file.parent))
    return stopped


def status(layout: BrokerLayout) -> str:
    """One line saying whether a broker runs on this layout and whether it answers."""
    pid = read_pid(layout)
    if pid is None:
        return f"no local broker running (data dir {layout.data})"
    state = "ready" if _is_ready(layout) else "not answering"
    return f"broker pid {pid} on {layout.bootstrap}: {state}"
