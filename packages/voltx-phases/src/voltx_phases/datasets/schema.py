"""The two record formats every phase exchanges: unified problems and corpus documents.

Unified problem JSONL (`docs/formats.md`, unified problem JSONL): one object per line with
``id``, ``query``, ``solution``, ``tests`` (a list of executable assert snippets, required), and
optional ``language``, ``difficulty`` and ``stop_tokens`` (MultiPL-E's completion stops; written
only when there are some). Corpus JSONL: one object per line with ``content`` and, when
known, ``path`` and ``language`` (``python`` is assumed when absent: the original's Stack reader
required it and so skipped every line of its own download).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from voltx.errors import VoltxError

DEFAULT_LANGUAGE = "python"


@attrs.frozen
class Problem:
    """One programming problem with its reference solution and tests."""

    id: str
    query: str
    solution: str
    tests: tuple[str, ...]
    language: str = DEFAULT_LANGUAGE
    difficulty: str | None = None
    stop_tokens: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "query": self.query,
            "solution": self.solution,
            "tests": list(self.tests),
            "language": self.language,
        }
        if self.difficulty is not None:
            data["difficulty"] = self.difficulty
        if self.stop_tokens:
            data["stop_tokens"] = list(self.stop_tokens)
        return data


@attrs.frozen
class Document:
    """One source file of a code corpus."""

    content: str
    path: str = ""
    language: str = DEFAULT_LANGUAGE

    def to_json(self) -> dict[str, Any]:
        return {"content": self.content, "path": self.path, "language": self.language}


class DatasetLineError(VoltxError, ValueError):
    """A line of a dataset file is malformed; names the file and the 1-based line number.

    A `VoltxError`, so the CLI prints it as one line; still a `ValueError` for callers that
    caught it as one.
    """

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        self.path = str(path)
        self.line = line
        self.reason = reason
        super().__init__(f"{path}:{line}: {reason}")


def write_jsonl(path: Path, records: Iterator[Problem | Document] | list[Any]) -> int:
    """Write records (anything with `to_json`) one per line; returns how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.to_json(), ensure_ascii=False))
            out.write("\n")
            count += 1
    return count


def read_problems(path: Path) -> Iterator[Problem]:
    """Stream a unified problem JSONL file written by phase 0.2 (trusted: it was validated)."""
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                data = json.loads(line)
                yield Problem(
                    id=data["id"],
                    query=data["query"],
                    solution=data["solution"],
                    tests=tuple(data["tests"]),
                    language=data.get("language") or DEFAULT_LANGUAGE,
                    difficulty=data.get("difficulty"),
                    stop_tokens=tuple(data.get("stop_tokens") or ()),
                )


def read_documents(path: Path) -> Iterator[Document]:
    """Stream a corpus JSONL file written by phase 0.2."""
    with open(path, encoding="utf-8") as stream:
        for line in stream:
            if line.strip():
                data = json.loads(line)
                yield Document(
                    content=data["content"],
                    path=data.get("path", ""),
                    language=data.get("language") or DEFAULT_LANGUAGE,
                )
