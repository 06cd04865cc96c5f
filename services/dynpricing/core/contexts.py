"""Contexts: a location plus a demand level derived from the supply/demand ratio."""

from __future__ import annotations

from dataclasses import dataclass

from dynpricing.core.errors import PricingError

DEMAND_LEVELS: tuple[str, ...] = ("low", "medium", "high")
CONTEXT_KEY_SEPARATOR = "|"


@dataclass(frozen=True)
class DemandThresholds:
    """Ratio bounds of active requests per available driver.

    A ratio below ``low_below`` is low demand, below ``medium_below`` medium,
    anything else (including no drivers at all) high.
    """

    low_below: float = 1.0
    medium_below: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.low_below <= self.medium_below:
            raise PricingError(
                f"demand thresholds must satisfy 0 <= low_below <= medium_below, "
                f"got low_below={self.low_below}, medium_below={self.medium_below}"
            )


DEFAULT_THRESHOLDS = DemandThresholds()


def demand_level(
    active_requests: int,
    available_drivers: int,
    thresholds: DemandThresholds = DEFAULT_THRESHOLDS,
) -> str:
    """Classify demand pressure; zero drivers means high demand (nobody can serve)."""
    if active_requests < 0 or available_drivers < 0:
        raise PricingError(
            f"active_requests and available_drivers must be >= 0, "
            f"got {active_requests} and {available_drivers}"
        )
    if available_drivers == 0:
        return "high"
    ratio = active_requests / available_drivers
    if ratio < thresholds.low_below:
        return "low"
    if ratio < thresholds.medium_below:
        return "medium"
    return "high"


def context_key(location: str, level: str) -> str:
    """The one-string name of a context, e.g. ``"Airport|high"`` (also the Kafka key)."""
    return f"{location}{CONTEXT_KEY_SEPARATOR}{level}"
