"""Phase 5.1 on its tiny profile, in one process: growth, distillation, outputs, bad input.

The data-parallel runs (2 gloo ranks, SIGKILL of a rank, stop) are in tests/test_data_parallel.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from _frames import write_bias, write_problem_frames  # noqa: E402
from _scaling import TEACHER, add_inputs, write_vfn_sleep  # noqa: E402

import voltx  # noqa: E402
from voltx.job_document import JobDocument  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402
from voltx_phases.models.loading import load_scaled_vfn  # noqa: E402
from voltx_phases.scale.distillation import alpha_at  # noqa: E402


def _run(url: str, work: Path, **overrides: Any) -> voltx.RunResult:  # type: ignore[name-defined]
    # One core: the scheduler runs the phase as one process (no torchrun).
    return voltx.run(
        "5.1",
        backend=InProcessBackend(work_dir=work, cpu_cores=1),
        store=url,
        overrides={f"5.1.{k}": v for k, v in overrides.items()},
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[ArtifactStore, Path]:
    folder = tmp_path_factory.mktemp("scaling")
    url = memory_store_url()
    store = ArtifactStore.open(url)
    add_inputs(store, folder)
    result = _run(url, folder / "work")
    assert result.ok, result.phases["5.1"].reason
    return store, folder


def test_students_are_grown_widths_with_the_carried_models(
    trained: tuple[ArtifactStore, Path],
) -> None:
    store, folder = trained
    for name, factor in (("vfn_200m", 2), ("vfn_500m", 3)):
        out = store.get(name, folder / "out" / name)
        assert sorted(p.name for p in out.iterdir()) == [
            "diffusion_controller.safetensors",
            "scaled_vfn.safetensors",
            "slot_attention.safetensors",
        ]
        vfn = load_scaled_vfn(out)
        assert vfn.shape.hidden_dim == factor * TEACHER.hidden_dim
        assert vfn.shape.num_blocks == TEACHER.num_blocks
        source = folder / "vfn_sleep" / "slot_attention.safetensors"
        assert (out / "slot_attention.safetensors").read_bytes() == source.read_bytes()


def test_growth_preserves_the_velocity_and_training_lowers_the_flow_loss(
    trained: tuple[ArtifactStore, Path],
) -> None:
    store, folder = trained
    report = store.get("vfn_scaling_report", folder / "report")
    assert (report / "loss_curves.png").stat().st_size > 0
    stages = json.loads((report / "metrics.json").read_text())["stages"]
    assert [s["output"] for s in stages] == ["vfn_200m", "vfn_500m"]
    for stage in stages:
        # Right after growing, the student is the teacher it was grown from.
        assert stage["growth_max_velocity_gap"] < 1e-5
        # The learning signal: the trained student fits the flow better than the grown one.
        assert stage["trained_valid_flow"] < stage["grown_valid_flow"]
    # The first student's grown loss is its teacher's: the same function.
    first = stages[0]
    assert first["grown_valid_flow"] == pytest.approx(first["teacher_valid_flow"], rel=1e-5)


def test_alpha_rises_to_one_by_the_end_of_the_ramp() -> None:
    assert alpha_at(0, 100, 0.3, 0.5) == pytest.approx(0.3)
    assert alpha_at(25, 100, 0.3, 0.5) == pytest.approx(0.65)
    assert alpha_at(50, 100, 0.3, 0.5) == 1.0
    assert alpha_at(99, 100, 0.3, 0.5) == 1.0
    assert alpha_at(0, 100, 0.3, 0.0) == 1.0


def test_input_without_the_diffusion_controller_is_refused(tmp_path: Path) -> None:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    sleep = write_vfn_sleep(tmp_path / "vfn_sleep")
    (sleep / "diffusion_controller.safetensors").unlink()
    store.add("vfn_sleep", sleep)
    store.add("problem_frames", write_problem_frames(tmp_path / "frames", problems=24))
    result = _run(url, tmp_path / "work")
    assert not result.ok
    reason = result.phases["5.1"].reason
    assert "vfn_sleep" in reason and "diffusion_controller.safetensors" in reason


def test_a_batch_that_does_not_split_into_micro_batches_is_refused(
    tmp_path: Path,
) -> None:
    url = memory_store_url()
    add_inputs(ArtifactStore.open(url), tmp_path)
    stages = [
        {"output": "vfn_200m", "width_factor": 2, "steps": 2, "batch_size": 3, "accumulation": 2},
        {"output": "vfn_500m", "width_factor": 3, "steps": 2, "batch_size": 4},
    ]
    result = _run(url, tmp_path / "work", stages=stages)
    assert not result.ok
    assert "stages[0].batch_size 3" in result.phases["5.1"].reason


def test_one_core_runs_the_phase_as_one_process(trained: tuple[ArtifactStore, Path]) -> None:
    _store, folder = trained
    (job,) = (folder / "work" / "jobs").iterdir()
    # The spec asks for 2 ranks; the scheduler clamps to the backend's one core, no torchrun.
    assert JobDocument.read(job / "job.json").processes == 1
    assert not (job / "ranks.json").exists()


@pytest.mark.slow
def test_grows_the_vfn_that_2_1_trained(tmp_path: Path) -> None:
    """Until 4.3 writes `vfn_sleep`, the folder is made of 2.1's tiny outputs (the same layout)."""
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("problem_frames", write_problem_frames(tmp_path / "frames", problems=24))
    store.add("code_attention_bias", write_bias(tmp_path / "bias"))
    backend = InProcessBackend(work_dir=tmp_path / "work", cpu_cores=1)
    assert voltx.run("2.1", backend=backend, store=url).ok
    sleep = tmp_path / "vfn_sleep"
    sleep.mkdir()
    for name in ("scaled_vfn", "slot_attention", "diffusion_controller"):
        folder = store.get(name, tmp_path / "from_2_1" / name)
        (sleep / f"{name}.safetensors").write_bytes((folder / f"{name}.safetensors").read_bytes())
    store.add("vfn_sleep", sleep)
    result = voltx.run("5.1", backend=backend, store=url)
    assert result.ok, result.phases["5.1"].reason
    report = store.get("vfn_scaling_report", tmp_path / "report")
    stages = json.loads((report / "metrics.json").read_text())["stages"]
    assert all(stage["growth_max_velocity_gap"] < 1e-5 for stage in stages)
    assert load_scaled_vfn(store.get("vfn_500m", tmp_path / "500m")).shape.hidden_dim == 192
