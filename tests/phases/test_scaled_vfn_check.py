"""The artifact check of ScaledVFN weights brought from the original (`scaled_vfn`, ...)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import save_file  # noqa: E402

from voltx.errors import ArtifactFormatError  # noqa: E402
from voltx.imports import check_artifact  # noqa: E402
from voltx_phases.models.loading import check_scaled_vfn_file  # noqa: E402
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape  # noqa: E402

SHAPE = VfnShape(hidden_dim=64, num_blocks=2, time_freqs=4)


def _original(tmp_path: Path, rename: dict[str, str] | None = None, **replace: object) -> Path:
    """A file as the Rust implementation writes it: plain tensor names, no metadata."""
    tensors = {k: v.contiguous() for k, v in ScaledVFN(SHAPE).state_dict().items()}
    for old, new in (rename or {}).items():
        tensors[new] = tensors.pop(old)
    tensors.update({k: v for k, v in replace.items() if isinstance(v, torch.Tensor)})
    path = tmp_path / "scaled_vfn.safetensors"
    save_file(tensors, str(path))
    return path


def test_a_file_in_the_original_layout_is_accepted(tmp_path: Path) -> None:
    path = _original(tmp_path)
    assert check_scaled_vfn_file(path) == SHAPE
    assert check_scaled_vfn_file(tmp_path) == SHAPE  # the folder holding it
    for name in ("scaled_vfn", "scaled_vfn_init"):
        check_artifact(name, path)


def test_a_wrong_tensor_name_is_refused_naming_file_and_tensor(tmp_path: Path) -> None:
    path = _original(tmp_path, rename={"block_1.fc2.weight": "block_1.fc_2.weight"})
    with pytest.raises(ArtifactFormatError) as caught:
        check_artifact("scaled_vfn", path)
    message = str(caught.value)
    assert str(path) in message and "'block_1.fc2.weight'" in message and "\n" not in message


def test_a_wrong_shape_is_refused_naming_file_and_tensor(tmp_path: Path) -> None:
    path = _original(tmp_path, **{"block_0.fc1.weight": torch.zeros(64, 32)})
    with pytest.raises(ValueError) as caught:
        check_scaled_vfn_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert "'block_0.fc1.weight' has shape [64, 32], expected [64, 64]" in message


def test_a_file_that_is_not_a_scaled_vfn_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"embed.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ArtifactFormatError, match=r"missing tensor 'entry\.weight'"):
        check_artifact("scaled_vfn", path)
