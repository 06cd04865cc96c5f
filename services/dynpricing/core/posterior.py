"""Beta-Bernoulli posterior draws and means, per arm.

Shared by the online :class:`~dynpricing.core.bandit.Bandit` and the offline
experiment, so the two cannot drift apart. Arrays are ``(..., n_arms)`` with arms
in ascending price order. The monotone projection lives with the policy that
uses it (:mod:`dynpricing.core.policies.monotone`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def sample_acceptance(alpha: FloatArray, beta: FloatArray, rng: np.random.Generator) -> FloatArray:
    """One Thompson draw of the acceptance probability per arm, independent Betas."""
    draws: FloatArray = rng.beta(alpha, beta)
    return draws


def posterior_mean(alpha: FloatArray, beta: FloatArray) -> FloatArray:
    """Mean of Beta(alpha, beta), elementwise."""
    mean: FloatArray = alpha / (alpha + beta)
    return mean
