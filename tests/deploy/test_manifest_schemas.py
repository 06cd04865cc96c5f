"""Every rendered object against its schema, offline.

Built-in kinds: the Kubernetes OpenAPI schemas that kubernetes-validate ships,
strictly (unknown fields rejected), for the oldest and newest Kubernetes the
chart supports. Strimzi and prometheus-operator kinds: the CRDs in the shared
folder, with ``additionalProperties: false`` added wherever the CRD does not
preserve unknown fields, so a misspelt or removed field fails.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import (
    HELM_MAJORS,
    KUBE_VERSIONS,
    SCENARIOS,
    Manifest,
    render,
    shared_dir,
    unavailable,
)

pytestmark = pytest.mark.tools

CRD_FILES = {
    "kafka.strimzi.io": (
        "strimzi-040-Crd-kafka.yaml",
        "strimzi-043-Crd-kafkatopic.yaml",
        "strimzi-044-Crd-kafkauser.yaml",
        "strimzi-045-Crd-kafkanodepool.yaml",
    ),
    "monitoring.coreos.com": (
        "monitoring-servicemonitors.yaml",
        "monitoring-prometheusrules.yaml",
    ),
}


def is_custom(manifest: Manifest) -> bool:
    group = manifest["apiVersion"].split("/")[0]
    return group in CRD_FILES


def close_schema(schema: Any) -> Any:
    """A copy of an OpenAPI schema that rejects fields it does not declare."""
    if isinstance(schema, list):
        return [close_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: close_schema(v) for k, v in schema.items()}
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> closed openAPIV3Schema of every served CRD version."""
    crds = shared_dir() / "crds"
    if not crds.is_dir():
        unavailable(f"the CRD folder {crds}", "set DYNPRICING_SHARED_DIR to the shared folder")
    schemas = {}
    for group, files in CRD_FILES.items():
        for name in files:
            crd = yaml.safe_load((crds / name).read_text(encoding="utf-8"))
            kind = crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                if version.get("served"):
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    schemas[(f"{group}/{version['name']}", kind)] = close_schema(schema)
    return schemas


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("helm", HELM_MAJORS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_builtin_objects_match_the_kubernetes_schemas(
    scenario: str, helm: str, kube_version: str
) -> None:
    manifests = [m for m in render(helm, scenario, kube_version) if not is_custom(m)]
    assert manifests
    errors = []
    for m in manifests:
        try:
            kubernetes_validate.validate(m, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{m['kind']}/{m['metadata']['name']}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{m['kind']}/{m['metadata']['name']}: no schema ({exc})")
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("helm", HELM_MAJORS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_custom_resources_match_the_shared_crds(scenario: str, helm: str) -> None:
    schemas = crd_schemas()
    errors = []
    for m in (m for m in render(helm, scenario) if is_custom(m)):
        key = (m["apiVersion"], m["kind"])
        assert key in schemas, f"{key} is not served by the CRDs in shared/crds"
        validator = jsonschema.Draft7Validator(schemas[key])
        errors += [
            f"{m['kind']}/{m['metadata']['name']} at /{'/'.join(map(str, e.absolute_path))}: "
            f"{e.message}"
            for e in validator.iter_errors(m)
        ]
    assert not errors, "\n".join(errors)


def test_every_custom_kind_the_chart_uses_is_rendered_somewhere() -> None:
    kinds = {m["kind"] for s in SCENARIOS for m in render("helm3", s) if is_custom(m)}
    assert kinds == {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "ServiceMonitor",
        "PrometheusRule",
    }


def test_closed_crd_schema_rejects_a_misspelt_field() -> None:
    schema = crd_schemas()[("kafka.strimzi.io/v1", "KafkaTopic")]
    topic = {
        "apiVersion": "kafka.strimzi.io/v1",
        "kind": "KafkaTopic",
        "metadata": {"name": "t"},
        "spec": {"topicName": "t", "partition": 3},
    }
    assert list(jsonschema.Draft7Validator(schema).iter_errors(topic))


def test_strict_kubernetes_validation_rejects_a_misspelt_field() -> None:
    deployment = render("helm3", "default-values")
    bad = copy.deepcopy(next(m for m in deployment if m["kind"] == "Deployment"))
    bad["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE_VERSIONS[0], strict=True)
