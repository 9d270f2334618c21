"""safetensors weights with the original tensor names, and errors that name the tensor.

Also the header-only checks the artifact checks share: a weights file's tensor names and shapes
are read without loading its data, and compared with a model's layout built on the meta device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from voltx_phases._common.safetensors_header import canonicalize_safetensors


class WeightsError(ValueError):
    """A weights file does not fit the model: names the file and the tensor."""


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


_FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
ShapeT = TypeVar("ShapeT")


def tensor_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's name and shape, from the header only; non-float tensors are rejected."""
    shapes: dict[str, tuple[int, ...]] = {}
    try:
        with safe_open(str(file), framework="pt") as handle:
            for name in handle.keys():  # noqa: SIM118 (safe_open handles are not iterable)
                tensor_slice = handle.get_slice(name)
                dtype = tensor_slice.get_dtype()
                if dtype not in _FLOAT_DTYPES:
                    raise WeightsError(f"{file}: tensor {name!r} has dtype {dtype}, expected F32")
                shapes[name] = tuple(tensor_slice.get_shape())
    except WeightsError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise WeightsError(f"{file}: not a readable safetensors file: {exc}") from exc
    return shapes


def sized(
    shapes: Mapping[str, tuple[int, ...]], name: str, rank: int, file: Path
) -> tuple[int, ...]:
    """The shape of tensor `name`, which must exist with `rank` dimensions."""
    if name not in shapes:
        raise WeightsError(f"{file}: missing tensor {name!r}")
    shape = shapes[name]
    if len(shape) != rank:
        raise WeightsError(f"{file}: tensor {name!r} has shape {list(shape)}, expected rank {rank}")
    return shape


def expected_shapes(
    factory: Callable[[ShapeT], nn.Module], shape: ShapeT
) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of the model `factory(shape)` builds."""
    # Built on the meta device: shapes without allocating or initialising 5M parameters.
    with torch.device("meta"):
        module = factory(shape)
    return {name: tuple(t.shape) for name, t in module.state_dict().items()}


def compare_shapes(
    shapes: Mapping[str, tuple[int, ...]], expected: Mapping[str, tuple[int, ...]], file: Path
) -> None:
    """Raise WeightsError naming the first missing, misshapen or unexpected tensor."""
    for name, wanted in expected.items():
        if name not in shapes:
            raise WeightsError(f"{file}: missing tensor {name!r} (shape {list(wanted)})")
        if shapes[name] != wanted:
            raise WeightsError(
                f"{file}: tensor {name!r} has shape {list(shapes[name])}, expected {list(wanted)}"
            )
    unexpected = sorted(set(shapes) - set(expected))
    if unexpected:
        raise WeightsError(f"{file}: unexpected tensor {unexpected[0]!r}")
