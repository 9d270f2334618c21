"""Phase 5.3's checks: the ground truth of references, and contamination read from lineage.

The contamination tests run the real phase 0.2 (tiny, seconds) with ``combine_benchmarks`` on
and off, then commit stand-in model artifacts whose lineage is what phases 1.1, 1.2, 2.0 and
2.1 record (their inputs and 2.1's tiny config), so the check walks the store's lineage as it
does after a real run without training anything.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import attrs
import pytest

import voltx
from voltx.store import ArtifactStore
from voltx.testing import InProcessBackend
from voltx_phases.datasets.schema import Problem, read_problems
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.scale.contamination import find_contamination, training_sets
from voltx_phases.scale.ground_truth import candidate_program, check_references
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
