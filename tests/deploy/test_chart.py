"""The Helm chart: lint and render with Helm 3 and Helm 4, and what it promises.

Rendering uses the real, pinned helm binaries built into .tools/ (``make helm``).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.support import (
    CHART,
    HELM_MAJORS,
    KUBE_VERSIONS,
    NAMESPACE,
    SCENARIOS,
    SERVICES,
    Manifest,
    by_kind,
    contract,
    one,
    render,
    render_release,
    run,
    scenario_file,
    tool,
)

pytestmark = pytest.mark.tools


def env_of(manifests: list[Manifest], component: str) -> dict[str, Any]:
    """Environment of a component's container: ConfigMap entries plus explicit env."""
    deployment = one(manifests, "Deployment", f"-{component}")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        cm = one(manifests, "ConfigMap", source["configMapRef"]["name"])
        env.update(cm["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in by_kind(manifests, "Deployment")
    }


@pytest.mark.parametrize("helm", HELM_MAJORS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_chart_lints_strictly(helm: str, scenario: str) -> None:
    for kube_version in KUBE_VERSIONS:
        result = run(
            [
                tool(helm),
                "lint",
                "--strict",
                CHART,
                "--values",
                scenario_file(scenario),
                "--kube-version",
                kube_version,
            ]
        )
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm3_and_helm4_render_the_same_objects(scenario: str) -> None:
    assert render("helm3", scenario) == render("helm4", scenario)


def test_every_scenario_is_covered() -> None:
    assert {"default-values", "external-kafka-values", "full-values"} <= set(SCENARIOS)


@pytest.mark.parametrize("helm", HELM_MAJORS)
def test_values_schema_rejects_unknown_and_invalid_values(helm: str) -> None:
    for bad in ("engine.replicas=2", "engine.settings.objective=profit", "typo=1"):
        result = run(
            [tool(helm), "template", "x", CHART, "--kube-version", KUBE_VERSIONS[-1], "--set", bad]
        )
        assert result.returncode != 0, f"--set {bad} was accepted"
    ok = run(
        [
            tool(helm),
            "template",
            "x",
            CHART,
            "--kube-version",
            KUBE_VERSIONS[-1],
            "--set",
            "global.anything=1",
        ]
    )
    assert ok.returncode == 0, ok.stderr


def test_values_schema_is_self_contained() -> None:
    text = (CHART / "values.schema.json").read_text(encoding="utf-8")
    refs = re.findall(r'"\$ref"\s*:\s*"([^"]+)"', text)
    assert all(r.startswith("#") for r in refs), refs
    assert "global" in json.loads(text)["properties"]


def test_every_values_key_is_commented() -> None:
    """Each key has a comment right above it, unless an ancestor's "# --" comment
    documents its whole value (helm-docs style, e.g. resources or broker config)."""
    lines = (CHART / "values.yaml").read_text(encoding="utf-8").splitlines()
    missing = []
    stack: list[tuple[int, bool]] = []  # (indent, documents its whole value)
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w.]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        above = lines[i - 1].strip() if i else ""
        covered = any(whole for _, whole in stack)
        if not above.startswith("#") and not covered:
            missing.append(f"line {i + 1}: {line.strip()}")
        stack.append((indent, above.startswith("# --")))
    assert not missing, "values without a comment above them:\n" + "\n".join(missing)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_engine_runs_once_recreated_with_its_state_volume(scenario: str) -> None:
    manifests = render("helm3", scenario)
    engine = deployments(manifests)["engine"]
    assert engine["spec"]["replicas"] == 1
    assert engine["spec"]["strategy"] == {"type": "Recreate"}
    pod = engine["spec"]["template"]["spec"]
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "state")
    state_path = env_of(manifests, "engine")["DYNPRICING_ENGINE_STATE_PATH"]
    assert state_path == f"{mount['mountPath']}/bandit_stats.json"
    values = yaml.safe_load(scenario_file(scenario).read_text()) or {}
    persistence = values.get("engine", {}).get("persistence", {})
    if persistence.get("enabled", True) is False:
        assert "emptyDir" in state
        assert not by_kind(manifests, "PersistentVolumeClaim")
    elif persistence.get("existingClaim"):
        assert state["persistentVolumeClaim"]["claimName"] == persistence["existingClaim"]
        assert not by_kind(manifests, "PersistentVolumeClaim")
    else:
        pvc = one(manifests, "PersistentVolumeClaim")
        assert state["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"


def test_pvc_takes_size_and_storage_class_from_values() -> None:
    pvc = one(render("helm3", "full-values"), "PersistentVolumeClaim")
    assert pvc["spec"]["storageClassName"] == "standard"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "2Gi"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_services_get_only_contract_env_names(scenario: str) -> None:
    manifests = render("helm3", scenario)
    names = contract().env
    for component in deployments(manifests):
        env = env_of(manifests, component)
        unknown = set(env) - names[component]
        assert not unknown, f"{component}: names not in docs/interfaces.md: {sorted(unknown)}"
        assert env[f"DYNPRICING_{component.upper()}_TOPICS__DEAD_LETTERS"] == (
            "pricing_dead_letters"
        )


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_pods_follow_the_restricted_profile_and_probe_http(scenario: str) -> None:
    manifests = render("helm3", scenario)
    pods = [d["spec"]["template"]["spec"] for d in by_kind(manifests, "Deployment")]
    pods += [p["spec"] for p in by_kind(manifests, "Pod")]
    for pod in pods:
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        tmp = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/tmp")
        assert any(v["name"] == tmp["name"] and "emptyDir" in v for v in pod["volumes"])
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert container["resources"]["requests"]
            assert container["resources"]["limits"]["memory"]
    for deployment in by_kind(manifests, "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"


def test_config_change_changes_the_pod_template_checksum(tmp_path: Any) -> None:
    helm = tool("helm3")
    extra = tmp_path / "more.yaml"
    extra.write_text("engine:\n  settings:\n    batchSize: 10\n")

    def checksum(*values: Any) -> str:
        args: list[Any] = [helm, "template", "x", CHART, "--kube-version", KUBE_VERSIONS[-1]]
        for v in values:
            args += ["--values", v]
        result = run(args)
        assert result.returncode == 0, result.stderr
        engine = deployments([d for d in yaml.safe_load_all(result.stdout) if d])["engine"]
        return str(engine["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum() != checksum(extra)


def test_strimzi_cluster_is_kraft_with_a_dual_role_pool_and_every_topic() -> None:
    manifests = render("helm3", "default-values")
    kafka = one(manifests, "Kafka")
    pool = one(manifests, "KafkaNodePool")
    cluster = kafka["metadata"]["name"]
    assert kafka["apiVersion"] == pool["apiVersion"] == "kafka.strimzi.io/v1"
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    topics = by_kind(manifests, "KafkaTopic")
    assert {t["spec"]["topicName"] for t in topics} == {
        "demand_events",
        "pricing_decisions",
        "pricing_outcomes",
        "pricing_dead_letters",
    }
    for topic in topics:
        assert "_" not in topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    bootstrap = env_of(manifests, "engine")["DYNPRICING_ENGINE_KAFKA__BOOTSTRAP_SERVERS"]
    assert bootstrap == f"{cluster}-kafka-bootstrap.dynpricing.svc:9092"


def test_scram_user_reaches_the_services_through_its_secret() -> None:
    manifests = render("helm3", "full-values")
    listener = one(manifests, "Kafka")["spec"]["kafka"]["listeners"][0]
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert listener["tls"] is True
    for component in ("engine", "producer", "simulator"):
        user = one(manifests, "KafkaUser", f"-{component}")  # every role its own principal
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
        p = f"DYNPRICING_{component.upper()}_"
        env = env_of(manifests, component)
        assert env[p + "KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
        assert env[p + "KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
        assert env[p + "KAFKA__SASL_USERNAME"] == user["metadata"]["name"]
        ref = env[p + "KAFKA__SASL_PASSWORD"]["secretKeyRef"]
        assert ref == {"name": user["metadata"]["name"], "key": "password"}
        assert env[p + "KAFKA__BOOTSTRAP_SERVERS"].endswith(":9094")


def test_tls_user_mounts_the_cluster_ca_and_the_client_certificate() -> None:
    manifests = render("helm3", "strimzi-tls-user-values")
    user = one(manifests, "KafkaUser", "-engine")
    engine = deployments(manifests)["engine"]["spec"]["template"]["spec"]
    secrets = {v["name"]: v["secret"]["secretName"] for v in engine["volumes"] if "secret" in v}
    cluster = one(manifests, "Kafka")["metadata"]["name"]
    assert secrets == {
        "kafka-ca": f"{cluster}-cluster-ca-cert",
        "kafka-user": user["metadata"]["name"],
    }
    env = env_of(manifests, "engine")
    assert env["DYNPRICING_ENGINE_KAFKA__SECURITY_PROTOCOL"] == "SSL"
    mounts = {m["name"]: m["mountPath"] for m in engine["containers"][0]["volumeMounts"]}
    assert env["DYNPRICING_ENGINE_KAFKA__SSL_CA_LOCATION"].startswith(mounts["kafka-ca"])
    assert env["DYNPRICING_ENGINE_KAFKA__SSL_KEY_LOCATION"].startswith(mounts["kafka-user"])


def test_external_kafka_renders_no_strimzi_objects() -> None:
    manifests = render("helm3", "external-kafka-values")
    assert not [m for m in manifests if m["apiVersion"].startswith("kafka.strimzi.io")]
    env = env_of(manifests, "engine")
    assert env["DYNPRICING_ENGINE_KAFKA__BOOTSTRAP_SERVERS"].startswith("kafka-0.")
    assert env["DYNPRICING_ENGINE_KAFKA__SASL_PASSWORD"]["secretKeyRef"] == {
        "name": "dynpricing-kafka",
        "key": "password",
    }
    assert "simulator" not in deployments(manifests)


def test_external_kafka_without_a_bootstrap_address_fails_to_render() -> None:
    result = run(
        [
            tool("helm3"),
            "template",
            "x",
            CHART,
            "--kube-version",
            KUBE_VERSIONS[-1],
            "--set",
            "kafka.strimzi.enabled=false",
        ]
    )
    assert result.returncode != 0
    assert "kafka.external.bootstrapServers is required" in result.stderr


def test_monitoring_objects_follow_values_not_capabilities() -> None:
    default = render("helm3", "default-values")
    full = render("helm3", "full-values")
    for kind in ("ServiceMonitor", "PrometheusRule", "NetworkPolicy", "PodDisruptionBudget"):
        assert not by_kind(default, kind), kind
        assert by_kind(full, kind), kind
    for kind in ("ServiceMonitor", "PrometheusRule"):
        assert one(full, kind)["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    relabel = one(full, "ServiceMonitor")["spec"]["endpoints"][0]["relabelings"][0]
    assert relabel["targetLabel"] == "component"


def test_dashboards_ship_as_configmaps_for_the_grafana_sidecar() -> None:
    full = render("helm3", "full-values")
    cms = [c for c in by_kind(full, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]
    files = {p.name: p.read_text(encoding="utf-8") for p in (CHART / "dashboards").glob("*.json")}
    shipped = {k: v for cm in cms for k, v in cm["data"].items()}
    assert {k: json.loads(v) for k, v in shipped.items()} == {
        k: json.loads(v) for k, v in files.items()
    }


def test_prometheus_rule_carries_the_compose_rules_file() -> None:
    rule = one(render("helm3", "full-values"), "PrometheusRule")
    source = yaml.safe_load((CHART / "prometheus" / "alerts.yml").read_text(encoding="utf-8"))
    assert rule["spec"]["groups"] == source["groups"]


def test_helm_test_pod_checks_readyz_and_metrics() -> None:
    manifests = render("helm3", "default-values")
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = " ".join(pod["spec"]["containers"][0]["command"])
    assert "/readyz" in script
    assert "/metrics" in script


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_use_only_name_instance_and_component(scenario: str) -> None:
    allowed = {
        "app.kubernetes.io/name",
        "app.kubernetes.io/instance",
        "app.kubernetes.io/component",
    }
    manifests = render("helm3", scenario)
    for d in by_kind(manifests, "Deployment"):
        assert set(d["spec"]["selector"]["matchLabels"]) == allowed
    for s in by_kind(manifests, "Service"):
        assert set(s["spec"]["selector"]) == allowed
    for m in manifests:
        assert len(m["metadata"]["name"]) <= 63


def render_notes(scenario: str, tmp_path: Path) -> str:
    """NOTES.txt as `helm install` would print it (`helm template` skips it): a copy
    of the chart renders it through `tpl` into a ConfigMap."""
    chart = tmp_path / "chart"
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(CHART, chart)
    (chart / "templates" / "NOTES.txt").rename(chart / "notes.txt")
    (chart / "templates" / "zz-notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: |\n"
        '    {{- tpl (.Files.Get "notes.txt") . | nindent 4 }}\n'
    )
    result = run(
        [
            tool("helm3"),
            "template",
            "dp",
            chart,
            "--namespace",
            "dynpricing",
            "--kube-version",
            KUBE_VERSIONS[-1],
            "--values",
            scenario_file(scenario),
            "--show-only",
            "templates/zz-notes.yaml",
        ]
    )
    assert result.returncode == 0, result.stderr
    return str(yaml.safe_load(result.stdout)["data"]["notes"])


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_notes_tell_how_to_reach_the_engine_and_where_state_lives(
    scenario: str, tmp_path: Path
) -> None:
    notes = render_notes(scenario, tmp_path)
    values = yaml.safe_load(scenario_file(scenario).read_text()) or {}
    assert "port-forward svc/dp-dynamic-pricing-engine" in notes
    assert "helm test -n dynpricing dp" in notes
    persistence = values.get("engine", {}).get("persistence", {})
    if persistence.get("enabled", True) is False:
        assert "WARNING" in notes
    else:
        assert "bandit_stats.json" in notes
    if values.get("kafka", {}).get("strimzi", {}).get("enabled", True) is False:
        assert "pricing_dead_letters" in notes
    else:
        assert "kubectl -n dynpricing get kafka" in notes


def test_components_can_be_switched_off() -> None:
    names = set(deployments(render("helm3", "strimzi-tls-user-values")))
    assert names == {"engine", "simulator"}
    assert set(SERVICES) == set(deployments(render("helm3", "default-values")))


@pytest.mark.parametrize("helm", HELM_MAJORS)
def test_helm_binaries_are_the_pinned_versions(helm: str) -> None:
    makefile = (CHART.parents[1] / "tools" / "deploy.mk").read_text(encoding="utf-8")
    pinned = re.search(rf"^{helm.upper()}_VERSION\s*:=\s*(v\S+)$", makefile, re.MULTILINE)
    assert pinned, f"{helm.upper()}_VERSION missing from tools/deploy.mk"
    major_minor = ".".join(pinned.group(1).split(".")[:2])
    result = run([tool(helm), "version", "--short"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith(major_minor), (result.stdout, pinned.group(1))


# --- what a real install runs into ----------------------------------------------


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against labels."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def ingress_allowed(
    policies: list[Manifest],
    target: dict[str, str],
    source: dict[str, str],
    source_namespace: str,
    port: str,
) -> bool:
    """NetworkPolicy semantics for ingress to ``target`` (a pod in NAMESPACE) from a
    pod with labels ``source`` in ``source_namespace``, on a named container port."""
    namespace_labels = {"kubernetes.io/metadata.name": source_namespace}
    selecting = [p for p in policies if selects(p["spec"]["podSelector"], target)]
    if not any("Ingress" in p["spec"].get("policyTypes", ["Ingress"]) for p in selecting):
        return True
    for policy in selecting:
        for rule in policy["spec"].get("ingress", []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get("from")
            if not peers:
                return True
            for peer in peers:
                ns_ok = (
                    selects(peer["namespaceSelector"], namespace_labels)
                    if "namespaceSelector" in peer
                    else source_namespace == NAMESPACE
                )
                pod_ok = selects(peer.get("podSelector", {}), source)
                if ns_ok and pod_ok and ("ipBlock" not in peer):
                    return True
    return False


def test_helm_test_pod_gets_through_the_charts_network_policy() -> None:
    manifests = render("helm3", "full-values")
    policies = by_kind(manifests, "NetworkPolicy")
    assert policies
    engine = deployments(manifests)["engine"]["spec"]["template"]["metadata"]["labels"]
    test_pod = one(manifests, "Pod")["metadata"]["labels"]
    assert ingress_allowed(policies, engine, test_pod, NAMESPACE, "http")
    # ... while the policy still keeps everyone else out, and Prometheus in
    assert not ingress_allowed(policies, engine, {"app": "other"}, NAMESPACE, "http")
    assert not ingress_allowed(policies, engine, test_pod, "elsewhere", "http")
    assert ingress_allowed(policies, engine, {"app": "prometheus"}, "monitoring", "http")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_services_listen_beyond_the_pod_and_leave_topics_to_their_owner(scenario: str) -> None:
    """The services bind 127.0.0.1 unless told otherwise (probes and Prometheus come
    from outside the container), and a service creating a topic itself races the
    Topic Operator with the wrong partitions and replication factor."""
    manifests = render("helm3", scenario)
    for component in deployments(manifests):
        p = f"DYNPRICING_{component.upper()}_"
        env = env_of(manifests, component)
        assert env[p + "HTTP_HOST"] == "0.0.0.0"  # noqa: S104 - what the test checks
        assert env[p + "CREATE_TOPICS"] == "false"
    for kafka in by_kind(manifests, "Kafka"):
        assert kafka["spec"]["kafka"]["config"]["auto.create.topics.enable"] is False


def test_probes_let_a_service_wait_for_kafka_without_being_restarted() -> None:
    """Liveness and startup ask /healthz (served before Kafka is reached), never
    /readyz, so a broker still starting keeps pods unready, not crash-looping."""
    for deployment in by_kind(render("helm3", "default-values"), "Deployment"):
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["path"] == "/healthz", probe


def test_config_checksum_restarts_only_the_component_whose_config_changed(
    tmp_path: Any,
) -> None:
    helm = tool("helm3")
    extra = tmp_path / "producer.yaml"
    extra.write_text("producer:\n  settings:\n    rate: 75\n")

    def checksums(*values: Any) -> dict[str, str]:
        args: list[Any] = [helm, "template", "x", CHART, "--kube-version", KUBE_VERSIONS[-1]]
        for v in values:
            args += ["--values", v]
        result = run(args)
        assert result.returncode == 0, result.stderr
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        return {
            c: str(d["spec"]["template"]["metadata"]["annotations"]["checksum/config"])
            for c, d in deployments(docs).items()
        }

    before, after = checksums(), checksums(extra)
    assert before["producer"] != after["producer"]
    assert before["engine"] == after["engine"]
    assert before["simulator"] == after["simulator"]


def test_notes_say_the_default_images_must_be_built_and_pushed(tmp_path: Path) -> None:
    notes = render_notes("default-values", tmp_path)
    for component in SERVICES:
        assert f"dynpricing-{component}:0.1.0" in notes
    assert "docker build --target engine" in notes
    assert "push" in notes
    digests = render_notes("full-values", tmp_path / "full")
    assert "docker build --target" not in digests


def test_notes_tell_what_a_reinstall_meets_in_the_kept_kafka_volumes(tmp_path: Path) -> None:
    notes = render_notes("default-values", tmp_path)
    assert (
        "kubectl -n dynpricing delete pvc -l strimzi.io/cluster=dp-dynamic-pricing-kafka" in notes
    )
    assert "cluster id" in notes.lower()
    ephemeral = render_notes("strimzi-tls-user-values", tmp_path / "ephemeral")
    assert "delete pvc -l strimzi.io/cluster" not in ephemeral


def test_kafka_can_be_paused_for_a_reinstall_that_keeps_its_volumes() -> None:
    paused = render_release("dp", sets=("kafka.strimzi.paused=true",))
    annotations = one(paused, "Kafka")["metadata"]["annotations"]
    assert annotations == {"strimzi.io/pause-reconciliation": "true"}
    assert "annotations" not in one(render("helm3", "default-values"), "Kafka")["metadata"]
