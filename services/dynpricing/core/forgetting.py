"""Forgetting: how old evidence gives way when a market changes. Chosen once, as an object.

- :class:`NoForgetting`: every outcome counts for ever.
- :class:`HalfLife`: a fixed half-life on a clock (the engine's ``HALF_LIFE_S``,
  the experiment's ``+hl<H>``). Decay depends only on elapsed clock time, so a
  quiet context forgets as fast as a busy one, and applying it lazily when a
  context is touched is exact because ``f(t1 - t0) * f(t2 - t1) == f(t2 - t0)``.
- :class:`AdaptiveForgetting` (the default): no half-life to choose. Each
  context keeps its posterior at a few forgetting rates side by side (never,
  and half-lives of ``ADAPTIVE_HALF_LIVES`` outcomes of that context) and
  scores each by how well it predicted the context's outcomes, one step ahead
  (a log score that itself fades with ``SCORE_HALF_LIFE`` outcomes). A
  forgetting rate decides only while it out-predicts the full history by
  ``SWITCH_MARGIN`` nats: on a steady market the full history predicts best
  and nothing is forgotten; after a change the faster rates predict better
  within a few dozen outcomes and take over, in that context only; under a
  slow trend a middle rate wins. Rates count the context's own outcomes, so
  they need no clock and no knowledge of the traffic.

Every rule keeps a floor of evidence per arm (``FORGETTING_FLOOR`` outcomes, or
what the arm had if less), in proportion: enough to remember that a price was
bad without paying to re-learn it, little enough to be outvoted quickly after
a change. Counts (successes, failures, pulls) stay lifetime totals; only the
Beta parameters forget.
"""

from __future__ import annotations

from abc import ABC
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from dynpricing.core.errors import PricingError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
EvidenceArray = npt.NDArray[np.floating[Any]]  # RATE_DTYPE where stored, float64 in flight
HALF = 0.5
FORGETTING_FLOOR = 30.0  # outcomes of evidence per arm that forgetting keeps (docs/experiments.md)
# outcomes of a context; "never" is always a candidate (docs/experiments.md: how chosen)
ADAPTIVE_HALF_LIVES = (2000.0, 1000.0, 500.0, 250.0)
SCORE_HALF_LIFE = 1000.0  # outcomes of a context over which a rate's prediction score fades
SWITCH_MARGIN = 1.0  # nats by which a forgetting candidate must out-predict the steady one
RATE_DTYPE = np.float32  # the rates' evidence and scores: half the memory and snapshot
FORGETTING_ADAPTIVE = "adaptive"
FORGETTING_HALF_LIFE = "half-life"
FORGETTING_NONE = "none"


def decay_factor(elapsed: FloatArray, half_life: float) -> FloatArray:
    """Weight kept by evidence that is ``elapsed`` time units old (negative counts as 0)."""
    factor: FloatArray = HALF ** (np.maximum(elapsed, 0.0) / half_life)
    return factor


def decay_evidence(
    alpha: FloatArray,
    beta: FloatArray,
    prior: tuple[float, float],
    factor: FloatArray,
    floor: float = 0.0,
) -> tuple[FloatArray, FloatArray]:
    """Shrink each arm's evidence toward the prior by ``factor`` (one per row).

    Evidence ``alpha - prior_alpha`` and ``beta - prior_beta`` are counts; both
    shrink by the same ratio, so they stay >= 0 and keep their proportion. An
    arm never decays below ``floor`` outcomes' worth of evidence (or what it
    had, if less). The floor keeps decay composable: decaying over two spans
    equals decaying over their sum, so lazy decay still equals a global clock.
    """
    successes, failures = alpha - prior[0], beta - prior[1]
    evidence = successes + failures
    kept = np.maximum(evidence * factor[..., None], np.minimum(evidence, floor))
    scale = np.divide(kept, evidence, out=np.ones_like(evidence), where=evidence > 0)
    return prior[0] + successes * scale, prior[1] + failures * scale


class Forgetting(ABC):
    """How a bandit forgets: :class:`HalfLife` decays on every touch by clock time,
    :class:`AdaptiveForgetting` learns through its own tables, :class:`NoForgetting`
    does neither. Callers dispatch on the type, once per call."""

    kind: ClassVar[str]


