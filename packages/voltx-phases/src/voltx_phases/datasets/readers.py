"""Streaming readers of the raw datasets phase 0.2 accepts, one per format.

Each reader is a generator over a file or a folder (its ``*.jsonl``, ``*.json`` files, plain or
``.gz``/``.zst``/``.bz2``, and ``.tar``/``.tar.gz`` archives of them, in sorted order), reads one
line at a time and yields `Problem` or `Document` records, so a 44 GB Stack dump is read in the
memory of its longest line. Compression and archives are recognised by their first bytes and
streamed (`streams`), and a JSON array file (``sanitized-mbpp.json`` is one) by its first
character; an
array is loaded whole, which is fine for the small benchmark files distributed that way, and
its "line" numbers are item numbers.

A malformed line (not JSON, not an object, a required field missing or of the wrong type)
raises `DatasetLineError` naming the file, the 1-based line and the reason. With
``skip_bad_lines=True`` the line is skipped and counted in the `ReadStats` passed in, and the
first few reasons are kept for the log; the original dropped a whole file on one bad line
without saying which. Well-formed records that are left out on purpose (an APPS problem without
solutions, a Stack file outside the size range) are counted under `ReadStats.dropped`.

The problem readers also accept lines already in the unified format (`docs/formats.md`, unified
problem JSONL; any line with ``query`` and ``solution``), so the original's converted
``humaneval.jsonl`` can be given as ``raw_humaneval``.
"""

from __future__ import annotations

import json
import tarfile
import zlib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import attrs

from voltx_phases.datasets.multipl_e import MultiplERowError
from voltx_phases.datasets.records import (
    BadRecord,
    apps_problem,
    humaneval_problem,
    language_name,
    mbpp_problem,
    multipl_e_problem,
    optional_str,
    unified_problem,
)
from voltx_phases.datasets.schema import DatasetLineError, Document, Problem
from voltx_phases.datasets.streams import SUFFIXES, dataset_streams

T = TypeVar("T")
_EXAMPLES_KEPT = 5


@attrs.define
class ReadStats:
    """What a reader saw: records yielded, bad lines skipped, records dropped by reason."""

    records: int = 0
    skipped: int = 0
    dropped: Counter[str] = attrs.field(factory=Counter)
    # "file:line: reason" of the first few skipped lines.
    examples: list[str] = attrs.field(factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "skipped_lines": self.skipped,
            "dropped": dict(sorted(self.dropped.items())),
            "skipped_examples": list(self.examples),
        }


# --- the readers -----------------------------------------------------------------------------


