"""Context rows by name: where a demand event or an outcome lands in the bandit's tables.

Shared by every role that holds a bandit. A new context is added when first
seen, unless that would pass ``MAX_CONTEXTS`` (with no fixed ``LOCATIONS``) or
the location is not among the fixed ones; both refusals are
:class:`~dynpricing.events.InvalidEvent` with the dead-letter reason.
"""

from __future__ import annotations

from dynpricing import events
from dynpricing.core.bandit import Bandit
from dynpricing.core.contexts import context_key
from dynpricing.core.errors import PriceNotOnGridError, UnknownContextError

Names = list[tuple[str, str, str]]
"""(location, demand level, Kafka key) per context row."""


class ContextRows:
    """The bandit's rows by (location, demand level), cached for the hot path."""

    def __init__(self, bandit: Bandit, max_contexts: int) -> None:
        self.bandit = bandit
        self.max_contexts = max_contexts
        self._rows: dict[tuple[str, str], int] = {}
        self._names: Names = []
        self.price_labels = [f"{float(price):g}" for price in bandit.prices]

    def row(self, location: str, level: str) -> int:
        """The row of a context, added when new; raises InvalidEvent when it cannot be."""
        row = self._rows.get((location, level))
        if row is None:
            row = self._row(location, level)
            self._rows[(location, level)] = row
        return row

    def _row(self, location: str, level: str) -> int:
        bandit = self.bandit
        found = bandit.find_context(location, level)
        if found is not None:
            return found
        if not bandit.config.locations and bandit.n_contexts >= self.max_contexts:
            raise events.InvalidEvent(
                "too_many_contexts",
                f"{bandit.n_contexts} contexts already (MAX_CONTEXTS);"
                f" {events.shown(location)}|{level} would be one more",
            )
        try:
            return bandit.context_index(location, level)
        except UnknownContextError as exc:
            raise events.InvalidEvent("unknown_location", str(exc)) from None

    def locate(self, location: str, level: str, price: float) -> tuple[int, int]:
        """Row and arm of a context and price named by a message; raises InvalidEvent.

        The price is checked before the context is looked up, so a refused
        outcome never creates a context.
        """
        try:
            arm = self.bandit.arm_index(price)
        except PriceNotOnGridError as exc:
            raise events.InvalidEvent("price_not_on_grid", str(exc)) from None
        return self.row(location, level), arm

    def names(self, highest: int) -> Names:
        """(location, level, Kafka key) per row up to ``highest``, extended as rows appear."""
        names = self._names
        for row in range(len(names), highest + 1):
            location, level = self.bandit.context_name(row)
            names.append((location, level, context_key(location, level)))
        return names
