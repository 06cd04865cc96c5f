"""Run the real services as processes against the test broker, and read what they say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from tests.kafka_support import drain, end_offsets, free_port, unique, wait_until

STOP_TIMEOUT_S = 30.0
PREFIXES = {
    "engine": "DYNPRICING_ENGINE_",
    "producer": "DYNPRICING_PRODUCER_",
    "simulator": "DYNPRICING_SIMULATOR_",
    "decider": "DYNPRICING_DECIDER_",
    "learner": "DYNPRICING_LEARNER_",
}


@dataclass(frozen=True)
class Topics:
    demand: str
    decisions: str
    outcomes: str
    dead_letters: str
    model: str = ""  # not created here: the first decider or learner creates it, compacted

    @classmethod
    def create(cls, make_topic: Callable[..., str], partitions: int = 3) -> Topics:
        return cls(
            demand=make_topic("demand", partitions),
            decisions=make_topic("decisions", partitions),
            outcomes=make_topic("outcomes", partitions),
            dead_letters=make_topic("dead", 1),
            model=unique("model"),
        )


@dataclass
class Service:
    """One running service process with its HTTP port and log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url(path), timeout=3) as resp:  # noqa: S310 - http on loopback
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, deadline_s: float = 60.0, poll_s: float | None = None) -> None:
        def probe() -> bool | None:
            if not self.alive():
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.log()}")
            try:
                return True if self.get("/readyz")[0] == 200 else None
            except OSError:
                return None

        wait_until(probe, deadline_s=deadline_s, what=f"{self.name} /readyz", step_s=poll_s)

    def state(self) -> dict[str, Any]:
        status, body = self.get("/state")
        assert status == 200, body
        result: dict[str, Any] = json.loads(body)
        return result

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Sum of the samples of ``name`` matching ``labels`` in /metrics (0 if absent)."""
        _, body = self.get("/metrics")
        return metric_value(body.decode(), name, labels or {})

    def terminate(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT_S)

    def pause(self) -> None:
        """SIGSTOP: the process stalls as under heavy CPU throttling."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def metric_value(text: str, name: str, labels: dict[str, str]) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name) or line.startswith("#"):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        found = dict(
            part.split("=", 1) for part in label_text.rstrip("}").split(",") if "=" in part
        )
        found = {k: v.strip('"') for k, v in found.items()}
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(value)
    return total


def service_env(
    name: str, bootstrap: str, topics: Topics, port: int, **settings: object
) -> dict[str, str]:
    """Environment for one service: broker, topics, port, plus settings by field name."""
    prefix = PREFIXES[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DYNPRICING_")}
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    env.update(
        {
            f"{prefix}KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            f"{prefix}TOPICS__DEMAND": topics.demand,
            f"{prefix}TOPICS__DECISIONS": topics.decisions,
            f"{prefix}TOPICS__OUTCOMES": topics.outcomes,
            f"{prefix}TOPICS__DEAD_LETTERS": topics.dead_letters,
            **({f"{prefix}TOPICS__MODEL": topics.model} if topics.model else {}),
            f"{prefix}HTTP_PORT": str(port),
            f"{prefix}HTTP_HOST": "127.0.0.1",
            f"{prefix}LOG_FORMAT": "json",
        }
    )
    env.update(settings_env(name, settings))
    return env


def settings_env(name: str, settings: dict[str, object]) -> dict[str, str]:
    """Service settings by field name as the variables that set them."""
    return {
        f"{PREFIXES[name]}{key.upper()}": (
            json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
        )
        for key, value in settings.items()
    }


class ServiceRunner:
    """Starts services for one test and makes sure none outlives it."""

    def __init__(self, bootstrap: str, topics: Topics, workdir: Path) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.workdir = workdir
        self.started: list[Service] = []

    def start(self, name: str, *, port: int | None = None, **settings: object) -> Service:
        port = port or free_port()
        return self._spawn(name, service_env(name, self.bootstrap, self.topics, port, **settings))

    def restart(self, service: Service, **settings: object) -> Service:
        """A new process with the same environment (same state file, group, port), with
        ``settings`` changed for this process only."""
        env = dict(service.env)
        env.update(settings_env(service.name, settings))
        return self._spawn(service.name, env)

    def _spawn(self, name: str, env: dict[str, str]) -> Service:
        port = int(env[f"{PREFIXES[name]}HTTP_PORT"])
        log_path = self.workdir / f"{name}-{len(self.started)}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dynpricing.cli", name],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )
        service = Service(name, proc, port, log_path, env)
        self.started.append(service)
        return service

    def stop_all(self) -> None:
        for service in self.started:
            if service.alive():
                service.proc.kill()
                service.proc.wait(STOP_TIMEOUT_S)


