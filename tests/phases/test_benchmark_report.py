"""Phase 5.3's checks: the ground truth of references, and contamination read from lineage.

The contamination tests run the real phase 0.2 (tiny, seconds) with ``combine_benchmarks`` on
and off, then commit stand-in model artifacts whose lineage is what phases 1.1, 1.2, 2.0 and
2.1 record (their inputs and 2.1's tiny config), so the check walks the store's lineage as it
does after a real run without training anything.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
from safetensors.numpy import save_file

import voltx
from voltx.checkpoints import CheckpointManager
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend
from voltx_phases.datasets.schema import Problem, read_problems
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.scale.benchmark_report import load_outcomes, save_outcomes
from voltx_phases.scale.contamination import (
    Contamination,
    find_contamination,
    training_sets,
    unknown,
)
from voltx_phases.scale.ground_truth import (
    BrokenProblem,
    GroundTruth,
    candidate_program,
    check_references,
)
from voltx_phases.scale.report_config import BenchmarkReportConfig
from voltx_phases.scale.report_render import ProblemOutcome, write_report
from voltx_phases.soft_core.config import PROBLEM_DATASETS, VFN_PROFILES

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="needs bubblewrap")
LIMITS = SandboxLimits(timeout_s=5.0)


def _problem(pid: str, solution: str, tests: tuple[str, ...], **extra: object) -> Problem:
    return Problem(id=pid, query=f"problem {pid}", solution=solution, tests=tests, **extra)  # type: ignore[arg-type]


@needs_bwrap
def test_the_ground_truth_check_flags_a_planted_broken_problem() -> None:
    good = _problem("ok/1", "def add(a, b):\n    return a + b\n", ("assert add(2, 3) == 5",))
    broken = _problem("broken/1", "def add(a, b):\n    return a - b\n", ("assert add(2, 3) == 5",))
    crashing = _problem("broken/2", "def f(:\n", ("assert f() == 1",))
    completion = _problem(
        "MultiPL-E/js/x",
        "function f() {",
        ("console.log(1)",),
        language="javascript",
        stop_tokens=("\nfunction",),
    )
    truth = check_references([good, broken, crashing, completion], LIMITS, workers=2)
    assert [p.id for p in truth.kept] == ["ok/1", "MultiPL-E/js/x"]
    assert sorted(b.problem_id for b in truth.broken) == ["broken/1", "broken/2"]
    assert all(b.reason for b in truth.broken)
    assert truth.unverifiable == ("MultiPL-E/js/x",)
    assert truth.to_json()["checked"] == 3 and truth.to_json()["passed"] == 1


def test_a_completion_is_cut_at_its_first_stop_token() -> None:
    row = _problem(
        "m", "function f() {\n", ("",), language="javascript", stop_tokens=("\n}", "\n//")
    )
    assert candidate_program(row, "  return 1;\n}\nrest\n// x") == "function f() {\n  return 1;"
    plain = _problem("p", "def f(): pass", ("",))
    assert candidate_program(plain, "def f():\n    return 2\n") == "def f():\n    return 2\n"


def _datasets_store(root: Path, combine: bool) -> ArtifactStore:
    result = voltx.run(
        "0.2",
        backend=InProcessBackend(root / "jobs"),
        store=str(root / "store"),
        profile="tiny",
        overrides=[f"0.2.combine_benchmarks={'true' if combine else 'false'}"],
    )
    result.raise_for_status()
    return ArtifactStore.open(str(root / "store"))


def _commit(
    store: ArtifactStore,
    tmp: Path,
    name: str,
    phase: str,
    inputs: dict[str, str],
    config: dict[str, object] | None = None,
) -> str:
    folder = tmp / "made" / name
    folder.mkdir(parents=True)
    (folder / f"{name}.bin").write_text(name)  # distinct content: one manifest each
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    lineage = {
        "phase": phase,
        "config": config or {},
        "inputs": inputs,
        "fingerprint": f"fp-{phase}",
        "started_at": now,
        "finished_at": now,
    }
    return store.commit(name, folder, lineage).digest


def _model(store: ArtifactStore, tmp: Path) -> dict[str, str]:
    """Stand-ins for the model's artifacts, with the lineage the real phases record."""
    ref = {name: store.ref(name) or "" for name in (*PROBLEM_DATASETS, "stack_python")}
    tokens = {
        "stack_python": ref["stack_python"],
        "code_training_combined": ref["code_training_combined"],
    }
    tokenizer = _commit(store, tmp, "code_tokenizer", "1.1", tokens)
    encoder = _commit(store, tmp, "code_encoder", "1.1", tokens)
    translator = {"code_tokenizer": tokenizer, "code_encoder": encoder}
    decoder = _commit(store, tmp, "code_decoder", "1.2", {**translator, **tokens})
    frames = _commit(
        store, tmp, "problem_frames", "2.0", {**translator, **{d: ref[d] for d in PROBLEM_DATASETS}}
    )
    bias = _commit(store, tmp, "code_attention_bias", "0.4", {})
    vfn_config = attrs.asdict(VFN_PROFILES["tiny"])
    soft = {"problem_frames": frames, "code_attention_bias": bias}
    model = {
        "code_tokenizer": tokenizer,
        "code_encoder": encoder,
        "code_decoder": decoder,
        "code_attention_bias": bias,
    }
    for name in ("scaled_vfn", "slot_attention", "diffusion_controller"):
        model[name] = _commit(store, tmp, name, "2.1", soft, vfn_config)
    return model


