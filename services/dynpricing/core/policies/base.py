"""What every Thompson policy provides, and the random tie-break every decision shares.

A policy turns Beta posterior parameters into one posterior draw of acceptance
per arm. It is chosen once, when a bandit (or an experiment run) is built, as
an object bound to the price grid and the prior; nothing downstream compares
policy names. Each policy keeps its forms side by side in its own module:

- :meth:`Policy.draw`: rows of any contexts ``(n, n_arms)``, the reference;
- :meth:`Policy.draw_one_context`: ``n`` rows that share one context;
- :meth:`Policy.draw_row`: a single row in plain floats.

The fast forms consume the generator exactly like :meth:`Policy.draw` on the
repeated row and give the same numbers to the last bit
(``tests/unit/core/test_fast_paths.py``), so which form runs never changes a
decision. Policies whose draws depend on a deterministic per-context fit (the
shape models) expose it as :meth:`Policy.fit`, a pure function of the row's
``(alpha, beta)`` that a caller may cache for as long as the row is unchanged.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from dynpricing.core.errors import PricingError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TIE_RELATIVE_TOLERANCE = 1e-12  # pooled draws may differ in the last bits only


class Policy(ABC):
    """A Thompson-sampling rule over one price grid with one Beta prior."""

    name: ClassVar[str]
    needs_fit: ClassVar[bool] = False  # draws use fit() rows

    def __init__(self, prices: FloatArray, prior: tuple[float, float]) -> None:
        self.prices = np.asarray(prices, dtype=np.float64)
        self.prior = prior

    @property
    def fit_columns(self) -> int:
        """Width of a :meth:`fit` row (0 for policies without fits)."""
        return 0

    def fit(self, alpha: FloatArray, beta: FloatArray) -> FloatArray:
        """Everything deterministic about a draw, one row per posterior row."""
        raise PricingError(f"policy {self.name!r} has no fit")

    @abstractmethod
    def draw(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        rng: np.random.Generator,
        fits: FloatArray | None = None,
    ) -> FloatArray:
        """One acceptance draw per arm for rows ``(n, n_arms)``; ``fits`` as :meth:`fit`."""

    @abstractmethod
    def draw_one_context(
        self,
        alpha: FloatArray,
        beta: FloatArray,
        n: int,
        rng: np.random.Generator,
        fit: FloatArray | None = None,
    ) -> FloatArray:
        """:meth:`draw` of one context's row ``(n_arms,)`` repeated ``n`` times, bit for bit."""

    @abstractmethod
    def draw_row(
        self,
        alpha: list[float],
        beta: list[float],
        rng: np.random.Generator,
        fit: list[float] | None = None,
    ) -> list[float]:
        """:meth:`draw` of a single row, in plain floats, bit for bit."""


def missing_fit(policy: Policy) -> PricingError:
    """The error for a fast form called without the context's fit."""
    return PricingError(f"policy {policy.name!r} needs the context's fit")


def argmax_random_ties(scores: FloatArray, rng: np.random.Generator) -> IntArray:
    """Row-wise argmax; exact ties go to a uniformly random one of the tied arms.

    The generator is only consumed when a tie exists, so tie-free streams stay
    cheap; results are still a pure function of the generator state.
    """
    best = _row_max(scores)
    tied = scores >= best - TIE_RELATIVE_TOLERANCE * np.abs(best)
    arms: IntArray = scores.argmax(axis=-1).astype(np.int64)
    # ufunc methods directly: numpy's sum/flatnonzero wrappers cost more than a small batch
    rows = (np.add.reduce(tied, axis=-1, dtype=np.intp) > 1).nonzero()[0]
    if rows.size:
        noise = rng.random((rows.size, scores.shape[-1]))
        arms[rows] = np.where(tied[rows], noise, -1.0).argmax(axis=-1)
    return arms


def _row_max(scores: FloatArray) -> FloatArray:
    """``scores.max(axis=-1, keepdims=True)``, column by column (faster for a few arms)."""
    if scores.ndim != 2 or scores.shape[1] == 0:  # rows x arms only
        whole: FloatArray = scores.max(axis=-1, keepdims=True)
        return whole
    best = scores[:, 0].copy()
    for column in range(1, scores.shape[1]):
        np.maximum(best, scores[:, column], out=best)
    return best[:, None]


def argmax_random_ties_row(scores: list[float], rng: np.random.Generator) -> int:
    """:func:`argmax_random_ties` of one row, same generator use and same arm."""
    best = max(scores)
    cut = best - TIE_RELATIVE_TOLERANCE * abs(best)
    tied = [score >= cut for score in scores]
    if sum(tied) <= 1:
        return scores.index(best)
    noise = rng.random(len(scores)).tolist()
    keyed = [u if tie else -1.0 for u, tie in zip(noise, tied, strict=True)]
    return keyed.index(max(keyed))
