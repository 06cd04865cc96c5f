"""Prometheus alert rules and Grafana dashboards.

The rules run through promtool as the chart renders them (check + the unit tests
in alerts.test.yml, one alert at a time); every dashboard and alert query parses
as PromQL and names only metrics that docs/interfaces.md says the services export.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CHART,
    aggregations_dropping,
    contract,
    dashboards,
    grafana_to_promql,
    metric_names,
    one,
    panels,
    promql_parse_errors,
    render,
    run,
    tool,
)

RULES = CHART / "prometheus" / "alerts.yml"
RULE_TESTS = CHART / "prometheus" / "alerts.test.yml"
REQUIRED_ALERTS = {
    "DynpricingEngineDown",
    "DynpricingDeadLettersRising",
    "DynpricingSnapshotStale",
    "DynpricingRegretRateRising",
    "DynpricingConsumerLagHigh",
}
# Series Prometheus itself adds for every target.
PROMETHEUS_SERIES = frozenset({"up"})


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def dashboard_exprs() -> dict[str, str]:
    out = {}
    for file, dash in dashboards().items():
        for panel in panels(dash):
            for target in panel.get("targets", []):
                out[f"{file}: {panel['title']} [{target['refId']}]"] = target["expr"]
    return out


def test_rules_cover_every_required_alert() -> None:
    assert {r["alert"] for r in alert_rules()} == REQUIRED_ALERTS
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]
    fired = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    quiet = {
        case["alertname"]
        for t in tests
        for case in t.get("alert_rule_test", [])
        if not case.get("exp_alerts")
    }
    assert fired == REQUIRED_ALERTS
    assert quiet == REQUIRED_ALERTS


@pytest.mark.tools
def test_rendered_prometheus_rule_passes_promtool_check_and_unit_tests(tmp_path: Path) -> None:
    promtool = tool("promtool")
    rule = one(render("helm3", "full-values"), "PrometheusRule")
    rendered = tmp_path / "alerts.yml"
    rendered.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}, sort_keys=False))
    checked = run([promtool, "check", "rules", rendered])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = run([promtool, "test", "rules", RULE_TESTS.name], cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr


@pytest.mark.tools
def test_compose_prometheus_config_is_valid(tmp_path: Path) -> None:
    promtool = tool("promtool")
    config = yaml.safe_load((CHART / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules/alerts.yml"]
    config["rule_files"] = [str(RULES)]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = run([promtool, "check", "config", path])
    assert result.returncode == 0, result.stdout + result.stderr
    components = {
        sc["labels"]["component"]
        for job in config["scrape_configs"]
        for sc in job["static_configs"]
    }
    assert components == {"engine", "producer", "simulator"}


@pytest.mark.tools
def test_every_dashboard_query_parses_as_promql(tmp_path: Path) -> None:
    exprs = {k: grafana_to_promql(v) for k, v in dashboard_exprs().items()}
    assert exprs
    errors = promql_parse_errors(tool("promtool"), exprs, tmp_path)
    assert not errors, errors


def test_queries_use_only_metrics_the_services_export() -> None:
    known = contract().exported_series() | PROMETHEUS_SERIES
    used: dict[str, set[str]] = {}
    for where, expr in dashboard_exprs().items():
        used[where] = metric_names(grafana_to_promql(expr))
    for rule in alert_rules():
        used[f"alert {rule['alert']}"] = metric_names(rule["expr"])
    unknown = {w: sorted(n - known) for w, n in used.items() if n - known}
    assert not unknown, f"metrics not in docs/interfaces.md: {unknown}"
    assert all(used.values()), [w for w, n in used.items() if not n]


def test_metric_name_extraction_sees_through_promql_syntax() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[5m])))'
        ' / on (job) group_left (z) b offset 5m and absent(c{d="e"})'
    )
    assert metric_names(expr) == {"a_bucket", "b", "c"}


def test_dashboards_have_stable_uids_and_a_datasource_variable() -> None:
    uids = set()
    for file, dash in dashboards().items():
        assert re.fullmatch(r"[a-z0-9-]{1,40}", dash["uid"]), file
        uids.add(dash["uid"])
        variables = {v["name"]: v for v in dash["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["datasource"]["query"] == "prometheus"
        for panel in panels(dash):
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert target.get("datasource", panel["datasource"])["uid"] == "${datasource}"
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{file}: duplicate panel ids"
    assert len(uids) == len(dashboards())


def test_overview_dashboard_shows_what_issue_5_asks_for() -> None:
    dash = dashboards()["pricing-overview.json"]
    exprs = " ".join(t["expr"] for p in panels(dash) for t in p["targets"])
    for metric in (
        "dynpricing_decisions_total",
        "dynpricing_outcomes_applied_total",
        "dynpricing_posterior_mean",
        "dynpricing_regret_total",
        "dynpricing_expected_revenue_total",
        "dynpricing_oracle_revenue_total",
        "dynpricing_pending_decisions",
        "dynpricing_expired_decisions_total",
        "dynpricing_dead_letters_total",
        "dynpricing_decision_latency_seconds_bucket",
        "dynpricing_snapshot_age_seconds",
        "dynpricing_consumer_lag",
        "dynpricing_arm_pulls",
    ):
        assert metric in exprs, metric
    assert "histogram_quantile(0.5," in exprs
    assert "histogram_quantile(0.99," in exprs


@pytest.mark.tools
def test_promql_parse_check_rejects_a_broken_query(tmp_path: Path) -> None:
    errors = promql_parse_errors(tool("promtool"), {"bad": "sum(rate(x[5m])"}, tmp_path)
    assert errors


def test_every_dashboard_query_keeps_to_the_chosen_namespace() -> None:
    """Two releases in two namespaces must not add up on one panel."""
    for where, expr in dashboard_exprs().items():
        selectors = re.findall(r"\b(dynpricing_\w+)(\{[^}]*\})?", expr)
        assert selectors, where
        for name, matchers in selectors:
            assert 'namespace=~"$namespace"' in matchers, f"{where}: {name}"
        assert not aggregations_dropping("namespace", expr), where
    dash = dashboards()["pricing-overview.json"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert "namespace" in variables["namespace"]["query"]["query"]


def test_every_alert_keeps_namespaces_apart() -> None:
    for rule in alert_rules():
        assert not aggregations_dropping("namespace", rule["expr"]), rule["alert"]


def test_aggregation_check_sees_what_a_query_drops() -> None:
    assert aggregations_dropping("namespace", "sum(rate(x[5m]))") == ["sum("]
    assert aggregations_dropping("namespace", "sum by (topic) (x)")
    assert not aggregations_dropping("namespace", "max by (namespace, le) (x)")
    assert not aggregations_dropping("namespace", "sum without (instance) (x)")
