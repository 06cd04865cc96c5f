"""The edge: Kafka bytes become validated, frozen events here, and only here.

Every message value is JSON with a ``schema_version``. Demand events without one
are version 1 (the original design's clients); unknown extra fields are
ignored; timestamps may be Unix seconds (int or float) or ISO 8601 strings.
A value that cannot become an event raises :class:`InvalidEvent` with a reason
from :data:`REASONS`, which the service sends to the dead-letter topic.

The JSON Schema files in ``dynpricing/schemas/`` describe the same formats for
people who write their own producers and outcome sources.
"""

from __future__ import annotations

import base64
import math
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
MAX_LOCATION_LENGTH = 128

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
)


class InvalidEvent(ValueError):  # noqa: N818 - it is the event that is invalid, not an error kind
    """A message that cannot become an event; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


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
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidEvent("not_an_object", f"expected a JSON object, got {type(value).__name__}")
    version = value.get("schema_version", 1)
    # Type first: a list or object is unhashable and would break the set lookup.
    if (
        isinstance(version, bool)
        or not isinstance(version, int | float)
        or (version not in SUPPORTED_VERSIONS)
    ):
        raise InvalidEvent("unsupported_schema_version", f"schema_version {version!r}")
    return value


def _require(obj: dict[str, Any], name: str) -> Any:
    try:
        return obj[name]
    except KeyError:
        raise InvalidEvent("missing_field", f"field '{name}' is required") from None


def _count(obj: dict[str, Any], name: str) -> int:
    value = _require(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEvent("invalid_field", f"'{name}' must be an integer, got {value!r}")
    if value < 0:
        raise InvalidEvent("invalid_field", f"'{name}' must not be negative, got {value}")
    return value


def _text(obj: dict[str, Any], name: str) -> str:
    value = _require(obj, name)
    if not isinstance(value, str) or not value or len(value) > MAX_LOCATION_LENGTH:
        raise InvalidEvent("invalid_field", f"'{name}' must be a non-empty string, got {value!r}")
    return value


def parse_timestamp(value: Any, name: str = "timestamp") -> float:
    """Unix seconds (int or float) or an ISO 8601 string with a time zone."""
    if isinstance(value, bool):
        raise InvalidEvent("invalid_field", f"'{name}' must be a time, got {value!r}")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise InvalidEvent("invalid_field", f"'{name}' must be a finite time, got {value!r}")
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidEvent("invalid_field", f"'{name}' is not ISO 8601: {value!r}") from None
        if parsed.tzinfo is None:
            raise InvalidEvent("invalid_field", f"'{name}' needs a time zone: {value!r}")
        return parsed.timestamp()
    raise InvalidEvent("invalid_field", f"'{name}' must be a time, got {value!r}")


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
        and ((type(timestamp) is float and 0.0 <= timestamp < math.inf) or type(timestamp) is int)
        and type(location) is str
        and 0 < len(location) <= MAX_LOCATION_LENGTH
        and type(requests) is int
        and type(drivers) is int
        and timestamp >= 0
        and requests >= 0
        and drivers >= 0
    ):
        version = int(obj.get("schema_version", 1))
        return event_id, float(timestamp), location, requests, drivers, version
    return _checked_demand_fields(obj, fallback_id)


def _checked_demand_fields(obj: dict[str, Any], fallback_id: str) -> DemandFields:
    version = obj.get("schema_version", 1)
    event_id = obj.get("event_id", fallback_id if version == 1 else None)
    if event_id is None:
        raise InvalidEvent("missing_field", "field 'event_id' is required")
    if not isinstance(event_id, str | int) or isinstance(event_id, bool):
        raise InvalidEvent("invalid_field", f"'event_id' must be a string, got {event_id!r}")
    return (
        str(event_id),
        parse_timestamp(_require(obj, "timestamp")),
        _text(obj, "location"),
        _count(obj, "active_requests"),
        _count(obj, "available_drivers"),
        int(version),
    )


def _context_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(location, demand_level) from ``context: [l, d]`` or from separate fields."""
    context = obj.get("context")
    if context is not None:
        if (
            not isinstance(context, list)
            or len(context) != 2
            or not all(isinstance(part, str) for part in context)
        ):
            raise InvalidEvent("invalid_field", f"'context' must be [location, level]: {context!r}")
        location, level = context
    elif "location" in obj and "demand_level" in obj:
        location, level = _text(obj, "location"), _text(obj, "demand_level")
    else:
        return None
    if level not in DEMAND_LEVELS:
        raise InvalidEvent("invalid_field", f"demand level {level!r} not in {DEMAND_LEVELS}")
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
            raise InvalidEvent("invalid_field", f"'{name}' must be a number, got {value!r}")
        if value <= 0:
            raise InvalidEvent("invalid_field", f"'{name}' must be positive, got {value!r}")
        found = float(value)
    return found


def _decision_id(obj: dict[str, Any]) -> str:
    """Any non-empty string: the engine's ids embed the demand event's id, of any length."""
    decision_id = _require(obj, "decision_id")
    if not isinstance(decision_id, str) or not decision_id:
        raise InvalidEvent("invalid_field", f"'decision_id' must be a string, got {decision_id!r}")
    return decision_id


def parse_outcome(raw: bytes | None) -> Outcome:
    """An accept/reject outcome; context and price are optional (simple clients send them)."""
    obj = _load_object(raw)
    decision_id = _decision_id(obj)
    accepted = _require(obj, "accepted")
    if not isinstance(accepted, bool):
        raise InvalidEvent("invalid_field", f"'accepted' must be true or false, got {accepted!r}")
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
    return Decision(
        decision_id=_decision_id(obj),
        event_id=str(obj.get("event_id", "")),
        timestamp=parse_timestamp(_require(obj, "timestamp")),
        event_timestamp=parse_timestamp(obj.get("event_timestamp", obj["timestamp"])),
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


def encode_dead_letter(
    raw: bytes | None, reason: str, detail: str, origin: Origin, now: float
) -> bytes:
    """The original bytes (base64), the reason and the source coordinates."""
    original = raw or b""
    try:
        text: str | None = original.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return orjson.dumps(
        {
            "schema_version": DEAD_LETTER_SCHEMA_VERSION,
            "reason": reason,
            "detail": detail,
            "source_topic": origin.topic,
            "source_partition": origin.partition,
            "source_offset": origin.offset,
            "original_base64": base64.b64encode(original).decode("ascii"),
            "original_text": text,
            "timestamp": now,
        }
    )
