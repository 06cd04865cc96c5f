"""The published JSON Schemas and the parsers agree on what a valid message is.

What the services write validates against its schema; what the original design's
clients send validates and parses; what a schema refuses, the parser refuses too,
so an integrator who validates against the schema never meets a surprise the
other way round.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from dynpricing import events
from dynpricing.events import (
    REASONS,
    Decision,
    DemandEvent,
    InvalidEvent,
    Origin,
    Outcome,
    encode_dead_letter,
    encode_decision,
    encode_demand,
    encode_outcome,
    parse_demand,
    parse_outcome,
)
from dynpricing.settings import TopicSettings
from tests.unit.services.schema_support import SCHEMA_FILES, schema, schema_errors
from tests.unit.services.strategies import (
    decisions,
    demand_events,
    json_values,
    mutated,
    outcomes,
)

DEMAND: dict[str, Any] = {
    "schema_version": 2,
    "event_id": "e-1",
    "timestamp": 1_700_000_000.5,
    "location": "Airport",
    "active_requests": 10,
    "available_drivers": 4,
}
OUTCOME: dict[str, Any] = {
    "schema_version": 2,
    "decision_id": "d-1",
    "timestamp": 1_700_000_001,
    "accepted": True,
    "context": ["Airport", "high"],
    "chosen_price": 1.5,
    "revenue": 1.5,
}


def _parse_demand(raw: bytes) -> DemandEvent:
    return parse_demand(raw, fallback_id="0-0")


@pytest.mark.parametrize("kind", sorted(SCHEMA_FILES))
def test_every_schema_file_is_a_valid_draft_2020_12_schema_named_by_its_id(kind: str) -> None:
    document = schema(kind)
    Draft202012Validator.check_schema(document)
    assert document["$id"].endswith("/" + SCHEMA_FILES[kind])


def test_each_schema_title_names_the_default_topic_it_describes() -> None:
    topics = TopicSettings()
    assert topics.demand in schema("demand")["title"]
    assert topics.decisions in schema("decision")["title"]
    assert topics.outcomes in schema("outcome")["title"]
    assert topics.dead_letters in schema("dead_letter")["title"]


def test_the_dead_letter_schema_lists_exactly_the_reasons_the_services_use() -> None:
    assert schema("dead_letter")["properties"]["reason"]["enum"] == list(REASONS)


# ---- what the services write -----------------------------------------------------------


@given(demand_events)
def test_every_demand_event_the_producer_writes_validates(event: DemandEvent) -> None:
    assert schema_errors("demand", orjson.loads(encode_demand(event))) == []


@given(decisions)
def test_every_decision_the_engine_writes_validates(decision: Decision) -> None:
    assert schema_errors("decision", orjson.loads(encode_decision(decision))) == []


@given(outcomes, st.none() | st.floats(min_value=0, max_value=100))
def test_every_outcome_the_simulator_writes_validates(
    outcome: Outcome, revenue: float | None
) -> None:
    assert schema_errors("outcome", orjson.loads(encode_outcome(outcome, revenue=revenue))) == []


@given(
    st.sampled_from(REASONS),
    st.none() | st.binary(max_size=50),
    st.text(max_size=20),
    st.integers(min_value=0, max_value=2**31),
    st.integers(min_value=0, max_value=2**62),
)
def test_every_dead_letter_validates_and_holds_the_original_bytes(
    reason: str, raw: bytes | None, detail: str, partition: int, offset: int
) -> None:
    origin = Origin("pricing_outcomes", partition, offset)
    letter = orjson.loads(encode_dead_letter(raw, reason, detail, origin, 1_700_000_000.0))
    assert schema_errors("dead_letter", letter) == []
    assert base64.b64decode(letter["original_base64"]) == (raw or b"")


# ---- what the original design's clients send -------------------------------------------

ORIGINAL_DEMAND = {
    "timestamp": 1_700_000_000,
    "location": "Downtown",
    "active_requests": 7,
    "available_drivers": 3,
    "weather": "rain",
}
ORIGINAL_OUTCOME = {
    "decision_id": "d-9",
    "timestamp": 1_700_000_005,
    "context": ["Downtown", "medium"],
    "chosen_price": 1.2,
    "accepted": True,
    "revenue": 1.2,
}


def test_an_original_design_demand_event_validates_and_parses_as_version_1() -> None:
    assert schema_errors("demand", ORIGINAL_DEMAND) == []
    event = _parse_demand(orjson.dumps(ORIGINAL_DEMAND))
    assert (event.schema_version, event.event_id, event.timestamp) == (1, "0-0", 1_700_000_000.0)


def test_an_original_design_outcome_validates_and_parses_with_its_context_and_price() -> None:
    assert schema_errors("outcome", ORIGINAL_OUTCOME) == []
    outcome = parse_outcome(orjson.dumps(ORIGINAL_OUTCOME))
    assert outcome == Outcome("d-9", 1_700_000_005.0, True, "Downtown", "medium", 1.2)


def test_an_iso_8601_timestamp_validates_and_parses() -> None:
    document = DEMAND | {"timestamp": "2024-01-01T00:00:00Z"}
    assert schema_errors("demand", document) == []
    assert _parse_demand(orjson.dumps(document)).timestamp == 1_704_067_200.0


# ---- what the schemas refuse, the parsers refuse ---------------------------------------


def _drop(document: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in document.items() if k != name}


REFUSED_DEMAND = {
    "negative requests": DEMAND | {"active_requests": -1},
    "negative drivers": DEMAND | {"available_drivers": -5},
    "fractional requests": DEMAND | {"active_requests": 2.5},
    "requests as text": DEMAND | {"active_requests": "10"},
    "missing event_id in version 2": _drop(DEMAND, "event_id"),
    "missing timestamp": _drop(DEMAND, "timestamp"),
    "missing location": _drop(DEMAND, "location"),
    "missing requests": _drop(DEMAND, "active_requests"),
    "missing drivers": _drop(DEMAND, "available_drivers"),
    "empty location": DEMAND | {"location": ""},
    "location too long": DEMAND | {"location": "x" * (events.MAX_LOCATION_LENGTH + 1)},
    "location not text": DEMAND | {"location": 12},
    "negative timestamp": DEMAND | {"timestamp": -1},
    "boolean timestamp": DEMAND | {"timestamp": True},
    "unknown version": DEMAND | {"schema_version": 3},
    "version as text": DEMAND | {"schema_version": "2"},
    "event_id a list": DEMAND | {"event_id": ["e"]},
}
REFUSED_OUTCOME = {
    "missing decision_id": _drop(OUTCOME, "decision_id"),
    "missing timestamp": _drop(OUTCOME, "timestamp"),
    "missing accepted": _drop(OUTCOME, "accepted"),
    "empty decision_id": OUTCOME | {"decision_id": ""},
    "numeric decision_id": OUTCOME | {"decision_id": 5},
    "accepted as number": OUTCOME | {"accepted": 1},
    "accepted as text": OUTCOME | {"accepted": "yes"},
    "context of one": OUTCOME | {"context": ["Airport"]},
    "context of three": OUTCOME | {"context": ["Airport", "high", "now"]},
    "unknown demand level": OUTCOME | {"context": ["Airport", "extreme"]},
    "context as text": OUTCOME | {"context": "Airport|high"},
    "negative price": OUTCOME | {"chosen_price": -1.5},
    "zero price": OUTCOME | {"chosen_price": 0},
    "price as text": OUTCOME | {"chosen_price": "1.5"},
    "negative multiplier": OUTCOME | {"price_multiplier": -2},
    "negative timestamp": OUTCOME | {"timestamp": -10},
    "unknown version": OUTCOME | {"schema_version": 0},
}


@pytest.mark.parametrize("document", REFUSED_DEMAND.values(), ids=REFUSED_DEMAND.keys())
def test_a_demand_event_the_schema_refuses_is_refused_by_the_parser(
    document: dict[str, Any],
) -> None:
    assert schema_errors("demand", document) != []
    with pytest.raises(InvalidEvent):
        _parse_demand(orjson.dumps(document))


@pytest.mark.parametrize("document", REFUSED_OUTCOME.values(), ids=REFUSED_OUTCOME.keys())
def test_an_outcome_the_schema_refuses_is_refused_by_the_parser(document: dict[str, Any]) -> None:
    assert schema_errors("outcome", document) != []
    with pytest.raises(InvalidEvent):
        parse_outcome(orjson.dumps(document))


def _accepted(parse: Any, raw: bytes) -> bool:
    try:
        parse(raw)
    except InvalidEvent:
        return False
    return True


@given(mutated(DEMAND, [*DEMAND, "weather"]))
def test_whatever_demand_the_parser_accepts_the_schema_accepts(raw: bytes) -> None:
    if _accepted(_parse_demand, raw):
        assert schema_errors("demand", orjson.loads(raw)) == []


# The outcome parser reads decision_id, timestamp, accepted, context and the price;
# null stands for "absent" there, and revenue is never read (see docs/events.md).
OUTCOME_FIELDS_READ = ["schema_version", "decision_id", "timestamp", "accepted", "context"]
OUTCOME_PRICE_FIELDS = ["chosen_price", "price_multiplier"]


@given(
    mutated(
        OUTCOME,
        OUTCOME_FIELDS_READ + OUTCOME_PRICE_FIELDS,
        json_values.filter(lambda v: v is not None),
    )
)
def test_whatever_outcome_the_parser_accepts_the_schema_accepts(raw: bytes) -> None:
    if _accepted(parse_outcome, raw):
        assert schema_errors("outcome", orjson.loads(raw)) == []
