"""Checkpoints hold safetensors and JSON only: a planted serialised Python object is refused.

A checkpoint comes from the store, which may be a shared bucket. These tests plant a pickle whose
loading would create a marker file, and show that voltx refuses the checkpoint with a one-line
voltx error naming the file, and that the marker never appears.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from voltx import CheckpointManager, VoltxError  # noqa: E402
from voltx.checkpoints import Checkpoint  # noqa: E402
from voltx_phases._common.training_state import (  # noqa: E402
    CheckpointFormatError,
    read_training_state,
    write_training_state,
)
from voltx_phases.models.diffusion_controller import DiffusionController  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402
from voltx_phases.models.slot_attention import SlotAttention  # noqa: E402
from voltx_phases.soft_core.vfn_checkpoints import (  # noqa: E402
    Position,
    StageTrainer,
    restore_models,
    restore_trainer,
    save_checkpoint,
)
from voltx_phases.soft_core.vfn_step import Models, weights_digest  # noqa: E402

TINY = VfnShape(hidden_dim=32, num_blocks=1, time_freqs=4)


class _Payload:
    """Unpickling this opens (creates) the marker file: proof that the pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def _models() -> Models:
    return Models(ScaledVFN(TINY), SlotAttention(), DiffusionController())


def _trainer(models: Models) -> StageTrainer:
    optimizer = torch.optim.AdamW(models.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))
    return StageTrainer(optimizer, schedule, torch.Generator().manual_seed(3))


def _step(models: Models, trainer: StageTrainer) -> None:
    loss = models.vfn(torch.randn(4, 256), torch.rand(4)).pow(2).mean()
    loss.backward()
    trainer.optimizer.step()
    trainer.schedule.step()
    torch.rand(3, generator=trainer.generator)


@pytest.fixture
def checkpoint(tmp_path: Path) -> Checkpoint:
    models = _models()
    trainer = _trainer(models)
    _step(models, trainer)
    manager = CheckpointManager(tmp_path / "checkpoints")
    save_checkpoint(manager, models, Position(stage=0, epoch=0, batch=1, step=1), trainer)
    latest = manager.latest()
    assert latest is not None
    return latest


def test_the_checkpoint_round_trips_without_pickle(checkpoint: Checkpoint) -> None:
    names = sorted(p.name for p in checkpoint.path.iterdir())
    assert names == [
        "MANIFEST.json",
        "diffusion_controller.safetensors",
        "optimizer.safetensors",
        "rng.safetensors",
        "scaled_vfn.safetensors",
        "slot_attention.safetensors",
        "trainer.json",
    ]
    models = _models()
    trainer = _trainer(models)
    assert restore_models(checkpoint, models) == Position(0, 0, 1, 1)
    assert restore_trainer(checkpoint, trainer)
    assert trainer.schedule.last_epoch == 1
    assert trainer.optimizer.state_dict()["state"][0]["exp_avg"].abs().sum() > 0
    saved = _models()
    restore_models(checkpoint, saved)
    assert weights_digest(models.vfn) == weights_digest(saved.vfn)


def test_a_planted_pickle_file_is_refused_and_never_loaded(
    checkpoint: Checkpoint, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    (checkpoint.path / "trainer_state.pt").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointFormatError) as caught:
        restore_models(checkpoint, _models())
    message = str(caught.value)
    assert isinstance(caught.value, VoltxError)
    assert "trainer_state.pt is not part of the checkpoint format" in message
    assert "delete the phase's checkpoints" in message and "\n" not in message
    assert caught.value.path == checkpoint.path / "trainer_state.pt"
    assert not marker.exists()


def test_a_pickle_in_place_of_a_tensor_file_is_refused(
    checkpoint: Checkpoint, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    (checkpoint.path / "optimizer.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    models = _models()
    with pytest.raises(CheckpointFormatError, match=r"optimizer\.safetensors: not a readable"):
        restore_trainer(checkpoint, _trainer(models))
    (checkpoint.path / "scaled_vfn.safetensors").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CheckpointFormatError, match=r"scaled_vfn\.safetensors"):
        restore_models(checkpoint, models)
    assert not marker.exists()


def test_an_old_torch_save_checkpoint_is_refused(tmp_path: Path) -> None:
    """The layout 2.1 wrote before: weights in safetensors, the rest in a `torch.save` file."""
    folder = tmp_path / "step-000000010"
    folder.mkdir()
    marker = tmp_path / "pwned"
    (folder / "trainer_state.pt").write_bytes(pickle.dumps(_Payload(marker)))
    models = _models()
    write_training_state(folder, models.modules(), None, {})
    (folder / "trainer.json").unlink()
    with pytest.raises(CheckpointFormatError, match=r"no trainer\.json") as caught:
        read_training_state(folder, models.modules(), None)
    assert "trainer_state.pt" in str(caught.value)
    assert not marker.exists()


@pytest.mark.slow
def test_a_run_resuming_from_a_planted_checkpoint_fails_with_the_reason(tmp_path: Path) -> None:
    """End to end: phase 2.1 finds a pickle in its latest checkpoint in the store and stops."""
    from _frames import write_bias, write_problem_frames

    import voltx
    from voltx.store import ArtifactStore
    from voltx.testing import InProcessBackend

    root = tmp_path / "store"
    store = ArtifactStore.open(str(root))
    store.add("problem_frames", write_problem_frames(tmp_path / "frames", problems=16))
    store.add("code_attention_bias", write_bias(tmp_path / "bias"))
    first = voltx.run("2.1", backend=InProcessBackend(tmp_path / "a"), store=str(root))
    assert first.ok, first.phases["2.1"].reason
    # Forget the success, so the next run trains again and resumes from the latest checkpoint.
    for record in (root / "records" / "fingerprints").glob("*.json"):
        record.unlink()
    latest = max((root / "checkpoints" / "2.1").glob("*/step-*"))
    marker = tmp_path / "pwned"
    (latest / "trainer_state.pt").write_bytes(pickle.dumps(_Payload(marker)))

    second = voltx.run("2.1", backend=InProcessBackend(tmp_path / "b"), store=str(root))
    phase = second.phases["2.1"]
    assert phase.status == "failed"
    assert "trainer_state.pt is not part of the checkpoint format" in phase.reason
    assert not marker.exists()
