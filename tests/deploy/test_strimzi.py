"""What the Strimzi operator makes of the chart's custom resources.

Strimzi derives the names of what it creates from the Kafka and KafkaNodePool
names (pods ``<kafka>-<pool>-<id>``, pod sets, Services, Secrets, ...) and
copies the custom resources' labels onto the broker pods. These tests compute
both the way Strimzi 1.2 does (``KafkaResources`` and ``Labels.fromResource`` in
strimzi/strimzi-kafka-operator), from the rendered objects.
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
    REPO,
    SCENARIOS,
    Manifest,
    by_kind,
    helm_template,
    one,
    render,
    render_release,
    scenario_file,
)

pytestmark = pytest.mark.tools

DNS_LABEL_MAX = 63
# Helm refuses longer release names (`helm install` and `helm template` alike).
HELM_RELEASE_MAX = 53
LONGEST_RELEASE = "dynpricing-production-europe-west-blue-green-canary-x"[:HELM_RELEASE_MAX]
# Names the operator derives from the Kafka resource's name (KafkaResources.java).
CLUSTER_SUFFIXES = (
    "-kafka",
    "-kafka-bootstrap",
    "-kafka-brokers",
    "-kafka-config",
    "-cluster-ca",
    "-cluster-ca-cert",
    "-clients-ca",
    "-clients-ca-cert",
    "-cluster-operator-certs",
    "-network-policy-kafka",
    "-entity-operator",
    "-entity-topic-operator-certs",
    "-entity-topic-operator-config",
    "-entity-topic-operator-role",
    "-entity-user-operator-certs",
    "-entity-user-operator-config",
    "-entity-user-operator-role",
)
# Strimzi's default STRIMZI_LABELS_EXCLUSION_PATTERN (Labels.java): custom
# resource labels matching it are not copied onto the pods.
STRIMZI_DEFAULT_EXCLUSION = r"(^app.kubernetes.io/(?!part-of).*|^kustomize.toolkit.fluxcd.io.*)"
SKAFFOLD_RUN_LABEL = "skaffold.dev/run-id"
STRIMZI_OPERATOR_VALUES = REPO / "k8s" / "strimzi-values.yaml"


def documented_release_names() -> set[str]:
    """Release names the docs, make targets and skaffold install this chart under."""
    sources = [REPO / "README.md", REPO / "tools" / "deploy.mk"]
    sources += sorted((REPO / "docs").glob("*.md")) + sorted((REPO / "k8s").glob("*"))
    pattern = re.compile(r"helm\S*\s+(?:upgrade\s+--install|install)\s+([a-z0-9][-a-z0-9]*)")
    names = set()
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for match in pattern.finditer(text):
            if "charts/dynamic-pricing" in text[match.end() : match.end() + 40]:
                names.add(match.group(1))
    for doc in yaml.safe_load_all((REPO / "skaffold.yaml").read_text(encoding="utf-8")):
        for release in (doc or {}).get("deploy", {}).get("helm", {}).get("releases", []):
            if release.get("chartPath") == "charts/dynamic-pricing":
                names.add(release["name"])
    return names


def strimzi_derived_names(manifests: list[Manifest]) -> dict[str, str]:
    """Every name Strimzi derives from the rendered Kafka and its node pool -> what it is."""
    cluster = one(manifests, "Kafka")["metadata"]["name"]
    names = {f"{cluster}{suffix}": f"cluster object{suffix}" for suffix in CLUSTER_SUFFIXES}
    for pool in by_kind(manifests, "KafkaNodePool"):
        pod_set = f"{cluster}-{pool['metadata']['name']}"
        names[pod_set] = "StrimziPodSet"
        for node_id in range(int(pool["spec"]["replicas"])):
            names[f"{pod_set}-{node_id}"] = "broker pod (hostname, pod-name label)"
    for user in by_kind(manifests, "KafkaUser"):
        names[user["metadata"]["name"]] = "KafkaUser Secret"
    return names


def test_documented_release_names_are_found() -> None:
    assert "dynpricing" in documented_release_names()


def test_helm_refuses_release_names_longer_than_the_longest_tested() -> None:
    assert len(LONGEST_RELEASE) == HELM_RELEASE_MAX
    too_long = helm_template(LONGEST_RELEASE + "x")
    assert too_long.returncode != 0
    assert helm_template(LONGEST_RELEASE).returncode == 0


@pytest.mark.parametrize("scenario", ["default-values", "full-values", "strimzi-tls-user-values"])
@pytest.mark.parametrize(
    "release", sorted(documented_release_names() | {"dp", LONGEST_RELEASE}), ids=len
)
def test_strimzi_derived_names_fit_a_dns_label(release: str, scenario: str) -> None:
    manifests = render_release(release, scenario_file(scenario))
    too_long = {
        name: f"{what} ({len(name)} characters)"
        for name, what in strimzi_derived_names(manifests).items()
        if len(name) > DNS_LABEL_MAX
    }
    assert not too_long, f"release {release!r}: Strimzi would refuse {too_long}"


def test_longest_full_name_override_still_fits() -> None:
    manifests = render_release("dp", sets=("fullnameOverride=" + "f" * DNS_LABEL_MAX,))
    assert max(len(n) for n in strimzi_derived_names(manifests)) <= DNS_LABEL_MAX


@pytest.mark.parametrize(
    ("setting", "value"),
    [("kafka.strimzi.clusterName", "c" * 35), ("kafka.strimzi.poolName", "p" * 25)],
)
def test_names_too_long_for_strimzi_are_rejected_with_the_reason(setting: str, value: str) -> None:
    result = helm_template("dynpricing", sets=(f"{setting}={value}",))
    assert result.returncode != 0
    leaf = setting.rsplit(".", 1)[-1]
    assert leaf in result.stderr
    assert "maximum" in result.stderr.lower() or "length" in result.stderr.lower(), result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_topic_operator_keeps_no_finalizers_so_uninstall_cannot_wedge(scenario: str) -> None:
    """Uninstall deletes the KafkaTopics and the Kafka together: the Topic Operator
    goes away with the Kafka, and any finalizer it had put on a KafkaTopic would stay
    for ever (the KafkaTopic, and `helm uninstall --wait`, stuck in Terminating)."""
    manifests = render("helm3", scenario)
    if not by_kind(manifests, "KafkaTopic"):
        return
    entity = one(manifests, "Kafka")["spec"]["entityOperator"]
    assert "topicOperator" in entity
    env = entity["template"]["topicOperatorContainer"]["env"]
    assert {"name": "STRIMZI_USE_FINALIZERS", "value": "false"} in env


def operator_exclusion_pattern() -> re.Pattern[str]:
    """The label exclusion pattern of the Strimzi operator as k8s/ installs it."""
    values = yaml.safe_load(STRIMZI_OPERATOR_VALUES.read_text(encoding="utf-8")) or {}
    return re.compile(values.get("labelsExclusionPattern") or STRIMZI_DEFAULT_EXCLUSION)


def labels_reaching_broker_pods(manifests: list[Manifest], run_id: str) -> dict[str, str]:
    """Labels Strimzi copies from the Kafka and KafkaNodePool onto broker pods, after
    skaffold's post-renderer has labelled every object with its run id."""
    exclusion = operator_exclusion_pattern()
    copied: dict[str, str] = {}
    for kind in ("Kafka", "KafkaNodePool"):
        labels = dict(one(manifests, kind)["metadata"].get("labels", {}))
        labels[SKAFFOLD_RUN_LABEL] = run_id
        copied |= {k: v for k, v in labels.items() if not exclusion.fullmatch(k)}
    return copied