def _benchmarks(store: ArtifactStore, tmp: Path) -> dict[str, list[Problem]]:
    found = {}
    for label, name in (
        ("HumanEval", "humaneval"),
        ("MBPP", "mbpp"),
        ("APPS introductory", "apps_introductory_train"),
    ):
        folder = store.get(name, tmp / "bench" / name)
        found[label] = list(read_problems(folder / f"{name}.jsonl"))
    return found


def test_contamination_flags_humaneval_when_benchmarks_are_combined(tmp_path: Path) -> None:
    store = _datasets_store(tmp_path, combine=True)
    model = _model(store, tmp_path)
    benchmarks = _benchmarks(store, tmp_path)
    sets = {t.name: t.trained_by for t in training_sets(store, model)}
    # 2.0 only encodes humaneval and mbpp: they are not training sets themselves.
    assert sets["code_training_combined"] == ("1.1", "1.2", "2.1")
    assert "humaneval" not in sets and "mbpp" not in sets
    assert sets["apps_introductory_train"] == ("2.1",)  # a stage of 2.1's curriculum
    found = find_contamination(store, model, benchmarks)
    assert found.problems_in("HumanEval") == {p.id for p in benchmarks["HumanEval"]}
    assert found.problems_in("MBPP") == {p.id for p in benchmarks["MBPP"]}
    assert set(found.found["HumanEval"].values()) == {("code_training_combined",)}
    report = found.to_json()
    assert report["lineage_read"] and "HumanEval" in report["contaminated"]


def test_contamination_reports_none_when_benchmarks_are_left_out(tmp_path: Path) -> None:
    store = _datasets_store(tmp_path, combine=False)
    model = _model(store, tmp_path)
    benchmarks = _benchmarks(store, tmp_path)
    found = find_contamination(store, model, benchmarks)
    assert found.problems_in("HumanEval") == frozenset()
    assert found.problems_in("MBPP") == frozenset()
    # APPS problems are read from the training splits 2.1 trains on: always contaminated.
    assert found.problems_in("APPS introductory") == {p.id for p in benchmarks["APPS introductory"]}
    assert "HumanEval" not in found.to_json()["contaminated"]


def _outcomes() -> dict[str, list[ProblemOutcome]]:
    solved = ProblemOutcome("HumanEval/0", 10, 4, 7, (True,) * 4 + (False,) * 6, (0.9,) * 10)
    unsolved = ProblemOutcome("HumanEval/1", 10, 0, 50, (False,) * 10, (0.1,) * 10)
    other = ProblemOutcome("MBPP/1", 10, 10, 3, (True,) * 10, (0.8,) * 10)
    return {"HumanEval": [solved, unsolved], "MBPP": [other]}


