"""Rendering the evaluation documents: the terminal tables and the ``--plot`` figure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

FIGURE_WIDTH_IN = 9.0
ROW_HEIGHT_IN = 0.45
DPI = 120
ESTIMATOR_LABELS = {"ips": "IPS", "snips": "SNIPS", "dr": "DR", "replay": "replay"}
EXCLUDED_FROM_SUMMARY = {"decisions_read", "outcomes_read", "decisions_scored", "joined"}


def _interval(estimate: Mapping[str, float]) -> str:
    return f"{estimate['value']:8.4f}  [{estimate['ci_low']:.4f}, {estimate['ci_high']:.4f}]"


def format_report(doc: Mapping[str, Any]) -> str:
    """The terminal table: the log's counts, the observed value, then one row per estimate."""
    counts = cast(Mapping[str, int], doc["counts"])
    logged = cast(Mapping[str, Any], doc["logged"])
    lines = [
        f"log: {counts.get('decisions_read', 0)} decisions read, "
        f"{counts.get('decisions_scored', 0)} scored; {counts.get('outcomes_read', 0)} outcomes "
        f"read, {counts.get('joined', 0)} joined",
        f"logging policy {', '.join(logged['policies']) or '(unnamed)'}: observed revenue per "
        f"decision {_interval(logged['observed'])}",
        "",
        f"{'target':<34} {'estimator':<9} {'value':>8}  {'95 % interval':<18}  {'ESS':>8}",
    ]
    for name, target in cast(Mapping[str, Mapping[str, Any]], doc["targets"]).items():
        label = name
        ess = target.get("diagnostics", {}).get("effective_sample_size")
        usable = target.get("usable_decisions")
        if not target["estimates"]:
            lines.append(f"{label:<34} {'replay':<9} {'-':>8}  (no usable decisions)")
        for estimator, estimate in target["estimates"].items():
            extra = f"{ess:8.0f}" if ess is not None else f"{usable:>5} used"
            lines.append(
                f"{label:<34} {ESTIMATOR_LABELS.get(estimator, estimator):<9} "
                f"{_interval(estimate)}  {extra}"
            )
            label = ""
    warnings = [f"  log: {w}" for w in doc["warnings"]]
    for name, target in doc["targets"].items():
        warnings += [f"  {name}: {w}" for w in target["warnings"]]
    if warnings:
        lines += ["", "warnings:", *warnings]
    return "\n".join(lines)


def format_coverage(doc: Mapping[str, Any]) -> str:
    """The ``--simulate`` table: per target and estimator, truth, estimate, width, coverage."""
    lines = [
        f"market {doc['market']}, horizon {doc['horizon']}, {doc['seeds']} seeds, "
        f"logging policy {doc['logging_policy']} "
        f"({doc['logging_propensity_draws']} propensity draws)",
        f"{'target':<28} {'estimator':<9} {'true value':>10} {'mean estimate':>13} "
        f"{'mean width':>10} {'coverage':>8}",
    ]
    for name, estimators in cast(Mapping[str, Mapping[str, Any]], doc["targets"]).items():
        label = name
        for estimator, row in estimators.items():
            lines.append(
                f"{label:<28} {ESTIMATOR_LABELS.get(estimator, estimator):<9} "
                f"{row['true_value']:>10.4f} {row['mean_estimate']:>13.4f} "
                f"{row['mean_interval_width']:>10.4f} {row['coverage']:>8.0%}"
            )
            label = ""
    return "\n".join(lines)


def plot_report(doc: Mapping[str, Any], path: Path) -> None:
    """Each target's estimates with their intervals, beside the logging policy's observed value."""
    import matplotlib  # noqa: PLC0415 - optional dependency, loaded only when plotting

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    rows: list[tuple[str, Mapping[str, float]]] = [("logged (observed)", doc["logged"]["observed"])]
    for name, target in doc["targets"].items():
        for estimator, estimate in target["estimates"].items():
            rows.append((f"{name} {ESTIMATOR_LABELS.get(estimator, estimator)}", estimate))
    figure, axes = plt.subplots(figsize=(FIGURE_WIDTH_IN, 1.0 + ROW_HEIGHT_IN * len(rows)))
    for y, (label, estimate) in enumerate(reversed(rows)):
        value = estimate["value"]
        span = [[value - estimate["ci_low"]], [estimate["ci_high"] - value]]
        colour = "tab:gray" if label.startswith("logged") else "tab:blue"
        axes.errorbar([value], [y], xerr=span, fmt="o", capsize=4, color=colour)
    observed = doc["logged"]["observed"]["value"]
    axes.axvline(observed, color="tab:gray", linestyle="--", linewidth=1)
    axes.set_yticks(range(len(rows)), [label for label, _ in reversed(rows)])
    axes.set_xlabel("revenue per decision (price multiplier x acceptance), 95 % interval")
    axes.set_title("estimated revenue per decision of each target policy")
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    plt.close(figure)
