"""Phases 5.2a/b/c: three language decoders side by side, their sandbox figures, resume, bad input.

The phases run on a copy of the session's tiny model store (tests/phases/conftest.py), with the
VFN they read, 5.1's `vfn_500m`, added as an input made of 2.1's three files (the same layout):
the test is about the language lanes, not about training 4.x and 5.1 first.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _pinned import add_soft_core_of_2_1  # noqa: E402

import voltx  # noqa: E402
from _support import kill_job_at_checkpoints, subprocess_env  # noqa: E402
from voltx.ledger import Ledger  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402
from voltx_backends.local import LocalBackend  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PHASES = {
    "5.2a": ("code_decoder_javascript", ("javascript",)),
    "5.2b": ("code_decoder_java", ("java",)),
    "5.2c": ("code_decoder_rust_go", ("rust", "go")),
}
UPSTREAM = (
    "code_tokenizer",
    "code_encoder",
    "code_decoder",
    "vfn_500m",
    "code_attention_bias",
)


@pytest.fixture(scope="session")
def language_run(
    copy_tiny_model_store: Callable[[str], str],
) -> tuple[str, voltx.RunResult]:  # type: ignore[name-defined]
    """The tiny profile's 5.2a, 5.2b and 5.2c in one local run with a core per language lane."""
    threads = torch.get_num_threads()
    store = copy_tiny_model_store("language-store")
    root = Path(store).parent
    add_soft_core_of_2_1(store, root / "vfn", "vfn_500m")
    result = voltx.run(
        list(PHASES),
        backend=LocalBackend(root / "work", cpu_cores=3),
        store=store,
        profile="tiny",
    )
    torch.set_num_threads(threads)
    result.raise_for_status()
    return store, result


