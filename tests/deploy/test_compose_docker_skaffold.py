"""docker-compose.yml, the Dockerfile and skaffold.yaml, offline.

The compose file validates against the vendored Compose Specification schema and
uses the contract's variable names and ports; the Dockerfile lints with hadolint
and has one target per service; skaffold builds each artifact from a Dockerfile
target that exists and injects each image into the chart's values.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.support import (
    CHART,
    COMPOSE_SERVICES,
    REPO,
    SERVICES,
    contract,
    deploy_mk_variable,
    run,
    tool,
)

SCHEMA = REPO / "tests" / "deploy" / "schemas" / "compose-spec.json"
DOCKERFILE = REPO / "Dockerfile"


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8")))


def skaffold_docs() -> list[dict[str, Any]]:
    text = (REPO / "skaffold.yaml").read_text(encoding="utf-8")
    return [d for d in yaml.safe_load_all(text) if d]


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    stages: dict[str, list[str]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = match.group(1)
            stages[current] = []
        elif current:
            stages[current].append(line)
    return stages


# --- compose ------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    errors = [
        f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(compose())
    ]
    assert not errors, "\n".join(errors)


def test_compose_schema_check_catches_a_misspelt_key() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    bad = compose()
    bad["services"]["engine"]["enviroment"] = {}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(bad))


def test_compose_runs_kafka_topics_services_prometheus_and_grafana() -> None:
    services = compose()["services"]
    assert set(services) >= {"kafka", "kafka-topics", *COMPOSE_SERVICES, "prometheus", "grafana"}
    # One machine: the embedded engine decides and learns (no deciders, no learner).
    assert not {"decider", "learner"} & set(services)
    kafka_image = services["kafka"]["image"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka_image), kafka_image
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    topics_script = " ".join(services["kafka-topics"]["command"])
    for topic in ("demand_events", "pricing_decisions", "pricing_outcomes", "pricing_dead_letters"):
        assert topic in topics_script
    for name, svc in services.items():
        assert ":" in svc["image"], name
        assert not svc["image"].endswith(":latest"), name


def test_compose_services_use_contract_names_and_ports() -> None:
    services = compose()["services"]
    c = contract()
    for name in COMPOSE_SERVICES:
        svc = services[name]
        assert svc["build"]["target"] == name
        env = svc["environment"]
        assert set(env) <= c.env[name], sorted(set(env) - c.env[name])
        port = int(env[f"DYNPRICING_{name.upper()}_HTTP_PORT"])
        assert port == c.ports[name]
        assert f"127.0.0.1:{port}:{port}" in svc["ports"]
        assert svc["depends_on"]["kafka-topics"]["condition"] == "service_completed_successfully"
        # reachable through the published port, and kafka-topics owns the topics
        assert env[f"DYNPRICING_{name.upper()}_HTTP_HOST"] == "0.0.0.0"  # noqa: S104
        assert env[f"DYNPRICING_{name.upper()}_CREATE_TOPICS"] == "false"


def test_compose_restarts_every_long_running_service() -> None:
    for name, svc in compose()["services"].items():
        if name == "kafka-topics":
            assert svc["restart"] == "no"
        else:
            assert svc.get("restart") in {"unless-stopped", "always"}, name


@pytest.mark.tools
def test_compose_prometheus_is_the_version_whose_promtool_checks_the_rules() -> None:
    """The rules and scrape config are checked with promtool in `make test`; the
    Prometheus compose runs must be the same version."""
    result = run([tool("promtool"), "--version"])
    assert result.returncode == 0, result.stderr
    version = re.search(r"version (\d+\.\d+\.\d+)", result.stdout + result.stderr)
    assert version, result.stdout
    image = compose()["services"]["prometheus"]["image"]
    assert image == f"prom/prometheus:v{version.group(1)}"


def test_compose_keeps_engine_state_on_a_volume() -> None:
    doc = compose()
    engine = doc["services"]["engine"]
    state = engine["environment"]["DYNPRICING_ENGINE_STATE_PATH"]
    volume, _, target = next(
        v for v in engine["volumes"] if v.startswith("engine-state:")
    ).partition(":")
    assert state.startswith(target + "/")
    assert volume in doc["volumes"]


def test_compose_mounts_the_charts_monitoring_files() -> None:
    services = compose()["services"]
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    sources = {m.split(":")[0] for m in mounts if m.startswith("./")}
    assert {
        "./charts/dynamic-pricing/prometheus/prometheus.yml",
        "./charts/dynamic-pricing/prometheus/alerts.yml",
        "./charts/dynamic-pricing/dashboards",
        "./charts/dynamic-pricing/grafana/datasources.yml",
        "./charts/dynamic-pricing/grafana/dashboards.yml",
    } <= sources
    for source in sources:
        assert (REPO / source).exists(), source
    datasources = yaml.safe_load((CHART / "grafana" / "datasources.yml").read_text())
    assert datasources["datasources"][0]["url"] == "http://prometheus:9090"


# --- Dockerfile -----------------------------------------------------------------


@pytest.mark.tools
def test_dockerfile_lints_clean_with_hadolint() -> None:
    result = run([tool("hadolint"), "--failure-threshold", "info", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_has_one_target_per_service_running_it() -> None:
    stages = dockerfile_stages()
    for name in SERVICES:
        instructions = stages[name]
        assert f'CMD ["{name}"]' in instructions
        health = next(i for i in instructions if i.startswith("HEALTHCHECK"))
        assert "python" in health
        assert "/healthz" in health
        assert "curl" not in health
        port = contract().ports[name]
        assert f"EXPOSE {port}" in instructions
        assert f"DYNPRICING_{name.upper()}_HTTP_PORT={port}" in " ".join(instructions)
    runtime = stages["runtime"]
    assert 'ENTRYPOINT ["dynpricing"]' in runtime
    assert any(re.fullmatch(r"USER 10001(:10001)?", i) for i in runtime)


def test_dockerfile_pins_a_slim_python_base_and_installs_with_constraints() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.MULTILINE)
    assert base, "no pinned base image argument"
    assert re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", base.group(1)), base.group(1)
    assert "--constraint constraints.txt" in text
    final = {k: v for k, v in dockerfile_stages().items() if k != "build"}
    for name, instructions in final.items():
        joined = " ".join(instructions)
        for compiler in ("gcc", "build-essential", "g++", "clang"):
            assert compiler not in joined, f"{name} installs {compiler}"


def test_dockerignore_keeps_the_build_context_to_what_the_image_installs() -> None:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert next(x for x in lines if not x.startswith("#")) == "*"
    allowed = {x[1:].rstrip("/") for x in lines if x.startswith("!")}
    assert allowed == {"constraints.txt", "pyproject.toml", "README.md", "services"}
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert source.rstrip("/") in allowed, source


# --- skaffold -------------------------------------------------------------------


def test_skaffold_uses_a_current_v4beta_schema() -> None:
    for doc in skaffold_docs():
        assert re.fullmatch(r"skaffold/v4beta(1[3-9]|[2-9]\d)", doc["apiVersion"]), doc[
            "apiVersion"
        ]
        assert doc["kind"] == "Config"


def test_skaffold_artifacts_build_existing_dockerfile_targets() -> None:
    app = next(d for d in skaffold_docs() if d["metadata"]["name"] == "dynpricing")
    stages = dockerfile_stages()
    targets = {}
    for artifact in app["build"]["artifacts"]:
        assert artifact["docker"]["dockerfile"] == "Dockerfile"
        assert artifact["docker"]["target"] in stages
        targets[artifact["image"]] = artifact["docker"]["target"]
    assert sorted(targets.values()) == sorted(SERVICES)


def test_skaffold_injects_every_image_into_the_chart() -> None:
    app = next(d for d in skaffold_docs() if d["metadata"]["name"] == "dynpricing")
    release = app["deploy"]["helm"]["releases"][0]
    assert (REPO / release["chartPath"]).resolve() == CHART
    templates = release["setValueTemplates"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for artifact in app["build"]["artifacts"]:
        key = re.sub(r"[^A-Za-z0-9]", "_", artifact["image"])
        component = artifact["docker"]["target"]
        assert templates[f"{component}.image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
        assert templates[f"{component}.image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
        assert {"repository", "tag"} <= set(values[component]["image"])


def operator_release() -> str:
    """Name of the Strimzi operator release that `make kind-up` installs."""
    script = (REPO / "k8s" / "install-platform.sh").read_text(encoding="utf-8")
    match = re.search(r"upgrade --install (\S+) oci://quay\.io/strimzi-helm/", script)
    assert match, "install-platform.sh installs no Strimzi operator"
    return match.group(1)


def test_skaffold_leaves_the_operator_that_kind_up_installed_alone() -> None:
    """skaffold's cleanup uninstalls every release it deployed: deploying the
    operator from skaffold would remove it (and its CRDs' users) after `skaffold dev`."""
    for doc in skaffold_docs():
        for release in doc.get("deploy", {}).get("helm", {}).get("releases", []):
            assert release["name"] != operator_release(), doc["metadata"]["name"]
            assert "strimzi-kafka-operator" not in release.get("remoteChart", "")
    chart_annotations = yaml.safe_load((CHART / "Chart.yaml").read_text())["annotations"]
    assert chart_annotations["dynpricing.io/strimzi-version"] == deploy_mk_variable(
        "STRIMZI_VERSION"
    )


def test_skaffold_waits_as_long_as_a_fresh_cluster_takes() -> None:
    app = next(d for d in skaffold_docs() if d["metadata"]["name"] == "dynpricing")
    flags = app["deploy"]["helm"]["flags"]
    for command in ("install", "upgrade"):
        timeout = flags[command][flags[command].index("--timeout") + 1]
        assert re.fullmatch(r"\d+m", timeout), timeout
        assert int(timeout[:-1]) >= 10, timeout
    assert app["deploy"]["statusCheckDeadlineSeconds"] >= 600


def test_skaffold_has_a_kind_profile_using_existing_values() -> None:
    app = next(d for d in skaffold_docs() if d["metadata"]["name"] == "dynpricing")
    kind = next(p for p in app["profiles"] if p["name"] == "kind")
    values_files = [v for p in kind["patches"] if "valuesFiles" in p["path"] for v in p["value"]]
    assert values_files
    for f in values_files:
        assert (REPO / f).is_file(), f


# --- make targets and pinned versions ----------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "helm",
        "kind",
        "promtool",
        "checkov",
        "deploy-tools",
        "kind-up",
        "kind-down",
        "deploy",
        "dev",
    ],
)
def test_deploy_make_target_exists(target: str) -> None:
    result = run(["make", "--dry-run", "--file", "tools/deploy.mk", target])
    assert result.returncode == 0, result.stderr


