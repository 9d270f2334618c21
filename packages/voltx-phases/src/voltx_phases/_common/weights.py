"""safetensors weights with the original tensor names, and errors that name the tensor."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn


class WeightsError(ValueError):
    """A weights file does not fit the model: names the file and the tensor."""


def canonicalize_safetensors(path: Path) -> None:
    """Rewrite a safetensors header with sorted keys, so equal tensors give equal bytes.

    The safetensors writer keeps metadata in a Rust HashMap, whose order changes from process to
    process: the same weights would get a new digest on every run, and everything downstream
    would look changed. The data offsets are relative to the end of the header, so a header of
    another length needs no other change.
    """
    raw = path.read_bytes()
    length = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + length])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the format pads the header to 8 bytes with spaces
    staging = path.with_name(path.name + ".tmp")
    staging.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + length :])
    staging.replace(path)


def save_tensors(
    tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str] | None = None
) -> None:
    """`safetensors.torch.save_file` with deterministic bytes."""
    save_file(dict(tensors), str(path), metadata=dict(metadata or {}))
    canonicalize_safetensors(path)


def save_weights(module: nn.Module, path: Path, metadata: Mapping[str, str] | None = None) -> None:
    """Write every parameter and buffer under its state-dict name, contiguous and on CPU."""
    tensors = {name: t.detach().to("cpu").contiguous() for name, t in module.state_dict().items()}
    save_tensors(tensors, path, metadata)


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
