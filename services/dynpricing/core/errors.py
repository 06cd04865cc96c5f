"""Errors raised by the pricing core.

All derive from :class:`PricingError` (a ``ValueError``), so a shell can refuse
bad input with one ``except`` while tests still pin the specific kind.
"""

from __future__ import annotations


class PricingError(ValueError):
    """Base class: the input cannot be priced or learned from as given."""


class PriceNotOnGridError(PricingError):
    """A price (multiplier) is not one of the configured arms."""


class UnknownContextError(PricingError):
    """Contexts are fixed by configuration and this one is not among them."""


class SnapshotError(PricingError):
    """A learning-state document is unreadable or does not fit the configuration."""


class MarketFileError(PricingError):
    """A market file breaks the format; the message names the offending field."""
