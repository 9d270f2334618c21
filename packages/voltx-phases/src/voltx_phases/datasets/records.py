"""One raw dataset record to one `Problem`, per source format (docs/formats.md, "unified
problem JSONL"): the field checks and conversions `readers` applies to each line it decodes.

A record that cannot be converted raises `BadRecord` with the reason; the reader adds the file
and line. Records left out on purpose (an APPS problem without solutions or test cases) are
counted in the `dropped` counter passed in, and give None.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from voltx_phases.datasets.apps_tests import call_test, stdio_test, with_apps_imports
from voltx_phases.datasets.multipl_e import MultiplERow
from voltx_phases.datasets.schema import DEFAULT_LANGUAGE, Problem


class BadRecord(ValueError):
    """Raised by a record parser; the reader turns it into a `DatasetLineError` with the file
    and line."""


# --- fields ----------------------------------------------------------------------------------


def required_str(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise BadRecord(
            f"missing string field {key!r}" if value is None else f"{key!r} must be a string"
        )
    return value


def optional_str(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise BadRecord(f"{key!r} must be a string")
    return value or None


def ident(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise BadRecord(f"missing field {key!r} (a string or an integer)")
    return str(value)


def strings(data: dict[str, Any], key: str) -> list[str]:
    value = data.get(key)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BadRecord(f"{key!r} must be a list of strings")
    return value


def language_name(name: str | None) -> str:
    name = (name or DEFAULT_LANGUAGE).strip().lower()
    return "python" if name == "py" else name


def _is_unified(data: dict[str, Any]) -> bool:
    return "query" in data and "solution" in data


# --- record parsers --------------------------------------------------------------------------


def unified_problem(data: dict[str, Any]) -> Problem:
    stop_tokens = data.get("stop_tokens") or []
    if stop_tokens:
        stop_tokens = strings(data, "stop_tokens")
    return Problem(
        id=ident(data, "id"),
        query=required_str(data, "query"),
        solution=required_str(data, "solution"),
        tests=tuple(strings(data, "tests")),
        language=language_name(optional_str(data, "language")),
        difficulty=optional_str(data, "difficulty"),
        stop_tokens=tuple(stop_tokens),
    )


def humaneval_problem(data: dict[str, Any]) -> Problem:
    if _is_unified(data):
        return unified_problem(data)
    prompt = required_str(data, "prompt")
    return Problem(
        id=ident(data, "task_id"),
        query=prompt,
        solution=prompt + required_str(data, "canonical_solution"),
        tests=(required_str(data, "test") + f"\ncheck({required_str(data, 'entry_point')})\n",),
    )


def mbpp_problem(data: dict[str, Any]) -> Problem:
    if _is_unified(data):
        return unified_problem(data)
    if "text" in data:
        query = required_str(data, "text")
        setup = optional_str(data, "test_setup_code") or ""
    else:  # the sanitized schema
        query = required_str(data, "prompt")
        setup = "\n".join(strings(data, "test_imports")) if "test_imports" in data else ""
    asserts = strings(data, "test_list")
    return Problem(
        id=f"MBPP/{ident(data, 'task_id')}",
        query=query,
        solution=required_str(data, "code"),
        tests=tuple(f"{setup}\n{test}" if setup.strip() else test for test in asserts),
    )


def multipl_e_problem(data: dict[str, Any]) -> Problem:
    if _is_unified(data):
        return unified_problem(data)
    # `MultiplERowError` names the field; `_read` turns it into the file:line error.
    return MultiplERow.from_json(data).to_problem()


def apps_problem(data: dict[str, Any], dropped: Counter[str]) -> Problem | None:
    if _is_unified(data):
        return unified_problem(data)
    problem_id = ident(data, "problem_id")
    question = required_str(data, "question")
    starter = optional_str(data, "starter_code") or ""
    difficulty = optional_str(data, "difficulty")
    solutions = _json_field(data, "solutions", list)
    cases = _json_field(data, "input_output", dict)
    if not solutions or not isinstance(solutions[0], str) or not solutions[0].strip():
        dropped["no solution"] += 1
        return None
    inputs, outputs = cases.get("inputs") or [], cases.get("outputs") or []
    if not isinstance(inputs, list) or not isinstance(outputs, list):
        raise BadRecord("input_output: 'inputs' and 'outputs' must be lists")
    if len(inputs) != len(outputs):
        raise BadRecord(f"input_output: {len(inputs)} inputs but {len(outputs)} outputs")
    if not inputs:
        dropped["no test cases"] += 1
        return None
    fn_name = cases.get("fn_name")
    if fn_name is not None and (not isinstance(fn_name, str) or not fn_name.isidentifier()):
        raise BadRecord("input_output: 'fn_name' must be an identifier")
    pairs = zip(inputs, outputs, strict=True)
    if fn_name:
        tests = tuple(call_test(fn_name, given, wanted) for given, wanted in pairs)
    else:
        tests = tuple(stdio_test(_text(given), _text(wanted)) for given, wanted in pairs)
    query = f"{question.rstrip()}\n\n{starter.rstrip()}\n" if starter.strip() else question
    return Problem(
        id=f"APPS/{problem_id}",
        query=query,
        solution=with_apps_imports(solutions[0]),
        tests=tests,
        difficulty=difficulty,
    )


def _json_field(data: dict[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if value is None or value == "":
        return kind()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise BadRecord(f"{key!r} is not valid JSON: {exc.msg}") from None
    if not isinstance(value, kind):
        raise BadRecord(f"{key!r} must hold a JSON {'list' if kind is list else 'object'}")
    return value


def _text(value: Any) -> str:
    """APPS stores a case's stdin or stdout as a string, or sometimes as a list of lines."""
    if isinstance(value, list):
        return "\n".join(str(line) for line in value)
    return str(value)
