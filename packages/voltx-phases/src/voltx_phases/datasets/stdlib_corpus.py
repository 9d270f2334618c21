"""The embedded code corpus: the running Python's own standard-library sources.

When no Stack sample is given, `stack_python` (the corpus of the tokenizer and codebook phases)
is read from here: every machine that runs voltx has it, it is real, varied, well-formed Python,
and nobody has to download or license anything. Test suites (``test/``, ``tests/``,
``idle_test/``), ``site-packages`` and vendored third-party trees are left out: they are huge,
repetitive or not the standard library's own code. Files outside the size range of the Stack
reader are left out the same way. When `max_files` is smaller than what is left, the files are
taken evenly spread over the sorted list (every k-th), so a tiny corpus still spans the whole
library instead of stopping in ``asyncio/``. The result depends only on the Python version
(recorded in the stats) and the settings.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from voltx_phases.datasets.schema import Document

# Folder names whose contents are not standard-library source worth learning from.
_EXCLUDED_DIRS = frozenset(
    {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "_vendor"}
)


def stdlib_root() -> Path:
    """The folder holding the standard library of the running Python."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))


def stdlib_files(root: Path | None = None) -> list[Path]:
    """The ``*.py`` files of the standard library (exclusions above), sorted by relative path."""
    root = root or stdlib_root()
    files = []
    for folder, subfolders, names in os.walk(root):
        # Pruned while walking: the test suite alone is most of the stdlib's files.
        subfolders[:] = [name for name in subfolders if name not in _EXCLUDED_DIRS]
        files += [Path(folder, name) for name in names if name.endswith(".py")]
    return sorted(files, key=lambda path: path.relative_to(root).as_posix())


def read_stdlib(
    max_files: int,
    *,
    min_bytes: int = 50,
    max_bytes: int = 50_000,
    root: Path | None = None,
    dropped: Counter[str] | None = None,
) -> Iterator[Document]:
    """Up to `max_files` Documents, path relative to the stdlib folder, language python."""
    root = root or stdlib_root()
    dropped = dropped if dropped is not None else Counter()
    sized = []
    for path in stdlib_files(root):
        size = path.stat().st_size
        if min_bytes <= size <= max_bytes:
            sized.append(path)
        else:
            dropped["too short" if size < min_bytes else "too long"] += 1
    if len(sized) > max_files:
        sized = [sized[i * len(sized) // max_files] for i in range(max_files)]
    for path in sized:
        try:
            content = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            dropped["unreadable"] += 1
            continue
        yield Document(content=content, path=path.relative_to(root).as_posix())
