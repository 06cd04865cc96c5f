"""The contextual pricing bandit the engine drives: decide, learn, snapshot.

State lives in contiguous ``(n_contexts, n_arms)`` numpy tables that grow by
doubling, and a dict maps a context to its row, so a batch of decisions or
outcomes is a handful of vectorised operations whatever its size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from dynpricing.core import snapshot
from dynpricing.core.contexts import DEMAND_LEVELS, ContextTable
from dynpricing.core.errors import PricingError, SnapshotError, UnknownContextError
from dynpricing.core.forgetting import (
    FORGETTING_ADAPTIVE,
    FORGETTING_FLOOR,
    RATE_DTYPE,
    AdaptiveForgetting,
    HalfLife,
    RateTables,
    decay_factor,
    forgetting_for,
)
from dynpricing.core.grid import arm_index, validate_grid
from dynpricing.core.policies import (
    DEFAULT_POLICY,
    OBJECTIVE_REVENUE,
    Supply,
    argmax_random_ties,
    make_policy,
    objective_for,
    policy_name,
    thompson_arms,
    thompson_arms_one_context,
)
from dynpricing.core.posterior import posterior_mean

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
CountArray = npt.NDArray[np.integer[Any]]  # int32 until a count nears 2**31, then int64

INITIAL_CAPACITY = 16  # context rows allocated up front; doubles when full
PROPENSITY_DRAWS = 64  # fresh posterior draws per stale context to estimate propensities
PROPENSITY_BATCH_BUDGET = 16_384  # fresh draws per decide() call, shared by its stale contexts
MIN_PROPENSITY_DRAWS = 8  # per stale context, however many there are
COUNT_DTYPE = np.int32  # outcome and draw counts; widened to int64 before they could overflow
WIDEN_COUNTS_ABOVE = 2**30  # a count past this switches its tables to int64 (one batch < 2**30)
FIT_CACHE_SLOTS = 32_768  # shape-ts fits kept, one slot per context row modulo this

__all__ = ["DEFAULT_POLICY", "ArmStats", "Bandit", "BanditConfig", "DecisionBatch"]


@dataclass(frozen=True)
class BanditConfig:
    """What the bandit learns over and how it decides; see ``docs/pricing.md``."""

    prices: tuple[float, ...] = (1.0, 1.2, 1.5, 2.0)
    prior_alpha: float = 1.0
    prior_beta: float = 1.0
    objective: str = OBJECTIVE_REVENUE
    policy: str = DEFAULT_POLICY
    half_life: float | None = None  # fixed forgetting half-life in clock units (overrides)
    forgetting_floor: float = FORGETTING_FLOOR  # outcomes of evidence per arm never forgotten
    locations: tuple[str, ...] = ()  # empty: contexts appear when first seen
    propensity_draws: int = PROPENSITY_DRAWS
    forgetting: str = FORGETTING_ADAPTIVE  # without a half_life: "adaptive" or "none"

    def __post_init__(self) -> None:
        validate_grid(self.prices)
        make_policy(self.policy, np.asarray(self.prices))  # refuses unknown names
        objective_for(self.objective)
        if not (self.prior_alpha > 0 and self.prior_beta > 0):
            raise PricingError(
                f"prior must be positive, got alpha={self.prior_alpha}, beta={self.prior_beta}"
            )
        if self.half_life is not None and not self.half_life > 0:
            raise PricingError(f"half_life must be > 0 or None, got {self.half_life}")
        forgetting_for(self.forgetting, self.half_life, self.forgetting_floor)
        if not self.forgetting_floor >= 0:
            raise PricingError(f"forgetting_floor must be >= 0, got {self.forgetting_floor}")
        if self.propensity_draws < 1:
            raise PricingError(f"propensity_draws must be >= 1, got {self.propensity_draws}")
        if len(set(self.locations)) != len(self.locations):
            raise PricingError(f"locations must be distinct, got {list(self.locations)}")


@dataclass(frozen=True)
class DecisionBatch:
    """Chosen arm per event and the probability the policy had of choosing it (> 0)."""

    arms: IntArray
    propensities: FloatArray


@dataclass(frozen=True)
class ArmStats:
    """Copies of the learning tables, shaped ``(n_contexts, n_arms)``."""

    alpha: FloatArray
    beta: FloatArray
    successes: IntArray
    failures: IntArray
    pulls: IntArray
    posterior_mean: FloatArray


class Bandit:
    """Contextual Beta-Bernoulli Thompson sampling over a price grid."""

    def __init__(self, config: BanditConfig, *, fit_cache_slots: int = FIT_CACHE_SLOTS) -> None:
        """``fit_cache_slots=0`` refits on every call (same decisions, slower)."""
        self.config = config
        self.prices: FloatArray = validate_grid(config.prices)
        self.policy_name: str = policy_name(config.policy, config.objective)
        self._prior = (config.prior_alpha, config.prior_beta)
        self._policy = make_policy(config.policy, self.prices, self._prior)
        self._objective = objective_for(config.objective)
        self._forgetting = forgetting_for(
            config.forgetting, config.half_life, config.forgetting_floor
        )
        forgetting = self._forgetting
        # adaptive forgetting's candidate posteriors per context (0: none kept)
        self._rates = forgetting.rates if isinstance(forgetting, AdaptiveForgetting) else 0
        self.total_outcomes: int = 0
        self._contexts = ContextTable()
        self._count_dtype: type[np.integer[Any]] = COUNT_DTYPE
        self._draw_dtype: type[np.integer[Any]] = COUNT_DTYPE
        self._widen_above = WIDEN_COUNTS_ABOVE
        self._allocate(INITIAL_CAPACITY)
        self._fit_cache: _FitCache | None = None
        if self._policy.needs_fit and fit_cache_slots > 0:
            self._fit_cache = _FitCache(self._policy.fit_columns, fit_cache_slots)
        for location in config.locations:
            for level in DEMAND_LEVELS:
                self._add_context(location, level)

    # -- storage -------------------------------------------------------------

    def _allocate(self, capacity: int) -> None:
        n_arms = self.prices.size
        self._alpha = np.full((capacity, n_arms), self.config.prior_alpha)
        self._beta = np.full((capacity, n_arms), self.config.prior_beta)
        self._successes: CountArray = np.zeros((capacity, n_arms), dtype=self._count_dtype)
        self._failures: CountArray = np.zeros((capacity, n_arms), dtype=self._count_dtype)
        self._pulls: CountArray = np.zeros((capacity, n_arms), dtype=self._count_dtype)
        self._clock = np.zeros(capacity)
        self._version = np.zeros(capacity, dtype=np.int64)
        self._draw_counts: CountArray = np.zeros((capacity, n_arms), dtype=self._draw_dtype)
        self._draw_version = np.full(capacity, -1, dtype=np.int64)
        # adaptive forgetting: the evidence at each finite rate, and each rate's score
        self._rate_won = np.zeros((capacity, self._rates, n_arms), dtype=RATE_DTYPE)
        self._rate_lost = np.zeros((capacity, self._rates, n_arms), dtype=RATE_DTYPE)
        self._rate_score = np.zeros((capacity, self._rates + 1), dtype=RATE_DTYPE)

    def _grow(self) -> None:
        """Double the capacity, keeping the rows in use."""
        used = len(self._contexts)
        old = {name: getattr(self, name)[:used] for name in _TABLES}
        self._allocate(max(INITIAL_CAPACITY, 2 * len(self._alpha)))
        for name, values in old.items():
            getattr(self, name)[:used] = values

    def _add_context(self, location: str, level: str) -> int:
        if len(self._contexts) == len(self._alpha):
            self._grow()
        return self._contexts.add(location, level)

    def _widen_counts(self, draws: bool) -> None:
        """Switch the outcome (or draw) count tables to int64, keeping their values."""
        if draws:
            self._draw_dtype = np.int64
            self._draw_counts = self._draw_counts.astype(np.int64)
            return
        self._count_dtype = np.int64
        for name in _COUNT_TABLES:
            setattr(self, name, getattr(self, name).astype(np.int64))

    @property
    def needs_supply(self) -> bool:
        """Whether :meth:`decide` needs each event's ``requests`` and ``drivers``."""
        return self._objective.needs_supply

    # -- contexts and arms ---------------------------------------------------

    @property
    def n_contexts(self) -> int:
        """Context rows in use."""
        return len(self._contexts)

    def find_context(self, location: str, demand_level: str) -> int | None:
        """Row of a context that exists, else None; unlike :meth:`context_index` never adds one."""
        return self._contexts.get(location, demand_level)

    def context_index(self, location: str, demand_level: str) -> int:
        """Row of a context; a new one is added unless contexts are fixed."""
        index = self._contexts.get(location, demand_level)
        if index is not None:
            return index
        if demand_level not in DEMAND_LEVELS:
            raise UnknownContextError(
                f"demand level {demand_level!r} is not one of {list(DEMAND_LEVELS)}"
            )
        if self.config.locations:
            raise UnknownContextError(
                f"location {location!r} is not configured; "
                f"configured locations are {list(self.config.locations)}"
            )
        return self._add_context(location, demand_level)

    def contexts(self, limit: int | None = None) -> list[tuple[str, str]]:
        """Context row -> (location, demand_level); only the first ``limit`` rows if given.

        With a limit nothing is cached, so a view of the first contexts of a
        large table costs only those rows.
        """
        if limit is not None:
            return [self._contexts.name(row) for row in range(min(limit, len(self._contexts)))]
        return list(self._contexts.names())

    def context_name(self, row: int) -> tuple[str, str]:
        """``(location, demand_level)`` of one row; cheaper than ``contexts()[row]``."""
        if not 0 <= row < len(self._contexts):
            raise UnknownContextError(f"context row {row} is not in [0, {len(self._contexts)})")
        return self._contexts.name(row)

    def arm_index(self, price: float) -> int:
        """Arm of a price multiplier; :class:`PriceNotOnGridError` when off the grid."""
        return arm_index(self.prices, price)

    def _check_rows(self, contexts: Any) -> IntArray:
        rows = np.asarray(contexts, dtype=np.int64).reshape(-1)
        used = len(self._contexts)
        if rows.size and (rows.min() < 0 or rows.max() >= used):
            raise UnknownContextError(
                f"context rows must be in [0, {used}), got {rows.min()}..{rows.max()}"
            )
        return rows

    # -- forgetting ----------------------------------------------------------

    def _advance_clock(self, unique: IntArray, now: float) -> None:
        """Decay these distinct contexts' evidence to time ``now`` (fixed half-life only)."""
        forgetting = self._forgetting
        if not isinstance(forgetting, HalfLife) or unique.size == 0:
            return
        elapsed = now - self._clock[unique]
        moved = unique[elapsed > 0]
        if moved.size == 0:
            return
        self._alpha[moved], self._beta[moved] = forgetting.decay(
            self._alpha[moved], self._beta[moved], self._prior, now - self._clock[moved]
        )
        self._clock[moved] = now
        self._version[moved] += 1

    # -- deciding ------------------------------------------------------------

    def _arms_for(
        self,
        rows: IntArray,
        unique: IntArray,
        inverse: IntArray,
        rng: np.random.Generator,
        supply: Supply | None = None,
    ) -> IntArray:
        """Decisions for ``rows`` (= ``unique[inverse]``, ``unique`` distinct)."""
        return thompson_arms(
            self._alpha[rows],
            self._beta[rows],
            policy=self._policy,
            objective=self._objective,
            rng=rng,
            fits=self._fits_for(unique, inverse),
            supply=supply,
        )

    def _fits_for(self, unique: IntArray, inverse: IntArray) -> FloatArray | None:
        """The policy's fits per row, refitting only contexts whose posterior moved.

        A fit is a pure function of the context's ``(alpha, beta)``, and every
        change to those bumps the context's ``_version``, so a cached fit of
        the same version is exactly what a refit would give.
        """
        cache = self._fit_cache
        if cache is None:
            return None
        versions = self._version[unique]
        fits, missing = cache.lookup(unique, versions)
        if missing.size:
            fresh = self._policy.fit(self._alpha[unique[missing]], self._beta[unique[missing]])
            fits[missing] = fresh
            cache.store(unique[missing], versions[missing], fresh)
        return fits[inverse]

    def _supply(self, n: int, requests: Any, drivers: Any) -> Supply | None:
        """The events' supply when the objective uses it (refused when missing)."""
        if not self._objective.needs_supply:
            return None
        if requests is None or drivers is None:
            raise PricingError(
                f"objective {self.config.objective!r} needs requests and drivers per event"
            )
        supply = Supply.of(requests, drivers)
        if supply.requests.size != n:
            raise PricingError(
                f"got {supply.requests.size} requests/drivers for {n} events; need one per event"
            )
        return supply

    def choose(
        self,
        contexts: Any,
        rng: np.random.Generator,
        now: float,
        *,
        requests: Any = None,
        drivers: Any = None,
    ) -> IntArray:
        """One Thompson decision per event row, without propensities.

        Exactly the draws :meth:`decide` starts with; the offline experiment
        makes the same calls, which is how a test pins the two together.
        ``requests`` and ``drivers`` (one per event) are needed by, and only
        used by, the ``revenue-supply`` objective.
        """
        rows = np.asarray(contexts, dtype=np.int64).reshape(-1)
        supply = self._supply(rows.size, requests, drivers)
        row = self._one_context(rows)
        if row is not None:
            self._advance_clock(rows[:1], now)
            return self._arms_one(row, rows.size, rng, supply)
        rows = self._check_rows(rows)
        unique, inverse = _distinct(rows)
        self._advance_clock(unique, now)
        return self._arms_for(rows, unique, inverse, rng, supply)

    def decide(
        self,
        contexts: Any,
        rng: np.random.Generator,
        now: float,
        *,
        requests: Any = None,
        drivers: Any = None,
    ) -> DecisionBatch:
        """One Thompson decision per event row, with the chosen arm's propensity.

        Decisions are drawn first (as :meth:`choose`), so the arms depend only
        on the posterior and the generator state; the propensity estimate then
        uses extra draws. ``requests`` and ``drivers`` as in :meth:`choose`.
        """
        rows = np.asarray(contexts, dtype=np.int64).reshape(-1)
        supply = self._supply(rows.size, requests, drivers)
        if supply is not None:
            return self._decide_with_supply(rows, rng, now, supply)
        row = self._one_context(rows)
        if row is not None:
            return self._decide_one(row, rows, rng, now)
        rows = self._check_rows(rows)
        unique, inverse = _distinct(rows)
        self._advance_clock(unique, now)
        arms = self._arms_for(rows, unique, inverse, rng)
        self._refresh_draw_counts(unique, rng)
        n_arms = self.prices.size
        chosen = np.bincount(inverse * n_arms + arms, minlength=unique.size * n_arms)
        self._draw_counts[unique] += chosen.reshape(unique.size, n_arms).astype(self._draw_dtype)
        totals = self._draw_counts[unique].sum(axis=1, dtype=np.int64)
        propensities: FloatArray = self._draw_counts[rows, arms] / totals[inverse]
        if self._draw_dtype is not np.int64 and np.any(totals > self._widen_above):
            self._widen_counts(draws=True)
        return DecisionBatch(arms=arms, propensities=propensities)

    def _one_context(self, rows: IntArray) -> int | None:
        """The row every event of a non-empty batch shares, if they share one (checked)."""
        if rows.size == 0:
            return None
        row = int(rows[0])
        if rows.size > 1 and not (rows == row).all():
            return None
        used = len(self._contexts)
        if not 0 <= row < used:
            raise UnknownContextError(f"context rows must be in [0, {used}), got {row}..{row}")
        return row

    def _decide_one(
        self, row: int, rows: IntArray, rng: np.random.Generator, now: float
    ) -> DecisionBatch:
        """:meth:`decide` for a batch of one context: the same draws and results, cheaper."""
        self._advance_clock(rows[:1], now)
        arms = self._arms_one(row, rows.size, rng)
        if self._draw_version[row] != self._version[row]:
            self._refresh_draw_counts(rows[:1], rng)
        counts = self._draw_counts[row]
        if rows.size == 1:
            arm = int(arms[0])
            counts[arm] += 1
            total = sum(counts.tolist())
            propensities = np.array([int(counts[arm]) / total])
        else:
            counts += np.bincount(arms, minlength=counts.size).astype(self._draw_dtype)
            total = sum(counts.tolist())
            propensities = counts[arms] / np.float64(total)
        if self._draw_dtype is not np.int64 and total > self._widen_above:
            self._widen_counts(draws=True)
        return DecisionBatch(arms=arms, propensities=propensities)

    def _decide_with_supply(
        self, contexts: IntArray, rng: np.random.Generator, now: float, supply: Supply
    ) -> DecisionBatch:
        """:meth:`decide` when the best arm depends on each event's supply.

        The choice probability is then the event's own, not its context's:
        ``propensity_draws`` extra posterior draws per context of the batch
        (fresh each batch), each scored under the event's requests and
        drivers, plus the event's own decision, which is one more such draw.
        """
        rows = self._check_rows(contexts)
        unique, inverse = _distinct(rows)
        self._advance_clock(unique, now)
        arms = self._arms_for(rows, unique, inverse, rng, supply)
        n, draws = rows.size, self.config.propensity_draws
        extra = np.empty((unique.size, draws, self.prices.size))
        for index, row in enumerate(unique.tolist()):
            fit = self._fit_one(row) if self._policy.needs_fit else None
            extra[index] = self._policy.draw_one_context(
                self._alpha[row], self._beta[row], draws, rng, fit
            )
        scores = self._objective.scores(
            extra[inverse].reshape(n * draws, -1), self.prices, supply.repeat(draws)
        )
        picks = argmax_random_ties(scores, rng).reshape(n, draws)
        agree = np.add.reduce(picks == arms[:, None], axis=1)
        return DecisionBatch(arms=arms, propensities=(agree + 1.0) / (draws + 1.0))

    def _arms_one(
        self, row: int, n: int, rng: np.random.Generator, supply: Supply | None = None
    ) -> IntArray:
        """Decisions for ``n`` events of context ``row``; as :meth:`_arms_for`, bit for bit."""
        return thompson_arms_one_context(
            self._alpha[row],
            self._beta[row],
            n,
            policy=self._policy,
            objective=self._objective,
            rng=rng,
            fit=self._fit_one(row) if self._policy.needs_fit else None,
            supply=supply,
        )

    def _fit_one(self, row: int) -> FloatArray:
        """The policy's fit of one context: :meth:`_fits_for` for a single row."""
        version = int(self._version[row])
        cache = self._fit_cache
        if cache is not None:
            slot = row % cache.slots
            if cache.row[slot] == row and cache.version[slot] == version:
                cached: FloatArray = cache.fits[slot]
                return cached
        fit: FloatArray = self._policy.fit(self._alpha[row : row + 1], self._beta[row : row + 1])[0]
        if cache is not None:
            cache.row[slot] = row
            cache.version[slot] = version
            cache.fits[slot] = fit
        return fit

    def _refresh_draw_counts(self, unique_rows: IntArray, rng: np.random.Generator) -> None:
        """Re-estimate choice frequencies for contexts whose posterior changed.

        Counts are cached per context until its posterior moves (version bump);
        meanwhile the real decisions, which are draws from the same posterior,
        keep adding to them. So the cost is bounded per posterior change, not
        per decision, and a chosen arm always has a count of at least one. A
        batch touching many stale contexts spreads a fixed budget of draws over
        them (at least ``MIN_PROPENSITY_DRAWS`` each): rare contexts get
        coarser estimates, which their own later decisions then refine.
        """
        stale = unique_rows[self._draw_version[unique_rows] != self._version[unique_rows]]
        if stale.size == 0:
            return
        budget = max(MIN_PROPENSITY_DRAWS, PROPENSITY_BATCH_BUDGET // stale.size)
        draws = min(self.config.propensity_draws, budget)
        if stale.size == 1:
            arms = self._arms_one(int(stale[0]), draws, rng)
        else:
            repeated = np.repeat(stale, draws)
            arms = self._arms_for(repeated, stale, np.repeat(np.arange(stale.size), draws), rng)
        n_arms = self.prices.size
        slot = np.repeat(np.arange(stale.size), draws) * n_arms + arms
        counts = np.bincount(slot, minlength=stale.size * n_arms).reshape(stale.size, n_arms)
        self._draw_counts[stale] = counts
        self._draw_version[stale] = self._version[stale]

    def propensities(self, context: int, rng: np.random.Generator, now: float) -> FloatArray:
        """Estimated probability of each arm for this context now; sums to 1.

        Not available under ``revenue-supply``, where the choice depends on
        each event's supply (:meth:`decide` returns each event's propensity).
        """
        if self._objective.needs_supply:
            raise PricingError("under revenue-supply propensities are per event; see decide()")
        rows = self._check_rows([context])
        self._advance_clock(rows, now)
        self._refresh_draw_counts(rows, rng)
        counts = self._draw_counts[rows[0]]
        probabilities: FloatArray = counts / counts.sum()
        return probabilities

    def _load_rates(self, tables: snapshot.LearnedTables, rows: IntArray) -> None:
        """Adaptive forgetting's state from the snapshot, or started from its posterior."""
        forgetting = self._forgetting
        if not isinstance(forgetting, AdaptiveForgetting):
            return
        if tables.rate_successes is None or tables.rate_failures is None:
            fresh = forgetting.fresh(tables.alpha, tables.beta, self._prior)
        elif tables.rate_score is not None:
            fresh = RateTables(tables.rate_successes, tables.rate_failures, tables.rate_score)
        self._rate_won[rows], self._rate_lost[rows] = fresh.successes, fresh.failures
        self._rate_score[rows] = fresh.score

    # -- learning ------------------------------------------------------------

    def update(self, contexts: Any, arms: Any, accepted: Any, now: float) -> None:
        """Apply outcomes; repeated (context, arm) pairs in one call all count.

        Without forgetting this only adds whole numbers, so replaying the same
        outcomes in any grouping gives a bit-identical posterior.
        """
        rows = self._check_rows(contexts)
        arm_rows = np.asarray(arms, dtype=np.int64).reshape(-1)
        won = np.asarray(accepted, dtype=bool).reshape(-1)
        if not rows.size == arm_rows.size == won.size:
            raise PricingError(
                f"update needs equal lengths, got {rows.size} contexts, "
                f"{arm_rows.size} arms, {won.size} outcomes"
            )
        if arm_rows.size and (arm_rows.min() < 0 or arm_rows.max() >= self.prices.size):
            raise PricingError(f"arm indices must be in [0, {self.prices.size})")
        unique, inverse = _distinct(rows)
        self._advance_clock(unique, now)
        at = (rows, arm_rows)
        if isinstance(self._forgetting, AdaptiveForgetting):
            self._learn_adaptive(self._forgetting, unique, (inverse, arm_rows), won)
        else:
            np.add.at(self._alpha, at, won.astype(np.float64))
            np.add.at(self._beta, at, (~won).astype(np.float64))
        np.add.at(self._successes, at, won.astype(self._count_dtype))
        np.add.at(self._failures, at, (~won).astype(self._count_dtype))
        np.add.at(self._pulls, at, 1)
        if self._count_dtype is not np.int64 and any(
            np.any(getattr(self, name)[unique] > self._widen_above) for name in _COUNT_TABLES
        ):
            self._widen_counts(draws=False)
        self._version[unique] += 1
        self.total_outcomes += int(rows.size)

    def context_outcomes(self, contexts: Any) -> IntArray:
        """Outcomes learnt so far per context row (what adaptive forgetting counts in)."""
        rows = self._check_rows(contexts)
        totals: IntArray = self._pulls[rows].sum(axis=1, dtype=np.int64)
        return totals

    def retract_rejections(
        self, contexts: Any, arms: Any, outcomes_since: Any, learnt_at: Any, now: float
    ) -> None:
        """Take back one rejection per row, learnt earlier at that context and arm.

        What the rejection still weighs is taken back, as the forgetting rule
        has faded it since it was learnt: all of it without forgetting; under a
        fixed half-life, what ``now - learnt_at`` of clock left of it; under
        adaptive forgetting, all of it from the steady candidate and, from each
        fading one, what the outcomes of the context since then left
        (``outcomes_since`` is :meth:`context_outcomes` when it was learnt). The
        candidates' prediction scores keep the rejection: it fades from them
        with their own half-life. Counts lose the rejection outright. A late
        outcome that replaces a decision's expiry as a rejection is this call
        followed by :meth:`update` with the real answer.
        """
        rows = self._check_rows(contexts)
        arm_rows = np.asarray(arms, dtype=np.int64).reshape(-1)
        if rows.size == 0:
            return
        unique, inverse = _distinct(rows)
        self._advance_clock(unique, now)
        since = self._pulls[rows].sum(axis=1, dtype=np.int64) - np.asarray(
            outcomes_since, dtype=np.int64
        ).reshape(-1)
        for name in _RETRACTED_COUNTS:
            table = getattr(self, name)
            np.subtract.at(table, (rows, arm_rows), 1)
            np.maximum(table, 0, out=table)
        forgetting = self._forgetting
        if isinstance(forgetting, AdaptiveForgetting):
            self._retract_adaptive(forgetting, unique, (inverse, arm_rows), since)
        else:
            weight = np.ones(rows.size)
            if isinstance(forgetting, HalfLife):
                elapsed = now - np.asarray(learnt_at, dtype=np.float64).reshape(-1)
                weight = decay_factor(elapsed, forgetting.half_life)
            np.subtract.at(self._beta, (rows, arm_rows), weight)
            np.maximum(self._beta, self.config.prior_beta, out=self._beta)
        self._version[unique] += 1
        self.total_outcomes = max(0, self.total_outcomes - int(rows.size))

    def _retract_adaptive(
        self,
        forgetting: AdaptiveForgetting,
        unique: IntArray,
        at: tuple[IntArray, IntArray],
        since: IntArray,
    ) -> None:
        """Adaptive forgetting's part of :meth:`retract_rejections` (rows ``unique[at[0]]``),
        after the lifetime counts (the steady candidate) lost the rejection."""
        inverse, arm_rows = at
        kept = forgetting.kept(since.astype(np.float64))  # (rows, rates)
        lost = self._rate_lost[unique].astype(np.float64)
        rates = np.arange(forgetting.rates)[None, :]
        np.subtract.at(lost, (inverse[:, None], rates, arm_rows[:, None]), kept)
        state = RateTables(
            self._rate_won[unique],
            np.maximum(lost, 0.0).astype(RATE_DTYPE),
            self._rate_score[unique],
        )
        self._rate_lost[unique] = state.failures
        lifetime = (
            self._successes[unique].astype(np.float64),
            self._failures[unique].astype(np.float64),
        )
        self._alpha[unique], self._beta[unique] = forgetting.posterior(state, lifetime, self._prior)

    def _learn_adaptive(
        self,
        forgetting: AdaptiveForgetting,
        unique: IntArray,
        at: tuple[IntArray, IntArray],
        won: npt.NDArray[np.bool_],
    ) -> None:
        """Adaptive forgetting's update of the distinct contexts ``unique``."""
        won_table = np.zeros((unique.size, self.prices.size))
        lost_table = np.zeros((unique.size, self.prices.size))
        np.add.at(won_table, at, won.astype(np.float64))
        np.add.at(lost_table, at, (~won).astype(np.float64))
        tables = RateTables(
            self._rate_won[unique], self._rate_lost[unique], self._rate_score[unique]
        )
        lifetime = (
            self._successes[unique].astype(np.float64),
            self._failures[unique].astype(np.float64),
        )
        state, alpha, beta = forgetting.learn(tables, lifetime, won_table, lost_table, self._prior)
        self._rate_won[unique], self._rate_lost[unique] = state.successes, state.failures
        self._rate_score[unique] = state.score
        self._alpha[unique], self._beta[unique] = alpha, beta

    # -- reporting and persistence -------------------------------------------

    def arm_stats(self, limit: int | None = None) -> ArmStats:
        """A copy of the learning tables for metrics and ``/state`` (first ``limit`` rows)."""
        used = len(self._contexts) if limit is None else min(limit, len(self._contexts))
        alpha, beta = self._alpha[:used].copy(), self._beta[:used].copy()
        return ArmStats(
            alpha=alpha,
            beta=beta,
            successes=self._successes[:used].astype(np.int64),
            failures=self._failures[:used].astype(np.int64),
            pulls=self._pulls[:used].astype(np.int64),
            posterior_mean=posterior_mean(alpha, beta),
        )

    def _header(self) -> snapshot.SnapshotHeader:
        cfg = self.config
        return snapshot.SnapshotHeader(
            prices=snapshot.grid_list(self.prices),
            prior_alpha=cfg.prior_alpha,
            prior_beta=cfg.prior_beta,
            objective=cfg.objective,
            policy=cfg.policy,
            half_life=cfg.half_life,
            forgetting_floor=cfg.forgetting_floor,
            forgetting=self._forgetting.kind,
            adaptive_half_lives=self._forgetting.half_lives
            if isinstance(self._forgetting, AdaptiveForgetting)
            else (),
        )

    def to_document(
        self, extra: Mapping[str, object] | None = None, *, arrays: bool = False
    ) -> dict[str, object]:
        """The whole learning state as a JSON-able dict (``bandit_stats.json``).

        ``arrays=True`` puts numpy arrays where the tables go (same JSON through
        :func:`dynpricing.statefile.write_json_atomic`, far faster for many arms).
        """
        used = len(self._contexts)
        tables = snapshot.LearnedTables(
            locations=self._contexts.locations(),
            levels=self._contexts.levels(),
            alpha=self._alpha[:used],
            beta=self._beta[:used],
            successes=self._successes[:used],
            failures=self._failures[:used],
            pulls=self._pulls[:used],
            clock=self._clock[:used],
            total_outcomes=self.total_outcomes,
            **self._rate_document(used),
        )
        return snapshot.to_document(self._header(), tables, extra, arrays=arrays)

    def _rate_document(self, used: int) -> dict[str, Any]:
        if not self._rates:
            return {}
        return {
            "rate_successes": self._rate_won[:used],
            "rate_failures": self._rate_lost[:used],
            "rate_score": self._rate_score[:used],
        }

    # -- one context at a time (the model topic) -------------------------------

    def context_state(self, row: int) -> snapshot.ContextState:
        """A copy of one context's posterior and counts (what a decider needs to price it)."""
        location, level = self.context_name(row)
        return snapshot.ContextState(
            location=location,
            demand_level=level,
            alpha=self._alpha[row].copy(),
            beta=self._beta[row].copy(),
            clock=float(self._clock[row]),
            successes=self._successes[row].astype(np.int64),
            failures=self._failures[row].astype(np.int64),
            pulls=self._pulls[row].astype(np.int64),
        )

    def context_document(
        self, row: int, extra: Mapping[str, object] | None = None
    ) -> dict[str, object]:
        """:meth:`context_state` as a JSON-able dict with this bandit's header."""
        return snapshot.context_to_document(self._header(), self.context_state(row), extra)

    def load_context_state(self, state: snapshot.ContextState) -> int:
        """Take one context's posterior as given (adding the context if new); returns its row.

        What deciding depends on (``alpha``, ``beta``, ``clock``) becomes exactly
        the given state, so a bandit that loads every context of another decides
        like it from the same generator state. Adaptive forgetting's rates start
        from this posterior (a copy that only decides never uses them).
        """
        row = self.context_index(state.location, state.demand_level)
        at = np.asarray([row], dtype=np.int64)
        self._alpha[row], self._beta[row] = state.alpha, state.beta
        self._clock[row] = state.clock
        counts = (state.successes, state.failures, state.pulls)
        if self._count_dtype is not np.int64 and any(c.max() > self._widen_above for c in counts):
            self._widen_counts(draws=False)
        self._successes[row], self._failures[row], self._pulls[row] = counts
        forgetting = self._forgetting
        if isinstance(forgetting, AdaptiveForgetting):
            fresh = forgetting.fresh(self._alpha[at], self._beta[at], self._prior)
            self._rate_won[at], self._rate_lost[at] = fresh.successes, fresh.failures
            self._rate_score[at] = fresh.score
        self._version[row] += 1  # cached fits and propensity counts are stale now
        return row

    def load_context_document(self, doc: Mapping[str, object]) -> int:
        """:meth:`load_context_state` from a document; :class:`SnapshotError` if it misfits."""
        return self.load_context_state(snapshot.context_from_document(doc, self._header()))

    @classmethod
    def from_document(
        cls, doc: Mapping[str, object], config: BanditConfig
    ) -> tuple[Bandit, dict[str, object]]:
        """Restore a bandit; :class:`SnapshotError` if the document does not fit ``config``."""
        bandit = cls(config)
        tables, engine = snapshot.from_document(doc, bandit._header())
        bandit._load(tables)
        return bandit, engine

    def _load(self, tables: snapshot.LearnedTables) -> None:
        if len(self._contexts):  # fixed locations: put each snapshot row in its context's row
            found = list(map(self._contexts.get, tables.locations, tables.levels))
            unknown = [
                (location, level)
                for location, level, row in zip(tables.locations, tables.levels, found, strict=True)
                if row is None
            ]
            if unknown:
                raise SnapshotError(
                    f"snapshot contexts {unknown[:5]} are not among the configured locations "
                    f"{list(self.config.locations)}"
                )
            rows = np.asarray(found, dtype=np.int64)
        else:  # dynamic contexts: adopt the snapshot's rows as they are
            self._allocate(max(INITIAL_CAPACITY, len(tables.locations)))
            self._contexts.extend(tables.locations, tables.levels)
            rows = np.arange(len(self._contexts), dtype=np.int64)
        counts = (tables.successes, tables.failures, tables.pulls)
        if self._count_dtype is not np.int64 and any(
            table.size and table.max() > self._widen_above for table in counts
        ):
            self._widen_counts(draws=False)
        for name, values in (
            ("_alpha", tables.alpha),
            ("_beta", tables.beta),
            ("_successes", tables.successes),
            ("_failures", tables.failures),
            ("_pulls", tables.pulls),
            ("_clock", tables.clock),
        ):
            getattr(self, name)[rows] = values
        self._load_rates(tables, rows)
        self._version[rows] += 1  # the posteriors changed under any cached fits
        if self._fit_cache is not None:
            self._fit_cache.clear()
        self.total_outcomes = tables.total_outcomes


_TABLES = (
    "_alpha",
    "_beta",
    "_successes",
    "_failures",
    "_pulls",
    "_clock",
    "_version",
    "_rate_won",
    "_rate_lost",
    "_rate_score",
)
_COUNT_TABLES = ("_successes", "_failures", "_pulls")
_RETRACTED_COUNTS = ("_failures", "_pulls")  # a rejection taken back


def _distinct(rows: IntArray) -> tuple[IntArray, IntArray]:
    """``(unique, inverse)`` as :func:`numpy.unique` gives them, quicker for one context."""
    if rows.size == 0 or (rows == rows[0]).all():
        return rows[:1], np.zeros(rows.size, dtype=np.intp)
    # np.unique's answer (sorted distinct rows, and where each row is among them),
    # without its Python-level bookkeeping, which dominates on a batch of ~100
    ordered = np.sort(rows)
    first = np.empty(ordered.size, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    unique: IntArray = ordered[first]
    inverse: IntArray = unique.searchsorted(rows)
    return unique, inverse


class _FitCache:
    """Direct-mapped cache of shape-ts fits: context row ``r`` lives in slot ``r % slots``.

    A slot remembers which row and which posterior version it holds; anything
    else is a miss and is refitted. Memory is fixed however many contexts
    there are, and a hot context keeps its slot unless another one hashes to it.
    """

    def __init__(self, columns: int, slots: int = FIT_CACHE_SLOTS) -> None:
        self.slots = slots
        self.row = np.full(slots, -1, dtype=np.int64)
        self.version = np.full(slots, -1, dtype=np.int64)
        self.fits = np.empty((slots, columns))

    def clear(self) -> None:
        self.row[:] = -1

    def lookup(self, rows: IntArray, versions: IntArray) -> tuple[FloatArray, IntArray]:
        """Fits of the (distinct) rows, and the positions among them that missed."""
        slot = rows % self.slots
        hit = (self.row[slot] == rows) & (self.version[slot] == versions)
        fits = self.fits[slot]
        return fits, np.flatnonzero(~hit)

    def store(self, rows: IntArray, versions: IntArray, fits: FloatArray) -> None:
        """Keep fresh fits; of rows sharing a slot in one call, the first one stays."""
        slot, first = np.unique(rows % self.slots, return_index=True)
        self.row[slot] = rows[first]
        self.version[slot] = versions[first]
        self.fits[slot] = fits[first]
