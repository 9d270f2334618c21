"""The Stack's files in the languages phases 5.2a/b/c train on, read in one pass.

    from voltx_phases.datasets.stack_languages import read_stack_languages
    files = read_stack_languages(raw_stack, ("rust", "go"), max_files=1000)
    files["rust"]                       # the first 1,000 Rust files, as `Document`s

A file's language is its ``language`` (or Hugging Face's ``lang``) field, with the spellings
The Stack and other exports use folded together (``JavaScript``, ``js``, ``Rust``, ``rs``,
``golang`` ...) and written back with the canonical name. Files outside [`min_bytes`,
`max_bytes`] UTF-8 bytes are dropped (the bounds `stack_python` keeps, `docs/formats.md`), and
each language keeps at most `max_files`, in file order. The pass stops as soon as every
language has its files: a dump of tens of gigabytes is read only as far as needed, and once
for a phase that trains two languages.

Phase 0.2 leaves these languages out of its outputs (`stack_python` stays the one corpus it
writes, and every output it writes is non-empty); a language phase reads `raw_stack` itself.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

from voltx_phases.datasets.readers import ReadStats, read_stack
from voltx_phases.datasets.schema import Document

# Corpus language -> the spellings of it a Stack export may carry (lower-cased).
STACK_LANGUAGES: Mapping[str, tuple[str, ...]] = {
    "javascript": ("javascript", "js", "node", "nodejs"),
    "java": ("java",),
    "rust": ("rust", "rs"),
    "go": ("go", "golang"),
}
_CANONICAL = {alias: name for name, aliases in STACK_LANGUAGES.items() for alias in aliases}


def canonical_language(name: str) -> str | None:
    """The corpus language a Stack ``language`` value stands for; None for any other."""
    return _CANONICAL.get(name.strip().lower())


def read_stack_languages(
    source: Path,
    languages: Collection[str],
    *,
    max_files: int,
    min_bytes: int = 50,
    max_bytes: int = 50_000,
    skip_bad_lines: bool = False,
    stats: ReadStats | None = None,
) -> dict[str, list[Document]]:
    """The files of each of `languages` in the Stack file or folder `source`, at most
    `max_files` per language (see the module docstring).

    Files of other languages are counted under ``stats.dropped["other language"]`` and files
    beyond a language's cap under ``"over the cap"``; sizes and malformed lines are counted by
    `read_stack`. A malformed line raises `DatasetLineError` unless `skip_bad_lines`.
    """
    unknown = sorted(set(languages) - set(STACK_LANGUAGES))
    if unknown:
        raise ValueError(f"no Stack language {unknown[0]!r} (known: {', '.join(STACK_LANGUAGES)})")
    stats = stats if stats is not None else ReadStats()
    found: dict[str, list[Document]] = {language: [] for language in languages}
    if max_files <= 0:
        return found
    documents = read_stack(
        source, skip_bad_lines=skip_bad_lines, stats=stats, min_bytes=min_bytes, max_bytes=max_bytes
    )
    for document in documents:
        language = canonical_language(document.language)
        if language is None or language not in found:
            stats.dropped["other language"] += 1
            continue
        if len(found[language]) >= max_files:
            stats.dropped["over the cap"] += 1
            continue
        found[language].append(Document(document.content, document.path, language))
        if all(len(files) >= max_files for files in found.values()):
            break
    # Leaving the loop early closes the reader's file when the generator is collected.
    return found
