"""The edge: bytes become frozen events or an InvalidEvent with a known reason, nothing else."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dynpricing import events
from dynpricing.engine.loop import decision_id_for
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
    parse_decision,
    parse_demand,
    parse_outcome,
)
from tests.unit.services.strategies import decisions, demand_events, json_values, mutated

FALLBACK_ID = "0-17"
VALID_DEMAND: dict[str, Any] = {
    "schema_version": 2,
    "event_id": "evt-1",
    "timestamp": 1_700_000_000.25,
    "location": "Airport",
    "active_requests": 30,
    "available_drivers": 12,
}
VALID_OUTCOME: dict[str, Any] = {
    "schema_version": 2,
    "decision_id": "0-17-evt-1",
    "timestamp": 1_700_000_001.0,
    "accepted": True,
}


def _json(obj: Any) -> bytes:
    return orjson.dumps(obj)


def _demand(**changes: Any) -> bytes:
    return _json({**VALID_DEMAND, **changes})


def _without(base: dict[str, Any], name: str) -> bytes:
    return _json({k: v for k, v in base.items() if k != name})


def _reason_of_demand(raw: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_demand(raw, fallback_id=FALLBACK_ID)
    return caught.value.reason


def _reason_of_outcome(raw: bytes | None) -> str:
    with pytest.raises(InvalidEvent) as caught:
        parse_outcome(raw)
    return caught.value.reason


# ---- demand events ---------------------------------------------------------------------


def test_a_version_2_demand_event_becomes_a_frozen_event_with_every_field() -> None:
    event = parse_demand(_demand(), fallback_id=FALLBACK_ID)
    assert event == DemandEvent("evt-1", 1_700_000_000.25, "Airport", 30, 12, schema_version=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.location = "Downtown"  # type: ignore[misc]


def test_an_original_design_event_without_version_with_weather_and_int_time_is_read() -> None:
    raw = _json(
        {
            "timestamp": 1_700_000_000,
            "location": "Downtown",
            "active_requests": 5,
            "available_drivers": 9,
            "weather": "rain",
        }
    )
    event = parse_demand(raw, fallback_id=FALLBACK_ID)
    assert event.schema_version == 1
    assert event.event_id == FALLBACK_ID
    assert event.timestamp == 1_700_000_000.0
    assert isinstance(event.timestamp, float)
    assert (event.location, event.active_requests, event.available_drivers) == ("Downtown", 5, 9)


def test_a_version_1_event_keeps_its_own_event_id_and_an_integer_id_becomes_text() -> None:
    raw = _json({k: v for k, v in VALID_DEMAND.items() if k != "schema_version"} | {"event_id": 7})
    assert parse_demand(raw, fallback_id=FALLBACK_ID).event_id == "7"


@pytest.mark.parametrize(
    ("timestamp", "seconds"),
    [
        ("2024-01-01T00:00:00Z", 1_704_067_200.0),
        ("2024-01-01T01:00:00+01:00", 1_704_067_200.0),
        ("2024-01-01T00:00:00.5+00:00", 1_704_067_200.5),
        (1_704_067_200, 1_704_067_200.0),
        (0, 0.0),
    ],
)
def test_timestamps_are_unix_seconds_or_iso_8601_with_a_time_zone(
    timestamp: Any, seconds: float
) -> None:
    assert parse_demand(_demand(timestamp=timestamp), fallback_id=FALLBACK_ID).timestamp == seconds


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "not_json"),
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b'"a string"', "not_an_object"),
        (b"[1, 2]", "not_an_object"),
        (b"null", "not_an_object"),
        (_demand(schema_version=3), "unsupported_schema_version"),
        (_demand(schema_version="2"), "unsupported_schema_version"),
        (_demand(schema_version=True), "unsupported_schema_version"),
        (_demand(schema_version=None), "unsupported_schema_version"),
        (_demand(schema_version=[2]), "unsupported_schema_version"),
        (_demand(schema_version={"major": 2}), "unsupported_schema_version"),
        (_without(VALID_DEMAND, "event_id"), "missing_field"),
        (_without(VALID_DEMAND, "timestamp"), "missing_field"),
        (_without(VALID_DEMAND, "location"), "missing_field"),
        (_without(VALID_DEMAND, "active_requests"), "missing_field"),
        (_without(VALID_DEMAND, "available_drivers"), "missing_field"),
        (_demand(active_requests=-1), "invalid_field"),
        (_demand(available_drivers=-3), "invalid_field"),
        (_demand(active_requests=2.5), "invalid_field"),
        (_demand(active_requests="3"), "invalid_field"),
        (_demand(available_drivers=True), "invalid_field"),
        (_demand(location=""), "invalid_field"),
        (_demand(location="x" * 129), "invalid_field"),
        (_demand(location=["Airport"]), "invalid_field"),
        (_demand(event_id=1.5), "invalid_field"),
        (_demand(event_id=None), "missing_field"),
        (_demand(timestamp=-1), "invalid_field"),
        (_demand(timestamp=True), "invalid_field"),
        (_demand(timestamp="yesterday"), "invalid_field"),
        (_demand(timestamp="2024-01-01T00:00:00"), "invalid_field"),
        (_demand(timestamp=[1]), "invalid_field"),
        (_demand(schema_version=2.0), "unsupported_schema_version"),
        (_demand(schema_version=1.0), "unsupported_schema_version"),
        (_demand(event_id=""), "invalid_field"),
        (_demand(event_id="e" * (events.MAX_EVENT_ID_LENGTH + 1)), "invalid_field"),
        (_demand(timestamp="1969-07-20T20:17:40Z"), "invalid_field"),
        (_demand(timestamp=-0.5), "invalid_field"),
        (_demand(timestamp=1_764_361_815_407), "invalid_field"),  # milliseconds
        (_demand(location=None), "missing_field"),
        (_demand(timestamp=None), "missing_field"),
        (_demand(active_requests=None), "missing_field"),
        (b" " * (events.MAX_VALUE_BYTES + 1), "too_large"),
    ],
)
def test_bad_demand_is_refused_with_the_reason_the_dead_letter_will_carry(
    raw: bytes | None, reason: str
) -> None:
    assert _reason_of_demand(raw) == reason


def test_an_invalid_event_names_its_reason_and_detail_in_the_message() -> None:
    with pytest.raises(InvalidEvent, match=r"^invalid_field: 'active_requests' must not be neg"):
        parse_demand(_demand(active_requests=-1), fallback_id=FALLBACK_ID)


def test_a_location_of_exactly_the_maximum_length_is_accepted() -> None:
    location = "é" * events.MAX_LOCATION_LENGTH
    assert parse_demand(_demand(location=location), fallback_id=FALLBACK_ID).location == location


# ---- outcomes --------------------------------------------------------------------------


def test_a_minimal_outcome_names_only_the_decision_and_carries_no_context() -> None:
    outcome = parse_outcome(_json(VALID_OUTCOME))
    assert outcome == Outcome("0-17-evt-1", 1_700_000_001.0, True)


def test_original_design_outcome_with_context_list_price_and_revenue_is_accepted() -> None:
    raw = _json(
        {
            "decision_id": "d-42",
            "timestamp": 1_700_000_000,
            "context": ["Airport", "high"],
            "chosen_price": 1.5,
            "accepted": False,
            "revenue": 0.0,
        }
    )
    assert parse_outcome(raw) == Outcome("d-42", 1_700_000_000.0, False, "Airport", "high", 1.5)


def test_an_outcome_may_name_its_context_in_separate_fields_and_its_price_as_multiplier() -> None:
    raw = _json(
        VALID_OUTCOME
        | {"location": "Downtown", "demand_level": "low", "price_multiplier": 2, "weather": "sun"}
    )
    outcome = parse_outcome(raw)
    assert (outcome.location, outcome.demand_level, outcome.price_multiplier) == (
        "Downtown",
        "low",
        2.0,
    )


def test_a_null_price_multiplier_falls_back_to_the_original_chosen_price() -> None:
    raw = _json(VALID_OUTCOME | {"price_multiplier": None, "chosen_price": 1.2})
    assert parse_outcome(raw).price_multiplier == 1.2


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"accepted", "not_json"),
        (b"true", "not_an_object"),
        (_json(VALID_OUTCOME | {"schema_version": 9}), "unsupported_schema_version"),
        (_without(VALID_OUTCOME, "decision_id"), "missing_field"),
        (_without(VALID_OUTCOME, "timestamp"), "missing_field"),
        (_without(VALID_OUTCOME, "accepted"), "missing_field"),
        (_json(VALID_OUTCOME | {"decision_id": ""}), "invalid_field"),
        (_json(VALID_OUTCOME | {"decision_id": 17}), "invalid_field"),
        (_json(VALID_OUTCOME | {"accepted": 1}), "invalid_field"),
        (_json(VALID_OUTCOME | {"accepted": "true"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["Airport"]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["Airport", "high", "x"]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": "Airport|high"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["Airport", 2]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["Airport", "extreme"]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"location": "A", "demand_level": "HIGH"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"chosen_price": "1.5"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"chosen_price": True}), "invalid_field"),
        (_json(VALID_OUTCOME | {"chosen_price": -1.5}), "invalid_field"),
        (_json(VALID_OUTCOME | {"price_multiplier": 0}), "invalid_field"),
        (_json(VALID_OUTCOME | {"timestamp": "soon"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["", "low"]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"context": ["L" * 129, "low"]}), "invalid_field"),
        (_json(VALID_OUTCOME | {"location": "", "demand_level": "low"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"decision_id": "d" * 513}), "invalid_field"),
        (_json(VALID_OUTCOME | {"decision_id": None}), "missing_field"),
        (_json(VALID_OUTCOME | {"accepted": None}), "missing_field"),
        (_json(VALID_OUTCOME | {"timestamp": None}), "missing_field"),
        (_json(VALID_OUTCOME | {"timestamp": "1960-01-01T00:00:00+00:00"}), "invalid_field"),
        (_json(VALID_OUTCOME | {"schema_version": "2"}), "unsupported_schema_version"),
        (_json(VALID_OUTCOME | {"schema_version": 2.0}), "unsupported_schema_version"),
    ],
)
def test_bad_outcomes_are_refused_with_a_reason(raw: bytes, reason: str) -> None:
    assert _reason_of_outcome(raw) == reason


# ---- decisions -------------------------------------------------------------------------

DECISION = Decision(
    decision_id="0-17-evt-1",
    event_id="evt-1",
    timestamp=1_700_000_000.5,
    event_timestamp=1_700_000_000.25,
    location="Airport",
    demand_level="high",
    price_multiplier=1.5,
    price=18.75,
    propensity=0.625,
    policy="thompson",
    model_version="thompson:120",
)


def test_a_decision_carries_the_original_design_names_next_to_the_new_ones() -> None:
    body = orjson.loads(encode_decision(DECISION))
    assert body["schema_version"] == events.DECISION_SCHEMA_VERSION
    assert body["context"] == ["Airport", "high"]
    assert body["chosen_price"] == body["price_multiplier"] == 1.5
    assert body["location"] == "Airport"


@pytest.mark.parametrize("price", [18.75, None])
def test_a_published_decision_reads_back_unchanged(price: float | None) -> None:
    decision = dataclasses.replace(DECISION, price=price)
    assert parse_decision(encode_decision(decision)) == decision


def test_a_decision_for_an_event_with_a_long_id_reads_back_for_the_simulator() -> None:
    event_id = "order-" + "7" * 200  # demand event ids have no length limit
    decision_id = decision_id_for(Origin("demand_events", 2, 123_456), event_id)
    decision = dataclasses.replace(DECISION, decision_id=decision_id, event_id=event_id)
    assert parse_decision(encode_decision(decision)) == decision


def test_an_outcome_the_simulator_publishes_reads_back_unchanged() -> None:
    outcome = Outcome("d-1", 1_700_000_002.0, True, "Downtown", "medium", 1.2)
    raw = encode_outcome(outcome, revenue=1.2)
    assert orjson.loads(raw)["revenue"] == 1.2
    assert parse_outcome(raw) == outcome


def test_an_outcome_without_context_is_encoded_without_context_or_price() -> None:
    body = orjson.loads(encode_outcome(Outcome("d-1", 3.0, False)))
    assert body == {"schema_version": 2, "decision_id": "d-1", "timestamp": 3.0, "accepted": False}


# ---- dead letters ----------------------------------------------------------------------


def test_a_dead_letter_keeps_the_original_bytes_reason_and_source_coordinates() -> None:
    raw = b'{"location": "Airport", "active_requests": -1}'
    letter = orjson.loads(
        encode_dead_letter(raw, "invalid_field", "negative", Origin("demand_events", 2, 41), 5.0)
    )
    assert base64.b64decode(letter["original_base64"]) == raw
    assert letter["original_text"] == raw.decode()
    assert (letter["reason"], letter["detail"]) == ("invalid_field", "negative")
    assert (letter["source_topic"], letter["source_partition"], letter["source_offset"]) == (
        "demand_events",
        2,
        41,
    )
    assert letter["timestamp"] == 5.0


def test_a_dead_letter_of_binary_or_empty_input_has_no_text_but_exact_base64() -> None:
    binary = orjson.loads(encode_dead_letter(b"\xff\x00", "not_json", "x", Origin("t", 0, 0), 1))
    assert binary["original_text"] is None
    assert base64.b64decode(binary["original_base64"]) == b"\xff\x00"
    empty = orjson.loads(encode_dead_letter(None, "not_json", "x", Origin("t", 0, 0), 1))
    assert (empty["original_base64"], empty["original_text"]) == ("", "")


# ---- properties ------------------------------------------------------------------------

DEMAND_FIELDS = [*VALID_DEMAND, "weather"]
OUTCOME_FIELDS = [
    *VALID_OUTCOME,
    "context",
    "location",
    "demand_level",
    "chosen_price",
    "price_multiplier",
    "revenue",
]


def _parses_or_refuses_with_a_known_reason(parse: Callable[[bytes], object], raw: bytes) -> None:
    reason = None
    try:
        parse(raw)
    except InvalidEvent as exc:  # any other exception fails the test
        reason = exc.reason
    assert reason is None or reason in REASONS


@given(st.binary(max_size=200) | mutated(VALID_DEMAND, DEMAND_FIELDS))
def test_any_bytes_become_a_demand_event_or_an_invalid_event_with_a_known_reason(
    raw: bytes,
) -> None:
    _parses_or_refuses_with_a_known_reason(lambda r: parse_demand(r, fallback_id="f"), raw)


@given(st.binary(max_size=200) | mutated(VALID_OUTCOME, OUTCOME_FIELDS))
def test_any_bytes_become_an_outcome_or_an_invalid_event_with_a_known_reason(raw: bytes) -> None:
    _parses_or_refuses_with_a_known_reason(parse_outcome, raw)


@given(
    st.binary(max_size=200)
    | mutated(
        orjson.loads(encode_decision(DECISION)), list(orjson.loads(encode_decision(DECISION)))
    )
)
def test_any_bytes_on_the_decisions_topic_become_a_decision_or_an_invalid_event(
    raw: bytes,
) -> None:
    _parses_or_refuses_with_a_known_reason(parse_decision, raw)


@given(json_values)
def test_any_json_value_becomes_an_event_or_an_invalid_event_with_a_known_reason(
    value: Any,
) -> None:
    raw = _json(value)
    _parses_or_refuses_with_a_known_reason(parse_outcome, raw)
    _parses_or_refuses_with_a_known_reason(lambda r: parse_demand(r, fallback_id="f"), raw)


@given(demand_events)
def test_every_valid_demand_event_round_trips_through_encode_and_parse(
    event: DemandEvent,
) -> None:
    assert parse_demand(encode_demand(event), fallback_id="unused") == event


@given(decisions)
def test_every_decision_the_engine_publishes_reads_back_unchanged(decision: Decision) -> None:
    assert parse_decision(encode_decision(decision)) == decision


def _demand_fields_or_refusal(parse: Callable[[], tuple[object, ...]]) -> tuple[object, ...]:
    try:
        fields = parse()
    except InvalidEvent as exc:
        return ("refused", exc.reason, exc.detail)
    return tuple((type(value), value) for value in fields)


@given(
    mutated(VALID_DEMAND, DEMAND_FIELDS)
    | demand_events.map(encode_demand)
    | st.builds(lambda ts: _demand(timestamp=ts), st.integers(0, 2**64 - 1) | st.floats(0, 1e12))
)
def test_the_engines_fast_demand_check_agrees_with_the_field_by_field_one(raw: bytes) -> None:
    fast = _demand_fields_or_refusal(lambda: events.demand_fields(raw, fallback_id="f"))
    checked = _demand_fields_or_refusal(
        lambda: events._checked_demand_fields(events._load_object(raw), "f")
    )
    assert fast == checked


# ---- limits and dead letters ---------------------------------------------------------

ORIGIN = Origin("demand_events", 0, 7)


def test_a_context_of_an_outcome_accepts_exactly_what_a_demand_location_accepts() -> None:
    location = "é" * events.MAX_LOCATION_LENGTH
    outcome = parse_outcome(_json(VALID_OUTCOME | {"context": [location, "low"]}))
    assert outcome.location == location


def test_a_decision_before_1970_is_refused_naming_the_field_that_is_wrong() -> None:
    body = orjson.loads(encode_decision(DECISION))
    with pytest.raises(InvalidEvent, match="'event_timestamp'"):
        parse_decision(_json(body | {"event_timestamp": -1.0}))


def test_a_huge_value_is_quoted_in_a_detail_only_by_its_start() -> None:
    with pytest.raises(InvalidEvent) as refused:
        parse_demand(_demand(event_id="x" * 60_000), fallback_id=FALLBACK_ID)
    assert "'event_id'" in refused.value.detail
    assert len(refused.value.detail) < 300


@given(st.binary(max_size=3 * events.MAX_ORIGINAL_BYTES) | st.just(b"\x01" * 140_000))
def test_a_dead_letter_keeps_a_bounded_cut_with_the_length_and_hash_of_the_whole(
    raw: bytes,
) -> None:
    letter = encode_dead_letter(raw, "too_large", "d" * 5000, Origin("t", 1, 2), 3.0)
    assert len(letter) <= events.MAX_DEAD_LETTER_BYTES
    body = orjson.loads(letter)
    kept = base64.b64decode(body["original_base64"])
    assert kept == raw[: events.MAX_ORIGINAL_BYTES]
    assert body["original_length"] == len(raw)
    assert body["original_sha256"] == hashlib.sha256(raw).hexdigest()
    assert body["original_truncated"] is (len(raw) > events.MAX_ORIGINAL_BYTES)
    if body["original_text"] is not None:
        assert kept.decode("utf-8").startswith(body["original_text"])


def test_the_worst_case_dead_letter_stays_within_its_bound() -> None:
    worst = b'"\\' * events.MAX_ORIGINAL_BYTES  # every kept byte escaped as two in the text
    letter = encode_dead_letter(worst, "too_large", "x" * 10_000, Origin("t" * 249, 9, 9), 3.0)
    assert orjson.loads(letter)["original_text"] is not None
    assert len(letter) <= events.MAX_DEAD_LETTER_BYTES


def test_printable_text_is_kept_and_control_bytes_are_only_in_base64() -> None:
    text = orjson.loads(encode_dead_letter(b"caf\xc3\xa9\tok\n", "not_json", "", ORIGIN, 0.0))
    control = orjson.loads(encode_dead_letter(b"a\x01b", "not_json", "", ORIGIN, 0.0))
    assert text["original_text"] == "café\tok\n"
    assert control["original_text"] is None
    assert base64.b64decode(control["original_base64"]) == b"a\x01b"


def test_a_utf8_character_cut_in_two_at_the_end_of_the_kept_bytes_is_dropped_from_the_text() -> (
    None
):
    raw = b"a" * (events.MAX_ORIGINAL_BYTES - 1) + "é".encode() + b"tail"
    body = orjson.loads(encode_dead_letter(raw, "too_large", "", ORIGIN, 0.0))
    assert body["original_text"] == "a" * (events.MAX_ORIGINAL_BYTES - 1)


def test_a_dead_letter_key_is_cut_to_its_bound() -> None:
    assert events.dead_letter_key("Airport") == b"Airport"
    assert events.dead_letter_key(None) is None
    assert events.dead_letter_key(b"k" * 5000) == b"k" * events.MAX_KEY_BYTES
