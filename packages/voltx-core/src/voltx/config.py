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

from voltx._logging import is_secret_key, register_config_secrets
from voltx.errors import ConfigError, VoltxError, did_you_mean

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
    instance = collect(cls, data, path, problems)
    if problems:
        raise ConfigError(problems)
    return instance


def collect(cls: type, data: Any, path: str, problems: list[str]) -> Any:
    """Build a `cls` instance from `data`, appending each problem to `problems` (then None).

    This is the one way voltx reads a table of settings, whether a phase's config, a table of
    ``voltx.toml`` or a backend's settings: every unknown key (with the nearest known one),
    wrong type, failed converter or validator and missing key is one ``path.key: problem`` line.
    A field whose metadata says what it expects (`expecting`) is reported as ``expected ...,
    got VALUE`` instead. A field with an attrs converter gets the raw value, as its constructor
    would; its validators run one field at a time, so that each bad value is reported.
    """
    if not isinstance(data, Mapping):
        problems.append(f"{path}: expected a table, got {type(data).__name__} {data!r}")
        return None
    before = len(problems)
    fields = {field.name: field for field in attrs.fields(cls)}
    hints = typing.get_type_hints(cls)
    # The top of voltx.toml holds only tables: a misspelt name there is an unknown table.
    noun = "table" if all(_is_table(hints.get(name, Any)) for name in fields) else "key"
    for key in data:
        if key not in fields:
            problems.append(f"{_join(path, key)}: unknown {noun}{did_you_mean(key, fields)}")
    values: dict[str, Any] = {}
    clean: set[str] = set()
    for name, field in fields.items():
        if name in data:
            start = len(problems)
            value = _field(field, hints.get(name, Any), data[name], _join(path, name), problems)
            values[field.alias or name] = value
            if len(problems) == start:
                clean.add(name)
    for name, field in fields.items():
        if field.default is attrs.NOTHING and field.init and name not in data:
            problems.append(f"{_join(path, name)}: required key is missing")
    _validate_across_fields(cls, values, clean, path, problems)
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except (TypeError, ValueError, VoltxError) as exc:
        problems.append(f"{path}: {exc}")
        return None


def expecting(description: str) -> dict[str, str]:
    """Field metadata: any problem with the field reads ``expected DESCRIPTION, got VALUE``.

    On a table of entries (a ``Mapping`` field) the description is of each entry's value.
    """
    return {_EXPECTED: description}


_EXPECTED = "voltx.expected"


def _join(path: str, key: object) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_table(hint: Any) -> bool:
    return attrs.has(hint) or typing.get_origin(hint) in _MAPPINGS


# What `typing.get_origin` gives for ``Mapping[str, X]``, ``tuple[str, ...]`` and their kin.
_MAPPINGS = (dict, Mapping)
_SEQUENCES = (list, tuple, set, frozenset, Sequence)


def _field(
    field: attrs.Attribute[Any], hint: Any, raw: Any, where: str, problems: list[str]
) -> Any:
    """The value to pass for one field: the raw value when a converter will take it."""
    expected = field.metadata.get(_EXPECTED)
    start = len(problems)
    if field.converter is not None:
        value = _convert(field.converter, raw, where, problems)
    else:
        value = _value(hint, raw, where, problems, expected)
    if len(problems) == start and field.validator is not None:
        _validate(field, value, where, problems)
    if expected is not None and len(problems) > start and not _is_table(hint):
        del problems[start:]
        problems.append(f"{where}: expected {expected}, got {raw!r}")
    if is_secret_key(field.name) and len(problems) > start:
        # A problem line quotes the value; a secret's value stays out of every message.
        del problems[start:]
        problems.append(f"{where}: not a valid value (not shown: it is a secret)")
    return raw if field.converter is not None else value


def _convert(converter: Any, raw: Any, where: str, problems: list[str]) -> Any:
    """What a field's attrs converter makes of `raw`; a failure is one problem."""
    if isinstance(converter, attrs.Converter):
        if converter.takes_self or converter.takes_field:  # type: ignore[attr-defined]
            return raw  # it needs the instance: the constructor converts and reports
        converter = converter.converter  # type: ignore[attr-defined]
    try:
        return converter(raw)
    except Exception as exc:  # a converter raises what it likes; each is one problem
        problems.append(f"{where}: {exc}")
        return None


