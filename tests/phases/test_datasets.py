"""Phase 0.2: the raw dataset readers, the embedded generator and corpus, and the phase itself."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import voltx
from _support import REPO
from voltx.plugins import registry
from voltx.spec import PhaseSpec
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend, memory_store_url, phase_plugin, registered_plugin
from voltx.testing.phase_contract import PhaseContract
from voltx_phases.datasets import readers
from voltx_phases.datasets.config import DATASET_PROFILES
from voltx_phases.datasets.generator import generate_problems, split_generated
from voltx_phases.datasets.readers import ReadStats
from voltx_phases.datasets.schema import DatasetLineError, read_problems, write_jsonl
from voltx_phases.datasets.specs import PHASES
from voltx_phases.datasets.stdlib_corpus import read_stdlib
from voltx_phases.execution.sandbox import run_many, run_tests

HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval.jsonl"
needs_humaneval = pytest.mark.skipif(not HUMANEVAL.is_file(), reason=f"{HUMANEVAL} is absent")
SPEC = PHASES[0]


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture
def registered_spec() -> Iterator[None]:
    """Phase 0.2 registered in this process, unless the installed plugin already has it."""
    if SPEC.id in registry().phases:
        yield
        return
    with registered_plugin(phase_plugin(*PHASES)):
        yield


# --- HumanEval -------------------------------------------------------------------------------


@needs_humaneval
def test_humaneval_reads_164_problems_that_pass_their_own_tests() -> None:
    stats = ReadStats()
    problems = list(readers.read_humaneval(HUMANEVAL, stats=stats))
    assert len(problems) == 164 and stats.records == 164 and stats.skipped == 0
    first = problems[0]
    assert first.id == "HumanEval/0"
    assert first.solution.startswith(first.query)  # prompt + canonical body
    assert first.tests[0].rstrip().endswith("check(has_close_elements)")
    results = run_many([(p.solution, p.tests) for p in problems])
    failures = [(p.id, r.reason) for p, r in zip(problems, results, strict=True) if not r.passed]
    assert failures == []


# --- MBPP ------------------------------------------------------------------------------------

MBPP_FULL = {
    "task_id": 11,
    "text": "Write a function to remove the first and last occurrence of a given character.",
    "code": "def remove_Occ(s, ch):\n    s = s.replace(ch, '', 1)\n    return s[::-1].replace("
    "ch, '', 1)[::-1]",
    "test_list": [
        'assert remove_Occ("hello","l") == "heo"',
        'assert remove_Occ("abcda","a") == "bcd"',
    ],
    "test_setup_code": "SCALE = 1",
    "challenge_test_list": ['assert remove_Occ("x","y") == "never checked"'],
}
MBPP_SANITIZED = {
    "source_file": "Benchmark Questions Verification V2.ipynb",
    "task_id": 2,
    "prompt": "Write a function to find the shared elements from the given two lists.",
    "code": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))",
    "test_imports": ["import math"],
    "test_list": [
        "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))",
        "assert math.isclose(len(similar_elements((1,), (2,))), 0)",
    ],
}


def test_mbpp_full_and_sanitized_schemas(tmp_path: Path) -> None:
    full = _jsonl(tmp_path / "mbpp.jsonl", [MBPP_FULL])
    # The sanitized split is distributed as one JSON array: read whole, items numbered.
    sanitized = tmp_path / "sanitized-mbpp.json"
    sanitized.write_text(json.dumps([MBPP_SANITIZED], indent=2))
    (a,) = readers.read_mbpp(full)
    (b,) = readers.read_mbpp(sanitized)
    assert a.id == "MBPP/11" and a.query == MBPP_FULL["text"] and len(a.tests) == 2
    assert all(test.startswith("SCALE = 1\n") for test in a.tests)
    assert not any("never checked" in test for test in a.tests)
    assert b.id == "MBPP/2" and b.query == MBPP_SANITIZED["prompt"]
    assert all(test.startswith("import math\n") for test in b.tests)
    for problem in (a, b):
        assert run_tests(problem.solution, problem.tests).passed
        # Each test stands alone (setup and imports included), as pass-rate counting needs.
        assert all(run_tests(problem.solution, [test]).passed for test in problem.tests)


# --- APPS ------------------------------------------------------------------------------------


def _apps_row(problem_id: int, solutions: list[str], cases: dict[str, Any], **extra: Any) -> dict:
    return {
        "problem_id": problem_id,
        "question": f"Problem {problem_id}.",
        "solutions": json.dumps(solutions),
        "input_output": json.dumps(cases),
        "difficulty": "interview",
        "url": "https://example.invalid/",
        "starter_code": "",
        **extra,
    }


APPS_ROWS = [
    # stdin/stdout, with a list-of-lines output as APPS sometimes stores them
    _apps_row(
        1,
        ["import sys\nn = int(input())\nnums = list(map(int, sys.stdin.readline().split()))\n"
         "print(sum(nums[:n]))\nprint(max(nums))\n"],
        {"inputs": ["2\n1 2 3\n", "3\n5 5 5\n"], "outputs": ["3\n3\n", ["15", "5"]]},
        difficulty="introductory",
    ),
    # call-based, LeetCode style: uses List without importing it (APPS's harness provides it)
    _apps_row(
        2,
        ["class Solution:\n    def twoSum(self, nums: List[int], target: int) -> List[int]:\n"
         "        seen = {}\n        for i, x in enumerate(nums):\n"
         "            if target - x in seen:\n                return [seen[target - x], i]\n"
         "            seen[x] = i\n"],
        {"fn_name": "twoSum", "inputs": [[[2, 7, 11, 15], 9], [[3, 2, 4], 6]],
         "outputs": [[[0, 1]], [1, 2]]},
        starter_code="class Solution:\n"
        "    def twoSum(self, nums: List[int], target: int) -> List[int]:\n",
    ),
    # call-based plain function
    _apps_row(
        3,
        ["def area(w, h):\n    return w * h\n"],
        {"fn_name": "area", "inputs": [[2, 3], [0, 5]], "outputs": [6, [0]]},
        difficulty="competition",
    ),
    # no solutions: dropped and counted
    _apps_row(4, [], {"inputs": ["1\n"], "outputs": ["1\n"]}),
]  # fmt: skip


def test_apps_stdin_and_call_based_problems(tmp_path: Path) -> None:
    stats = ReadStats()
    problems = list(readers.read_apps(_jsonl(tmp_path / "apps.jsonl", APPS_ROWS), stats=stats))
    assert [p.id for p in problems] == ["APPS/1", "APPS/2", "APPS/3"]
    assert stats.dropped == {"no solution": 1}
    stdin, leetcode, plain = problems
    assert [p.difficulty for p in problems] == ["introductory", "interview", "competition"]
    assert leetcode.query.endswith("def twoSum(self, nums: List[int], target: int) -> List[int]:\n")
    assert leetcode.solution.startswith("from typing import List\n")
    assert len(stdin.tests) == 2 and len(leetcode.tests) == 2
    results = run_many([(p.solution, p.tests) for p in problems])
    assert [r.status for r in results] == ["passed"] * 3, [r.reason for r in results]
    # A wrong program fails the same tests.
    assert run_tests("print(0)\nprint(0)\n", stdin.tests).status == "failed"
    assert run_tests("def area(w, h):\n    return w + h\n", plain.tests).status == "failed"
    # A candidate written as a plain function passes a LeetCode-style problem too.
    function = "def twoSum(nums, target):\n    return [0, 1] if target == 9 else [1, 2]\n"
    assert run_tests(function, leetcode.tests).passed


def test_apps_mismatched_cases_are_a_bad_line(tmp_path: Path) -> None:
    row = _apps_row(9, ["print(1)"], {"inputs": ["1\n", "2\n"], "outputs": ["1\n"]})
    path = _jsonl(tmp_path / "apps.jsonl", [row])
    with pytest.raises(DatasetLineError, match=r"apps\.jsonl:1: input_output: 2 inputs but 1"):
        list(readers.read_apps(path))


# --- The Stack, MultiPL-E, unified -----------------------------------------------------------

CODE = "def main():\n    return 'a file long enough to pass the 50-byte minimum'\n"


def test_stack_lines_without_language_are_read(tmp_path: Path) -> None:
    rows = [
        {"content": CODE},  # the original's own download: no language at all
        {"content": CODE, "lang": "Python", "max_stars_repo_path": "a/b.py"},  # HF columns
        {"code": CODE, "language": "python", "path": "c.py"},
        {"content": "x = 1\n"},  # shorter than 50 bytes
        {"content": "#" * 60_000},  # longer than 50,000 bytes
        {"content": CODE, "language": "JavaScript"},
    ]
    stats = ReadStats()
    docs = list(
        readers.read_stack(_jsonl(tmp_path / "s.jsonl", rows), stats=stats, languages={"python"})
    )
    assert [d.path for d in docs] == ["", "a/b.py", "c.py"]
    assert {d.language for d in docs} == {"python"}
    assert stats.dropped == {"too short": 1, "too long": 1, "other language": 1}


def test_a_folder_of_jsonl_files_is_read_in_sorted_order_and_gzip_is_recognised(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "stack"
    folder.mkdir()
    _jsonl(folder / "b.jsonl", [{"content": CODE, "path": "second"}])
    with gzip.open(folder / "a.jsonl.gz", "wt") as stream:
        stream.write(json.dumps({"content": CODE, "path": "first"}) + "\n")
    (folder / "notes.txt").write_text("not a dataset")
    assert [d.path for d in readers.read_stack(folder)] == ["first", "second"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no .*jsonl"):
        list(readers.read_stack(empty))


def test_multipl_e_rows_keep_their_language_and_stop_tokens(tmp_path: Path) -> None:
    row = {
        "name": "HumanEval_0_has_close_elements",
        "language": "js",
        "prompt": "function has_close_elements(numbers, threshold){\n",
        "doctests": "transform",
        "original": "HumanEval_0.py",
        "prompt_terminology": "reworded",
        "tests": "const assert = require('node:assert');\n",
        "stop_tokens": ["\nfunction ", "\n/*"],
    }
    (problem,) = readers.read_multipl_e(_jsonl(tmp_path / "m.jsonl", [row]))
    assert problem.id == "MultiPL-E/js/HumanEval_0_has_close_elements"
    assert problem.language == "js" and problem.solution == problem.query == row["prompt"]
    assert problem.stop_tokens == ("\nfunction ", "\n/*")
    assert problem.to_json()["stop_tokens"] == row["stop_tokens"]


def test_unified_lines_are_accepted_and_tests_are_required(tmp_path: Path) -> None:
    good = {"id": "X/1", "query": "q", "solution": "s", "tests": ["assert True"], "extra": 1}
    path = _jsonl(tmp_path / "u.jsonl", [good, {"id": "X/2", "query": "q", "solution": "s"}])
    with pytest.raises(DatasetLineError, match=r"u\.jsonl:2: 'tests' must be a list of strings"):
        list(readers.read_unified(path))
    # An already converted file works as a raw HumanEval input too.
    (problem,) = readers.read_humaneval(_jsonl(tmp_path / "h.jsonl", [good]))
    assert problem.id == "X/1" and problem.tests == ("assert True",)


# --- bad lines -------------------------------------------------------------------------------


@pytest.fixture
def bad_humaneval(tmp_path: Path) -> Path:
    good = {
        "task_id": "T/0",
        "prompt": "def f():\n",
        "canonical_solution": "    return 1\n",
        "test": "def check(c):\n    assert c() == 1\n",
        "entry_point": "f",
    }
    lines = [
        json.dumps(good),
        "",  # blank lines are skipped, and still counted as lines
        '{"task_id": "T/1", "prompt": ',  # truncated
        json.dumps({**good, "task_id": "T/2", "test": None}),
        "[1, 2]",
        json.dumps({**good, "task_id": "T/3"}),
    ]
    path = tmp_path / "he.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_bad_line_names_file_line_and_reason(bad_humaneval: Path) -> None:
    with pytest.raises(DatasetLineError) as caught:
        list(readers.read_humaneval(bad_humaneval))
    error = caught.value
    assert (error.path, error.line) == (str(bad_humaneval), 3)
    assert str(error).startswith(f"{bad_humaneval}:3: not valid JSON")


def test_skip_bad_lines_counts_them(bad_humaneval: Path) -> None:
    stats = ReadStats()
    problems = list(readers.read_humaneval(bad_humaneval, skip_bad_lines=True, stats=stats))
    assert [p.id for p in problems] == ["T/0", "T/3"]
    assert stats.skipped == 3 and stats.records == 2
    assert [e.split(": ", 1)[0] for e in stats.examples] == [
        f"{bad_humaneval}:{line}" for line in (3, 4, 5)
    ]
    assert "missing string field 'test'" in stats.examples[1]
    assert "expected a JSON object, got list" in stats.examples[2]


# --- the embedded data -----------------------------------------------------------------------


def test_generator_is_deterministic_and_every_problem_passes(tmp_path: Path) -> None:
    first = generate_problems(40, seed=3)
    second = generate_problems(40, seed=3)
    write_jsonl(tmp_path / "a.jsonl", first.problems)
    write_jsonl(tmp_path / "b.jsonl", second.problems)
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert len(first.problems) == 40 and not first.failed
    assert len({p.solution for p in first.problems}) == 40
    assert generate_problems(40, seed=4).problems != first.problems
    results = run_many([(p.solution, p.tests) for p in first.problems])
    assert all(r.passed for r in results)
    for problem in first.problems:
        assert problem.query and len(problem.tests) >= 3
        assert problem.solution.startswith("def ")
    held_he, held_mbpp, training = split_generated(first.problems)
    assert held_he and held_mbpp
    assert {p.difficulty for p in training} == {"introductory", "interview", "competition"}
    assert not {p.id for p in held_he + held_mbpp} & {p.id for p in training}


def test_stdlib_corpus_is_deterministic_and_relative() -> None:
    docs = list(read_stdlib(30))
    assert len(docs) == 30 and docs == list(read_stdlib(30))
    assert all(not d.path.startswith("/") and d.path.endswith(".py") for d in docs)
    assert all(50 <= len(d.content.encode()) <= 50_000 for d in docs)
    assert not any(part in ("test", "tests") for d in docs for part in d.path.split("/"))


# --- the phase -------------------------------------------------------------------------------


class TestDatasetPhaseContract(PhaseContract):
    @pytest.fixture
    def phase_spec(self) -> PhaseSpec:
        return SPEC


def _output(store: ArtifactStore, name: str, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    folder = store.get(store.resolve(name).digest, tmp_path / name, link=False)
    return folder / f"{name}.jsonl", json.loads((folder / "stats.json").read_text())


@needs_humaneval
def test_phase_converts_a_raw_humaneval_file(registered_spec: None, tmp_path: Path) -> None:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("raw_humaneval", HUMANEVAL)
    result = voltx.run(SPEC.id, backend=InProcessBackend(), store=url, profile="tiny")
    phase = result.phases[SPEC.id]
    assert phase.status == "succeeded", phase.reason
    humaneval, stats = _output(store, "humaneval", tmp_path)
    assert len(list(read_problems(humaneval))) == 164
    assert stats["count"] == 164 and stats["source"] == "raw_humaneval"
    _, mbpp_stats = _output(store, "mbpp", tmp_path)
    assert mbpp_stats["source"] == "embedded"
    combined, combined_stats = _output(store, "code_training_combined", tmp_path)
    parts = combined_stats["parts"]
    assert parts["humaneval"] == 164 and parts["mbpp"] == mbpp_stats["count"]
    assert combined_stats["count"] == len(list(read_problems(combined))) == sum(parts.values())
    assert combined_stats["source"] == "raw_humaneval + embedded"
    assert store.resolve("humaneval").lineage["phase"] == SPEC.id


def test_phase_embedded_outputs(registered_spec: None, tmp_path: Path) -> None:
    url = memory_store_url()
    result = voltx.run(SPEC.id, backend=InProcessBackend(), store=url, profile="tiny")
    assert result.phases[SPEC.id].status == "succeeded", result.phases[SPEC.id].reason
    store = ArtifactStore.open(url)
    tiny = DATASET_PROFILES["tiny"]
    counts = {}
    for name in SPEC.produces:
        path, stats = _output(store, name, tmp_path)
        lines = path.read_text().splitlines()
        assert stats["count"] == len(lines), name
        counts[name] = len(lines)
    assert counts["multipl_e"] == 0
    assert counts["stack_python"] == tiny.corpus_max_files
    held_out = counts["humaneval"] + counts["mbpp"]
    apps = sum(counts[f"apps_{d}_train"] for d in ("introductory", "interview", "competition"))
    assert held_out + apps == counts["code_training_combined"] == tiny.generated_count
    assert all(counts[name] > 0 for name in SPEC.produces if name != "multipl_e")


def test_phase_stops_on_a_bad_line_or_skips_it(
    registered_spec: None, bad_humaneval: Path, tmp_path: Path
) -> None:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("raw_humaneval", bad_humaneval)
    failed = voltx.run(SPEC.id, backend=InProcessBackend(), store=url, profile="tiny")
    reason = failed.phases[SPEC.id].reason or ""
    assert failed.phases[SPEC.id].status == "failed"
    assert ":3: not valid JSON" in reason and "raw_humaneval" in reason
    skipping = {SPEC.id: {"skip_bad_lines": True}}
    result = voltx.run(
        SPEC.id, backend=InProcessBackend(), store=url, profile="tiny", config=skipping
    )
    assert result.phases[SPEC.id].status == "succeeded", result.phases[SPEC.id].reason
    _, stats = _output(store, "humaneval", tmp_path)
    assert stats["count"] == 2 and stats["skipped_lines"] == 3
    assert len(stats["skipped_examples"]) == 3


# --- memory ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_stack_reader_memory_stays_constant_on_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    body = "x = 'a line of python source code padding the file out'\n" * 36  # ~2 KB per file
    target = 200 * 1024 * 1024
    with open(path, "w", encoding="utf-8") as out:
        written = index = 0
        while written < target:
            line = json.dumps({"content": f"# file {index}\n{body}"}) + "\n"
            out.write(line)
            written += len(line)
            index += 1
    tracemalloc.start()
    try:
        stats = ReadStats()
        count = sum(1 for _ in readers.read_stack(path, stats=stats))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == index and stats.skipped == 0
    assert peak < 20 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"
