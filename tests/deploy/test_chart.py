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
    PRICING,
    REPO,
    SCENARIOS,
    Manifest,
    by_kind,
    contract,
    deployments,
    env_of,
    helm_template,
    metric_names,
    one,
    promql_parse_errors,
    render,
    render_release,
    run,
    scenario_file,
    tool,
)

pytestmark = pytest.mark.tools
STATE_OWNERS = ("engine", "learner")


def scenario_values(scenario: str) -> dict[str, Any]:
    return dict(yaml.safe_load(scenario_file(scenario).read_text()) or {})


def mode_of(scenario: str) -> str:
    return str(scenario_values(scenario).get("mode", "split"))


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
    for bad in (
        "engine.replicas=2",
        "learner.replicas=2",
        "pricing.objective=profit",
        "mode=both",
        "decider.replicas=0",
        "decider.autoscaling.metric=memory",
        "engine.settings.prices={1.0}",
        "typo=1",
    ):
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
def test_state_owner_runs_once_recreated_with_its_state_volume(scenario: str) -> None:
    """The engine (embedded) or the learner (split) owns the learning state: one
    replica, recreated (two never share the file), the state on its volume."""
    manifests = render("helm3", scenario)
    owners = [c for c in deployments(manifests) if c in STATE_OWNERS]
    assert owners == [PRICING[mode_of(scenario)][-1]]
    owner = owners[0]
    deployment = deployments(manifests)[owner]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    pod = deployment["spec"]["template"]["spec"]
    state = next(v for v in pod["volumes"] if v["name"] == "state")
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "state")
    state_path = env_of(manifests, owner)[f"DYNPRICING_{owner.upper()}_STATE_PATH"]
    assert state_path == f"{mount['mountPath']}/bandit_stats.json"
    persistence = scenario_values(scenario).get(owner, {}).get("persistence", {})
    if persistence.get("enabled", True) is False:
        assert "emptyDir" in state
        assert not by_kind(manifests, "PersistentVolumeClaim")
    elif persistence.get("existingClaim"):
        assert state["persistentVolumeClaim"]["claimName"] == persistence["existingClaim"]
        assert not by_kind(manifests, "PersistentVolumeClaim")
    else:
        pvc = one(manifests, "PersistentVolumeClaim")
        assert pvc["metadata"]["name"] == f"dp-dynamic-pricing-{owner}-state"
        assert state["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]
        assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    for component, other in deployments(manifests).items():
        if component != owner:
            volumes = other["spec"]["template"]["spec"]["volumes"]
            assert not [v for v in volumes if "persistentVolumeClaim" in v], component


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
    extra.write_text("decider:\n  settings:\n    batchSize: 10\n")

    def checksum(*values: Any) -> str:
        args: list[Any] = [helm, "template", "x", CHART, "--kube-version", KUBE_VERSIONS[-1]]
        for v in values:
            args += ["--values", v]
        result = run(args)
        assert result.returncode == 0, result.stderr
        decider = deployments([d for d in yaml.safe_load_all(result.stdout) if d])["decider"]
        return str(decider["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

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
        "pricing_model",
    }
    for topic in topics:
        assert "_" not in topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == cluster
    for component in deployments(manifests):
        p = f"DYNPRICING_{component.upper()}_"
        bootstrap = env_of(manifests, component)[p + "KAFKA__BOOTSTRAP_SERVERS"]
        assert bootstrap == f"{cluster}-kafka-bootstrap.dynpricing.svc:9092"


def test_scram_user_reaches_the_services_through_its_secret() -> None:
    manifests = render("helm3", "full-values")
    listener = one(manifests, "Kafka")["spec"]["kafka"]["listeners"][0]
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert listener["tls"] is True
    assert set(deployments(manifests)) == {"decider", "learner", "producer", "simulator"}
    for component in deployments(manifests):
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
    cluster = one(manifests, "Kafka")["metadata"]["name"]
    for component in ("decider", "learner"):
        user = one(manifests, "KafkaUser", f"-{component}")
        pod = deployments(manifests)[component]["spec"]["template"]["spec"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets == {
            "kafka-ca": f"{cluster}-cluster-ca-cert",
            "kafka-user": user["metadata"]["name"],
        }
        p = f"DYNPRICING_{component.upper()}_"
        env = env_of(manifests, component)
        assert env[p + "KAFKA__SECURITY_PROTOCOL"] == "SSL"
        mounts = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
        assert env[p + "KAFKA__SSL_CA_LOCATION"].startswith(mounts["kafka-ca"])
        assert env[p + "KAFKA__SSL_KEY_LOCATION"].startswith(mounts["kafka-user"])


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
    for kind in ("ServiceMonitor", "PrometheusRule", "NetworkPolicy", "HorizontalPodAutoscaler"):
        assert not by_kind(default, kind), kind
        assert by_kind(full, kind), kind
    budgets = {
        b["metadata"]["labels"]["app.kubernetes.io/component"]
        for b in by_kind(default, "PodDisruptionBudget")
    }
    assert budgets == {"decider"}  # the deciders' own, on by default
    everything = by_kind(full, "PodDisruptionBudget")
    assert {b["metadata"]["labels"]["app.kubernetes.io/component"] for b in everything} == set(
        deployments(full)
    )
    for kind in ("ServiceMonitor", "NetworkPolicy"):
        selector = one(full, kind)["spec"].get("selector") or one(full, kind)["spec"]["podSelector"]
        (components,) = [e["values"] for e in selector["matchExpressions"]]
        assert set(components) >= {"engine", "decider", "learner", "producer", "simulator"}
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


@pytest.mark.parametrize("scenario", ["default-values", "external-kafka-values"])
def test_helm_test_pod_checks_readyz_and_metrics_of_each_pricing_service(scenario: str) -> None:
    manifests = render("helm3", scenario)
    pod = one(manifests, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    container = pod["spec"]["containers"][0]
    script = container["command"][2]
    assert "/readyz" in script
    assert "/metrics" in script
    urls = container["command"][3::2]
    pricing = PRICING[mode_of(scenario)]
    assert urls == [f"http://dp-dynamic-pricing-{c}:8000" for c in pricing]
    services = {s["metadata"]["name"] for s in by_kind(manifests, "Service")}
    assert {u.split("//")[1].split(":")[0] for u in urls} <= services
    assert (
        container["image"]
        == deployments(manifests)[pricing[0]]["spec"]["template"]["spec"]["containers"][0]["image"]
    )


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
    values = scenario_values(scenario)
    for component in PRICING[mode_of(scenario)]:
        assert f"port-forward svc/dp-dynamic-pricing-{component}" in notes
    assert "helm test -n dynpricing dp" in notes
    owner = PRICING[mode_of(scenario)][-1]
    persistence = values.get(owner, {}).get("persistence", {})
    if persistence.get("enabled", True) is False:
        assert "WARNING" in notes
    else:
        assert "bandit_stats.json" in notes
    if values.get("kafka", {}).get("strimzi", {}).get("enabled", True) is False:
        assert "pricing_dead_letters" in notes
    else:
        assert "kubectl -n dynpricing get kafka" in notes


def test_mode_and_switches_choose_the_components() -> None:
    names = set(deployments(render("helm3", "strimzi-tls-user-values")))
    assert names == {"decider", "learner", "simulator"}
    default = {"decider", "learner", "producer", "simulator"}
    assert set(deployments(render("helm3", "default-values"))) == default
    assert set(deployments(render("helm3", "external-kafka-values"))) == {"engine", "producer"}
    embedded = render_release("dp", sets=("mode=embedded",))
    assert set(deployments(embedded)) == {"engine", "producer", "simulator"}
    for kind in ("ConfigMap", "Service"):
        named = {
            m["metadata"]["labels"]["app.kubernetes.io/component"] for m in by_kind(embedded, kind)
        }
        assert named == {"engine", "producer", "simulator"}, kind


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
    test_pod = one(manifests, "Pod")["metadata"]["labels"]
    for component in ("decider", "learner"):
        target = deployments(manifests)[component]["spec"]["template"]["metadata"]["labels"]
        assert ingress_allowed(policies, target, test_pod, NAMESPACE, "http")
        # ... while the policy still keeps everyone else out, and Prometheus in
        assert not ingress_allowed(policies, target, {"app": "other"}, NAMESPACE, "http")
        assert not ingress_allowed(policies, target, test_pod, "elsewhere", "http")
        assert ingress_allowed(policies, target, {"app": "prometheus"}, "monitoring", "http")


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
    assert {c for c in before if before[c] != after[c]} == {"producer"}
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text("pricing:\n  prices: [1.0, 1.5]\n")
    # The grid the deciders and the learner share restarts both, nothing else.
    repriced = checksums(pricing)
    assert {c for c in before if before[c] != repriced[c]} == {"decider", "learner"}


def test_notes_say_the_default_images_must_be_built_and_pushed(tmp_path: Path) -> None:
    notes = render_notes("default-values", tmp_path)
    for component in ("decider", "learner", "producer", "simulator"):
        assert f"dynpricing-{component}:0.1.0" in notes
    assert "dynpricing-engine" not in notes
    assert "docker build --target decider" in notes
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


# --- mode split: deciders and one learner (issue 12) -----------------------------


def test_deciders_roll_without_losing_capacity_and_spread_over_nodes() -> None:
    """A rollout adds a ready decider before it removes one; a drain takes at most
    one at a time; replicas spread over nodes and zones, counting only their own
    revision's pods."""
    manifests = render("helm3", "default-values")
    decider = deployments(manifests)["decider"]
    assert decider["spec"]["replicas"] == 2
    assert decider["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    pod_labels = decider["spec"]["template"]["metadata"]["labels"]
    budget = one(manifests, "PodDisruptionBudget", "-decider")
    assert budget["spec"]["maxUnavailable"] == 1
    assert selects(budget["spec"]["selector"], pod_labels)
    spread = decider["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in spread] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    for constraint in spread:
        assert constraint["maxSkew"] == 1
        assert constraint["whenUnsatisfiable"] == "ScheduleAnyway"  # a one-node cluster still runs
        assert selects(constraint["labelSelector"], pod_labels)
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
    learner = deployments(manifests)["learner"]["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in learner


def test_static_membership_makes_each_decider_its_pods_name() -> None:
    p = "DYNPRICING_DECIDER_"
    assert p + "GROUP_INSTANCE_ID" not in env_of(render("helm3", "default-values"), "decider")
    static = render("helm3", "cpu-autoscaling-values")
    assert env_of(static, "decider")[p + "GROUP_INSTANCE_ID"] == {
        "fieldRef": {"fieldPath": "metadata.name"}
    }
    for component in ("learner", "producer", "simulator"):
        env = env_of(static, component)
        assert not [k for k in env if k.endswith("GROUP_INSTANCE_ID")], component


def test_deciders_and_learner_share_the_pricing_settings_and_the_model_topic() -> None:
    """The learner learns the posterior the deciders price from: the same grid,
    prior, policy, objective, forgetting and locations (a decider refuses a model
    made with others), and one model topic."""
    manifests = render("helm3", "full-values")
    decider = env_of(manifests, "decider")
    learner = env_of(manifests, "learner")
    shared = ("PRICES", "LOCATIONS", "POLICY", "OBJECTIVE", "PRIOR_ALPHA", "PRIOR_BETA")
    for key in (*shared, "HALF_LIFE_S"):
        assert decider[f"DYNPRICING_DECIDER_{key}"] == learner[f"DYNPRICING_LEARNER_{key}"], key
    assert json.loads(decider["DYNPRICING_DECIDER_PRICES"]) == [0.8, 1.0, 1.2, 1.5, 2.0]
    assert learner["DYNPRICING_LEARNER_HALF_LIFE_S"] == "3600"
    assert json.loads(decider["DYNPRICING_DECIDER_BASE_PRICES"]) == {"Airport": 40, "Downtown": 25}
    assert decider["DYNPRICING_DECIDER_TOPICS__MODEL"] == "pricing_model"
    assert learner["DYNPRICING_LEARNER_TOPICS__MODEL"] == "pricing_model"
    assert learner["DYNPRICING_LEARNER_MODEL_PUBLISH_INTERVAL_S"] == "0.5"
    assert decider["DYNPRICING_DECIDER_SESSION_TIMEOUT_S"] == "10"
    assert decider["DYNPRICING_DECIDER_GROUP_ID"] == "dynpricing-decider"
    assert learner["DYNPRICING_LEARNER_GROUP_ID"] == "dynpricing-learner"


def test_model_topic_is_compacted_and_nothing_else_is_accepted() -> None:
    topic = one(render("helm3", "default-values"), "KafkaTopic", "-model")
    assert topic["spec"]["topicName"] == "pricing_model"
    assert topic["spec"]["config"]["cleanup.policy"] == "compact"
    result = helm_template("dp", sets=("topics.model.config.cleanup\\.policy=delete",))
    assert result.returncode != 0
    assert "compact" in result.stderr
    embedded = render_release("dp", sets=("mode=embedded",))
    assert not [
        t for t in by_kind(embedded, "KafkaTopic") if t["spec"]["topicName"] == "pricing_model"
    ]


def test_cpu_autoscaler_owns_the_decider_count() -> None:
    manifests = render("helm3", "cpu-autoscaling-values")
    decider = deployments(manifests)["decider"]
    assert "replicas" not in decider["spec"]  # an upgrade must not reset the HPA's choice
    hpa = one(manifests, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": decider["metadata"]["name"],
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60},
            },
        }
    ]
    container = decider["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"]  # utilisation is a share of it


def test_lag_autoscaler_reads_this_releases_decider_lag_on_its_demand_topic() -> None:
    manifests = render("helm3", "full-values")
    hpa = one(manifests, "HorizontalPodAutoscaler")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"] == {
        "name": "dynpricing_decider_demand_lag",
        "selector": {
            "matchLabels": {"service": "dp-dynamic-pricing-decider", "topic": "demand_events"}
        },
    }
    assert metric["external"]["target"] == {"type": "AverageValue", "averageValue": "20000"}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    service = one(manifests, "Service", "-decider")
    assert service["metadata"]["name"] == "dp-dynamic-pricing-decider"


@pytest.mark.parametrize(
    ("sets", "reason"),
    [
        (("decider.replicas=7",), "decider.replicas"),
        (("decider.autoscaling.enabled=true", "decider.autoscaling.maxReplicas=7"), "maxReplicas"),
        (
            (
                "decider.autoscaling.enabled=true",
                "decider.autoscaling.minReplicas=5",
                "decider.autoscaling.maxReplicas=3",
            ),
            "minReplicas",
        ),
    ],
)
def test_decider_counts_that_cannot_work_are_refused(sets: tuple[str, ...], reason: str) -> None:
    """More deciders than demand partitions would sit idle; say so at install."""
    result = helm_template("dp", sets=sets)
    assert result.returncode != 0
    assert reason in result.stderr


def test_embedded_mode_is_the_engine_alone_with_its_state() -> None:
    manifests = render_release("dp", sets=("mode=embedded", "pricing.halfLifeS=60"))
    assert not by_kind(manifests, "HorizontalPodAutoscaler")
    assert not by_kind(manifests, "PodDisruptionBudget")
    env = env_of(manifests, "engine")
    assert env["DYNPRICING_ENGINE_HALF_LIFE_S"] == "60"
    assert json.loads(env["DYNPRICING_ENGINE_PRICES"]) == [1.0, 1.2, 1.5, 2.0]
    pvc = one(manifests, "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "dp-dynamic-pricing-engine-state"


def test_prometheus_adapter_rule_serves_the_metric_the_lag_autoscaler_reads(
    tmp_path: Path,
) -> None:
    """k8s/prometheus-adapter-values.yaml (validated only, no cluster here) serves
    the external metric under the name the HPA asks for, from the deciders'
    consumer lag series, and its query parses as PromQL."""
    adapter = yaml.safe_load((REPO / "k8s" / "prometheus-adapter-values.yaml").read_text())
    (rule,) = adapter["rules"]["external"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert rule["name"]["as"] == values["decider"]["autoscaling"]["lag"]["metricName"]
    (series,) = metric_names(rule["seriesQuery"])
    assert contract().service_metrics["decider"][series] == "gauge"
    assert 'component="decider"' in rule["seriesQuery"]  # the ServiceMonitor's relabelling
    assert rule["resources"]["overrides"] == {"namespace": {"resource": "namespace"}}
    hpa = one(render("helm3", "full-values"), "HorizontalPodAutoscaler")
    selector = hpa["spec"]["metrics"][0]["external"]["metric"]["selector"]["matchLabels"]
    matchers = ",".join(f'{k}="{v}"' for k, v in {**selector, "namespace": NAMESPACE}.items())
    query = rule["metricsQuery"].replace("<<.Series>>", series)
    query = query.replace("<<.LabelMatchers>>", matchers)
    assert not promql_parse_errors(tool("promtool"), {"adapter": query}, tmp_path)
