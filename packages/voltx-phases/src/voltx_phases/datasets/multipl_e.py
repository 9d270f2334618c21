"""MultiPL-E rows: the prompt to complete, the test program, the stop tokens, in each language.

    from voltx_phases.datasets.multipl_e import read_multipl_e_rows, sandbox_language
    for row in read_multipl_e_rows(Path("humaneval-js.jsonl")):
        program = row.program(completion)            # prompt + completion cut at a stop token
        evaluate(program, [row.tests], language_name=row.sandbox_language)

MultiPL-E (`docs/formats.md`, MultiPL-E rows) translates HumanEval and MBPP into other
languages. A row has ``name`` (``HumanEval_53_add``), ``language`` (MultiPL-E's own code: ``js``,
``java``, ``rs``, ``go_test.go``, ``py``, ``cpp`` ...), ``prompt`` (the signature and the
translated docstring, which a model completes), ``doctests`` (``keep``, ``remove`` or
``transform``), ``original`` (the Python file it was translated from), ``prompt_terminology``
(``reworded`` or ``verbatim``), ``tests`` (the program that follows the completion and checks
it) and ``stop_tokens`` (where MultiPL-E cuts a completion). It ships no reference solution.

Phase 0.2 converts the rows into the unified problem JSONL of the `multipl_e` artifact
(`readers.read_multipl_e`, which uses `MultiplERow.to_problem`); phases that evaluate a model
read them back as rows with `rows_from_problems`, keeping what the unified schema has no field
for out of the way (the prompt is the problem's query and solution; stop tokens are kept).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx_phases.datasets.schema import Problem, read_problems

# MultiPL-E's language codes -> the sandbox's language names (`voltx_phases.execution`).
SANDBOX_LANGUAGES: Mapping[str, str] = {
    "py": "python",
    "python": "python",
    "js": "javascript",
    "javascript": "javascript",
    "java": "java",
    "rs": "rust",
    "rust": "rust",
    "go": "go",
    "go_test.go": "go",
}
FIELDS = (
    "name",
    "language",
    "prompt",
    "doctests",
    "original",
    "prompt_terminology",
    "tests",
    "stop_tokens",
)


class MultiplERowError(ValueError):
    """A MultiPL-E row lacks a field or has one of the wrong type; the message names it."""


def sandbox_language(code: str) -> str | None:
    """The sandbox's name for MultiPL-E's language `code`; None for a language it cannot run."""
    return SANDBOX_LANGUAGES.get(code.strip().lower())


def truncate_at_stop_tokens(completion: str, stop_tokens: Iterable[str]) -> str:
    """`completion` up to the earliest stop token, as MultiPL-E's evaluation cuts it."""
    cut = len(completion)
    for token in stop_tokens:
        if token:
            found = completion.find(token)
            if found != -1:
                cut = min(cut, found)
    return completion[:cut]


@attrs.frozen
class MultiplERow:
    """One MultiPL-E problem in one language, with every field of the dataset's rows."""

    name: str
    language: str  # MultiPL-E's code (js, rs, go_test.go, ...), as in the row
    prompt: str
    tests: str
    stop_tokens: tuple[str, ...] = ()
    doctests: str = ""
    original: str = ""
    prompt_terminology: str = ""

    @property
    def sandbox_language(self) -> str | None:
        return sandbox_language(self.language)

    @property
    def id(self) -> str:
        return f"MultiPL-E/{_unified_language(self.language)}/{self.name}"

    def program(self, completion: str) -> str:
        """The source a completion is tested as: the prompt, then the completion cut at the
        first stop token (the test program follows it, `evaluate` appends it)."""
        return self.prompt + truncate_at_stop_tokens(completion, self.stop_tokens)

    def to_problem(self) -> Problem:
        """The unified problem of the `multipl_e` artifact: the prompt stands for the solution
        (it is the program prefix every completion is appended to), the one test is the row's
        test program."""
        return Problem(
            id=self.id,
            query=self.prompt,
            solution=self.prompt,
            tests=(self.tests,),
            language=_unified_language(self.language),
            stop_tokens=self.stop_tokens,
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MultiplERow:
        """A row from one JSON object of MultiPL-E's format; `MultiplERowError` names a missing
        or mistyped field. ``doctests``, ``original`` and ``prompt_terminology`` are optional
        (older exports lack them); ``stop_tokens`` may be null."""
        stop_tokens = data.get("stop_tokens")
        if stop_tokens is None:
            stop_tokens = []
        if not isinstance(stop_tokens, list) or not all(isinstance(t, str) for t in stop_tokens):
            raise MultiplERowError("'stop_tokens' must be a list of strings")
        return cls(
            name=_required(data, "name"),
            language=_required(data, "language"),
            prompt=_required(data, "prompt"),
            tests=_required(data, "tests"),
            stop_tokens=tuple(stop_tokens),
            doctests=_optional(data, "doctests"),
            original=_optional(data, "original"),
            prompt_terminology=_optional(data, "prompt_terminology"),
        )


def read_multipl_e_rows(
    source: Path, *, skip_bad_lines: bool = False, stats: Any = None
) -> Iterator[MultiplERow]:
    """Every row of a MultiPL-E file or folder (JSONL, JSON array, gzip; see `readers`), with
    all its fields. A malformed line raises `DatasetLineError` naming the file and line, or is
    skipped and counted in `stats` (a `readers.ReadStats`) with `skip_bad_lines`."""
    from voltx_phases.datasets import readers  # readers imports this module for its parser

    return readers.read_records(source, _row_or_bad, skip_bad_lines, stats)


def rows_from_problems(path: Path) -> dict[str, list[MultiplERow]]:
    """The problems of a `multipl_e` artifact file as rows, grouped by sandbox language (those
    in a language the sandbox cannot run are left out)."""
    grouped: dict[str, list[MultiplERow]] = {}
    for problem in read_problems(path):
        language = sandbox_language(problem.language)
        if language is None:
            continue
        row = MultiplERow(
            name=problem.id.rsplit("/", 1)[-1],
            language=problem.language,
            prompt=problem.query,
            tests=problem.tests[0] if problem.tests else "",
            stop_tokens=problem.stop_tokens,
        )
        grouped.setdefault(language, []).append(row)
    return grouped


def _row_or_bad(data: dict[str, Any], _stats: Any) -> MultiplERow:
    return MultiplERow.from_json(data)


def _unified_language(code: str) -> str:
    # The unified schema keeps the row's own code, lower-cased, except Python's ("py"), which
    # every reader writes as "python".
    name = code.strip().lower()
    return "python" if name == "py" else name


def _required(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise MultiplERowError(
            f"missing string field {key!r}" if value is None else f"{key!r} must be a string"
        )
    return value


def _optional(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MultiplERowError(f"{key!r} must be a string")
    return value
