"""Which numeric fields of a phase config declare no valid range.

Every numeric field of a phase config should carry an attrs validator, so a bad value
(``batch_size = -5``) is refused while the run is planned rather than deep inside a worker.
The contract suite (`voltx.testing.phase_contract`) fails on a field without one;
plugin loading (`voltx.plugins`) warns (`UncheckedConfigWarning`) for any registered phase, so a
third-party phase still loads and runs.
"""

from __future__ import annotations

import typing
import warnings
from typing import Any

import attrs

_NUMERIC = (int, float)
_BY_NAME: dict[str, Any] = {"int": int, "float": float}


class UncheckedConfigWarning(UserWarning):
    """A phase's config has numeric fields that accept any value."""


def unchecked_numeric_fields(config_class: type, path: str = "") -> list[str]:
    """Key paths of the int/float fields of `config_class` (and of attrs classes nested in it,
    alone or in a tuple or list) that have no validator."""
    found: list[str] = []
    try:
        hints = typing.get_type_hints(config_class)
    except NameError:  # a class defined inside a function: read the annotations' text
        hints = {}
    for field in attrs.fields(config_class):
        key = f"{path}.{field.name}" if path else field.name
        hint = hints.get(field.name, _BY_NAME.get(str(field.type), field.type))
        if hint in _NUMERIC and field.validator is None:
            found.append(key)
        for nested in _attrs_classes_in(hint):
            found.extend(unchecked_numeric_fields(nested, key))
    return found


def _attrs_classes_in(hint: Any) -> list[type]:
    if isinstance(hint, type) and attrs.has(hint):
        return [hint]
    if typing.get_origin(hint) in (tuple, list):
        return [arg for arg in typing.get_args(hint) if isinstance(arg, type) and attrs.has(arg)]
    return []


def warn_unchecked_fields(phase_id: str, config_class: type, origin: str) -> None:
    """Warn once, naming the numeric fields of a phase's config that accept any value."""
    unchecked = unchecked_numeric_fields(config_class)
    if unchecked:
        fields = ", ".join(f"{phase_id}.{key}" for key in unchecked)
        warnings.warn(
            f"plugin {origin!r}: config fields without a valid range (attrs validator), so a bad "
            f"value reaches the phase instead of being refused when planned: {fields}",
            UncheckedConfigWarning,
            stacklevel=2,
        )
