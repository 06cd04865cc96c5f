"""One context's posterior as a document (the model topic): a copy that loads it decides alike."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dynpricing.core.bandit import Bandit, BanditConfig
from dynpricing.core.errors import SnapshotError, UnknownContextError

CONTEXTS = [(loc, level) for loc in ("Airport", "Downtown") for level in ("low", "high")]


def _learnt(config: BanditConfig, seed: int = 0, n: int = 400) -> Bandit:
    bandit = Bandit(config)
    rng = np.random.default_rng(seed)
    for location, level in CONTEXTS:
        bandit.context_index(location, level)
    for step in range(4):
        contexts = rng.integers(0, len(CONTEXTS), n)
        batch = bandit.decide(contexts, rng, now=10.0 * step)
        bandit.update(contexts, batch.arms, rng.random(n) < 0.45, now=10.0 * step + 5)
    return bandit


def _copy_of(bandit: Bandit, config: BanditConfig) -> Bandit:
    """A fresh bandit that loads every context of ``bandit`` through JSON, in row order."""
    copy = Bandit(config)
    for row in range(bandit.n_contexts):
        copy.load_context_document(json.loads(json.dumps(bandit.context_document(row))))
    return copy


@pytest.mark.parametrize(
    "config",
    [BanditConfig(), BanditConfig(half_life=30.0), BanditConfig(policy="ts", forgetting="none")],
    ids=["shrink-ts-adaptive", "half-life", "ts"],
)
def test_a_copy_that_loads_every_context_decides_exactly_like_the_learner(
    config: BanditConfig,
) -> None:
    learner = _learnt(config)
    copy = _copy_of(learner, config)
    assert copy.contexts() == learner.contexts()
    contexts = np.random.default_rng(5).integers(0, len(CONTEXTS), 300)
    mine = learner.decide(contexts, np.random.default_rng(9), now=60.0)
    theirs = copy.decide(contexts, np.random.default_rng(9), now=60.0)
    assert mine.arms.tolist() == theirs.arms.tolist()
    assert mine.propensities.tolist() == theirs.propensities.tolist()


def test_a_loaded_context_replaces_the_copys_earlier_posterior_and_counts() -> None:
    config = BanditConfig()
    learner = _learnt(config)
    copy = _copy_of(_learnt(config, seed=1, n=10), config)
    copy.load_context_document(learner.context_document(2))
    row = copy.find_context(*learner.context_name(2))
    assert row is not None
    state, loaded = learner.context_state(2), copy.context_state(row)
    for name in ("alpha", "beta", "successes", "failures", "pulls"):
        assert getattr(loaded, name).tolist() == getattr(state, name).tolist(), name
    assert loaded.clock == state.clock


def test_a_new_context_in_the_copy_starts_from_the_prior() -> None:
    copy = Bandit(BanditConfig(prior_alpha=2.0, prior_beta=3.0))
    row = copy.context_index("Harbour", "medium")
    state = copy.context_state(row)
    assert state.alpha.tolist() == [2.0] * 4
    assert state.beta.tolist() == [3.0] * 4
    assert state.pulls.tolist() == [0] * 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"prices": [1.0, 1.5]}, "grid"),
        ({"prior": {"alpha": 2.0, "beta": 1.0}}, "prior"),
        ({"objective": "acceptance"}, "objective"),
        ({"format": "dynpricing.bandit_stats"}, "format"),
        ({"alpha": [1.0, -1.0, 1.0, 1.0]}, "finite and > 0"),
        ({"pulls": [1, 2]}, "shape"),
        ({"demand_level": "extreme"}, "not a valid context"),
        ({"location": 7}, "not a valid context"),
    ],
)
def test_a_document_for_another_model_or_a_damaged_one_is_refused(
    change: dict[str, object], message: str
) -> None:
    config = BanditConfig()
    doc = {**_learnt(config).context_document(0), **change}
    with pytest.raises(SnapshotError, match=message):
        Bandit(config).load_context_document(doc)


def test_a_copy_with_fixed_locations_refuses_another_location() -> None:
    learner = _learnt(BanditConfig())
    copy = Bandit(BanditConfig(locations=("Harbour",)))
    with pytest.raises(UnknownContextError):
        copy.load_context_document(learner.context_document(0))


def test_extra_fields_ride_along_and_are_ignored_when_loading() -> None:
    learner = _learnt(BanditConfig())
    doc = learner.context_document(1, {"model_version": "shrink-ts-revenue:1600"})
    assert doc["model_version"] == "shrink-ts-revenue:1600"
    assert Bandit(BanditConfig()).load_context_document(doc) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=80),
    st.sampled_from([None, 25.0]),
)
def test_a_context_round_trips_through_its_document_unchanged(
    outcomes: list[tuple[int, bool]], half_life: float | None
) -> None:
    config = BanditConfig(half_life=half_life)
    bandit = Bandit(config)
    row = bandit.context_index("A", "medium")
    for step, (arm, won) in enumerate(outcomes):
        bandit.update([row], [arm], [won], now=float(step))
    copy = Bandit(config)
    copy.load_context_document(json.loads(json.dumps(bandit.context_document(row))))
    assert copy.context_document(0) == bandit.context_document(row)
