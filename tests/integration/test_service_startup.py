"""How services start: topics they may not create, an unreachable broker, SIGTERM at any time."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.services_support import ServiceRunner, Topics, engine_settings
from tests.kafka_support import create_topics, unique, wait_until

pytestmark = pytest.mark.kafka

SERVICES = ("engine", "producer", "simulator")


def _settings(name: str, tmp_path: Path) -> dict[str, object]:
    if name == "engine":
        return engine_settings(tmp_path)
    if name == "producer":
        return {"rate": 5, "seed": 1}
    return {"group_id": unique("sim")}


@pytest.mark.parametrize("name", SERVICES)
def test_a_service_that_may_not_create_topics_waits_not_ready_until_they_exist(
    kafka_bootstrap: str, tmp_path: Path, name: str
) -> None:
    topics = Topics(*(unique(kind) for kind in ("demand", "decisions", "outcomes", "dead")))
    runner = ServiceRunner(kafka_bootstrap, topics, tmp_path)
    try:
        service = runner.start(name, create_topics="false", **_settings(name, tmp_path))
        wait_until(
            lambda: True if "topics_missing" in service.log() else None,
            what=f"{name} saying which topics are missing",
        )
        assert service.alive()
        # each waits for the topics it uses: the simulator may not even see demand
        assert (topics.decisions if name == "simulator" else topics.demand) in service.log()
        create_topics(kafka_bootstrap, [topics.demand, topics.decisions, topics.outcomes], 3)
        create_topics(kafka_bootstrap, [topics.dead_letters], 1)
        service.wait_ready()
        assert service.terminate() == 0
    finally:
        runner.stop_all()
