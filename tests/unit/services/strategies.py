"""Hypothesis strategies for event tests: valid events and arbitrary JSON."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import strategies as st

from dynpricing import events
from dynpricing.core.contexts import DEMAND_LEVELS
from dynpricing.events import Decision, DemandEvent, Outcome

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
    | st.sampled_from([*DEMAND_LEVELS, "2024-01-01T00:00:00Z", "Airport"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)

unix_seconds = st.floats(min_value=0, max_value=4e9)
locations = st.text(min_size=1, max_size=events.MAX_LOCATION_LENGTH)
demand_levels = st.sampled_from(DEMAND_LEVELS)

demand_events = st.builds(
    DemandEvent,
    event_id=st.text(min_size=1, max_size=events.MAX_EVENT_ID_LENGTH),
    timestamp=unix_seconds,
    location=locations,
    active_requests=st.integers(min_value=0, max_value=2**63 - 1),
    available_drivers=st.integers(min_value=0, max_value=2**63 - 1),
)

decisions = st.builds(
    Decision,
    decision_id=st.text(min_size=1, max_size=events.MAX_DECISION_ID_LENGTH),
    event_id=st.text(max_size=events.MAX_EVENT_ID_LENGTH),
    timestamp=unix_seconds,
    event_timestamp=unix_seconds,
    location=locations,
    demand_level=demand_levels,
    price_multiplier=st.floats(min_value=0.01, max_value=100),
    price=st.none() | st.floats(min_value=0, max_value=1e6),
    propensity=st.floats(min_value=1e-6, max_value=1),
    policy=st.text(max_size=10),
    model_version=st.text(max_size=10),
)

outcomes = st.builds(
    Outcome,
    decision_id=st.text(min_size=1, max_size=40),
    timestamp=unix_seconds,
    accepted=st.booleans(),
    location=st.none() | locations,
    demand_level=st.none() | demand_levels,
    price_multiplier=st.none() | st.floats(min_value=0.01, max_value=100),
)


def mutated(
    base: dict[str, Any], names: list[str], values: st.SearchStrategy[Any] = json_values
) -> st.SearchStrategy[bytes]:
    """A valid document with some fields replaced by arbitrary JSON and some removed."""
    return st.builds(
        lambda changes, dropped: orjson.dumps(
            {k: v for k, v in (base | changes).items() if k not in dropped}
        ),
        st.dictionaries(st.sampled_from(names), values, max_size=3),
        st.sets(st.sampled_from(names), max_size=2),
    )
