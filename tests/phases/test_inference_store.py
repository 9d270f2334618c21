"""`voltx.generate` and `voltx generate` on a tiny store that the pipeline itself trained."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import voltx  # noqa: E402
from voltx.cli import main  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx_phases.generation import VOLT_X_ARTIFACTS  # noqa: E402

PROMPT = "Write a function that returns the sum of a list"
pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_store(tiny_model_store: str) -> str:
    """The session's tiny trained store (tests/phases/conftest.py)."""
    return tiny_model_store


def test_generate_gives_n_samples_with_confidences(tiny_store: str) -> None:
    problems = voltx.generate(PROMPT, n=4, store=tiny_store, seed=1, max_tokens=48)
    assert len(problems) == 1
    problem = problems[0]
    assert problem.prompt == PROMPT
    assert len(problem.samples) == 4
    assert 1 <= problem.rar_iterations <= 50
    assert len(problem.converged) == len(problem.final_deltas) == len(problem.slot_gamma) == 16
    for sample in problem.samples:
        assert isinstance(sample.code, str)
        assert len(sample.token_ids) == len(sample.token_logprobs) >= 1
        assert all(logprob <= 0 for logprob in sample.token_logprobs)
        assert 0.0 <= sample.confidence <= 1.0
        assert sample.signals.rar_iterations == problem.rar_iterations
        assert sample.signals.rar_active_slots >= sample.signals.rar_converged_slots
    again = voltx.generate(PROMPT, n=4, store=tiny_store, seed=1, max_tokens=48)
    assert again == problems  # seeded: the same samples


def test_a_batch_of_prompts_greedy(tiny_store: str) -> None:
    prompts = [PROMPT, "Return the largest of three numbers", ""]
    problems = voltx.generate(prompts, n=2, temperature=0.0, store=tiny_store, max_tokens=32)
    assert [p.prompt for p in problems] == prompts
    for problem in problems:
        first, second = problem.samples
        assert first.token_ids == second.token_ids  # greedy: n samples are one
        assert 1 <= len(first.token_ids) <= 32


def test_voltx_generate_prints_four_samples_in_seconds(tiny_store: str) -> None:
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "voltx", "--store", tiny_store, "generate", PROMPT, "-n", "4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.count("## sample ") == 4
    assert completed.stdout.count("confidence ") == 4
    assert "reasoning: " in completed.stdout
    assert elapsed < 60  # seconds, not minutes (the interpreter and torch start included)