def _curve(folder: Path, **metadata: str) -> Path:
    folder.mkdir()
    raw = np.linspace(0, 1, 5, dtype=np.float32)
    meta = {"format": "voltx-gamma-curve", "version": "1", "method": "isotonic"} | metadata
    tensors = {"raw": raw, "calibrated": (raw * 0.5).astype(np.float32)}
    save_file(tensors, str(folder / "gamma_calibration.safetensors"), metadata=meta)
    return folder


def test_the_report_says_both_scores_and_draws_its_figures(tmp_path: Path) -> None:
    truths = {
        "HumanEval": GroundTruth((), (BrokenProblem("HumanEval/9", "AssertionError"),), ()),
        "MBPP": GroundTruth((), (), ()),
    }
    dirty = Contamination((), {"HumanEval": {"HumanEval/0": ("code_training_combined",)}})
    out = tmp_path / "report"
    out.mkdir()
    report = write_report(
        out,
        config=BenchmarkReportConfig(samples_per_problem=10),
        outcomes=_outcomes(),
        sources={"HumanEval": "raw_humaneval", "MBPP": "embedded"},
        truths=truths,
        contamination=dirty,
        gamma_curve=_curve(tmp_path / "gamma"),
    )
    humaneval, mbpp = report["benchmarks"]
    assert humaneval["pass_at_k"]["pass@1"] == pytest.approx(0.2)  # (0.4 + 0) / 2
    assert humaneval["pass_at_k"]["pass@10"] == pytest.approx(0.5)
    assert "pass@100" not in humaneval["pass_at_k"]  # n = 10
    assert humaneval["pass_at_k_uncontaminated"] == {"pass@1": 0.0, "pass@10": 0.0}
    assert humaneval["rar_iterations_solved"] == 7 and humaneval["rar_iterations_unsolved"] == 50
    assert mbpp["contaminated"] == [] and mbpp["pass_at_k"]["pass@1"] == 1.0
    assert report["pass_at_1_all"] == pytest.approx((0.4 + 0 + 1) / 3)
    # Calibrated 0.9 -> 0.45 and 0.8 -> 0.4 share the bin [0.4, 0.5): mean 0.425, 14 of 20
    # passed; 0.1 -> 0.05 is alone in [0, 0.1), none passed.
    assert report["calibration"]["ece"] == pytest.approx(
        (20 * abs(0.425 - 0.7) + 10 * abs(0.05 - 0)) / 30, abs=1e-6
    )
    assert json.loads((out / "report.json").read_text()) == report
    markdown = (out / "report.md").read_text()
    assert markdown.count("CONTAMINATED: 1 HumanEval problem(s)") == 1
    assert "HumanEval HumanEval/9: AssertionError" in markdown
    assert "CONTAMINATED: 1 HumanEval" in (out / "report.html").read_text()
    for png in ("pass_at_k.png", "rar_iterations.png", "reliability.png"):
        assert (out / png).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_unknown_lineage_is_said_loudly(tmp_path: Path) -> None:
    out = tmp_path / "report"
    out.mkdir()
    write_report(
        out,
        config=BenchmarkReportConfig(samples_per_problem=10),
        outcomes=_outcomes(),
        sources={},
        truths={label: GroundTruth((), (), ()) for label in _outcomes()},
        contamination=unknown({label: [] for label in _outcomes()}),
    )
    assert "CONTAMINATION UNKNOWN" in (out / "report.md").read_text()
    assert not (out / "reliability.png").exists()


def test_outcomes_survive_a_checkpoint_exactly(tmp_path: Path) -> None:
    manager = CheckpointManager(tmp_path / "checkpoints")
    assert load_outcomes(manager) == {}
    first = {"HumanEval": _outcomes()["HumanEval"][:1]}
    save_outcomes(manager, 1, first)
    assert load_outcomes(manager) == first
    save_outcomes(manager, 3, _outcomes())
    assert load_outcomes(manager) == _outcomes()  # floats and tuples round-trip exactly
