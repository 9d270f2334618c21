"""Range validators for the numeric fields of phase configs (torch-free: configs import this).

Every numeric config field declares its valid range where it is declared, so a bad value from
``--set``, ``voltx.toml`` or a profile is refused while the run is planned, before any work.
The messages leave out the field's name: voltx's config loader
prefixes each with the full key path (``2.0.batch_size: must be > 0, got -5``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def _bounded(low: float | None, high: float | None, *, open_low: bool = False) -> Validator:
    def check(_instance: Any, _attribute: attrs.Attribute[Any], value: float) -> None:
        # `not (value >= low)` also refuses NaN, which compares false with everything.
        if low is not None and open_low and not value > low:
            raise ValueError(f"must be > {low}, got {value!r}")
        if low is not None and not open_low and not value >= low:
            raise ValueError(f"must be at least {low}, got {value!r}")
        if high is not None and not value <= high:
            raise ValueError(f"must be at most {high}, got {value!r}")

    return check


def positive() -> Validator:
    """Counts, sizes and rates that must be above zero (batch sizes, step counts, lr)."""
    return _bounded(0, None, open_low=True)


def non_negative() -> Validator:
    """Values where zero means "none" or "off" (weight decay, a loss weight, a cap of 0)."""
    return _bounded(0, None)


def at_least(low: float) -> Validator:
    """A lower bound other than zero (e.g. HNSW's M >= 2)."""
    return _bounded(low, None)


def between(low: float, high: float) -> Validator:
    """A closed range, e.g. a fraction in [0, 1]."""
    return _bounded(low, high)


def seed() -> Validator:
    """A random seed: numpy's generators take 0 to 2**32 - 1."""
    return _bounded(0, 2**32 - 1)


def fraction() -> Validator:
    """A share of something, in [0, 1]."""
    return _bounded(0, 1)


def not_below(other: str) -> Validator:
    """Cross-field: this value may not be less than the field `other` of the same config."""

    def check(instance: Any, _attribute: attrs.Attribute[Any], value: float) -> None:
        # attrs runs validators once every field is set, so `other` holds its final value.
        limit = getattr(instance, other)
        if value < limit:
            raise ValueError(f"must be at least {other} ({limit}), got {value!r}")

    return check