def bumped_chart(tmp_path: Path, version: str) -> Path:
    chart = tmp_path / f"chart-{version}"
    shutil.copytree(CHART, chart)
    meta: dict[str, Any] = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    meta["version"] = meta["appVersion"] = version
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False), encoding="utf-8")
    return chart


def test_broker_pod_labels_survive_chart_upgrades_common_labels_and_skaffold_runs(
    tmp_path: Path,
) -> None:
    """A label that differs between two deploys of the same cluster rolls every broker
    (on kind, with ephemeral storage, that loses the data)."""
    full = scenario_file("full-values")
    before = render_release("dynpricing", full, chart=bumped_chart(tmp_path, "0.1.0"))
    after = render_release(
        "dynpricing",
        full,
        sets=("commonLabels.team=payments", "commonLabels.cost-centre=c42"),
        chart=bumped_chart(tmp_path, "0.2.0"),
    )
    first = labels_reaching_broker_pods(before, run_id="0b7e6f1c-run-one")
    second = labels_reaching_broker_pods(after, run_id="5d2a9c44-run-two")
    assert first == second
    for kind in ("Kafka", "KafkaNodePool"):
        assert one(before, kind)["spec"] == one(after, kind)["spec"], kind


def test_operator_exclusion_keeps_strimzi_default_exclusions() -> None:
    exclusion = operator_exclusion_pattern()
    default = re.compile(STRIMZI_DEFAULT_EXCLUSION)
    for key in (
        "app.kubernetes.io/name",
        "app.kubernetes.io/version",
        "app.kubernetes.io/part-of",
        "kustomize.toolkit.fluxcd.io/name",
        "team",
        "strimzi.io/cluster",
    ):
        assert bool(exclusion.fullmatch(key)) == bool(default.fullmatch(key)), key
