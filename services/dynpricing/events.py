"""The edge: Kafka bytes become validated, frozen events here, and only here.

Every message value is JSON with a ``schema_version``. Demand events without one
are version 1 (the original design's clients); unknown extra fields are
ignored; timestamps may be Unix seconds (int or float) or ISO 8601 strings.
A value that cannot become an event raises :class:`InvalidEvent` with a reason
from :data:`REASONS`, which the service sends to the dead-letter topic.

Everything that is accepted is bounded (:data:`MAX_VALUE_BYTES`, the lengths
below), so nothing the services write in answer can exceed Kafka's message size:
a decision echoes at most an event id and a location, and a dead letter keeps a
cut of the refused bytes (at most :data:`MAX_DEAD_LETTER_BYTES` in all).

The JSON Schema files in ``dynpricing/schemas/`` describe the same formats for
people who write their own producers and outcome sources.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from dynpricing.core.contexts import DEMAND_LEVELS

DEMAND_SCHEMA_VERSION = 2
DECISION_SCHEMA_VERSION = 2
OUTCOME_SCHEMA_VERSION = 2
DEAD_LETTER_SCHEMA_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1, 2})

# Limits of what is accepted (docs/events.md, "Limits")
MAX_VALUE_BYTES = 65_536  # a message value larger than this is refused as too_large
MAX_LOCATION_LENGTH = 128  # characters
MAX_EVENT_ID_LENGTH = 256  # characters; a decision id is "<partition>-<offset>-<event id>"
MAX_DECISION_ID_LENGTH = 512  # characters, in outcomes and decisions
MAX_TIMESTAMP_S = 253_402_300_799.0  # 9999-12-31T23:59:59Z; larger is milliseconds by mistake
# What a dead letter keeps of the refused message
MAX_ORIGINAL_BYTES = 16_384  # bytes of the value kept (base64, and as text when printable)
MAX_KEY_BYTES = 1_024  # bytes of the refused message's key kept as the dead letter's key
MAX_DETAIL_LENGTH = 1_000  # characters of the explanation
MAX_DEAD_LETTER_BYTES = 65_536  # bound on a whole dead letter's value, checked by the tests
SHOWN_VALUE_LENGTH = 80  # characters of a refused field's value quoted in a detail

# The bounded set of dead-letter reasons (also a metric label).
REASONS = (
    "not_json",
    "not_an_object",
    "unsupported_schema_version",
    "missing_field",
    "invalid_field",
    "unknown_location",
    "price_not_on_grid",
    "unknown_decision",
    "unknown_market_context",
    "too_large",
    "too_many_contexts",
)


class InvalidEvent(ValueError):  # noqa: N818 - it is the event that is invalid, not an error kind
    """A message that cannot become an event; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        detail = _cut(detail, MAX_DETAIL_LENGTH)
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _cut(text: str, length: int) -> str:
    return text if len(text) <= length else f"{text[:length]}... ({len(text)} characters)"


def shown(value: Any) -> str:
    """A refused value as a detail quotes it: its repr, cut to a readable length."""
    return _cut(repr(value), SHOWN_VALUE_LENGTH)


@dataclass(frozen=True, slots=True)
class DemandEvent:
    event_id: str
    timestamp: float
    location: str
    active_requests: int
    available_drivers: int
    schema_version: int = DEMAND_SCHEMA_VERSION


@dataclass(frozen=True, slots=True)
class Decision:
    decision_id: str
    event_id: str
    timestamp: float
    event_timestamp: float
    location: str
    demand_level: str
    price_multiplier: float
    price: float | None
    propensity: float
    policy: str
    model_version: str


@dataclass(frozen=True, slots=True)
class Outcome:
    decision_id: str
    timestamp: float
    accepted: bool
    location: str | None = None
    demand_level: str | None = None
    price_multiplier: float | None = None


