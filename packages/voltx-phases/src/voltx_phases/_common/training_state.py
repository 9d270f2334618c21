"""Resumable trainer state, committed through voltx's checkpoint manager.

    from voltx_phases._common.training_state import TrainerState, restore_latest, save_checkpoint

    state = restore_latest(ctx.checkpoints, model, optimizer) or TrainerState()
    ...                                    # train from state.epoch / state.batch_in_epoch
    save_checkpoint(ctx.checkpoints, model, optimizer, state)

A checkpoint folder holds everything a bit-exact resume needs (ml-anchors section 7.2):

- ``model.safetensors``: the weights under their original tensor names;
- ``optimizer.safetensors``: every optimizer state tensor (AdamW's moments and step counts);
- ``rng.safetensors``: torch's CPU and CUDA generator states;
- ``trainer.json``: global step, epoch, position in the epoch, the epoch's data order, running
  metric sums, the optimizer's parameter groups, and the Python and NumPy RNG states.

Nothing is pickled, so a checkpoint can be read without trusting it. The learning rate needs no
saved scheduler: `schedules.warmup_cosine_lr` is a function of the global step. The manager
commits the folder atomically, so a rerun after a crash resumes from the latest complete one.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim import Optimizer

from voltx_phases._common.weights import load_weights, save_weights

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer.json"
FORMAT = "voltx-trainer-state/1"


class _Checkpoints(Protocol):
    """What this module needs of `voltx.checkpoints.CheckpointManager`."""

    def save(self, step: int) -> Any: ...

    def latest(self) -> Any: ...


@attrs.define
class TrainerState:
    """Where a training loop stands; everything except tensors."""

    step: int = 0  # optimizer steps taken so far
    epoch: int = 0  # the epoch in progress, 0-based
    batch_in_epoch: int = 0  # batches of `epoch` already consumed
    # The order `epoch` visits the training items in (None before the epoch has started).
    order: list[int] | None = None
    # Running sums over the epoch so far, so per-epoch means survive a resume.
    sums: dict[str, float] = attrs.field(factory=dict)

    def start_epoch(self, epoch: int, order: np.ndarray) -> None:
        self.epoch = epoch
        self.batch_in_epoch = 0
        self.order = [int(i) for i in order]
        self.sums = {}

    def add(self, **values: float) -> None:
        for name, value in values.items():
            self.sums[name] = self.sums.get(name, 0.0) + value


def save_checkpoint(
    checkpoints: _Checkpoints, model: nn.Module, optimizer: Optimizer, state: TrainerState
) -> None:
    """Commit checkpoint `state.step` holding the model, optimizer, RNG and loop state."""
    with checkpoints.save(state.step) as folder:
        write_training_state(Path(folder), model, optimizer, state)


def restore_latest(
    checkpoints: _Checkpoints, model: nn.Module, optimizer: Optimizer
) -> TrainerState | None:
    """Load the latest complete checkpoint into `model` and `optimizer`; None when there is none.

    RNG states are restored too, so random draws after the resume match an uninterrupted run.
    """
    latest = checkpoints.latest()
    if latest is None:
        return None
    return read_training_state(Path(latest.path), model, optimizer)


def write_training_state(
    folder: Path, model: nn.Module, optimizer: Optimizer, state: TrainerState
) -> None:
    """Write the four files of a checkpoint into `folder`."""
    save_weights(model, folder / MODEL_FILE)
    optimizer_tensors, optimizer_json = _split_optimizer_state(optimizer.state_dict())
    save_file(optimizer_tensors, str(folder / OPTIMIZER_FILE), metadata={"format": FORMAT})
    rng_json, rng_tensors = _capture_rng()
    save_file(rng_tensors, str(folder / RNG_FILE), metadata={"format": FORMAT})
    document = {
        "format": FORMAT,
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "order": state.order,
        "sums": state.sums,
        "optimizer": optimizer_json,
        "rng": rng_json,
    }
    (folder / STATE_FILE).write_text(json.dumps(document))


def read_training_state(folder: Path, model: nn.Module, optimizer: Optimizer) -> TrainerState:
    """Load a checkpoint folder written by `write_training_state`."""
    document = json.loads((folder / STATE_FILE).read_text())
    if document.get("format") != FORMAT:
        raise ValueError(f"{folder}: not a {FORMAT} checkpoint ({document.get('format')!r})")
    load_weights(model, folder / MODEL_FILE)
    optimizer_tensors = load_file(str(folder / OPTIMIZER_FILE))
    optimizer.load_state_dict(_join_optimizer_state(optimizer_tensors, document["optimizer"]))
    _restore_rng(document["rng"], load_file(str(folder / RNG_FILE)))
    return TrainerState(
        step=document["step"],
        epoch=document["epoch"],
        batch_in_epoch=document["batch_in_epoch"],
        order=document["order"],
        sums=document["sums"],
    )


def _split_optimizer_state(
    state_dict: dict[str, Any],
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    # Tensors go to safetensors as "state.<param index>.<key>"; everything else to JSON.
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, entries in state_dict["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{index}.{key}"] = value.detach().to("cpu").contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    groups = [
        {key: list(value) if isinstance(value, tuple) else value for key, value in group.items()}
        for group in state_dict["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _join_optimizer_state(tensors: dict[str, torch.Tensor], data: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, tensor in tensors.items():
        _, index, key = name.split(".", 2)
        state.setdefault(int(index), {})[key] = tensor
    for index, entries in data["scalars"].items():
        state.setdefault(int(index), {}).update(entries)
    groups = []
    for group in data["param_groups"]:
        # JSON turned tuples (AdamW's betas) into lists; the parameter index list stays a list.
        groups.append(
            {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in group.items()}
        )
    return {"state": state, "param_groups": groups}


def _capture_rng() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state(legacy=True)
    as_json = {
        "python": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), int(position), int(has_gauss), float(cached)],
    }
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = cuda_state
    return as_json, tensors


def _restore_rng(as_json: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = as_json["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = as_json["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_states = [tensors[f"cuda.{i}"] for i in range(len(tensors) - 1) if f"cuda.{i}" in tensors]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        # On another machine (a different GPU count) the CUDA streams start fresh; CPU and data
        # order, which decide what is trained on, are restored regardless.
        torch.cuda.set_rng_state_all(cuda_states)
