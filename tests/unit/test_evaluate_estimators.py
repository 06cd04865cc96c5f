"""The off-policy estimators: exact on small logs, unbiased and calibrated where they must be."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dynpricing.evaluate.estimators import (
    EstimationError,
    LoggedDecisions,
    diagnose,
    doubly_robust,
    evaluate,
    ips,
    reward_model,
    snips,
    stable_folds,
)

PRICES = np.array([1.0, 1.5, 2.0])


def logged(
    contexts: list[int],
    arms: list[int],
    propensities: list[float],
    accepted: list[bool],
    *,
    folds: list[int] | None = None,
    n_contexts: int = 1,
) -> LoggedDecisions:
    return LoggedDecisions(
        contexts=np.array(contexts, dtype=np.int64),
        arms=np.array(arms, dtype=np.int64),
        propensities=np.array(propensities),
        accepted=np.array(accepted, dtype=bool),
        prices=PRICES,
        folds=np.array(folds if folds is not None else [0] * len(arms), dtype=np.int64),
        n_contexts=n_contexts,
    )


def test_ips_and_snips_match_their_formulas_on_a_small_log() -> None:
    data = logged([0, 0, 0, 0], [0, 1, 2, 1], [0.5, 0.25, 0.25, 0.25], [True, True, False, False])
    target = np.tile([0.0, 1.0, 0.0], (4, 1))  # always 1.5
    weights = np.array([0.0, 4.0, 0.0, 4.0])
    rewards = np.array([1.0, 1.5, 0.0, 0.0])
    estimate = ips(data, target)
    assert estimate.value == pytest.approx(np.mean(weights * rewards))
    terms = weights * rewards
    assert estimate.std_error == pytest.approx(np.std(terms, ddof=1) / 2.0)
    assert estimate.low == pytest.approx(estimate.value - 1.959963984540054 * estimate.std_error)
    assert snips(data, target).value == pytest.approx((weights * rewards).sum() / weights.sum())


def test_doubly_robust_is_the_model_plus_the_weighted_residual() -> None:
    data = logged([0, 0], [0, 1], [0.5, 0.5], [True, False])
    target = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    model = np.array([[0.9, 0.6, 0.2], [0.9, 0.6, 0.2]])
    direct = (target * model).sum(axis=1)  # 0.75 each
    corrected = direct + np.array([1.0 * (1.0 - 0.9), 1.0 * (0.0 - 0.6)])
    assert doubly_robust(data, target, model).value == pytest.approx(corrected.mean())


def test_the_reward_model_never_sees_the_decision_it_scores() -> None:
    rng = np.random.default_rng(1)
    n = 400
    base = logged(
        list(rng.integers(0, 2, n)),
        list(rng.integers(0, 3, n)),
        [1 / 3] * n,
        list(rng.random(n) < 0.5),
        folds=list(np.arange(n) % 5),
        n_contexts=2,
    )
    flipped_accepted = base.accepted.copy()
    flipped_accepted[0] = not flipped_accepted[0]
    flipped = LoggedDecisions(
        base.contexts, base.arms, base.propensities, flipped_accepted, PRICES, base.folds, 2
    )
    # decision 0's own prediction ignores its outcome; its fold's neighbours' do too
    same_fold = base.folds == base.folds[0]
    np.testing.assert_array_equal(reward_model(base)[same_fold], reward_model(flipped)[same_fold])
    assert not np.array_equal(reward_model(base)[~same_fold], reward_model(flipped)[~same_fold])


def test_folds_depend_on_decision_ids_only() -> None:
    ids = [f"0-{i}-e{i}" for i in range(100)]
    folds = stable_folds(ids)
    reversed_folds = stable_folds(list(reversed(ids)))
    np.testing.assert_array_equal(folds, reversed_folds[::-1])
    assert set(folds.tolist()) == {0, 1, 2, 3, 4}


def _uniform_log(
    rng: np.random.Generator, n: int, acceptance: np.ndarray
) -> tuple[LoggedDecisions, np.ndarray]:
    contexts = rng.integers(0, acceptance.shape[0], n)
    arms = rng.integers(0, 3, n)
    won = rng.random(n) < acceptance[contexts, arms]
    data = LoggedDecisions(
        contexts, arms, np.full(n, 1 / 3), won, PRICES, rng.integers(0, 5, n), acceptance.shape[0]
    )
    return data, contexts


def test_estimators_are_calibrated_under_a_known_uniform_logging_policy() -> None:
    """Over 200 independent logs every 95 % interval covers the truth about 95 % of the time."""
    acceptance = np.array([[0.9, 0.6, 0.2], [0.95, 0.8, 0.5]])
    rng = np.random.default_rng(7)
    covered = {"ips": 0, "snips": 0, "dr": 0}
    widths = {"ips": 0.0, "dr": 0.0}
    replications = 200
    for _ in range(replications):
        data, contexts = _uniform_log(rng, 600, acceptance)
        target = np.array([[0.1, 0.8, 0.1], [0.0, 0.2, 0.8]])[contexts]
        truth = float((target * acceptance[contexts] * PRICES).sum(axis=1).mean())
        result = evaluate(data, target)
        for name, interval in result.estimates.items():
            covered[name] += interval.covers(truth)
        widths["ips"] += result.estimates["ips"].width
        widths["dr"] += result.estimates["dr"].width
    # binomial(200, 0.95): below 0.88 has probability < 1e-4
    assert min(covered.values()) / replications >= 0.88, covered
    assert widths["dr"] < widths["ips"]


def test_effective_sample_size_is_the_decision_count_for_equal_weights() -> None:
    data = logged([0] * 6, [0, 1, 2, 0, 1, 2], [1 / 3] * 6, [True] * 6)
    target = np.full((6, 3), 1 / 3)
    assert diagnose(data, target).effective_sample_size == pytest.approx(6.0)
    assert diagnose(data, target).warnings == ()


def test_a_target_on_prices_the_log_never_charged_is_flagged() -> None:
    data = logged([0] * 50, [0, 1] * 25, [0.5] * 50, [True] * 50)
    target = np.tile([0.0, 0.0, 1.0], (50, 1))  # only 2.0, never logged
    found = diagnose(data, target)
    assert found.unsupported_share == pytest.approx(1.0)
    assert any(w.startswith("no support") for w in found.warnings)


def test_weight_carried_by_tiny_propensities_is_flagged() -> None:
    data = logged([0] * 40, [0] * 39 + [2], [0.99] * 39 + [0.01], [True] * 40)
    target = np.tile([0.5, 0.0, 0.5], (40, 1))
    found = diagnose(data, target)
    assert found.tiny_propensities == 1
    assert found.tiny_weight_share > 0.5
    assert any(w.startswith("tiny propensities") for w in found.warnings)


def test_weights_that_do_not_average_one_are_flagged() -> None:
    """Propensities logged twice too high halve every weight: the check sees it."""
    rng = np.random.default_rng(3)
    data, _contexts = _uniform_log(rng, 2000, np.array([[0.8, 0.5, 0.3]]))
    wrong = LoggedDecisions(
        data.contexts,
        data.arms,
        data.propensities * 2,
        data.accepted,
        PRICES,
        data.folds,
        data.n_contexts,
    )
    target = np.full((2000, 3), 1 / 3)
    assert diagnose(data, target).mean_weight.covers(1.0)
    found = diagnose(wrong, target)
    assert found.mean_weight.value == pytest.approx(0.5)
    assert any("not 1" in w for w in found.warnings)
    # halved weights halve IPS while DR keeps the model's value: the gap check sees it too
    assert any("disagree" in w for w in evaluate(wrong, target).diagnostics.warnings)
    assert not any("disagree" in w for w in evaluate(data, target).diagnostics.warnings)


@pytest.mark.parametrize("propensity", [0.0, -0.1, 1.5, math.nan])
def test_propensities_outside_zero_one_are_refused(propensity: float) -> None:
    with pytest.raises(EstimationError, match=r"\(0, 1\]"):
        logged([0, 0], [0, 1], [0.5, propensity], [True, False])


def test_a_target_that_is_not_a_distribution_is_refused() -> None:
    data = logged([0, 0], [0, 1], [0.5, 0.5], [True, False])
    with pytest.raises(EstimationError, match="sum to 1"):
        ips(data, np.array([[0.5, 0.6, 0.0], [1.0, 0.0, 0.0]]))
    with pytest.raises(EstimationError, match="shaped"):
        ips(data, np.ones((3, 3)) / 3)


def test_an_empty_log_is_refused() -> None:
    with pytest.raises(EstimationError, match="no usable"):
        logged([], [], [], [])