class NoForgetting(Forgetting):
    """Every outcome counts for ever."""

    kind = FORGETTING_NONE


@dataclass(frozen=True)
class HalfLife(Forgetting):
    """Evidence halves every ``half_life`` clock units, down to ``floor`` outcomes per arm."""

    half_life: float
    floor: float = FORGETTING_FLOOR
    kind: ClassVar[str] = FORGETTING_HALF_LIFE

    def __post_init__(self) -> None:
        if not self.half_life > 0:
            raise PricingError(f"half_life must be > 0, got {self.half_life}")

    def decay(
        self, alpha: FloatArray, beta: FloatArray, prior: tuple[float, float], elapsed: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Rows decayed over ``elapsed`` clock units each."""
        factor = decay_factor(elapsed, self.half_life)
        return decay_evidence(alpha, beta, prior, factor, self.floor)


@dataclass(frozen=True)
class RateTables:
    """The adaptive rule's state for some context rows.

    ``successes``/``failures`` ``(n, rates, n_arms)``: the evidence (posterior
    minus prior) at each finite half-life; ``score`` ``(n, rates + 1)``: each
    candidate's faded log score, the never-forgetting one first (its posterior
    is the prior plus the lifetime counts, which the bandit keeps anyway). All
    in single precision (``RATE_DTYPE``), rounded the same way wherever they
    are kept, so a restored bandit decides like the original (and evidence
    >= 0 stays >= 0).
    """

    successes: EvidenceArray
    failures: EvidenceArray
    score: EvidenceArray


@dataclass(frozen=True)
class AdaptiveForgetting(Forgetting):
    """Per context, decide with the forgetting rate that has been predicting best.

    Candidates: one posterior that never forgets and one per ``half_lives``
    (outcomes of the context). Each is scored by the log probability it gave
    to every outcome before seeing it, a score that fades with
    ``score_half_life`` outcomes. A forgetting candidate decides only while its
    score beats the steady one's by ``margin`` nats, so on a steady market,
    where forgetting only adds noise, the full history decides.
    """

    half_lives: tuple[float, ...] = ADAPTIVE_HALF_LIVES
    score_half_life: float = SCORE_HALF_LIFE
    floor: float = FORGETTING_FLOOR
    margin: float = SWITCH_MARGIN
    kind: ClassVar[str] = FORGETTING_ADAPTIVE

    def __post_init__(self) -> None:
        if not self.half_lives or not all(h > 0 for h in self.half_lives):
            raise PricingError(f"adaptive half-lives must be > 0, got {list(self.half_lives)}")
        if not self.score_half_life > 0:
            raise PricingError(f"score_half_life must be > 0, got {self.score_half_life}")

    @property
    def rates(self) -> int:
        """Forgetting rates tracked per context (the never-forgetting one is extra)."""
        return len(self.half_lives)

    def fresh(self, alpha: FloatArray, beta: FloatArray, prior: tuple[float, float]) -> RateTables:
        """State for rows that so far only hold ``alpha``/``beta`` (``(n, n_arms)``)."""
        n = alpha.shape[0]
        won, lost = np.maximum(alpha - prior[0], 0.0), np.maximum(beta - prior[1], 0.0)
        return RateTables(
            successes=np.repeat(won[:, None, :], self.rates, axis=1).astype(RATE_DTYPE),
            failures=np.repeat(lost[:, None, :], self.rates, axis=1).astype(RATE_DTYPE),
            score=np.zeros((n, self.rates + 1), dtype=RATE_DTYPE),
        )

    def learn(
        self,
        tables: RateTables,
        lifetime: tuple[FloatArray, FloatArray],
        won: FloatArray,
        lost: FloatArray,
        prior: tuple[float, float],
    ) -> tuple[RateTables, FloatArray, FloatArray]:
        """Fold one batch of outcomes into distinct context rows; the posteriors to decide with.

        ``lifetime`` are the rows' successes and failures before the batch (the
        never-forgetting candidate's evidence); ``won``/``lost`` ``(n, n_arms)``
        the batch's. Every candidate is scored on the batch with its posterior
        from before the batch, then the batch is added (the fading candidates
        first fade by one factor per outcome of the context). The outcomes of
        one call count as simultaneous, so their order within the call does not
        matter. Returns the new state and ``(alpha, beta)`` to decide with.
        """
        outcomes = np.add.reduce(won + lost, axis=-1)  # per context row
        evidence_won = np.concatenate((lifetime[0][:, None], tables.successes), 1, dtype=np.float64)
        evidence_lost = np.concatenate((lifetime[1][:, None], tables.failures), 1, dtype=np.float64)
        alphas, betas = prior[0] + evidence_won, prior[1] + evidence_lost
        log_total = np.log(alphas + betas)
        log_score = won[:, None] * (np.log(alphas) - log_total) + lost[:, None] * (
            np.log(betas) - log_total
        )
        fade = HALF ** (outcomes / self.score_half_life)
        score = (tables.score * fade[:, None] + np.add.reduce(log_score, axis=-1)).astype(
            RATE_DTYPE
        )
        for rate, half_life in enumerate(self.half_lives, start=1):
            factor = HALF ** (outcomes / half_life)
            evidence_won[:, rate], evidence_lost[:, rate] = decay_evidence(
                evidence_won[:, rate], evidence_lost[:, rate], (0.0, 0.0), factor, self.floor
            )
        evidence_won += won[:, None]
        evidence_lost += lost[:, None]
        # decide with what is stored (rounded), so a restored bandit decides alike
        evidence_won[:, 1:] = evidence_won[:, 1:].astype(RATE_DTYPE)
        evidence_lost[:, 1:] = evidence_lost[:, 1:].astype(RATE_DTYPE)
        state = RateTables(
            evidence_won[:, 1:].astype(RATE_DTYPE), evidence_lost[:, 1:].astype(RATE_DTYPE), score
        )
        alpha, beta = self.posterior(state, (evidence_won[:, 0], evidence_lost[:, 0]), prior)
        return state, alpha, beta

    def posterior(
        self,
        state: RateTables,
        lifetime: tuple[FloatArray, FloatArray],
        prior: tuple[float, float],
    ) -> tuple[FloatArray, FloatArray]:
        """The posterior to decide with, from the rows' state and lifetime counts.

        A fading candidate decides only once it out-predicts the steady one by
        the margin; among those the best; exact ties go to the slower.
        """
        handicap = self.margin * (np.arange(self.rates + 1) > 0)
        chosen = (state.score - handicap).argmax(axis=1)
        rows = np.arange(chosen.size)
        evidence_won = np.concatenate((lifetime[0][:, None], state.successes), 1, dtype=np.float64)
        evidence_lost = np.concatenate((lifetime[1][:, None], state.failures), 1, dtype=np.float64)
        return prior[0] + evidence_won[rows, chosen], prior[1] + evidence_lost[rows, chosen]

    def kept(self, outcomes_since: FloatArray) -> FloatArray:
        """What each fading rate still holds of one outcome learnt ``outcomes_since``
        outcomes of its context ago, ``(n, rates)`` (the steady candidate, the
        lifetime counts, holds all of it).

        The floor is left out: it only ever keeps more, so taking back this much
        never takes back more than the outcome left.
        """
        since = np.maximum(np.asarray(outcomes_since, dtype=np.float64), 0.0)[:, None]
        kept: FloatArray = HALF ** (since / np.asarray(self.half_lives)[None, :])
        return kept


def forgetting_for(kind: str, half_life: float | None, floor: float) -> Forgetting:
    """The rule a configuration asks for: a half-life overrides the kind."""
    if half_life is not None:
        return HalfLife(half_life, floor)
    if kind == FORGETTING_ADAPTIVE:
        return AdaptiveForgetting(floor=floor)
    if kind == FORGETTING_NONE:
        return NoForgetting()
    raise PricingError(
        f"unknown forgetting {kind!r}; expected {FORGETTING_ADAPTIVE!r} or {FORGETTING_NONE!r}"
    )


__all__ = [
    "ADAPTIVE_HALF_LIVES",
    "FORGETTING_FLOOR",
    "AdaptiveForgetting",
    "Forgetting",
    "HalfLife",
    "NoForgetting",
    "RateTables",
    "decay_evidence",
    "decay_factor",
    "forgetting_for",
]