def test_platform_versions_agree_everywhere() -> None:
    strimzi = deploy_mk_variable("STRIMZI_VERSION")
    kps = deploy_mk_variable("KPS_VERSION")
    install = (REPO / "k8s" / "install-platform.sh").read_text(encoding="utf-8")
    assert f'STRIMZI_VERSION="${{STRIMZI_VERSION:-{strimzi}}}"' in install
    assert f'KPS_VERSION="${{KPS_VERSION:-{kps}}}"' in install
    docs = (REPO / "k8s" / "README.md").read_text(encoding="utf-8")
    assert f"--version {strimzi}" in docs
    assert f"--version {kps}" in docs
    kind_config = yaml.safe_load((REPO / "k8s" / "kind-cluster.yaml").read_text())
    assert f"kind-{kind_config['name']}" == deploy_mk_variable("KUBE_CONTEXT").replace(
        "$(KIND_CLUSTER)", deploy_mk_variable("KIND_CLUSTER")
    )


# --- make deploy ------------------------------------------------------------------

STUB_ENGINE = """#!/bin/sh
# A container engine double: an image's id is the hash of its service's source.
echo "engine $*" >> "$STUB_LOG"
if [ "$1" = image ] && [ "$2" = inspect ]; then
  service=$(echo "$5" | sed 's/^dynpricing-//; s/:build$//')
  echo "sha256:$(sha256sum "$STUB_SOURCES/$service" | cut -c1-64)"
fi
"""
STUB_RECORDER = """#!/bin/sh
echo "$(basename "$0") $*" >> "$STUB_LOG"
"""