def _value(hint: Any, raw: Any, where: str, problems: list[str], expected: str | None) -> Any:
    if attrs.has(hint):
        return collect(hint, raw, where, problems)
    origin = typing.get_origin(hint)
    if origin in _MAPPINGS:
        _key, entry = typing.get_args(hint) or (str, Any)
        if not isinstance(raw, Mapping):
            problems.append(f"{where}: expected a table, got {type(raw).__name__} {raw!r}")
            return None
        values = {}
        for key, item in raw.items():
            start = len(problems)
            values[str(key)] = _value(entry, item, _join(where, key), problems, None)
            if expected is not None and len(problems) > start:
                del problems[start:]
                problems.append(f"{_join(where, key)}: expected {expected}, got {item!r}")
        return values
    if origin in _SEQUENCES and isinstance(raw, str | bytes | Mapping):
        # cattrs would read "HF_TOKEN" as the list of its letters.
        problems.append(f"{where}: expected a list, got {type(raw).__name__} {raw!r}")
        return None
    element = _attrs_element(hint)
    if element is not None and isinstance(raw, list | tuple):
        # Each item read like a table of its own, so a bad value inside one (a curriculum
        # stage's lr) is named by its full path, 2.1.stages[0].lr, not "invalid value".
        items = [collect(element, item, f"{where}[{i}]", problems) for i, item in enumerate(raw)]
        return origin(items) if origin in (list, tuple) else tuple(items)
    try:
        return _converter.structure(raw, hint)
    except Exception as exc:  # cattrs raises many kinds; each becomes one readable line
        problems.extend(_describe(exc, where))
        return None


def _validate_across_fields(
    cls: type, values: Mapping[str, Any], clean: set[str], path: str, problems: list[str]
) -> None:
    """Run again, on a stand-in instance, the validators that need one (a cross-field check
    such as ``corpus_max_bytes`` not below ``corpus_min_bytes``), so their problems also come
    with the field's path and together with the others, not one at a time from the constructor.

    The stand-in holds the class defaults with the values given on top. Only fields that passed
    on their own (`clean`) are run again, so no problem is reported twice.
    """
    try:
        defaults = {f.name: getattr(cls(), f.name) for f in attrs.fields(cls)}
    except Exception:  # a class with required fields has no defaults to fill in
        defaults = {}
    given = {f.name: values[f.alias or f.name] for f in attrs.fields(cls) if f.name in clean}
    stand_in = SimpleNamespace(**{**defaults, **given})
    for field in attrs.fields(cls):
        if field.name in given and field.validator is not None and field.converter is None:
            _validate(field, given[field.name], _join(path, field.name), problems, stand_in)


def _validate(
    field: attrs.Attribute[Any],
    value: Any,
    where: str,
    problems: list[str],
    instance: Any = None,
) -> None:
    """Run one field's validator on its own (the instance is not made yet, so it gets None, or
    a stand-in holding the other values)."""
    try:
        field.validator(instance, field, value)  # type: ignore[misc]  # checked not None above
    except (TypeError, ValueError, VoltxError) as exc:
        message = str(exc)
        # A validator names its field ("poll_s must be positive"): put the whole path there.
        if message.startswith(f"{field.name} "):
            problems.append(where + message[len(field.name) :])
        else:
            problems.append(f"{where}: {message}")
    except Exception:  # a validator that needs the instance: the constructor will run it
        return


def _attrs_element(hint: Any) -> type | None:
    """The attrs class of a ``tuple[X, ...]`` or ``list[X]`` hint, else None."""
    args = [arg for arg in typing.get_args(hint) if arg is not Ellipsis]
    if len(args) == 1 and isinstance(args[0], type) and attrs.has(args[0]):
        return args[0]
    return None


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
    # From here on a secret typed on the command line is *** in every message and traceback.
    register_config_secrets({key: value for key, value in items})
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
