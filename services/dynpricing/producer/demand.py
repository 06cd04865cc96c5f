"""A seeded model of how requests and drivers evolve per location.

Each location has a daily pattern (a sinusoid over ``day_length_s``, phase
shifted per location), noise per event, and occasional bursts that start at
random moments in time (``burst_probability`` per second, per location) and
last ``BURST_DURATION_S``. The
requests/drivers ratio is log-normal around the pattern, wide enough that low,
medium and high demand all occur within seconds of any run. Pure: time and
randomness are passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MEAN_DRIVERS = 20.0
PATTERN_AMPLITUDE = 0.6  # log-ratio swing of the daily pattern
RATIO_NOISE_SIGMA = 0.6  # log-ratio noise per event
BASE_LOG_RATIO = 0.3  # slightly more requests than drivers on average
BURST_FACTOR = 2.5
BURST_DURATION_S = 5.0


@dataclass(frozen=True, slots=True)
class DemandSample:
    location: str
    active_requests: int
    available_drivers: int


class DemandModel:
    """Draws demand for locations in turn; the state is the bursts in progress."""

    def __init__(
        self,
        locations: tuple[str, ...],
        rng: np.random.Generator,
        day_length_s: float,
        burst_probability: float,
    ) -> None:
        if not locations:
            raise ValueError("at least one location is needed")
        self.locations = locations
        self.rng = rng
        self.day_length_s = day_length_s
        self.burst_probability = burst_probability
        self._burst_until = dict.fromkeys(locations, -math.inf)
        self._last_seen = dict.fromkeys(locations, 0.0)
        self._phase = {loc: 2 * math.pi * i / len(locations) for i, loc in enumerate(locations)}
        self._next = 0

    def sample(self, elapsed_s: float) -> DemandSample:
        location = self.locations[self._next]
        self._next = (self._next + 1) % len(self.locations)
        if self.rng.random() < self._burst_chance(location, elapsed_s):
            self._burst_until[location] = elapsed_s + BURST_DURATION_S
        pattern = PATTERN_AMPLITUDE * math.sin(
            2 * math.pi * elapsed_s / self.day_length_s + self._phase[location]
        )
        log_ratio = BASE_LOG_RATIO + pattern + self.rng.normal(0.0, RATIO_NOISE_SIGMA)
        if elapsed_s < self._burst_until[location]:
            log_ratio += math.log(BURST_FACTOR)
        drivers = int(self.rng.poisson(MEAN_DRIVERS))
        requests = int(self.rng.poisson(max(drivers, 1) * math.exp(log_ratio)))
        return DemandSample(location, requests, drivers)

    def _burst_chance(self, location: str, elapsed_s: float) -> float:
        """Chance that a burst started since this location was last sampled."""
        quiet_s = max(0.0, elapsed_s - self._last_seen[location])
        self._last_seen[location] = elapsed_s
        return 1.0 - math.pow(1.0 - self.burst_probability, quiet_s)
