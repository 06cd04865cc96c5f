"""Every service registers exactly the metrics docs/interfaces.md promises, by name, type, labels.

Dashboards and alert rules are written against that page, so a renamed metric
or a changed label set must fail here, not in production.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase

from dynpricing.decider.app import DeciderMetrics
from dynpricing.engine.metrics import EngineMetrics
from dynpricing.kafka_io import OutputProducer
from dynpricing.producer import app as producer_app
from dynpricing.settings import ProducerSettings
from dynpricing.simulator.app import SimulatorMetrics
from tests.unit.services.fakes import FakeProducer

INTERFACES = Path(__file__).resolve().parents[3] / "docs" / "interfaces.md"


@dataclass(frozen=True)
class Documented:
    name: str
    kind: str
    labels: tuple[str, ...]


def _documented(service: str) -> dict[str, Documented]:
    """The metric table under ``<service>:`` in the Metrics section."""
    metrics = INTERFACES.read_text().split("## Metrics", 1)[1]
    table = metrics.split(f"\n{service}:\n", 1)[1].strip().split("\n\n", 1)[0]
    rows = {}
    for name, kind, labels in re.findall(r"^\| `([^`]+)` \| (\w+) \| ([^|]*)\|$", table, re.M):
        label_text = re.sub(r"\([^)]*\)", "", labels)
        names = tuple(part.strip() for part in label_text.split(",") if part.strip())
        rows[name] = Documented(name, kind, names)
    return rows


SERVICES = ("Engine", "Simulator", "Producer", "Decider")
ALL_DOCUMENTED = {name: row for service in SERVICES for name, row in _documented(service).items()}


def _wrappers(holder: Any) -> list[MetricWrapperBase]:
    return [value for value in vars(holder).values() if isinstance(value, MetricWrapperBase)]


def _exposed_name(wrapper: MetricWrapperBase) -> str:
    family = next(iter(wrapper.describe()))
    return f"{family.name}_total" if family.type == "counter" else family.name


def _registered(holder: Any) -> dict[str, MetricWrapperBase]:
    return {_exposed_name(wrapper): wrapper for wrapper in _wrappers(holder)}


def _exercise(registry: CollectorRegistry, wrapper: MetricWrapperBase, row: Documented) -> None:
    """Use the metric with the documented labels and read it back from the registry."""
    labels = dict.fromkeys(row.labels, "x")
    child: Any = wrapper.labels(**labels) if labels else wrapper
    if row.kind == "counter":
        child.inc(2)
        assert registry.get_sample_value(row.name, labels) == 2.0
    elif row.kind == "gauge":
        child.set(7)
        assert registry.get_sample_value(row.name, labels) == 7.0
    else:
        assert row.kind == "histogram", row
        child.observe(0.5)
        assert registry.get_sample_value(f"{row.name}_count", labels) == 1.0
        assert registry.get_sample_value(f"{row.name}_sum", labels) == 0.5


def _holders(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[CollectorRegistry, Any]]:
    del monkeypatch
    output = OutputProducer(FakeProducer())  # type: ignore[arg-type]
    engine_registry, simulator_registry, producer_registry = (CollectorRegistry() for _ in "eps")
    decider_registry = CollectorRegistry()
    return {
        "Engine": (engine_registry, EngineMetrics(engine_registry)),
        "Decider": (decider_registry, DeciderMetrics(decider_registry)),
        "Simulator": (simulator_registry, SimulatorMetrics(simulator_registry)),
        "Producer": (
            producer_registry,
            producer_app.DemandPublisher(ProducerSettings(seed=1), producer_registry, output),
        ),
    }


def test_the_documented_tables_were_read() -> None:
    assert len(_documented("Engine")) >= 14
    assert ALL_DOCUMENTED["dynpricing_expired_decisions_total"].labels == ("action",)
    assert ALL_DOCUMENTED["dynpricing_late_outcomes_total"].labels == ()
    assert ALL_DOCUMENTED["dynpricing_demand_events_total"].labels == ("location",)


@pytest.mark.parametrize("service", SERVICES)
def test_every_documented_metric_exists_with_its_type_and_labels(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    registry, holder = _holders(monkeypatch)[service]
    registered = _registered(holder)
    for name, row in _documented(service).items():
        assert name in registered, f"{service} does not register {name}"
        _exercise(registry, registered[name], row)


@pytest.mark.parametrize("service", SERVICES)
def test_every_registered_metric_is_documented_with_its_type_and_labels(
    monkeypatch: pytest.MonkeyPatch, service: str
) -> None:
    registry, holder = _holders(monkeypatch)[service]
    for name, wrapper in _registered(holder).items():
        assert name.startswith("dynpricing_")
        assert name in ALL_DOCUMENTED, f"{service} registers undocumented {name}"
        _exercise(registry, wrapper, ALL_DOCUMENTED[name])


def test_time_metrics_are_in_seconds_and_counters_end_in_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for _, holder in _holders(monkeypatch).values():
        for name, wrapper in _registered(holder).items():
            kind = next(iter(wrapper.describe())).type
            assert name.endswith("_total") == (kind == "counter"), name
            assert not re.search(r"_(ms|millis|milliseconds|minutes)(_|$)", name), name
