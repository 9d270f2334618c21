"""The labelled queries of phase 3.1: texts a user might send, each labelled with the strand that
should take it, generated from the problem datasets and the corpus (`docs/phases.md`, 3.1).

    split = build_query_set(problems, documents, caps=(40, 40, 40, 40, 40),
                            held_out_fraction=0.25, seed=42)
    split.train, split.held_out    # LabelledQuery lists, no source on both sides

- CodeRunner: a problem's description, as is and in other phrasings ("write a function ...");
- CodeDebugger: a problem's reference solution with one injected bug, and "fix this";
- CodeExplainer: a reference solution and "explain what this code does";
- MathEngine: arithmetic questions on the integers of a problem's tests, and the task of a
  math-heavy problem asked as a calculation;
- MemoryRetrieval: "find the function that ..." for a function of the corpus (its docstring or
  its name; the source is parsed, never run).

Every query remembers its source (the problem, keyed by its description so a problem listed in
two datasets is one source, or the corpus function); the split keeps each source on one side,
so no problem is both trained on and held out. Torch-free and deterministic: the same inputs,
caps and seed give the same queries in the same order.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
from collections.abc import Iterable, Sequence

import attrs

from voltx_phases.datasets.schema import Document, Problem
from voltx_phases.hard_core.strands_file import STRAND_NAMES

CODE_RUNNER, CODE_DEBUGGER, CODE_EXPLAINER, MATH_ENGINE, MEMORY_RETRIEVAL = range(5)

_RUNNER = (
    "{query}",
    "Write a Python function for this: {query}",
    "Implement this and give me the code.\n{query}",
    "Can you code the following?\n{query}",
)
_DEBUGGER = (
    "Fix this, it gives wrong answers.\n{code}",
    "This function has a bug. Find it and fix it.\n{code}",
    "Debug the following code:\n{code}",
    "Why does this fail its tests? Correct it.\n{code}",
)
_EXPLAINER = (
    "Explain what this code does:\n{code}",
    "What does this function do?\n{code}",
    "Walk me through this code step by step.\n{code}",
    "Describe in plain English what the following computes:\n{code}",
)
_ARITHMETIC = (
    "What is {a} * {b} + {c}?",
    "Compute {a} squared minus {b}.",
    "Calculate ({a} + {b}) / {c} to two decimal places.",
    "Solve for x: {a}x + {b} = {c}.",
    "What is the greatest common divisor of {a} and {b}?",
    "Is {a} a prime number?",
    "What is {a} mod {c}?",
    "Find the sum of the integers from 1 to {a}.",
)
_MATH_TASK = (
    "Work it out by hand, no code: {task}",
    "Give the formula and the arithmetic: {task}",
)
_RETRIEVAL_DESCRIBED = (
    "Find the function that does this: {summary}",
    "Look up the code in our codebase for: {summary}",
    'Search the corpus for the helper described as "{summary}".',
)
_RETRIEVAL_NAMED = (
    "Where is the function `{name}` defined?",
    "Find the function named `{name}` in the codebase.",
)
_MATH_WORDS = re.compile(
    r"\b(prime|factorial|divisor|divisible|gcd|lcm|fibonacci|modulo|square|sum|product|digit|"
    r"power|average|mean|multiple|integer|times|plus|minus|arithmetic|formula)s?\b",
    re.IGNORECASE,
)
_TASK_PREFIX = re.compile(r"^.*?\bthat\s+", re.DOTALL)
_INTEGER = re.compile(r"(?<![\w.])\d{1,4}(?![\w.])")
# One small, plausible bug: (pattern, replacement). Lookarounds keep `<` from matching `<=`
# or `<<`, and so on.
_MUTATIONS = (
    (re.compile(r"(?<![<>=!])<(?![<=])"), "<="),
    (re.compile(r"<="), "<"),
    (re.compile(r"(?<![<>=!-])>(?![>=])"), ">="),
    (re.compile(r">="), ">"),
    (re.compile(r"=="), "!="),
    (re.compile(r"!="), "=="),
    (re.compile(r" \+ "), " - "),
    (re.compile(r" - "), " + "),
    (re.compile(r" \* "), " + "),
    (re.compile(r"\brange\(([^()]*)\)"), r"range(\1 - 1)"),
    (re.compile(r"\bTrue\b"), "False"),
    (re.compile(r"\bFalse\b"), "True"),
    (re.compile(r"\band\b"), "or"),
    (re.compile(r"\bor\b"), "and"),
    (re.compile(r"\[0\]"), "[1]"),
    (re.compile(r"\[-1\]"), "[0]"),
)
# MemoryRetrieval queries generated per one kept: enough to draw from without parsing a
# full-size corpus.
_CORPUS_OVERDRAW = 3


@attrs.frozen
class LabelledQuery:
    """A query text, the index of its strand in `STRAND_NAMES`, and the source it came from."""

    text: str
    strand: int
    source: str


def problem_source(problem: Problem) -> str:
    """A problem's source key: its description, so one problem in two datasets is one source."""
    return "problem:" + hashlib.sha256(problem.query.strip().encode()).hexdigest()[:20]


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join((str(seed), *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def inject_bug(code: str, rng: random.Random) -> str | None:
    """`code` with one mutation at one place (never on a `def` line), or None when no
    mutation applies."""
    lines = code.split("\n")
    sites = [
        (row, match.span(), mutation)
        for row, line in enumerate(lines)
        if not line.lstrip().startswith(("def ", "class ", "#", "@"))
        for mutation in _MUTATIONS
        for match in mutation[0].finditer(line)
    ]
    if not sites:
        return None
    row, (start, end), (pattern, replacement) = rng.choice(sites)
    line = lines[row]
    lines[row] = line[:start] + pattern.sub(replacement, line[start:end], count=1) + line[end:]
    mutated = "\n".join(lines)
    return None if mutated == code else mutated


def problem_queries(problem: Problem, seed: int) -> list[LabelledQuery]:
    """The CodeRunner, CodeDebugger, CodeExplainer and MathEngine queries of one problem."""
    source = problem_source(problem)
    query, code = problem.query.strip(), problem.solution.strip()
    queries = [LabelledQuery(t.format(query=query), CODE_RUNNER, source) for t in _RUNNER]
    queries += [LabelledQuery(t.format(code=code), CODE_EXPLAINER, source) for t in _EXPLAINER]
    for index, template in enumerate(_DEBUGGER):
        buggy = inject_bug(code, _rng(seed, source, "bug", str(index)))
        if buggy is not None:
            queries.append(LabelledQuery(template.format(code=buggy), CODE_DEBUGGER, source))
    rng = _rng(seed, source, "math")
    numbers = [int(n) for n in _INTEGER.findall(" ".join(problem.tests))] or [rng.randint(2, 99)]
    for template in rng.sample(_ARITHMETIC, 3):
        a, b, c = (max(2, rng.choice(numbers) + rng.randint(0, 9)) for _ in range(3))
        queries.append(LabelledQuery(template.format(a=a, b=b, c=c), MATH_ENGINE, source))
    if _MATH_WORDS.search(query):
        task = _TASK_PREFIX.sub("", query, count=1)[:300].strip()
        queries += [LabelledQuery(t.format(task=task), MATH_ENGINE, source) for t in _MATH_TASK]
    return queries


def _functions(document: Document) -> list[tuple[str, str | None]]:
    """(name, first docstring line) of every function of a Python document; [] when it does
    not parse. `ast.parse` only reads the text."""
    try:
        tree = ast.parse(document.content)
    except (SyntaxError, ValueError, RecursionError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith(
            "_"
        ):
            docstring = ast.get_docstring(node)
            summary = docstring.strip().split("\n")[0].strip().rstrip(".") if docstring else ""
            found.append((node.name, summary if len(summary.split()) >= 3 else None))
    return found


def corpus_queries(documents: Iterable[Document], wanted: int) -> list[LabelledQuery]:
    """MemoryRetrieval queries for the corpus's public functions, in corpus order, until about
    `_CORPUS_OVERDRAW` x `wanted` are found."""
    queries: list[LabelledQuery] = []
    for document in documents:
        if len(queries) >= _CORPUS_OVERDRAW * wanted:
            break
        if document.language != "python":
            continue
        for name, summary in _functions(document):
            source = f"corpus:{document.path}:{name}"
            named = [t.format(name=name) for t in _RETRIEVAL_NAMED]
            described = (
                [] if summary is None else [t.format(summary=summary) for t in _RETRIEVAL_DESCRIBED]
            )
            queries += [LabelledQuery(text, MEMORY_RETRIEVAL, source) for text in described + named]
    return queries


@attrs.frozen
class QuerySplit:
    """The drawn queries, split by source: no source has queries on both sides."""

    train: list[LabelledQuery]
    held_out: list[LabelledQuery]


def held_out_sources(sources: Iterable[str], held_out_fraction: float, seed: int) -> set[str]:
    """The sources in a seeded order, then the first `held_out_fraction` of the problems and,
    separately, of the corpus functions."""
    held: set[str] = set()
    distinct = sorted(set(sources))
    for kind in ("problem:", "corpus:"):
        ordered = [source for source in distinct if source.startswith(kind)]
        ordered.sort(key=lambda source: hashlib.sha256(f"{seed}:{source}".encode()).digest())
        # At least one source per side once there are two, so a small set still has both.
        count = round(held_out_fraction * len(ordered))
        if len(ordered) >= 2:
            count = min(max(count, 1), len(ordered) - 1)
        held.update(ordered[:count])
    return held


def build_query_set(
    problems: Iterable[Problem],
    documents: Iterable[Document],
    caps: Sequence[int],
    held_out_fraction: float,
    seed: int,
) -> QuerySplit:
    """Every strand's queries, deduplicated and split by source, then at most `caps[k]` of
    strand k drawn with `seed`: `held_out_fraction` of them from the held-out side and the rest
    from the training side, so each side gets its share of every strand whose pool allows.
    A text generated under two strands is ambiguous and dropped from both."""
    if len(caps) != len(STRAND_NAMES):
        raise ValueError(f"caps must give {len(STRAND_NAMES)} counts, got {len(caps)}")
    generated = [q for problem in problems for q in problem_queries(problem, seed)]
    generated += corpus_queries(documents, caps[MEMORY_RETRIEVAL])
    labels: dict[str, set[int]] = {}
    for query in generated:
        labels.setdefault(query.text, set()).add(query.strand)
    unique: dict[str, LabelledQuery] = {}
    for query in generated:
        if len(labels[query.text]) == 1 and query.text not in unique:
            unique[query.text] = query
    held = held_out_sources((q.source for q in unique.values()), held_out_fraction, seed)
    split = QuerySplit(train=[], held_out=[])
    for strand, cap in enumerate(caps):
        held_cap = max(1, round(held_out_fraction * cap))
        for side, side_cap in ((split.held_out, held_cap), (split.train, cap - held_cap)):
            is_held = side is split.held_out
            pool = [
                q for q in unique.values() if q.strand == strand and (q.source in held) == is_held
            ]
            _rng(seed, "draw", str(strand), str(is_held)).shuffle(pool)
            side.extend(pool[:side_cap])
    return split


def strand_counts(queries: Iterable[LabelledQuery]) -> dict[str, int]:
    """Queries per strand name, every strand listed."""
    counts = dict.fromkeys(STRAND_NAMES, 0)
    for query in queries:
        counts[STRAND_NAMES[query.strand]] += 1
    return counts