def _load_object(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise InvalidEvent("not_json", "empty message value")
    if len(raw) > MAX_VALUE_BYTES:
        raise InvalidEvent("too_large", f"{len(raw)} bytes; at most {MAX_VALUE_BYTES} are accepted")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    version = value.get("schema_version", 1)
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        _version(value)  # raises, with the reason
    return value


def _version(obj: dict[str, Any]) -> int:
    """``schema_version``: absent is 1; otherwise the JSON integer 1 or 2.

    Like counts, a version must be an integer: ``2.0``, ``"2"``, ``true`` and
    ``null`` are all refused the same way.
    """
    if "schema_version" not in obj:
        return 1
    version = obj["schema_version"]
    if type(version) is not int or version not in SUPPORTED_VERSIONS:
        raise InvalidEvent("unsupported_schema_version", f"schema_version {shown(version)}")
    return version


def _require(obj: dict[str, Any], name: str) -> Any:
    """A required field's value; absent and ``null`` are both ``missing_field``."""
    value = obj.get(name)
    if value is None:
        raise InvalidEvent("missing_field", f"field '{name}' is required")
    return value


def _count(obj: dict[str, Any], name: str) -> int:
    value = _require(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("invalid_field", f"'{name}' must be an integer, got {shown(value)}")
    if value < 0:
        raise InvalidEvent("invalid_field", f"'{name}' must not be negative, got {value}")
    return value


def _text(obj: dict[str, Any], name: str) -> str:
    return _location(_require(obj, name), name)


def _location(value: Any, name: str) -> str:
    """A location, wherever it is given: 1 to :data:`MAX_LOCATION_LENGTH` characters."""
    return _bounded_text(value, name, MAX_LOCATION_LENGTH)


def _bounded_text(value: Any, name: str, most: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= most:
        raise InvalidEvent(
            "invalid_field",
            f"'{name}' must be a string of 1 to {most} characters, got {shown(value)}",
        )
    return value


def parse_timestamp(value: Any, name: str = "timestamp") -> float:
    """Unix seconds (int or float) or an ISO 8601 string with a time zone, from 1970 on.

    Before 1970 a time is negative in Unix seconds, and past year 9999 it is
    almost certainly milliseconds sent as seconds: both are refused.
    """
    if isinstance(value, bool):
        raise InvalidEvent("invalid_field", f"'{name}' must be a time, got {shown(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidEvent("invalid_field", f"'{name}' must be a finite time, got {value!r}")
        return _in_range(float(value), name)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent(
                "invalid_field", f"'{name}' is not ISO 8601: {shown(value)}"
            ) from None
        if parsed.tzinfo is None:
            raise InvalidEvent("invalid_field", f"'{name}' needs a time zone: {shown(value)}")
        return _in_range(parsed.timestamp(), name)
    raise InvalidEvent("invalid_field", f"'{name}' must be a time, got {shown(value)}")


def _in_range(seconds: float, name: str) -> float:
    if not 0.0 <= seconds <= MAX_TIMESTAMP_S:
        raise InvalidEvent(
            "invalid_field",
            f"'{name}' must be Unix seconds from 1970 to 9999 (not milliseconds), got {seconds!r}",
        )
    return seconds


DemandFields = tuple[str, float, str, int, int, int]
"""A valid demand event's fields in :class:`DemandEvent` order, schema version last."""


def parse_demand(raw: bytes | None, *, fallback_id: str) -> DemandEvent:
    """A demand event; version-1 events without ``event_id`` get ``fallback_id``."""
    return DemandEvent(*demand_fields(raw, fallback_id=fallback_id))


def demand_fields(raw: bytes | None, *, fallback_id: str) -> DemandFields:
    """What :func:`parse_demand` validates, as a plain tuple (the engine's hot path).

    Events whose fields all have the usual types are accepted by one combined
    check; anything else goes through the field-by-field checks, so a rejected
    event gets exactly the same reason and detail either way.
    """
    obj = _load_object(raw)
    event_id = obj.get("event_id")
    timestamp = obj.get("timestamp")
    location = obj.get("location")
    requests = obj.get("active_requests")
    drivers = obj.get("available_drivers")
    if (
        type(event_id) is str
        and 0 < len(event_id) <= MAX_EVENT_ID_LENGTH
        and (type(timestamp) is float or type(timestamp) is int)
        and 0.0 <= timestamp <= MAX_TIMESTAMP_S  # false for NaN too
        and type(location) is str
        and 0 < len(location) <= MAX_LOCATION_LENGTH
        and type(requests) is int
        and type(drivers) is int
        and requests >= 0
        and drivers >= 0
    ):
        version = obj.get("schema_version", 1)
        return event_id, float(timestamp), location, requests, drivers, version
    return _checked_demand_fields(obj, fallback_id)


def _checked_demand_fields(obj: dict[str, Any], fallback_id: str) -> DemandFields:
    version = _version(obj)
    event_id = obj.get("event_id")
    if event_id is None and version == 1:
        event_id = fallback_id
    return (
        _event_id(_require(obj, "event_id") if event_id is None else event_id),
        parse_timestamp(_require(obj, "timestamp")),
        _text(obj, "location"),
        _count(obj, "active_requests"),
        _count(obj, "available_drivers"),
        version,
    )


def _event_id(value: Any) -> str:
    """A string of 1 to :data:`MAX_EVENT_ID_LENGTH` characters (an integer is read as one)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _bounded_text(value, "event_id", MAX_EVENT_ID_LENGTH)


def _context_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(location, demand_level) from ``context: [l, d]`` or from separate fields.

    The location is checked exactly as in a demand event, wherever it is given.
    """
    context = obj.get("context")
    if context is not None:
        if (
            not isinstance(context, list)
            or len(context) != 2
            or not all(isinstance(part, str) for part in context)
        ):
            raise InvalidEvent(
                "invalid_field", f"'context' must be [location, level]: {shown(context)}"
            )
        location, level = _location(context[0], "context"), context[1]
    elif obj.get("location") is not None and obj.get("demand_level") is not None:
        location, level = _text(obj, "location"), obj["demand_level"]
    else:
        return None
    if level not in DEMAND_LEVELS:
        raise InvalidEvent("invalid_field", f"demand level {shown(level)} not in {DEMAND_LEVELS}")
    return location, level


def _multiplier(obj: dict[str, Any]) -> float | None:
    """``price_multiplier``, else the original design's ``chosen_price``; both checked if given."""
    found = None
    for name in ("chosen_price", "price_multiplier"):  # the later name wins
        value = obj.get(name)
        if value is None:  # absent or null
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or (not math.isfinite(value))
        ):
            raise InvalidEvent("invalid_field", f"'{name}' must be a number, got {shown(value)}")
        if value <= 0:
            raise InvalidEvent("invalid_field", f"'{name}' must be positive, got {value!r}")
        found = float(value)
    return found


def _decision_id(obj: dict[str, Any]) -> str:
    """A string of 1 to :data:`MAX_DECISION_ID_LENGTH` characters (the engine's fit easily)."""
    return _bounded_text(_require(obj, "decision_id"), "decision_id", MAX_DECISION_ID_LENGTH)


def parse_outcome(raw: bytes | None) -> Outcome:
    """An accept/reject outcome; context and price are optional (simple clients send them)."""
    obj = _load_object(raw)
    decision_id = _decision_id(obj)
    accepted = _require(obj, "accepted")
    if not isinstance(accepted, bool):
        raise InvalidEvent(
            "invalid_field", f"'accepted' must be true or false, got {shown(accepted)}"
        )
    context = _context_of(obj)
    multiplier = _multiplier(obj)
    return Outcome(
        decision_id=decision_id,
        timestamp=parse_timestamp(_require(obj, "timestamp")),
        accepted=accepted,
        location=context[0] if context else None,
        demand_level=context[1] if context else None,
        price_multiplier=multiplier,
    )


def parse_decision(raw: bytes | None) -> Decision:
    """A decision as the engine publishes it (read by the simulator and on recovery)."""
    obj = _load_object(raw)
    context = _context_of(obj)
    multiplier = _multiplier(obj)
    if context is None or multiplier is None:
        raise InvalidEvent("missing_field", "a decision needs a context and a price multiplier")
    price = obj.get("price")
    propensity = obj.get("propensity", 1.0)
    timestamp = parse_timestamp(_require(obj, "timestamp"))
    event_timestamp = obj.get("event_timestamp")
    return Decision(
        decision_id=_decision_id(obj),
        event_id=str(obj.get("event_id", "")),
        timestamp=timestamp,
        event_timestamp=(
            timestamp
            if event_timestamp is None
            else parse_timestamp(event_timestamp, "event_timestamp")
        ),
        location=context[0],
        demand_level=context[1],
        price_multiplier=multiplier,
        price=float(price) if isinstance(price, int | float) else None,
        propensity=float(propensity) if isinstance(propensity, int | float) else 1.0,
        policy=str(obj.get("policy", "")),
        model_version=str(obj.get("model_version", "")),
    )


def encode_decision(d: Decision) -> bytes:
    """Version-2 decision JSON, with the original design's fields alongside."""
    return decision_bytes(
        d.decision_id,
        d.event_id,
        d.timestamp,
        d.event_timestamp,
        d.location,
        d.demand_level,
        d.price_multiplier,
        d.price,
        d.propensity,
        d.policy,
        d.model_version,
    )


def decision_bytes(  # noqa: PLR0917 - one per decision field, positional on the hot path
    decision_id: str,
    event_id: str,
    timestamp: float,
    event_timestamp: float,
    location: str,
    demand_level: str,
    price_multiplier: float,
    price: float | None,
    propensity: float,
    policy: str,
    model_version: str,
) -> bytes:
    """:func:`encode_decision` from the fields (the engine's hot path builds no object)."""
    return orjson.dumps(
        {
            "schema_version": DECISION_SCHEMA_VERSION,
            "decision_id": decision_id,
            "event_id": event_id,
            "timestamp": timestamp,
            "event_timestamp": event_timestamp,
            "location": location,
            "demand_level": demand_level,
            "context": [location, demand_level],
            "price_multiplier": price_multiplier,
            "chosen_price": price_multiplier,
            "price": price,
            "propensity": propensity,
            "policy": policy,
            "model_version": model_version,
        }
    )


def encode_demand(e: DemandEvent) -> bytes:
    return orjson.dumps(
        {
            "schema_version": DEMAND_SCHEMA_VERSION,
            "event_id": e.event_id,
            "timestamp": e.timestamp,
            "location": e.location,
            "active_requests": e.active_requests,
            "available_drivers": e.available_drivers,
        }
    )


def encode_outcome(o: Outcome, *, revenue: float | None = None) -> bytes:
    """Version-2 outcome; carries context and price too, as the original design's did."""
    body: dict[str, Any] = {
        "schema_version": OUTCOME_SCHEMA_VERSION,
        "decision_id": o.decision_id,
        "timestamp": o.timestamp,
        "accepted": o.accepted,
    }
    if o.location is not None and o.demand_level is not None:
        body["context"] = [o.location, o.demand_level]
    if o.price_multiplier is not None:
        body["chosen_price"] = o.price_multiplier
    if revenue is not None:
        body["revenue"] = revenue
    return orjson.dumps(body)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a message came from, for dead letters and offsets."""

    topic: str
    partition: int
    offset: int


_CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def encode_dead_letter(
    raw: bytes | None, reason: str, detail: str, origin: Origin, now: float
) -> bytes:
    """The reason, the source coordinates and a bounded cut of the original bytes.

    At most :data:`MAX_ORIGINAL_BYTES` of the value are kept, as base64 and, when
    they are printable UTF-8, as text too (control characters would grow sixfold
    as JSON escapes); the full length and a SHA-256 of the whole value identify
    it. The whole dead letter stays under :data:`MAX_DEAD_LETTER_BYTES`.
    """
    original = raw or b""
    kept = original[:MAX_ORIGINAL_BYTES]
    return orjson.dumps(
        {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": reason,
            "detail": _cut(detail, MAX_DETAIL_LENGTH),
            "source_topic": origin.topic,
            "source_partition": origin.partition,
            "source_offset": origin.offset,
            "original_base64": base64.b64encode(kept).decode("ascii"),
            "original_text": _printable_text(kept, truncated=len(kept) < len(original)),
            "original_length": len(original),
            "original_sha256": hashlib.sha256(original).hexdigest(),
            "original_truncated": len(kept) < len(original),
            "timestamp": now,
        }
    )


def shrink_dead_letter(letter: bytes) -> bytes:
    """The same dead letter without the original bytes, for a topic that refuses its size.

    Reason, detail, origin, length and hash stay: the message is still found
    in its source topic by its offset.
    """
    body = orjson.loads(letter)
    body.update(original_base64="", original_text=None, original_truncated=True)
    return orjson.dumps(body)


def _printable_text(kept: bytes, *, truncated: bool) -> str | None:
    """The kept bytes as text: valid UTF-8 without control characters (tabs and line
    breaks allowed); a character cut in two at the end of a truncated value is dropped."""
    for trim in range(4 if truncated else 1):
        try:
            text = kept[: len(kept) - trim].decode("utf-8")
        except UnicodeDecodeError:
            continue
        return None if _CONTROL_CHARACTERS.search(text) else text
    return None


def dead_letter_key(key: bytes | str | None) -> bytes | None:
    """The refused message's key, cut to :data:`MAX_KEY_BYTES`: it keeps its partitioning
    hint without letting a huge key make the dead letter too large."""
    if key is None:
        return None
    data = key.encode("utf-8") if isinstance(key, str) else key
    return data[:MAX_KEY_BYTES]