def make_deploy(tmp: Path, sources: dict[str, str]) -> dict[str, str]:
    """Run `make deploy` with a recording container engine, kind and helm; return
    the image tag each service was installed with."""
    src = tmp / "sources"
    src.mkdir(exist_ok=True)
    for service, content in sources.items():
        (src / service).write_text(content)
    stubs = {"engine": STUB_ENGINE, "kind": STUB_RECORDER, "helm": STUB_RECORDER}
    for name, text in stubs.items():
        (tmp / name).write_text(text)
        (tmp / name).chmod(0o755)
    log = tmp / "calls.log"
    log.write_text("")
    env = {**os.environ, "STUB_LOG": str(log), "STUB_SOURCES": str(src)}
    result = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-f",
            "tools/deploy.mk",
            "deploy",
            f"CONTAINER_ENGINE={tmp / 'engine'}",
            f"KIND={tmp / 'kind'}",
            f"HELM3={tmp / 'helm'}",
            f"HELM4={tmp / 'helm'}",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    helm = [line for line in log.read_text().splitlines() if line.startswith("helm upgrade")]
    assert len(helm) == 1, log.read_text()
    tags = dict(re.findall(r"--set (\w+)\.image\.tag=(\S+)", helm[0]))
    loaded = re.findall(r"^kind load docker-image (\S+)", log.read_text(), re.MULTILINE)
    assert sorted(loaded) == sorted(f"dynpricing-{s}:{t}" for s, t in tags.items())
    return tags


def test_make_deploy_tags_each_image_by_its_content(tmp_path: Path) -> None:
    first = make_deploy(tmp_path, {s: f"{s} v1" for s in SERVICES})
    assert set(first) == set(SERVICES)
    assert len(set(first.values())) == len(SERVICES)
    changed = make_deploy(tmp_path, {**{s: f"{s} v1" for s in SERVICES}, "producer": "v2"})
    assert changed["producer"] != first["producer"]
    assert {s: changed[s] for s in ("engine", "simulator")} == {
        s: first[s] for s in ("engine", "simulator")
    }
    again = make_deploy(tmp_path, {**{s: f"{s} v1" for s in SERVICES}, "producer": "v2"})
    assert again == changed


def test_readme_lists_the_system_packages_ci_installs() -> None:
    listed = [
        line.strip()
        for line in (REPO / "tools" / "system-packages.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {"podman", "runc", "catatonit", "debootstrap", "prometheus"} <= set(listed)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    prerequisites = readme.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    for package in listed:
        assert f"`{package}`" in prerequisites, package
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "tools/system-packages.txt" in ci
    assert ci.index("make podman-base") < ci.index("make test")
