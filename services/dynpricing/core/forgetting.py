"""Exponential forgetting on a clock: old evidence fades toward the prior.

Decay depends only on elapsed clock time, never on the number of updates, so a
quiet context forgets exactly as fast as a busy one. Applying it lazily when a
context is touched is exact because ``f(t1 - t0) * f(t2 - t1) == f(t2 - t0)``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
HALF = 0.5
FORGETTING_FLOOR = 30.0  # outcomes of evidence per arm that forgetting keeps (docs/experiments.md)


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
    had, if less): enough to remember that a price was bad without paying to
    re-learn it, little enough to be outvoted quickly after a change. The floor
    keeps decay composable: decaying over two spans equals decaying over their
    sum, so lazy decay still equals a global clock.
    """
    successes, failures = alpha - prior[0], beta - prior[1]
    evidence = successes + failures
    kept = np.maximum(evidence * factor[..., None], np.minimum(evidence, floor))
    scale = np.divide(kept, evidence, out=np.ones_like(evidence), where=evidence > 0)
    return prior[0] + successes * scale, prior[1] + failures * scale