def read_unified(
    source: Path, *, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[Problem]:
    """Unified problem JSONL (`docs/formats.md`): `tests` is required, unknown keys ignored."""
    return _read(source, lambda data, _: unified_problem(data), skip_bad_lines, stats)


def read_humaneval(
    source: Path, *, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[Problem]:
    """HumanEval (`task_id, prompt, canonical_solution, test, entry_point`).

    As `docs/formats.md` (unified problem JSONL) describes: the query is the prompt (signature
    and docstring), the solution the prompt plus the canonical body (a complete function), and the
    one test the file's ``check`` function followed by its call on the entry point.
    """
    return _read(source, lambda data, _: humaneval_problem(data), skip_bad_lines, stats)


def read_mbpp(
    source: Path, *, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[Problem]:
    """MBPP, full (`text, code, test_list, test_setup_code`) or sanitized (`prompt, code,
    test_list, test_imports`). Each assert becomes one test, preceded by the setup code or the
    imports so it runs on its own. `challenge_test_list` is left out, as MBPP's own evaluation
    does."""
    return _read(source, lambda data, _: mbpp_problem(data), skip_bad_lines, stats)


def read_apps(
    source: Path, *, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[Problem]:
    """APPS (`problem_id, question, solutions, input_output, difficulty, starter_code`).

    `solutions` and `input_output` are JSON strings (lists and objects are accepted too). The
    query is the question, followed by the starter code when there is one; the solution the
    first reference solution, with the imports APPS's own harness silently provides added when
    it uses them unimported (`List`, `Counter`, `heapq`, ...). With a ``fn_name`` each case
    becomes an assert calling that function (or the method of ``Solution()``); without one each
    case becomes a stdin/stdout test (see `stdio_test`). Problems without solutions or without
    cases are dropped and counted.
    """
    return _read(source, lambda data, seen: apps_problem(data, seen.dropped), skip_bad_lines, stats)


def read_multipl_e(
    source: Path, *, skip_bad_lines: bool = False, stats: ReadStats | None = None
) -> Iterator[Problem]:
    """MultiPL-E (`name, language, prompt, doctests, original, prompt_terminology, tests,
    stop_tokens`).

    MultiPL-E ships no reference solutions: a problem is a prompt to complete in the target
    language and a test program to run after the completion. The unified schema needs a
    solution, so it holds the prompt, the program prefix every completion is appended to; these
    problems are for evaluation (phase 5.2/5.3, which run the language's own toolchain), never
    for training pairs. The id is ``MultiPL-E/<language>/<name>``; `stop_tokens` are kept.
    """
    return _read(source, lambda data, _: multipl_e_problem(data), skip_bad_lines, stats)


def read_stack(
    source: Path,
    *,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
    min_bytes: int = 50,
    max_bytes: int = 50_000,
    languages: Collection[str] | None = None,
) -> Iterator[Document]:
    """The Stack samples: `content` (or `code`), optional `language` (or HF's `lang`), `path`
    (or `max_stars_repo_path`).

    A missing language means python: the original required the field, and its own download
    snippet wrote only `content`, so it skipped every line (`docs/phases.md`, 0.2). Files outside
    [`min_bytes`, `max_bytes`] UTF-8 bytes are dropped and counted, as are files whose
    language is not in `languages` (all languages when None).
    """
    wanted = None if languages is None else {language_name(name) for name in languages}

    def parse(data: dict[str, Any], stats: ReadStats) -> Document | None:
        content = data.get("content", data.get("code"))
        if not isinstance(content, str):
            raise BadRecord("missing string field 'content' (or 'code')")
        language = language_name(optional_str(data, "language") or optional_str(data, "lang"))
        path = optional_str(data, "path") or optional_str(data, "max_stars_repo_path") or ""
        if wanted is not None and language not in wanted:
            stats.dropped["other language"] += 1
            return None
        size = len(content.encode("utf-8", errors="surrogatepass"))
        if size < min_bytes or size > max_bytes:
            stats.dropped["too short" if size < min_bytes else "too long"] += 1
            return None
        return Document(content=content, path=path, language=language)

    return _read(source, parse, skip_bad_lines, stats)


# --- lines and records -----------------------------------------------------------------------


def read_records(
    source: Path,
    parse: Callable[[dict[str, Any], ReadStats], T | None],
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
) -> Iterator[T]:
    """Records `parse` makes of each JSON object of `source`, with this module's handling of
    files, folders, gzip, arrays and bad lines; for readers of other modules (`multipl_e`)."""
    return _read(source, parse, skip_bad_lines, stats)


def source_files(source: Path) -> list[Path]:
    """`source` itself, or the dataset files under the folder `source` in sorted order."""
    if not source.is_dir():
        return [source]
    files = sorted(
        (p for p in source.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES)),
        key=lambda p: p.relative_to(source).as_posix(),
    )
    if not files:
        raise FileNotFoundError(f"{source}: no {', '.join('*' + s for s in SUFFIXES)} files")
    return files


def _read(
    source: Path,
    parse: Callable[[dict[str, Any], ReadStats], T | None],
    skip_bad_lines: bool,
    stats: ReadStats | None,
) -> Iterator[T]:
    stats = stats if stats is not None else ReadStats()
    for path, line, data in _objects(source):
        try:
            if isinstance(data, BadRecord):
                raise data
            record = parse(data, stats)
        except (BadRecord, KeyError, TypeError, ValueError, RecursionError) as exc:
            # Reasons written for people (a record parser's, or a MultiPL-E row's) stay as they are.
            described = isinstance(exc, BadRecord | MultiplERowError)
            reason = str(exc) if described else f"{type(exc).__name__}: {exc}"
            error = DatasetLineError(path, line, reason)
            if not skip_bad_lines:
                raise error from None
            stats.skipped += 1
            if len(stats.examples) < _EXAMPLES_KEPT:
                stats.examples.append(str(error))
            continue
        if record is not None:
            stats.records += 1
            yield record


def _objects(source: Path) -> Iterator[tuple[Path, int, dict[str, Any] | BadRecord]]:
    """(file, line, the line's JSON object or why it is not one), blank lines left out.

    Compressed files and the members of tar archives are streamed (`streams.dataset_streams`).
    """
    for path in source_files(source):
        number = 0
        where = path
        try:
            for where, stream in dataset_streams(path):
                number = 0
                first = stream.readline()
                if first.lstrip().startswith(b"["):
                    yield from _array_items(where, first + stream.read())
                    continue
                for number, raw in enumerate(_chain(first, stream), 1):
                    if raw.strip():
                        yield where, number, _decode(raw)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as exc:
            # A damaged .gz, .zst or archive (bad header, CRC, cut short) surfaces while
            # reading, not at open.
            raise DatasetLineError(where, number + 1, f"cannot read the file: {exc}") from None


def _chain(first: bytes, rest: Iterable[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _decode(raw: bytes) -> dict[str, Any] | BadRecord:
    try:
        data = json.loads(raw)
    except UnicodeDecodeError:
        return BadRecord("not valid UTF-8")
    except json.JSONDecodeError as exc:
        return BadRecord(f"not valid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return BadRecord("JSON nested too deeply")
    if not isinstance(data, dict):
        return BadRecord(f"expected a JSON object, got {type(data).__name__}")
    return data


def _array_items(path: Path, raw: bytes) -> Iterator[tuple[Path, int, dict[str, Any] | BadRecord]]:
    try:
        items = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetLineError(path, 1, f"not a valid JSON array: {exc}") from None
    except RecursionError:
        raise DatasetLineError(path, 1, "not a valid JSON array: nested too deeply") from None
    for number, item in enumerate(items, 1):
        if isinstance(item, dict):
            yield path, number, item
        else:
            yield path, number, BadRecord(f"expected a JSON object, got {type(item).__name__}")