def test_digests_choose_another_version(
    tiny_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ArtifactStore.open(tiny_store)
    stage1 = store.resolve("scaled_vfn_stage1").digest
    problems = voltx.generate(
        PROMPT, temperature=0.0, store=tiny_store, digests={"scaled_vfn": stage1[:12]}
    )
    assert len(problems[0].samples) == 1
    code = main(["--store", tiny_store, "generate", PROMPT, "--digest", "codebook=abc"])
    assert code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("voltx: error: generator 'volt_x' does not use codebook")


def test_a_missing_artifact_names_the_phase_that_makes_it(
    tiny_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = ArtifactStore.open(tiny_store)
    partial = ArtifactStore.open(str(tmp_path / "partial"))
    for name in VOLT_X_ARTIFACTS:
        if name != "scaled_vfn":
            partial.add(name, source.get(name, tmp_path / "out" / name))
    with pytest.raises(voltx.MissingArtifactError) as caught:
        voltx.generate(PROMPT, store=partial.url)
    assert caught.value.name == "scaled_vfn"
    assert caught.value.producer == "2.1"
    code = main(["--store", str(tmp_path / "partial"), "generate", PROMPT])
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    assert "'scaled_vfn'" in lines[0] and "phase 2.1 makes it" in lines[0]


def test_prompts_from_a_problem_file(
    tiny_store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text(
        '{"id": "a", "query": "Add two numbers", "solution": "", "tests": []}\n\n'
        '{"id": "b", "query": "Reverse a string", "solution": "", "tests": []}\n'
    )
    code = main(
        [
            "--store",
            tiny_store,
            "generate",
            "--file",
            str(problems),
            "-n",
            "2",
            "--max-tokens",
            "16",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "# Add two numbers" in out and "# Reverse a string" in out
    assert out.count("## sample ") == 4
    assert main(["--store", tiny_store, "generate"]) == 1
    assert "give a prompt or --file" in capsys.readouterr().err


def test_hard_core_inputs_are_the_reasoned_frames(tiny_store: str, tmp_path: Path) -> None:
    from voltx_phases.hard_core.pipeline import read_batch
    from voltx_phases.models.inference import ReasoningSettings, VoltModel

    store = ArtifactStore.open(tiny_store)
    paths = {name: store.get(name, tmp_path / name) for name in VOLT_X_ARTIFACTS}
    model = VoltModel.from_artifacts(paths, "cpu")
    texts = [PROMPT, "def f(x):\n    return x + 1\n", "explain this code"]
    inputs = model.hard_core_inputs(texts, batch=2)  # two batches: the split must not show
    assert inputs.r0.shape == (3, 16, 256) and inputs.r0.dtype == np.float32
    assert inputs.present.shape == inputs.gamma.shape == (3, 16)
    assert inputs.present.any(axis=1).all()
    whole = model.hard_core_inputs(texts, batch=8)
    np.testing.assert_allclose(inputs.r0, whole.r0, atol=1e-5)
    np.testing.assert_array_equal(inputs.present, whole.present)
    frames = model.encode(texts)
    trace = model.reason(frames, ReasoningSettings(noise=False))
    np.testing.assert_allclose(whole.r0, trace.states.numpy(), atol=1e-6)
    readings = read_batch(inputs.r0, inputs.present, inputs.gamma)
    assert len(readings) == 3
    assert model.hard_core_inputs([]).r0.shape == (0, 16, 256)


# -- the hard core's reading of each problem's frame ----------------------------------------------


def _model(tiny_store: str, folder: Path) -> Any:
    from voltx_phases.models.inference import VoltModel

    store = ArtifactStore.open(tiny_store)
    return VoltModel.from_artifacts(
        {name: store.get(name, folder / name) for name in VOLT_X_ARTIFACTS}, "cpu"
    )


def test_each_problem_reports_the_hard_core_reading_of_its_reasoned_frame(
    tiny_store: str, tmp_path: Path
) -> None:
    from voltx_phases.hard_core.pipeline import read_batch
    from voltx_phases.hard_core.safety import default_axioms
    from voltx_phases.models.inference import hard_core_report

    model = _model(tiny_store, tmp_path)
    (problem,) = model.generate([PROMPT], n=2)
    # The frames the calibration phases read (same RAR seed): the same reading.
    inputs = model.hard_core_inputs([PROMPT])
    (reading,) = read_batch(inputs.r0, inputs.present, inputs.gamma)
    assert problem.hard_core == hard_core_report(reading, default_axioms())
    assert problem.hard_core.global_gamma == problem.samples[0].signals.min_slot_gamma
    assert problem.hard_core.safety_level in ("pass", "warning", "halt")


def test_calibrated_strands_and_axioms_change_the_reading(tiny_store: str, tmp_path: Path) -> None:
    import numpy as np

    from voltx_phases.hard_core.safety import Axiom, Severity
    from voltx_phases.hard_core.strands import Strand

    model = _model(tiny_store, tmp_path)
    inputs = model.hard_core_inputs([PROMPT])
    slot = int(np.flatnonzero(inputs.present[0])[0])
    # A strand and an axiom pointing at one of the frame's own slots: routed, and a halt.
    vector = inputs.r0[0, slot] / np.linalg.norm(inputs.r0[0, slot])
    model.strands = (Strand("code_runner", vector.astype(np.float32), 0.9),)
    model.axioms = (
        Axiom("K1_harm", vector.astype(np.float32), 0.9, Severity.HALT),
        Axiom("K4_autonomy", -vector.astype(np.float32), 0.9, Severity.WARNING),
    )
    (problem,) = model.generate([PROMPT], n=1)
    assert problem.hard_core == voltx.HardCoreReport(
        strand="code_runner",
        global_gamma=problem.hard_core.global_gamma,
        safety_level="halt",
        violated_axioms=("K1_harm",),
    )
    assert len(problem.samples) == 1  # reported, not acted on


def test_voltx_generate_prints_and_serialises_the_hard_core(
    tiny_store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--store", tiny_store, "generate", PROMPT, "--max-tokens", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    (line,) = [line for line in lines if line.startswith("# hard core: ")]
    assert line.startswith("# hard core: strand ") and ", global gamma " in line
    assert ", safety " in line
    assert main(["--store", tiny_store, "generate", PROMPT, "--max-tokens", "8", "--json"]) == 0
    (problem,) = json.loads(capsys.readouterr().out)
    assert set(problem["hard_core"]) == {
        "strand",
        "global_gamma",
        "safety_level",
        "violated_axioms",
    }


def test_generate_reads_the_calibrations_the_store_holds(
    tiny_store: str, copy_tiny_model_store: Any, tmp_path: Path
) -> None:
    import attrs

    from voltx_phases.hard_core.gamma_curve import GAMMA_CURVE_FILE, GammaCurve
    from voltx_phases.hard_core.safety import default_axioms
    from voltx_phases.hard_core.safety_file import FILE_NAME as AXIOMS_FILE
    from voltx_phases.hard_core.safety_file import write_axioms
    from voltx_phases.hard_core.strands_file import FILE_NAME as STRANDS_FILE
    from voltx_phases.hard_core.strands_file import write_strands

    (plain,) = voltx.generate(PROMPT, n=2, store=tiny_store, seed=1, max_tokens=16)
    assert all(sample.calibrated_confidence is None for sample in plain.samples)

    inputs = _model(tiny_store, tmp_path / "model").hard_core_inputs([PROMPT])
    slot = int(np.flatnonzero(inputs.present[0])[0])
    vector = (inputs.r0[0, slot] / np.linalg.norm(inputs.r0[0, slot])).astype(np.float32)
    folders = {name: tmp_path / name for name in ("router", "gamma", "axioms")}
    for folder in folders.values():
        folder.mkdir()
    # CodeExplainer points at one of the frame's slots, the other strands away from it.
    write_strands(
        folders["router"] / STRANDS_FILE,
        np.stack([-vector, -vector, vector, -vector, -vector]),
        np.full(5, 0.9, dtype=np.float32),
    )
    first, *others = default_axioms()
    write_axioms(folders["axioms"] / AXIOMS_FILE, [attrs.evolve(first, vector=vector), *others])
    GammaCurve(raw=[0.0, 1.0], calibrated=[0.2, 0.6], method="isotonic").write(
        folders["gamma"] / GAMMA_CURVE_FILE
    )
    url = copy_tiny_model_store("calibrated")
    store = ArtifactStore.open(url)
    store.add("router_calibration", folders["router"])
    store.add("gamma_calibration", folders["gamma"])
    store.add("safety_axioms", folders["axioms"])

    (problem,) = voltx.generate(PROMPT, n=2, store=url, seed=1, max_tokens=16)
    assert problem.hard_core is not None
    assert problem.hard_core.strand == "CodeExplainer"
    assert first.name in problem.hard_core.violated_axioms
    for sample in problem.samples:
        assert sample.calibrated_confidence == pytest.approx(0.2 + 0.4 * sample.confidence)
