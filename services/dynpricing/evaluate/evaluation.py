"""One evaluation, end to end and free of I/O: logged records in, the report document out.

Records (from the topics, a dump, or a simulation) are parsed, joined by the
engine's rules and turned into arrays; every target is scored; exclusions and
support problems become warnings. The document's keys are stable (see
``docs/evaluation.md``); the terminal table, ``--json`` and ``--plot`` all
render this one document.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from dynpricing.evaluate.dataset import EvaluationLog, build
from dynpricing.evaluate.estimators import Diagnostics, Interval, evaluate, observed_value
from dynpricing.evaluate.logjoin import (
    DUPLICATE_OUTCOME,
    EXPIRED_DROP,
    EXPIRED_REJECT,
    LATE_OUTCOME,
    OFF_GRID_OUTCOME,
    PENDING_AT_END,
    UNKNOWN_DECISION,
    UNKNOWN_LOCATION,
    WITHOUT_DECISION,
    JoinRules,
    join,
)
from dynpricing.evaluate.records import (
    DUPLICATE_DECISION,
    INVALID_DECISION,
    INVALID_OUTCOME,
    INVALID_PROPENSITY,
    NO_PROPENSITY,
    PRICE_NOT_ON_GRID,
    ParsedLog,
    RawRecord,
    parse_records,
)
from dynpricing.evaluate.replay import ReplayResult, ReplayTarget, replay
from dynpricing.evaluate.targets import FrozenPolicy, Target

REPORT_FORMAT = "dynpricing.evaluate.report"
REPORT_VERSION = 1
FEW_REPLAY_EVENTS = 30  # below this a replay estimate is flagged as resting on very little
COARSE_FLOOR = 0.005  # a long log whose smallest propensity is above this has floored estimates

EXCLUSION_MESSAGES = {
    NO_PROPENSITY: "decisions carry no propensity (older clients) and are not scored",
    INVALID_PROPENSITY: "decisions have a propensity that is not in (0, 1] and are not scored",
    INVALID_DECISION: "decision messages could not be parsed and are not scored",
    PRICE_NOT_ON_GRID: "decisions have a price that is not on the grid and are not scored",
    DUPLICATE_DECISION: "decisions were published again with the same id; the first one counts",
    PENDING_AT_END: "decisions are younger than the decision timeout at the end of the log "
    "and may still get an outcome; they are not scored",
    EXPIRED_DROP: "decisions got no outcome within the decision timeout and are dropped "
    "(EXPIRED_AS=drop)",
    EXPIRED_REJECT: "decisions got no outcome within the decision timeout and are scored as "
    "rejections (EXPIRED_AS=reject, as the engine learnt them)",
    INVALID_OUTCOME: "outcome messages could not be parsed",
    WITHOUT_DECISION: "outcomes answer no decision in the log (learnt by context, "
    "as the engine does, but not scored)",
    UNKNOWN_DECISION: "outcomes answer no decision in the log and name no context and price",
    DUPLICATE_OUTCOME: "outcomes repeat an answered decision; only the first counts",
    LATE_OUTCOME: "outcomes arrived after their decision expired and are ignored",
    OFF_GRID_OUTCOME: "outcomes without a decision name a price off the grid",
    UNKNOWN_LOCATION: "outcomes without a decision name a location the engine's "
    "LOCATIONS do not list",
}


@dataclass(frozen=True)
class NamedTarget:
    """A target to score and how the report describes its kind."""

    target: Target
    kind: str  # fixed, snapshot or informed


def evaluation_log(
    records: Sequence[RawRecord], prices: Sequence[float], rules: JoinRules
) -> tuple[ParsedLog, EvaluationLog]:
    """Parse, join by the engine's rules, and build the arrays."""
    parsed = parse_records(records, prices)
    grid = tuple(float(p) for p in prices)
    joined = join(parsed.decisions, parsed.outcomes, replace(rules, prices=grid))
    return parsed, build(parsed, joined, prices)


def interval_document(interval: Interval) -> dict[str, float]:
    return {
        "value": interval.value,
        "std_error": interval.std_error,
        "ci_low": interval.low,
        "ci_high": interval.high,
    }


