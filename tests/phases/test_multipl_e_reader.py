"""MultiPL-E rows in the dataset's own format, and The Stack's files split by language."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from voltx_phases.datasets.multipl_e import (
    FIELDS,
    MultiplERow,
    read_multipl_e_rows,
    rows_from_problems,
    sandbox_language,
    truncate_at_stop_tokens,
)
from voltx_phases.datasets.readers import ReadStats, read_multipl_e
from voltx_phases.datasets.schema import DatasetLineError, write_jsonl
from voltx_phases.datasets.stack_languages import read_stack_languages

# HumanEval/53 as MultiPL-E's `humaneval-js`, `-rs` and `-go` configs ship it (reworded prompt,
# doctests transformed), one row per language, every field present.
JS = {
    "name": "HumanEval_53_add",
    "language": "js",
    "prompt": "//Add two numbers x and y\n// >>> add(2, 3)\n// 5\n// >>> add(5, 7)\n// 12\n"
    "function add(x, y){\n",
    "doctests": "transform",
    "original": "/work/arjunguha-research-group/nlgp/multiple/datasets/originals/"
    "HumanEval_53_add.py",
    "prompt_terminology": "reworded",
    "tests": "const assert = require('node:assert');\n\n\nfunction test() {\n"
    "  let candidate = add;\n  assert.deepEqual(candidate(0, 1),1);\n"
    "  assert.deepEqual(candidate(1, 0),1);\n  assert.deepEqual(candidate(2, 3),5);\n}\n\ntest();",
    "stop_tokens": ["\nfunction ", "\n/*", "\n//", "\nconsole.log"],
}
RUST = {
    "name": "HumanEval_53_add",
    "language": "rs",
    "prompt": "/// Add two numbers x and y\n/// >>> add(2, 3)\n/// 5\n"
    "fn add(x: isize, y: isize) -> isize {\n",
    "doctests": "transform",
    "original": "/work/arjunguha-research-group/nlgp/multiple/datasets/originals/"
    "HumanEval_53_add.py",
    "prompt_terminology": "reworded",
    "tests": "\nfn main() {\n    let candidate = add;\n    assert_eq!(candidate(0, 1), 1);\n}\n",
    "stop_tokens": ["\n}"],
}
GO = {
    "name": "HumanEval_53_add",
    "language": "go_test.go",
    "prompt": 'package add_test\n\nimport (\n    "testing"\n    "fmt"\n)\n\n'
    "// Add two numbers x and y\nfunc add(x int, y int) int {\n",
    "doctests": "remove",
    "original": "/work/arjunguha-research-group/nlgp/multiple/datasets/originals/"
    "HumanEval_53_add.py",
    "prompt_terminology": "verbatim",
    "tests": "func TestAdd(t *testing.T) {\n  candidate := add\n}\n",
    "stop_tokens": ["\nfunc", "struct", "\n// ", "\n}"],
}


@pytest.fixture
def rows_file(tmp_path: Path) -> Path:
    path = tmp_path / "multipl_e.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in (JS, RUST, GO)))
    return path


def test_rows_keep_every_field(rows_file: Path) -> None:
    rows = list(read_multipl_e_rows(rows_file))
    assert [row.language for row in rows] == ["js", "rs", "go_test.go"]
    assert [row.sandbox_language for row in rows] == ["javascript", "rust", "go"]
    first = rows[0]
    for field in FIELDS:
        expected = JS[field]
        actual = getattr(first, field)
        assert actual == (tuple(expected) if isinstance(expected, list) else expected), field
    assert first.id == "MultiPL-E/js/HumanEval_53_add"
    assert rows[2].id == "MultiPL-E/go_test.go/HumanEval_53_add"


def test_a_completion_is_cut_at_the_first_stop_token() -> None:
    row = MultiplERow.from_json(JS)
    completion = "  return x + y;\n}\n\nconsole.log(add(1, 2));\nfunction extra() {}\n"
    assert row.program(completion) == JS["prompt"] + "  return x + y;\n}\n"
    assert truncate_at_stop_tokens("abc", []) == "abc"
    assert truncate_at_stop_tokens("a\n}b\nfunc", ["\nfunc", "\n}"]) == "a"


def test_phase_0_2_reader_and_rows_agree(rows_file: Path, tmp_path: Path) -> None:
    problems = list(read_multipl_e(rows_file))
    assert problems == [MultiplERow.from_json(row).to_problem() for row in (JS, RUST, GO)]
    js = problems[0]
    assert (js.query, js.solution, js.tests) == (JS["prompt"], JS["prompt"], (JS["tests"],))
    assert js.stop_tokens == tuple(JS["stop_tokens"]) and js.language == "js"
    # Read back from the unified artifact: grouped by the sandbox's language names.
    artifact = tmp_path / "unified.jsonl"
    write_jsonl(artifact, problems)
    grouped = rows_from_problems(artifact)
    assert sorted(grouped) == ["go", "javascript", "rust"]
    back = grouped["javascript"][0]
    assert (back.prompt, back.tests, back.stop_tokens) == (
        JS["prompt"],
        JS["tests"],
        tuple(JS["stop_tokens"]),
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"tests": None}, "missing string field 'tests'"),
        ({"name": 53}, "'name' must be a string"),
        ({"stop_tokens": "\n}"}, "'stop_tokens' must be a list of strings"),
        ({"doctests": ["keep"]}, "'doctests' must be a string"),
    ],
)
def test_a_bad_row_names_the_file_line_and_field(
    tmp_path: Path, change: dict[str, object], reason: str
) -> None:
    path = tmp_path / "bad.jsonl"
    bad = {key: value for key, value in {**RUST, **change}.items() if value is not None}
    path.write_text(json.dumps(JS) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DatasetLineError) as raised:
        list(read_multipl_e_rows(path))
    assert str(raised.value) == f"{path}:2: {reason}"
    stats = ReadStats()
    assert len(list(read_multipl_e_rows(path, skip_bad_lines=True, stats=stats))) == 1
    assert stats.skipped == 1
    with pytest.raises(DatasetLineError, match=f":2: {reason}"):
        list(read_multipl_e(path))


def test_language_codes_map_to_the_sandbox() -> None:
    assert sandbox_language("js") == "javascript"
    assert sandbox_language("go_test.go") == "go"
    assert sandbox_language("rs") == "rust"
    assert sandbox_language("java") == "java"
    assert sandbox_language("cpp") is None


@pytest.mark.skipif(
    shutil.which("bwrap") is None or shutil.which("node") is None, reason="needs bwrap and node"
)
def test_a_row_runs_in_the_sandbox_as_multipl_e_runs_it() -> None:
    from voltx_phases.execution.sandbox import SandboxLimits, evaluate

    row = MultiplERow.from_json(JS)
    limits = SandboxLimits(timeout_s=10.0)
    right = row.program("  return x + y;\n}\n\nconsole.log('extra text the stop token cuts')\n")
    wrong = row.program("  return x - y;\n}\n")
    language = row.sandbox_language
    assert language is not None
    assert evaluate(right, [row.tests], language_name=language, limits=limits).all_passed
    report = evaluate(wrong, [row.tests], language_name=language, limits=limits)
    assert [outcome.failure for outcome in report.outcomes] == ["wrong_answer"]


def test_stack_files_are_split_by_language_in_one_pass(tmp_path: Path) -> None:
    body = "x" * 60
    lines = [
        {"content": f"// a {body}", "lang": "JavaScript", "max_stars_repo_path": "a.js"},
        {"content": f"// b {body}", "language": "js", "path": "b.js"},
        {"content": f"// c {body}", "language": "Rust", "path": "c.rs"},
        {"content": f"// d {body}", "language": "golang", "path": "d.go"},
        {"content": f"# e {body}", "language": "python", "path": "e.py"},
        {"content": "// too short", "language": "java", "path": "f.java"},
        {"content": f"// g {body}", "language": "java", "path": "g.java"},
        {"content": f"// h {body}", "language": "javascript", "path": "h.js"},
    ]
    raw = tmp_path / "stack.jsonl"
    raw.write_text("".join(json.dumps(line) + "\n" for line in lines))
    stats = ReadStats()
    found = read_stack_languages(
        raw, ("javascript", "java", "rust", "go"), max_files=2, stats=stats
    )
    assert {name: len(files) for name, files in found.items()} == {
        "javascript": 2,
        "java": 1,
        "rust": 1,
        "go": 1,
    }
    assert [(d.path, d.language) for d in found["javascript"]] == [
        ("a.js", "javascript"),
        ("b.js", "javascript"),
    ]
    assert stats.dropped == {"other language": 1, "too short": 1, "over the cap": 1}
    # One language, one file: the pass stops at the first Rust file.
    assert [d.path for d in read_stack_languages(raw, ["rust"], max_files=1)["rust"]] == ["c.rs"]
    with pytest.raises(ValueError, match="no Stack language 'cobol'"):
        read_stack_languages(raw, ["cobol"], max_files=1)
