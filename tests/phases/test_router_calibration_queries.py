"""Phase 3.1's labelled queries (generation, dedup, split by source) and its refusal of a query
set with one strand, before any model is loaded."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import voltx
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, memory_store_url
from voltx_phases.datasets.schema import Document, Problem
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.router_queries import (
    CODE_DEBUGGER,
    MEMORY_RETRIEVAL,
    build_query_set,
    inject_bug,
    problem_queries,
    strand_counts,
)
from voltx_phases.hard_core.specs import PHASES
from voltx_phases.hard_core.strands_file import STRAND_NAMES
from voltx_phases.soft_core.config import PROBLEM_DATASETS

CORPUS = Document(
    path="pkg/util.py",
    content=(
        "def average_of(values):\n"
        '    """Return the arithmetic mean of a list of numbers."""\n'
        "    return sum(values) / len(values)\n\n"
        "def _private():\n    return 1\n\n"
        "class Box:\n"
        "    def area(self, width, height):\n"
        '        """Compute the area of a rectangle from its sides."""\n'
        "        return width * height\n"
    ),
)


def _problems(count: int = 30) -> list[Problem]:
    """Small problems of the generated datasets' shape, each with its own numbers."""
    return [
        Problem(
            id=f"gen/{i}",
            query=f"Write a function `scale_{i}(x)` that returns {i + 2} times `x` plus {i}.",
            solution=f"def scale_{i}(x):\n    if x < 0:\n        return 0\n"
            f"    return x * {i + 2} + {i}\n",
            tests=(f"assert scale_{i}(3) == {3 * (i + 2) + i}",),
        )
        for i in range(count)
    ]


def test_every_strand_gets_several_phrasings_from_one_problem() -> None:
    problem = Problem(
        id="p1",
        query="Write a function `total(xs)` that returns the sum of the integers in `xs`.",
        solution="def total(xs):\n    result = 0\n    for x in xs:\n        result = result + x\n"
        "    return result\n",
        tests=("assert total([1, 2, 3]) == 6",),
    )
    queries = problem_queries(problem, seed=0)
    counts = strand_counts(queries)
    assert counts["CodeRunner"] == 4 and counts["CodeExplainer"] == 4
    assert counts["CodeDebugger"] >= 3
    assert counts["MathEngine"] >= 4  # three arithmetic questions and the task (math words)
    assert counts["MemoryRetrieval"] == 0
    assert len({q.source for q in queries}) == 1
    for query in queries:
        if query.strand == CODE_DEBUGGER:
            assert problem.solution.strip() not in query.text  # the code shown has a bug
    assert problem_queries(problem, seed=0) == queries  # seeded


def test_inject_bug_changes_one_place_and_never_the_signature() -> None:
    code = "def f(a, b):\n    if a < b:\n        return a + b\n    return a == b\n"
    for seed in range(20):
        buggy = inject_bug(code, random.Random(seed))
        assert buggy is not None and buggy != code
        assert buggy.split("\n")[0] == "def f(a, b):"
        pairs = zip(code.split("\n"), buggy.split("\n"), strict=True)
        changed = [i for i, (x, y) in enumerate(pairs) if x != y]
        assert len(changed) == 1
    assert inject_bug("def f():\n    pass\n", random.Random(0)) is None


def test_corpus_functions_give_retrieval_queries() -> None:
    split = build_query_set([], [CORPUS], caps=(5, 5, 5, 5, 50), held_out_fraction=0.5, seed=0)
    queries = split.train + split.held_out
    assert all(q.strand == MEMORY_RETRIEVAL for q in queries)
    texts = " | ".join(q.text for q in queries)
    assert "Return the arithmetic mean of a list of numbers" in texts
    assert "`area`" in texts and "_private" not in texts
    assert {q.source for q in queries} == {
        "corpus:pkg/util.py:average_of",
        "corpus:pkg/util.py:area",
    }


def test_query_set_is_capped_deduplicated_and_split_by_source() -> None:
    problems = _problems()
    doubled = problems + [Problem(p.id + "-copy", p.query, p.solution, p.tests) for p in problems]
    caps = (20, 15, 15, 10, 6)
    split = build_query_set(doubled, [CORPUS] * 3, caps, held_out_fraction=0.25, seed=1)
    queries = split.train + split.held_out
    assert strand_counts(queries) == dict(zip(STRAND_NAMES, caps, strict=True))
    texts = [q.text for q in queries]
    assert len(texts) == len(set(texts))
    assert build_query_set(doubled, [CORPUS] * 3, caps, held_out_fraction=0.25, seed=1) == split
    assert not {q.source for q in split.train} & {q.source for q in split.held_out}
    # Every strand is on both sides, about a quarter held out.
    held = strand_counts(split.held_out)
    assert held == {
        name: max(1, round(0.25 * cap)) for name, cap in zip(STRAND_NAMES, caps, strict=True)
    }
    # A problem listed twice (HumanEval inside code_training_combined) is one source.
    assert len({q.source for q in queries if q.strand != MEMORY_RETRIEVAL}) <= len(problems)


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_a_query_set_of_one_strand_is_refused_in_one_line(tmp_path: Path) -> None:
    """No problems, only a corpus: every query is MemoryRetrieval's. The phase says so before
    it loads the model (whose artifacts here are placeholders)."""
    url = memory_store_url()
    store = ArtifactStore.open(url)
    for dataset in PROBLEM_DATASETS:
        store.add(dataset, _jsonl(tmp_path / dataset / f"{dataset}.jsonl", []))
    corpus = [CORPUS.to_json()] * 2
    store.add("stack_python", _jsonl(tmp_path / "corpus" / "stack_python.jsonl", corpus))
    for name in VOLT_X_ARTIFACTS:
        placeholder = tmp_path / name / f"{name}.safetensors"
        placeholder.parent.mkdir()
        placeholder.write_bytes(b"unused")
        store.add(name, placeholder.parent)
    result = voltx.run("3.1", backend=InProcessBackend(work_dir=tmp_path / "work"), store=url)
    assert not result.ok
    reason = result.phases["3.1"].reason
    assert "\n" not in reason
    assert (
        "lacks training or held-out queries for CodeRunner, CodeDebugger, CodeExplainer, "
        "MathEngine" in reason
    )
    assert "MemoryRetrieval" in reason and "0 problems" in reason


@pytest.mark.parametrize("caps", [(1, 2, 2, 2, 2), (2, 2, 2, 2)])
def test_config_needs_five_counts_of_at_least_two(caps: tuple[int, ...]) -> None:
    from voltx_phases.hard_core.router_config import RouterCalibrationConfig

    with pytest.raises(ValueError, match="five counts of at least 2"):
        RouterCalibrationConfig(queries_per_strand=caps)


def test_the_spec_declares_the_inputs_it_reads() -> None:
    spec = next(s for s in PHASES if s.id == "3.1")  # 3.2 and 3.3 share the tuple
    assert set(spec.requires) == {
        "code_tokenizer",
        "code_encoder",
        "code_decoder",
        "scaled_vfn",
        "slot_attention",
        "diffusion_controller",
        "code_attention_bias",
        "humaneval",
        "mbpp",
        "code_training_combined",
        "apps_introductory_train",
        "apps_interview_train",
        "apps_competition_train",
        "stack_python",
    }
    assert spec.produces == ("router_calibration", "router_calibration_report")
