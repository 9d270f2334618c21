"""Phase configs: frozen attrs classes, checked strictly with every problem reported at once.

A phase's resolved config is its profile's instance with the project file's table and the
command line's ``--set`` overrides laid on top. Unknown keys and wrong types are collected with
their full path (``2.1.batch_sise: unknown key; did you mean batch_size``) and raised together as
one `ConfigError`.
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from types import SimpleNamespace
from typing import Any

import attrs
import cattrs
from cattrs.v import format_exception

from voltx.errors import ConfigError, did_you_mean

_converter = cattrs.Converter(forbid_extra_keys=True)


def _strict_scalar(kind: type) -> Any:
    def structure(value: Any, _type: Any) -> Any:
        # bool is an int subclass in Python, but `batch_size = true` is a typo, not a number.
        if isinstance(value, bool) and kind is not bool:
            raise TypeError(f"expected {kind.__name__}, got bool {value!r}")
        if kind is float and isinstance(value, int):
            return float(value)
        if not isinstance(value, kind):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return value

    return structure


for _kind in (int, float, str, bool):
    _converter.register_structure_hook(_kind, _strict_scalar(_kind))
_converter.register_unstructure_hook(PurePath, str)
_converter.register_structure_hook(
    PurePath, lambda value, cls: cls(_strict_scalar(str)(value, str))
)


def unstructure(config: Any) -> dict[str, Any]:
    """A config instance as plain data (dicts, lists, scalars)."""
    data = _converter.unstructure(config)
    if not isinstance(data, dict):
        raise TypeError(f"not an attrs config: {config!r}")
    return data


def canonical_json(data: Any) -> str:
    """Stable JSON text for hashing: sorted keys, no whitespace."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def structure(cls: type, data: Mapping[str, Any], path: str) -> Any:
    """Build a `cls` instance from `data`, raising one ConfigError with every problem."""
    problems: list[str] = []
    instance = _structure_into(cls, data, path, problems)
    if problems:
        raise ConfigError(problems)
    return instance


def _structure_into(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected a table, got {type(data).__name__} {data!r}")
        return None
    fields = {field.name: field for field in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    for key in data:
        if key not in fields:
            problems.append(f"{path}.{key}: unknown key{did_you_mean(key, fields)}")
    values: dict[str, Any] = {}
    for name in fields:
        if name not in data:
            continue
        hint = hints.get(name, Any)
        value = data[name]
        if attrs.has(hint):
            nested = _structure_into(hint, value, f"{path}.{name}", problems)
            if nested is not None:
                values[name] = nested
            continue
        element = _attrs_element(hint)
        if element is not None and isinstance(value, list | tuple):
            # Each item through this function too, so a bad value inside one (a curriculum
            # stage's lr) is named by its full path: 2.1.stages[0].lr.
            items = [
                _structure_into(element, item, f"{path}.{name}[{index}]", problems)
                for index, item in enumerate(value)
            ]
            if all(item is not None for item in items):
                values[name] = typing.get_origin(hint)(items)
            continue
        try:
            values[name] = _converter.structure(value, hint)
        except Exception as exc:  # cattrs raises many kinds; each becomes one readable line
            problems.extend(_describe(exc, f"{path}.{name}"))
    for name, field in fields.items():
        if field.default is attrs.NOTHING and field.init and name not in data:
            problems.append(f"{path}.{name}: required key is missing")
    # Values that did structure are range-checked even when other keys failed: every problem
    # is reported at once.
    _check_fields(cls, values, path, problems)
    if problems:
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        problems.append(f"{path}: {exc}")
        return None


def _attrs_element(hint: Any) -> type | None:
    """The attrs class of a ``tuple[X, ...]`` or ``list[X]`` hint, else None."""
    if typing.get_origin(hint) not in (tuple, list):
        return None
    args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
    if len(args) == 1 and isinstance(args[0], type) and attrs.has(args[0]):
        return args[0]
    return None


def _check_fields(cls: type, values: Mapping[str, Any], path: str, problems: list[str]) -> None:
    """Run each field's attrs validator alone, so every bad value is reported with its key path.

    The constructor would stop at the first failing validator and name only the class. Validators
    see a stand-in holding the class defaults with `values` on top, so a cross-field check
    (``corpus_max_bytes`` not below ``corpus_min_bytes``) reads the values being checked.
    """
    try:
        defaults = {f.name: getattr(cls(), f.name) for f in attrs.fields(cls)}
    except Exception:  # a class with required fields has no defaults to fill in
        defaults = {}
    stand_in = SimpleNamespace(**{**defaults, **values})
    for field in attrs.fields(cls):
        if field.validator is None or field.name not in values:
            continue
        try:
            field.validator(stand_in, field, getattr(stand_in, field.name))
        except (TypeError, ValueError) as exc:
            problems.append(f"{path}.{field.name}: {exc}")


def _describe(exc: Exception, path: str) -> list[str]:
    """One ``path: problem`` line per failure, with the index inside a list or tuple."""
    if isinstance(exc, cattrs.BaseValidationError):
        lines = cattrs.transform_error(exc, path=path, format_exception=_format_exception)
        split = (line.rpartition(" @ ") for line in lines)
        return [f"{where}: {message}" for message, _, where in split]
    return [f"{path}: {exc}"]


def _format_exception(exc: BaseException, kind: type | None) -> str:
    # Our scalar hooks already say what was expected and what came; cattrs' text would not.
    if isinstance(exc, TypeError | ValueError) and str(exc).startswith("expected "):
        return str(exc)
    return format_exception(exc, kind)


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge two plain-data tables; `override` wins."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = merge(current, value)
        else:
            merged[key] = value
    return merged


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax when it parses (16, 1e-4, true, [1, 2]), else a string.

    TOML dates and times stay text: no config field holds one, and ``run=2024-01-01`` means the
    string.
    """
    try:
        value = tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text
    if isinstance(value, dt.date | dt.time):  # datetime is a date subclass
        return text
    return value


def parse_overrides(
    assignments: Sequence[str] | Mapping[str, Any], phase_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Turn ``["2.1.batch_size=16"]`` (or a mapping of the same keys) into per-phase tables.

    The phase id is the longest registered id that prefixes the key, since ids contain dots.
    """
    if isinstance(assignments, str):
        assignments = [assignments]  # one assignment, not a sequence of characters
    if isinstance(assignments, Mapping):
        items = [(str(key), value) for key, value in assignments.items()]
    else:
        items = []
        for assignment in assignments:
            key, sep, text = assignment.partition("=")
            if not sep or not key.strip():
                raise ConfigError([f"--set {assignment!r}: expected PHASE.KEY=VALUE"])
            items.append((key.strip(), parse_value(text.strip())))
    problems: list[str] = []
    tables: dict[str, dict[str, Any]] = {}
    by_length = sorted(phase_ids, key=len, reverse=True)
    for key, value in items:
        if key in phase_ids:
            problems.append(f"{key}: name a key of phase {key}, as in {key}.KEY=VALUE")
            continue
        phase_id = next((pid for pid in by_length if key.startswith(pid + ".")), None)
        if phase_id is None:
            head = key.rsplit(".", 1)[0]
            problems.append(f"{key}: no phase {head!r}{did_you_mean(head, phase_ids)}")
            continue
        *parents, leaf = key[len(phase_id) + 1 :].split(".")
        if not leaf or not all(parents):
            problems.append(f"{key}: empty key name")
            continue
        table = tables.setdefault(phase_id, {})
        for parent in parents:
            table = table.setdefault(parent, {})
        table[leaf] = value
    if problems:
        raise ConfigError(problems)
    return tables
