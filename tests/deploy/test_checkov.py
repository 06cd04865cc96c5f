"""checkov on the rendered manifests of every ci/ scenario: no failing check;
every skipped check carries its reason in a ``checkov.io/skipN`` annotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import SCENARIOS, render_text, run, tool

pytestmark = pytest.mark.tools


def checkov_report(tmp_path: Path) -> dict[str, Any]:
    files: list[str | Path] = []
    for scenario in SCENARIOS:
        path = tmp_path / f"{scenario}.yaml"
        path.write_text(render_text("helm3", scenario))
        files += ["--file", path]
    # --file, not --directory: checkov skips directories whose names start with a
    # dot, and make test keeps pytest's temporary folders under .run/
    result = run(
        [
            tool("checkov"),
            *files,
            "--framework",
            "kubernetes",
            # offline: no policy or guideline downloads from the vendor's platform
            "--skip-download",
            "--output",
            "json",
        ]
    )
    assert result.stdout.strip(), result.stderr
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    assert len(reports) == 1, [r.get("check_type") for r in reports]
    return dict(reports[0])


def test_rendered_manifests_pass_checkov(tmp_path: Path) -> None:
    report = checkov_report(tmp_path)
    results = report["results"]
    assert report["summary"]["parsing_errors"] == 0, results.get("parsing_errors")
    assert report["summary"]["resource_count"] > 0
    failed = [
        f"{c['check_id']} {c['resource']}: {c['check_name']}" for c in results["failed_checks"]
    ]
    assert not failed, "\n".join(failed)
    unexplained = [
        f"{c['check_id']} {c['resource']}"
        for c in results["skipped_checks"]
        if len(c["check_result"].get("suppress_comment", "").strip()) < 20
    ]
    assert not unexplained, "skips without a written reason:\n" + "\n".join(unexplained)
