"""safetensors weights with the original tensor names, and errors that name the tensor."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class WeightsError(ValueError):
    """A weights file does not fit the model: names the file and the tensor."""


def save_weights(module: nn.Module, path: Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write every parameter and buffer under its state-dict name, contiguous and on CPU."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in module.state_dict().items()}
    save_file(tensors, str(path), metadata=dict(metadata or {}))


def check_tensors(
    tensors: Mapping[str, torch.Tensor], expected: Mapping[str, tuple[int, ...]], path: Path
) -> None:
    """Raise WeightsError naming the first missing, unexpected or wrongly shaped tensor."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise WeightsError(
            f"{path}: missing tensor {missing[0]!r} (and {len(missing) - 1} more)"
            if len(missing) > 1
            else f"{path}: missing tensor {missing[0]!r}"
        )
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise WeightsError(f"{path}: unexpected tensor {unexpected[0]!r}")
    for name, shape in expected.items():
        actual = tuple(tensors[name].shape)
        if actual != tuple(shape):
            raise WeightsError(
                f"{path}: tensor {name!r} has shape {list(actual)}, expected {list(shape)}"
            )


def load_weights(module: nn.Module, path: Path) -> None:
    """Load a safetensors file into `module`, checking names and shapes first."""
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise WeightsError(f"{path}: not a readable safetensors file: {exc}") from exc
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    check_tensors(tensors, expected, path)
    module.load_state_dict(tensors)