def _report(store: str, artifact: str, folder: Path) -> dict[str, Any]:
    got = ArtifactStore.open(store).get(f"{artifact}_report", folder)
    assert (got / "language_decoder.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    document: dict[str, Any] = json.loads((got / "metrics.json").read_text())
    return document


def test_the_three_phases_overlap_in_the_ledger(language_run: tuple[str, Any]) -> None:
    store, result = language_run
    states = Ledger(ArtifactStore.open(store), result.run_id).phase_states()
    spans = {phase: (states[phase].started_at, states[phase].finished_at) for phase in PHASES}
    for phase, (started, finished) in spans.items():
        assert states[phase].state == "succeeded", phase
        assert started is not None and finished is not None, phase
    for a in PHASES:
        for b in PHASES:
            if a < b:
                (start_a, end_a), (start_b, end_b) = spans[a], spans[b]
                assert start_a < end_b and start_b < end_a, f"{a} and {b} did not overlap"


def test_each_report_has_sandbox_figures_and_learning(
    language_run: tuple[str, Any], tmp_path: Path
) -> None:
    store, _ = language_run
    for phase, (artifact, languages) in PHASES.items():
        document = _report(store, artifact, tmp_path / phase)
        assert document["phase"] == phase and document["artifact"] == artifact
        assert sorted(document["languages"]) == sorted(languages)
        for language, facts in document["languages"].items():
            assert facts["problem_source"] == "generated"
            held_out = facts["held_out_problems"]
            assert held_out >= 1 and facts["train_problems"] >= 2
            # Every held-out problem ran in the sandbox, with a verdict per test.
            assert facts["sandbox_runs"] == held_out == len(facts["executions"])
            assert facts["passed"] == sum(row["passed"] for row in facts["executions"])
            assert facts["pass_rate"] == facts["passed"] / held_out
            failed = held_out - facts["passed"]
            assert sum(facts["failures"].values()) == failed
            assert all(row["tests"] == 1 for row in facts["executions"])
            # And the whole model, from each held-out problem's text through the VFN.
            whole = facts["end_to_end"]
            assert whole["sandbox_runs"] == held_out == len(whole["executions"])
            assert sum(whole["failures"].values()) == held_out - whole["passed"]
            # The learning signal: the held-out code of the language is predicted better than
            # by the Python decoder the phase starts from.
            before, after = facts["valid_token_accuracy_initial"], facts["valid_token_accuracy"]
            assert after > before, (phase, language, before, after)
        # And the training loss falls from the first epoch to the last.
        epochs = [row["train_loss"] for row in document["history"] if "train_loss" in row]
        assert epochs[-1] < epochs[0], (phase, epochs)
        weights = ArtifactStore.open(store).get(artifact, tmp_path / f"{phase}-weights")
        from voltx_phases.models.loading import check_decoder_file

        assert check_decoder_file(weights).max_len == 64  # tiny keeps code_decoder's


def _copy_inputs(source: str, target: str, folder: Path, names: tuple[str, ...]) -> None:
    origin, destination = ArtifactStore.open(source), ArtifactStore.open(target)
    for name in names:
        destination.add(name, origin.get(name, folder / name))


def test_no_problem_in_the_language_is_a_one_line_error(
    language_run: tuple[str, Any], tmp_path: Path
) -> None:
    store, _ = language_run
    url = memory_store_url()
    _copy_inputs(store, url, tmp_path / "inputs", UPSTREAM)
    given = tmp_path / "problems.jsonl"
    rows = [
        {
            "id": f"js/{i}",
            "query": "q",
            "solution": "function f(){}",
            "tests": ["f();"],
            "language": "js",
        }
        for i in range(3)
    ]
    given.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ArtifactStore.open(url).add("raw_language_problems", given)
    result = voltx.run(
        "5.2b", backend=InProcessBackend(tmp_path / "work"), store=url, profile="tiny"
    )
    phase = result.phases["5.2b"]
    assert phase.status == "failed"
    assert "raw_language_problems has no java problem" in phase.reason
    assert "3 javascript" in phase.reason and "\n" not in phase.reason


def test_given_problems_replace_the_generated_ones(
    language_run: tuple[str, Any], tmp_path: Path
) -> None:
    """`raw_language_problems` in MultiPL-E's language code ("js"): read, split, trained on."""
    store, _ = language_run
    url = memory_store_url()
    _copy_inputs(store, url, tmp_path / "inputs", UPSTREAM)
    given = tmp_path / "problems.jsonl"
    rows = [
        {
            "id": f"given/{i}",
            "query": f"Return {i}.",
            "solution": f"function answer_{i}() {{\n  return {i};\n}}\n",
            "tests": [
                f"const assert = require('node:assert');\nassert.deepEqual(answer_{i}(), {i});"
            ],
            "language": "js",
        }
        for i in range(6)
    ]
    given.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ArtifactStore.open(url).add("raw_language_problems", given)
    result = voltx.run(
        "5.2a", backend=InProcessBackend(tmp_path / "work"), store=url, profile="tiny"
    )
    assert result.phases["5.2a"].status == "succeeded", result.phases["5.2a"].reason
    document = _report(url, "code_decoder_javascript", tmp_path / "report")
    facts = document["languages"]["javascript"]
    assert facts["problem_source"] == "raw_language_problems"
    assert (facts["train_problems"], facts["held_out_problems"]) == (4, 2)
    assert [row["id"] for row in facts["executions"]] == ["given/2", "given/5"]


# -- bit-exact resume after SIGKILL ------------------------------------------------------------

RUN_ARGS = (
    "run",
    "5.2a",
    "--profile",
    "tiny",
    "--max-attempts",
    "10",
    "--set",
    "5.2a.checkpoint_every_steps=1",
)


def _cli(project: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        env=subprocess_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _project(store: str, project: Path) -> None:
    project.mkdir(parents=True)
    _copy_inputs(store, str(project / ".voltx"), project.parent / "inputs", UPSTREAM)


def test_sigkill_mid_phase_resumes_byte_identical(
    language_run: tuple[str, Any], tmp_path: Path
) -> None:
    store, _ = language_run
    baseline, interrupted = tmp_path / "a" / "project", tmp_path / "b" / "project"
    _project(store, baseline)
    _project(store, interrupted)
    reference = _cli(baseline, *RUN_ARGS)
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err

    process = _cli(interrupted, *RUN_ARGS)
    # Targets: mid first epoch, then mid second
    kills = kill_job_at_checkpoints(process, interrupted, "5.2a", [2, 4])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 2, f"only killed at {kills}"
    assert err.count("job lost; resubmitting") == 2
    for name in ("code_decoder_javascript", "code_decoder_javascript_report"):
        digests = [
            ArtifactStore.open(str(p / ".voltx")).resolve(name).digest
            for p in (baseline, interrupted)
        ]
        assert digests[0] == digests[1], name
