"""``ts``: plain Beta-Bernoulli Thompson sampling, one independent draw per arm."""

from __future__ import annotations

import numpy as np

from dynpricing.core.policies.base import FloatArray, Policy


class Thompson(Policy):
    """Each arm's acceptance drawn from its own Beta posterior."""

    name = "ts"

    def draw(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        rng: np.random.Generator,
        fits: FloatArray | None = None,
    ) -> FloatArray:
        draws: FloatArray = rng.beta(alpha, beta)
        return draws

    def draw_one_context(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        n: int,
        rng: np.random.Generator,
        fit: FloatArray | None = None,
    ) -> FloatArray:
        draws: FloatArray = rng.beta(alpha, beta, size=(n, alpha.size))
        return draws

    def draw_row(
        self,
        alpha: list[float],
        beta: list[float],
        rng: np.random.Generator,
        fit: list[float] | None = None,
    ) -> list[float]:
        # one scalar call per arm gives the numbers an array call gives (one generator, C order)
        return [rng.beta(a, b) for a, b in zip(alpha, beta, strict=True)]
