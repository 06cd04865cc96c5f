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


def decay_factor(elapsed: FloatArray, half_life: float) -> FloatArray:
    """Weight kept by evidence that is ``elapsed`` time units old (negative counts as 0)."""
    factor: FloatArray = HALF ** (np.maximum(elapsed, 0.0) / half_life)
    return factor


def decay_evidence(
    alpha: FloatArray, beta: FloatArray, prior: tuple[float, float], factor: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Shrink the evidence part of Beta parameters (rows) toward the prior by ``factor``.

    Evidence ``alpha - prior_alpha`` and ``beta - prior_beta`` are counts, so
    they stay >= 0 and the shape models can keep reading them as outcomes.
    """
    decayed_alpha: FloatArray = prior[0] + (alpha - prior[0]) * factor[..., None]
    decayed_beta: FloatArray = prior[1] + (beta - prior[1]) * factor[..., None]
    return decayed_alpha, decayed_beta