def engine_settings(tmp: Path, **overrides: object) -> dict[str, object]:
    """Engine settings for tests: own state file and group, quick snapshots."""
    settings: dict[str, object] = {
        "state_path": tmp / "bandit_stats.json",
        "group_id": unique("engine"),
        "snapshot_interval_s": 0.5,
        "seed": 7,
    }
    settings.update(overrides)
    return settings


def produce_values(
    bootstrap: str, topic: str, values: list[tuple[bytes | None, bytes | None]]
) -> list[tuple[int, int]]:
    """Produce (key, value) pairs; returns each message's (partition, offset)."""
    where: list[tuple[int, int]] = [(-1, -1)] * len(values)
    errors: list[str] = []

    def report(index: int) -> Callable[[Any, Any], None]:
        def done(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                where[index] = (msg.partition(), msg.offset())

        return done

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for i, (key, value) in enumerate(values):
        producer.produce(topic, key=key, value=value, on_delivery=report(i))
    assert producer.flush(30) == 0
    assert not errors, errors
    return where


def demand_json(event_id: str, location: str, requests: int, drivers: int, ts: float) -> bytes:
    return json.dumps(
        {
            "schema_version": 2,
            "event_id": event_id,
            "timestamp": ts,
            "location": location,
            "active_requests": requests,
            "available_drivers": drivers,
        }
    ).encode()


def read_json_messages(
    bootstrap: str, topic: str, at_least: int, deadline_s: float = 60.0
) -> list[dict[str, Any]]:
    """Every message of ``topic`` as JSON, once there are at least ``at_least``."""

    def enough() -> list[dict[str, Any]] | None:
        found = [json.loads(m.value()) for m in drain(bootstrap, topic)]
        return found if len(found) >= at_least else None

    return wait_until(enough, deadline_s=deadline_s, what=f"{at_least} messages on {topic}")


def consumed(state_path: Path, topic: str) -> int:
    """Messages of ``topic`` the engine's last snapshot covers (sum of its next offsets)."""
    try:
        doc = json.loads(state_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return 0
    offsets: dict[str, int] = doc.get("engine", {}).get("offsets", {})
    return sum(v for k, v in offsets.items() if k.rpartition(":")[0] == topic)


def wait_consumed(state_path: Path, topic: str, count: int, deadline_s: float = 120.0) -> None:
    """Until the engine's snapshot covers ``count`` messages of ``topic``."""
    wait_until(
        lambda: True if consumed(state_path, topic) >= count else None,
        deadline_s=deadline_s,
        what=f"a snapshot covering {count} messages of {topic}",
    )


def priced_once(bootstrap: str, demand_topic: str, decisions_topic: str) -> list[dict[str, Any]]:
    """Every decision, after checking that each demand message has exactly one.

    A decision id starts with its demand message's ``<partition>-<offset>-``.
    """
    demand = {
        f"{p}-{o}" for p, end in end_offsets(bootstrap, demand_topic).items() for o in range(end)
    }
    decisions = [json.loads(m.value()) for m in drain(bootstrap, decisions_topic)]
    per_event = Counter("-".join(d["decision_id"].split("-", 2)[:2]) for d in decisions)
    twice = {k: n for k, n in per_event.items() if n > 1}
    assert not twice, f"{len(twice)} demand events priced more than once, e.g. {list(twice)[:5]}"
    assert set(per_event) == demand, (
        f"{len(demand - set(per_event))} demand events unpriced,"
        f" {len(set(per_event) - demand)} decisions without a demand event"
    )
    return decisions


def first_answers(outcomes: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The first outcome of each decision in its partition's order: the one the engine learns.

    (Every outcome of one decision carries its context as key, so all of them are
    in one partition, in the order the engine reads them.)
    """
    first: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        first.setdefault(outcome["decision_id"], outcome)
    return first


def learnt_exactly_once(
    runner: ServiceRunner, engine: Service, state_path: Path, decisions: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Once every decision is answered and the engine has read every answer: each decision's
    first answer is learnt, once, on its context and price, and nothing else is.

    Returns every outcome message and the first answer of each decision.
    """

    def all_answered() -> list[dict[str, Any]] | None:
        found = [json.loads(m.value()) for m in drain(runner.bootstrap, runner.topics.outcomes)]
        return found if len(first_answers(found)) >= len(decisions) else None

    answered = wait_until(all_answered, deadline_s=600, what="every decision answered")
    wait_consumed(state_path, runner.topics.outcomes, len(answered), deadline_s=600)
    first = first_answers(answered)
    state = engine.state()
    assert state["total_outcomes"] == len(first) == len(decisions)
    expected = Counter(
        (o["context"][0], o["context"][1], o["chosen_price"], o["accepted"]) for o in first.values()
    )
    for ctx in state["contexts"]:
        for arm in ctx["arms"]:
            key = (ctx["location"], ctx["demand_level"], arm["price"])
            learnt = (arm["successes"], arm["failures"])
            assert learnt == (expected[(*key, True)], expected[(*key, False)]), key
    return answered, first
