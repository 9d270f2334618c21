"""The artifact check for ScaledVFN weights, including files written by the original.

    voltx artifacts add scaled_vfn_init scaled_vfn.safetensors   # runs check_scaled_vfn_file

    from voltx_phases.soft_core.checks import check_scaled_vfn_file
    shape = check_scaled_vfn_file("scaled_vfn.safetensors")   # or the folder holding it

The sizes are read from the file itself (hidden width and slot width from ``entry.weight``, the
time frequencies from ``time_proj.weight``, the block count from the ``block_{i}.fc1.weight``
tensors), then every tensor is checked against the ScaledVFN layout those sizes imply (tensor
names and shapes in `docs/formats.md`). A mismatch raises `WeightsError` (a `ValueError`) in one
line naming the file and the tensor. Only the safetensors header is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from voltx_phases._common.weights import (
    WeightsError,
    compare_shapes,
    expected_shapes,
    locate,
    sized,
    tensor_shapes,
)
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape

SCALED_VFN_FILE = "scaled_vfn.safetensors"


def scaled_vfn_shape(shapes: Mapping[str, tuple[int, ...]], file: Path) -> VfnShape:
    """The VfnShape implied by ``entry.weight`` [H, 256], ``time_proj.weight`` [H, 2F] and the
    number of ``block_{i}.fc1.weight`` tensors."""
    hidden_dim, slot_dim = sized(shapes, "entry.weight", 2, file)
    time_inputs = sized(shapes, "time_proj.weight", 2, file)[1]
    if time_inputs % 2:
        raise WeightsError(
            f"{file}: tensor 'time_proj.weight' has {time_inputs} inputs, expected an even "
            "number (sin and cos of each frequency)"
        )
    blocks = sum(1 for name in shapes if name.startswith("block_") and name.endswith(".fc1.weight"))
    return VfnShape(
        hidden_dim=hidden_dim, num_blocks=blocks, time_freqs=time_inputs // 2, slot_dim=slot_dim
    )


def check_scaled_vfn_file(path: Path | str) -> VfnShape:
    """Check a ScaledVFN weights file (names and shapes); returns its shape."""
    file = locate(path, SCALED_VFN_FILE)
    shapes = tensor_shapes(file)
    shape = scaled_vfn_shape(shapes, file)
    compare_shapes(shapes, expected_shapes(ScaledVFN, shape), file)
    return shape
