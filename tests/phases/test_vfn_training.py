"""Phase 2.1: curriculum flow matching, chaining, schedule continuity, resume, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from _support import kill_job_at_checkpoints

torch = pytest.importorskip("torch")

from _frames import write_bias, write_problem_frames  # noqa: E402
from _layouts import documented_models, resized  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import voltx  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing import InProcessBackend, memory_store_url  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.soft_core.vfn_step import lr_factor, weights_digest  # noqa: E402

TINY = VfnShape(hidden_dim=64, num_blocks=1, time_freqs=4)


def _metrics(work: Path) -> list[dict[str, Any]]:
    (job,) = sorted((work / "jobs").iterdir())[-1:]
    return [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture
def inputs(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("problem_frames", write_problem_frames(tmp_path / "frames"))
    store.add("code_attention_bias", write_bias(tmp_path / "bias"))
    yield url, tmp_path / "work"


def _run(url: str, work: Path, **overrides: Any) -> voltx.RunResult:  # type: ignore[name-defined]
    return voltx.run(
        "2.1",
        backend=InProcessBackend(work_dir=work),
        store=url,
        overrides={f"2.1.{k}": v for k, v in overrides.items()},
    )


def test_stages_chain_and_losses_fall(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    result = _run(url, work)
    assert result.ok, result.phases["2.1"].reason
    rows = _metrics(work)
    starts = [r["init_digest_int"] for r in rows if "init_digest_int" in r]
    ends = [r["final_digest_int"] for r in rows if "final_digest_int" in r]
    assert len(starts) == len(ends) == 3
    # Each stage's first step starts from the previous stage's final weights.
    assert starts[1] == ends[0] and starts[2] == ends[1]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0]
    valid = [r["valid_loss"] for r in rows if r.get("stage") == 0 and "valid_loss" in r]
    assert valid[-1] < valid[0]
    store = ArtifactStore.open(url)
    assert store.resolve("vfn_training_report").files[0].path == "loss_curve.png"
    weights = store.get("scaled_vfn", work / "out")
    assert (weights / "scaled_vfn.safetensors").stat().st_size > 0


def test_one_schedule_across_epochs(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    assert _run(url, work, log_every_steps=1).ok
    rows = [r for r in _metrics(work) if "lr" in r and r["stage"] == 0]
    lrs = [r["lr"] for r in rows]
    total = len(lrs)  # 3 epochs of 5 steps: one schedule over all 15
    expected = [1e-4 * lr_factor(step, 2, total, 0.01) for step in range(total)]
    assert lrs == pytest.approx(expected, rel=1e-6)
    assert lrs[2:] == sorted(lrs[2:], reverse=True), "the cosine restarted at an epoch boundary"


def test_legacy_epoch_restart_reproduces_the_original(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    assert _run(url, work, log_every_steps=1, legacy_epoch_restart=True).ok
    lrs = [r["lr"] for r in _metrics(work) if "lr" in r and r["stage"] == 0]
    per_epoch = len(lrs) // 3
    assert lrs[:per_epoch] == lrs[per_epoch : 2 * per_epoch], "each epoch should restart warmup"


def test_original_layout_checkpoint_loads_and_trains(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    # The names come from docs/formats.md, not from voltx's own state_dict(), so a renamed
    # tensor fails here; the documented full-size shapes are taken down to the tiny size.
    shapes = resized(documented_models()["scaled_vfn"].shapes, {2048: 64, 128: 8}, blocks=1)
    generator = torch.Generator().manual_seed(0)
    tensors = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    # Written as the Rust implementation writes it: plain tensor names, no metadata.
    path = work.parent / "scaled_vfn_original.safetensors"
    save_file(tensors, str(path))
    original = ScaledVFN(TINY)
    original.load_state_dict(tensors)
    ArtifactStore.open(url).add("scaled_vfn_init", path)
    assert _run(url, work).ok
    starts = [r["init_digest_int"] for r in _metrics(work) if "init_digest_int" in r]
    assert starts[0] == int(weights_digest(original)[:12], 16)


def test_checkpoint_with_the_wrong_width_is_refused_before_training(
    inputs: tuple[str, Path],
) -> None:
    url, work = inputs
    wrong = ScaledVFN(VfnShape(hidden_dim=32, num_blocks=1, time_freqs=4))
    path = work.parent / "wide.safetensors"
    save_file(dict(wrong.state_dict()), str(path))
    ArtifactStore.open(url).add("scaled_vfn_init", path)
    result = _run(url, work)
    reason = result.phases["2.1"].reason
    assert result.phases["2.1"].status == "failed"
    assert "H=32" in reason and "H=64" in reason and "\n" not in reason
    assert not [r for r in _metrics(work) if "loss" in r], "training started anyway"


def test_unknown_dataset_in_a_stage_is_refused(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    stage = {
        "name": "s",
        "datasets": ["humaneval", "leetcode"],
        "output": "scaled_vfn",
        "lr": 1e-4,
        "warmup_steps": 1,
        "epochs": 1,
        "batch_size": 4,
    }
    stages = [
        dict(stage, name=f"s{i}", output=o)
        for i, o in enumerate(["scaled_vfn_stage1", "scaled_vfn_stage2", "scaled_vfn"])
    ]
    result = _run(url, work, stages=stages)
    assert "unknown dataset 'leetcode'" in result.phases["2.1"].reason


def test_empty_dataset_after_filtering_is_refused(tmp_path: Path) -> None:
    import numpy as np

    from voltx_phases.soft_core.config import PROBLEM_DATASETS
    from voltx_phases.soft_core.frames import FrameSet, write_frame_set

    frames = tmp_path / "frames"
    frames.mkdir()
    for dataset in PROBLEM_DATASETS:
        vectors = np.ones((4, 16, 256), dtype=np.float32)
        query_present = np.zeros((4, 16), dtype=bool)
        query_present[:, 0] = True
        solution_present = np.zeros((4, 16), dtype=bool)
        solution_present[:, 1] = True  # never the same slot: no pair survives
        write_frame_set(
            frames / f"{dataset}.safetensors",
            FrameSet(
                tuple(str(i) for i in range(4)), vectors, query_present, vectors, solution_present
            ),
        )
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("problem_frames", frames)
    store.add("code_attention_bias", write_bias(tmp_path / "bias"))
    result = _run(url, tmp_path / "work")
    assert "0 usable problem(s)" in result.phases["2.1"].reason


# -- bit-exact resume after SIGKILL ------------------------------------------------------------


def _cli(project: Path, *args: str, **popen: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "voltx", *args],
        cwd=project,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **popen,
    )


def _prepare(project: Path) -> None:
    project.mkdir()
    for name, path in (
        ("problem_frames", write_problem_frames(project.parent / "frames")),
        ("code_attention_bias", write_bias(project.parent / "bias")),
    ):
        process = _cli(project, "artifacts", "add", name, str(path))
        assert process.wait(60) == 0, process.stderr.read() if process.stderr else ""


RUN_ARGS = (
    "run",
    "2.1",
    "--max-attempts",
    "10",
    "--set",
    "2.1.checkpoint_every_steps=2",
    "--set",
    "2.1.keep_checkpoints=50",
)


def _final_digests(stdout: str) -> dict[str, str]:
    line = next(row for row in stdout.splitlines() if row.startswith("2.1 "))
    return {
        pair.split("@")[0]: pair.split("@")[1]
        for pair in line.split()[-1].split(",")
        if "@" in pair
    } or {"line": line}


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_at_random_steps_resumes_bit_exact(tmp_path: Path) -> None:
    baseline, interrupted = tmp_path / "a" / "project", tmp_path / "b" / "project"
    baseline.parent.mkdir()
    interrupted.parent.mkdir()
    _prepare(baseline)
    _prepare(interrupted)
    reference = _cli(baseline, *RUN_ARGS)
    _, ref_err = reference.communicate(timeout=300)
    assert reference.returncode == 0, ref_err

    process = _cli(interrupted, *RUN_ARGS)
    # Kill mid stage 1, right at the stage 1 -> 2 boundary, and mid stage 3.
    kills = kill_job_at_checkpoints(process, interrupted, "2.1", [5, 10_000_000, 20_000_002])
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    assert len(kills) == 3, f"only killed at {kills}"
    assert err.count("job lost; resubmitting") == 3
    assert _weights(interrupted) == _weights(baseline)
    # The report holds every metrics row of every attempt (restored from the checkpoints) and
    # no wall-clock time, so the resumed run's report is the uninterrupted one, byte for byte.
    assert _digest(interrupted, "vfn_training_report") == _digest(baseline, "vfn_training_report")


def _digest(project: Path, name: str) -> str:
    return ArtifactStore.open(str(project / ".voltx")).resolve(name).digest


def _weights(project: Path) -> dict[str, str]:
    store = ArtifactStore.open(str(project / ".voltx"))
    names = [
        "scaled_vfn_stage1",
        "scaled_vfn_stage2",
        "scaled_vfn",
        "slot_attention",
        "diffusion_controller",
    ]
    return {name: store.resolve(name).digest for name in names}


def test_nan_loss_stops_with_a_clear_error(tmp_path: Path) -> None:
    from voltx_phases.soft_core.frames import read_frame_set, write_frame_set

    frames = write_problem_frames(tmp_path / "frames")
    for path in frames.glob("*.safetensors"):
        data = read_frame_set(path)
        data.query[:, :, :] = float("nan")
        write_frame_set(path, data)
    url = memory_store_url()
    store = ArtifactStore.open(url)
    store.add("problem_frames", frames)
    store.add("code_attention_bias", write_bias(tmp_path / "bias"))
    result = _run(url, tmp_path / "work")
    reason = result.phases["2.1"].reason
    assert "loss is nan at stage stage1, epoch 1, step 1" in reason


def test_gaussian_source_variant_trains(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    assert _run(url, work, source="gaussian").ok
    losses = [r["flow"] for r in _metrics(work) if "flow" in r]
    assert losses[-1] < losses[0]


def test_cuda_out_of_memory_names_the_batch_and_the_fix(
    inputs: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from voltx_phases.soft_core import vfn_step

    def out_of_memory(*_args: Any, **_kwargs: Any) -> Any:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(vfn_step, "_losses", out_of_memory)
    url, work = inputs
    reason = _run(url, work).phases["2.1"].reason
    assert "CUDA out of memory at batch size 8 (micro-batch 8)" in reason
    assert "2.1.micro_batch_halvings=1" in reason


def test_micro_batch_halving_keeps_the_effective_batch(inputs: tuple[str, Path]) -> None:
    url, work = inputs
    assert _run(url, work, micro_batch_halvings=1, rar_weight=0.0).ok
    halved = [r["loss"] for r in _metrics(work) if "loss" in r]
    url2 = memory_store_url()
    store = ArtifactStore.open(url2)
    source = ArtifactStore.open(url)
    for name in ("problem_frames", "code_attention_bias"):
        folder = source.get(name, work.parent / f"copy-{name}")
        store.add(name, folder)
    assert _run(url2, work.parent / "work2", rar_weight=0.0).ok
    whole = [r["loss"] for r in _metrics(work.parent / "work2") if "loss" in r]
    # Same batches, same effective batch: the same losses up to float summation order.
    assert halved == pytest.approx(whole, rel=1e-4)
