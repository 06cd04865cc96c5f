"""The three services together on the real broker: the engine learns revenue-optimal prices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dynpricing.core.market import load_market
from tests.integration.services_support import ServiceRunner, engine_settings
from tests.kafka_support import wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

# Every context's best price earns >= 16 % more than its runner-up, acceptance falls
# strictly with price everywhere (a plateau once held a policy on the runner-up), and in four of
# six contexts it is not the cheapest one, so settling on the acceptance-optimal
# price fails the test. (On L6 two contexts are within 1 % and 5 %: too close for
# "most chosen" to be a fair verdict after a few thousand decisions.)
MARKET_PATH = Path(__file__).resolve().parent / "data" / "separated.json"
EVENTS = 20_000
RATE = 2_000  # events/s: fast, yet outcomes flow back while demand still arrives


def test_loop_settles_on_the_revenue_optimal_price_in_every_context(
    runner: ServiceRunner, tmp_path: Path
) -> None:
    market = load_market(json.loads(MARKET_PATH.read_text()))
    revenue = market.expected_revenue()
    assert (revenue.argmax(axis=1) != market.acceptance().argmax(axis=1)).sum() == 4
    engine = runner.start("engine", **engine_settings(tmp_path))
    simulator = runner.start("simulator", seed=11, market_path=MARKET_PATH)
    engine.wait_ready()
    simulator.wait_ready()
    runner.start("producer", count=EVENTS, rate=RATE, seed=5)

    def all_learnt() -> dict[str, object] | None:
        state = engine.state()
        return state if state["total_outcomes"] >= EVENTS else None

    state = wait_until(all_learnt, deadline_s=180, what=f"{EVENTS} outcomes learnt")
    assert state["total_outcomes"] == EVENTS
    rows = {key: i for i, key in enumerate(market.contexts)}
    checked = 0
    for ctx in state["contexts"]:  # type: ignore[attr-defined]
        row = revenue[rows[(ctx["location"], ctx["demand_level"])]]
        pulls = np.array([arm["pulls"] for arm in ctx["arms"]])
        assert int(pulls.argmax()) == int(row.argmax()), (ctx["location"], pulls, row)
        checked += 1
    assert checked == len(market.contexts)
