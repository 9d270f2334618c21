"""Per-test results and the sandbox's languages: one MultiPL-E-format problem per language.

Each language gets a correct and a wrong solution to the same problem (MultiPL-E's layout: the
prompt and completion are the solution, the test program follows it), plus a solution that
does not compile. A missing toolchain skips its language here; `scripts/install-system-tools.sh`
installs them all.
"""

from __future__ import annotations

import shutil

import pytest

from voltx_phases.execution.limits import IsolationMode
from voltx_phases.execution.sandbox import (
    SandboxLimits,
    ToolchainMissingError,
    evaluate,
    evaluate_many,
)

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")

# HumanEval/53 ("add"), as MultiPL-E renders it: prompt + completion, then the tests.
PROBLEMS = {
    "javascript": (
        "//Add two numbers x and y\nfunction add(x, y){\n",
        "  return x + y;\n}\n",
        "  return x - y;\n}\n",
        "const assert = require('node:assert');\n\nfunction test() {\n  let candidate = add;\n"
        "  assert.deepEqual(candidate(0, 1),1);\n  assert.deepEqual(candidate(5, 7),12);\n}\n\n"
        "test();",
    ),
    "java": (
        "import java.util.*;\nclass Problem {\n    // Add two numbers x and y\n"
        "    public static long add(long x, long y) {\n",
        "        return x + y;\n    }\n",
        "        return x - y;\n    }\n",
        "    public static void main(String[] args) {\n"
        "    assert(add((0l), (1l)) == (1l));\n    assert(add((5l), (7l)) == (12l));\n    }\n\n}\n",
    ),
    "rust": (
        "/// Add two numbers x and y\nfn add(x: isize, y: isize) -> isize {\n",
        "    x + y\n}\n",
        "    x - y\n}\n",
        "\nfn main() {\n    let candidate = add;\n    assert_eq!(candidate(0, 1), 1);\n"
        "    assert_eq!(candidate(5, 7), 12);\n}\n",
    ),
    "go": (
        'package add_test\n\nimport (\n    "testing"\n    "fmt"\n)\n\n'
        "// Add two numbers x and y\nfunc add(x int, y int) int {\n",
        "    return x + y\n}\n",
        "    return x - y\n}\n",
        "func TestAdd(t *testing.T) {\n  candidate := add\n\ttype test struct {\n"
        "\t\tactual   interface{}\n\t\texpected interface{}\n\t}\n   tests := []test{\n"
        "     { actual: candidate(0, 1), expected: 1 },\n"
        "     { actual: candidate(5, 7), expected: 12 },\n   }\n\n"
        "\tfor i, tc := range tests {\n"
        '\t\tt.Run(fmt.Sprintf("test num % d", i), func(t *testing.T) {\n'
        '\t\t\tif fmt.Sprintf("%v", tc.actual) != fmt.Sprintf("%v", tc.expected) {\n'
        "\t\t\t\tt.Errorf(\"expected '%s', got '%s'\", tc.expected, tc.actual)\n"
        "\t\t\t}\n\t\t})\n\t}\n}\n",
    ),
}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:the sandbox runs in the rlimits-only mode")
@pytest.mark.parametrize("way", ["one bubblewrap", "warm sandbox", "rlimits-only"])
@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_each_language_gives_the_right_verdicts(name: str, way: str) -> None:
    prompt, correct, wrong, tests = PROBLEMS[name]
    isolation: IsolationMode = "rlimits-only" if way == "rlimits-only" else "bubblewrap"
    limits = SandboxLimits(timeout_s=10.0, isolation=isolation)
    solutions = [prompt + correct, prompt + wrong, prompt + "  this does not compile ((\n"]
    try:
        if way == "warm sandbox":
            # One worker: the three compile-and-run cycles follow each other in one sandbox.
            jobs = [(solution, [tests]) for solution in solutions]
            reports = evaluate_many(jobs, language_name=name, limits=limits, workers=1)
        else:
            reports = [
                evaluate(solution, [tests], language_name=name, limits=limits)
                for solution in solutions
            ]
    except ToolchainMissingError as missing:
        pytest.skip(str(missing))
    right, mistaken, broken = reports
    assert right.all_passed, right.outcomes
    assert right.language == name
    assert [o.failure for o in mistaken.outcomes] == ["wrong_answer"], mistaken.outcomes
    assert [o.failure for o in broken.outcomes] == ["compile_error"], broken.outcomes


def test_a_missing_toolchain_is_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(shutil, "which", lambda command: None)
    with pytest.raises(ToolchainMissingError, match="golang-go") as raised:
        evaluate("", ["func TestX(t *testing.T) {}"], language_name="go")
    assert "\n" not in str(raised.value)


SOLUTION = "def add(a, b):\n    return a + b if a != 3 else 0\n"


def test_python_reports_each_test_and_its_reason() -> None:
    tests = [
        "assert add(1, 2) == 3",
        "assert add(3, 4) == 7",  # wrong answer
        "add(None, 1)",  # runtime error
        "while True:\n    pass",  # timeout
        "block = bytearray(8 * 2**30)",  # memory
    ]
    report = evaluate(SOLUTION, tests, limits=SandboxLimits(timeout_s=1.0, memory_bytes=256 << 20))
    assert report.total == 5 and report.passed_count == 1 and report.pass_rate == 0.2
    assert [o.failure for o in report.outcomes] == [
        None,
        "wrong_answer",
        "runtime_error",
        "timeout",
        "memory",
    ]
    assert "AssertionError" in report.outcomes[1].detail
    assert report.failures == {"wrong_answer": 1, "runtime_error": 1, "timeout": 1, "memory": 1}


def test_python_syntax_errors_are_compile_errors() -> None:
    report = evaluate("def add(a, b)\n    return a + b\n", ["assert add(1, 2) == 3"] * 2)
    assert [o.failure for o in report.outcomes] == ["compile_error", "compile_error"]
    assert not report.all_passed


def test_exiting_early_does_not_pass_the_tests() -> None:
    for escape in ("import sys\nsys.exit(0)\n", "import os\nos._exit(0)\n"):
        report = evaluate(SOLUTION + escape, ["assert add(1, 2) == 4"])
        assert report.passed_count == 0, escape