def diagnostics_document(d: Diagnostics) -> dict[str, object]:
    return {
        "decisions": d.decisions,
        "effective_sample_size": d.effective_sample_size,
        "mean_weight": interval_document(d.mean_weight),
        "max_weight": d.max_weight,
        "max_weight_share": d.max_weight_share,
        "tiny_propensities": d.tiny_propensities,
        "tiny_weight_share": d.tiny_weight_share,
        "unsupported_share": d.unsupported_share,
        "ips_dr_gap": None if d.ips_dr_gap is None else interval_document(d.ips_dr_gap),
    }


def score_target(
    named: NamedTarget, log: EvaluationLog, rng: np.random.Generator
) -> dict[str, object]:
    """IPS, SNIPS and DR of one target, with diagnostics and warnings."""
    probabilities = named.target.probabilities(log, rng)
    result = evaluate(log.decisions, probabilities)
    warnings = list(result.diagnostics.warnings)
    if isinstance(named.target, FrozenPolicy):
        unseen = named.target.unseen_contexts(log)
        if unseen:
            warnings.append(
                f"the snapshot has never seen {len(unseen)} of the log's contexts "
                f"(e.g. {'|'.join(unseen[0])}); it prices them from the prior"
            )
    return {
        "kind": named.kind,
        "estimates": {name: interval_document(i) for name, i in result.estimates.items()},
        "diagnostics": diagnostics_document(result.diagnostics),
        "warnings": warnings,
    }


def replay_document(result: ReplayResult) -> dict[str, object]:
    """The replay method's answer and how much of the log it could use."""
    warnings = []
    if result.usable < FEW_REPLAY_EVENTS:
        warnings.append(
            f"replay used only {result.usable} of {result.offered} decisions; "
            "the estimate rests on very little"
        )
    if result.floor > COARSE_FLOOR and result.offered * result.floor > FEW_REPLAY_EVENTS:
        warnings.append(
            f"the smallest logged propensity is {result.floor:.4g} in {result.offered} decisions: "
            "the log's propensities look like coarse estimates (the engine's rarely go below "
            "about 1/100), which under-samples prices the logging policy nearly abandoned and "
            "makes the replay optimistic about a policy that explores them"
        )
    if result.clipped:
        warnings.append(
            f"{result.clipped} decisions were logged with a propensity below the replay floor "
            f"{result.floor:.4g} times the target's probability; the replay is biased there"
        )
    return {
        "kind": "replay",
        "estimates": {} if result.value is None else {"replay": interval_document(result.value)},
        "usable_decisions": result.usable,
        "offered_decisions": result.offered,
        "clipped_decisions": result.clipped,
        "floor": result.floor,
        "warnings": warnings,
    }


def target_rng(seed: int, name: str) -> np.random.Generator:
    """A target's own random stream: its result does not depend on the other targets."""
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def log_warnings(counts: Mapping[str, int]) -> list[str]:
    """One line per kind of exclusion or special treatment that happened."""
    return [
        f"{counts[key]} {message}"
        for key, message in EXCLUSION_MESSAGES.items()
        if counts.get(key, 0) > 0
    ]


def run_evaluation(
    records: Sequence[RawRecord],
    *,
    prices: Sequence[float],
    rules: JoinRules,
    targets: Sequence[NamedTarget],
    replays: Sequence[ReplayTarget],
    seed: int,
    source: Mapping[str, object],
) -> dict[str, object]:
    """The report document of every target on these records."""
    parsed, log = evaluation_log(records, prices, rules)
    documents: dict[str, dict[str, object]] = {}
    for named in targets:
        rng = target_rng(seed, named.target.name)
        documents[named.target.name] = score_target(named, log, rng)
    for target in replays:
        rng = target_rng(seed, target.name)
        result = replay(log, target.config, rng, floor=target.floor)
        documents[target.name] = replay_document(result)
    policies = sorted({d.model_version.partition(":")[0] for d in parsed.decisions} - {""})
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "source": dict(source),
        "prices": [float(p) for p in prices],
        "join": {
            "decision_timeout_s": rules.decision_timeout_s,
            "expired_as": rules.expired_as,
            "resolved_memory": rules.resolved_memory,
        },
        "counts": log.counts,
        "logged": {
            "policies": policies,
            "observed": interval_document(observed_value(log.decisions)),
        },
        "targets": documents,
        "warnings": log_warnings(log.counts),
    }
