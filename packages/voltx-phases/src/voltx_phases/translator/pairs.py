"""Code <-> text pairs for the encoder (phase 1.1) and code samples for the decoder (phase 1.2).

    from voltx_phases.translator.pairs import load_pairs
    pairs = load_pairs(corpus_jsonl, problems_jsonl, max_pairs=100_000)
    train, valid = split_pairs(pairs, valid_fraction=0.1)

The original trained on CodeSearchNet's (code, docstring) records. voltx builds the same kind of
pair from what the pipeline has:

- every function (`def` or `async def`, methods and nested functions included) of the corpus
  whose docstring is not empty: the text is `ast.get_docstring(fn)`, the code is the function's
  source from its `def` line to its end, dedented, **with the docstring removed**. Left in, the
  docstring would appear verbatim on both sides and InfoNCE would learn string matching; without
  it the encoder must relate code to its description, which is what the frames are for
  (solutions are encoded without their task statements). Decorators are left out; functions
  whose body is only a docstring, or whose docstring shares a line with other code, are skipped;
- every problem: (query, solution).

Files that do not parse (Python 2, fragments) are skipped. The order is deterministic: corpus
documents in file order, functions in source order, then the problems in file order.
"""

from __future__ import annotations

import ast
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import attrs
from tokenizers import Tokenizer

from voltx_phases.datasets.schema import read_documents, read_problems


@attrs.frozen
class Pair:
    """A code string and the natural-language text describing it."""

    code: str
    text: str
    source: str  # "corpus" or "problems"


def function_pairs(source: str) -> list[Pair]:
    """The (function without its docstring, docstring) pairs of one Python file."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    lines = source.splitlines(keepends=True)
    functions = [
        node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    functions.sort(key=lambda node: (node.lineno, node.col_offset))
    pairs = []
    for function in functions:
        docstring = ast.get_docstring(function, clean=True)
        if not docstring or not docstring.strip() or len(function.body) < 2:
            continue
        doc_node = function.body[0]
        first, last = doc_node.lineno, doc_node.end_lineno or doc_node.lineno
        if first <= function.lineno or function.body[1].lineno <= last:
            continue  # the docstring shares a line with the header or with the next statement
        end = function.end_lineno or last
        kept = lines[function.lineno - 1 : first - 1] + lines[last:end]
        code = textwrap.dedent("".join(kept)).strip("\n")
        if code.strip():
            pairs.append(Pair(code=code, text=docstring.strip(), source="corpus"))
    return pairs


def corpus_pairs(corpus: Path, limit: int = 0) -> Iterator[Pair]:
    """Function pairs of a corpus JSONL file, at most `limit` of them (0: all)."""
    count = 0
    for document in read_documents(corpus):
        if document.language.lower() != "python":
            continue
        for pair in function_pairs(document.content):
            yield pair
            count += 1
            if limit and count >= limit:
                return


def problem_pairs(problems: Path) -> list[Pair]:
    """(solution, query) of every problem with both non-empty."""
    return [
        Pair(code=problem.solution, text=problem.query, source="problems")
        for problem in read_problems(problems)
        if problem.solution.strip() and problem.query.strip()
    ]


def load_pairs(corpus: Path, problems: Path, max_pairs: int = 0) -> list[Pair]:
    """Corpus pairs then problem pairs, at most `max_pairs` (0: all).

    Under a cap the problems are kept whole (they are few, and the domain the pipeline is for)
    and the corpus fills the rest.
    """
    from_problems = problem_pairs(problems)
    if max_pairs:
        from_problems = from_problems[:max_pairs]
        room = max_pairs - len(from_problems)
        from_corpus = list(corpus_pairs(corpus, room)) if room else []
    else:
        from_corpus = list(corpus_pairs(corpus))
    return from_corpus + from_problems


def split_pairs(pairs: Sequence[Pair], valid_fraction: float) -> tuple[list[Pair], list[Pair]]:
    """Deterministic split: the first (1 - valid_fraction) of each source trains, the rest
    validates, as the original's first-90% rule.

    Applying the rule per source keeps the problems (appended last) from all landing in the
    valid split.
    """
    train: list[Pair] = []
    valid: list[Pair] = []
    for source in ("corpus", "problems"):
        group = [pair for pair in pairs if pair.source == source]
        cut = round(len(group) * (1.0 - valid_fraction))
        train.extend(group[:cut])
        valid.extend(group[cut:])
    return train, valid


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text without special tokens, truncated to `max_len` (as the original)."""
    encodings = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    return [encoding.ids[:max_len] for encoding in encodings]
