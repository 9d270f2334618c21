"""Resumable trainer state, committed through voltx's checkpoint manager: tensors in
safetensors, everything else in JSON.

    from voltx_phases._common.training_state import TrainerState, restore_latest, save_checkpoint

    state = restore_latest(ctx.checkpoints, model, optimizer) or TrainerState()
    ...                                    # train from state.epoch / state.batch_in_epoch
    save_checkpoint(ctx.checkpoints, model, optimizer, state)

A checkpoint folder holds everything a bit-exact resume needs (layout in `docs/formats.md`,
"checkpoint"):

- ``<module>.safetensors``: each module's weights under their original tensor names
  (``model.safetensors`` for a phase that trains one model);
- ``optimizer.safetensors``: every optimizer state tensor (AdamW's moments and step counts);
- ``rng.safetensors``: torch's CPU and CUDA generator states, and any generator the loop owns;
- ``trainer.json``: where the loop stands (for `TrainerState`: global step, epoch, position in
  the epoch, the epoch's data order, running metric sums), the optimizer's parameter groups, the
  learning-rate scheduler's state when there is one, and the Python and NumPy RNG states.

Nothing is deserialised into code objects: safetensors holds only tensors and JSON only plain
values, so a checkpoint from a shared store can be read without trusting it. Any other file in
the folder (a ``.pt`` file from an older voltx, say) is refused with `CheckpointFormatError`
before any tensor is loaded. The manager commits the folder atomically, so a rerun after a crash
resumes from the latest complete one.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import attrs
import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from voltx import VoltxError
from voltx.checkpoints import MANIFEST, Checkpoint
from voltx_phases._common.weights import WeightsError, load_weights, save_weights

MODEL = "model"
OPTIMIZER_FILE = "optimizer.safetensors"
RNG_FILE = "rng.safetensors"
STATE_FILE = "trainer.json"
FORMAT = "voltx-trainer-state/1"
# Keys of trainer.json that this module writes; a loop's own keys must not collide with them.
_RESERVED = frozenset({"format", "optimizer", "scheduler", "rng"})
_RESTART = (
    "voltx reads checkpoints as safetensors and JSON only, since a store may be shared and a "
    "serialised Python object runs code when loaded; delete the phase's checkpoints (this "
    "folder's parent, and checkpoints/<phase id>/ in the store) to restart it from scratch"
)


class CheckpointFormatError(VoltxError):
    """A checkpoint folder holds a file this format does not have, or one it cannot read.

    `path` is the offending file. Nothing of the folder has been loaded into the models.
    """

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"checkpoint {path}: {reason}")


class _Checkpoints(Protocol):
    """What this module needs of `voltx.checkpoints.CheckpointManager`."""

    def save(self, step: int) -> Any: ...

    def latest(self) -> Checkpoint | None: ...


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
        write_training_state(Path(folder), {MODEL: model}, optimizer, attrs.asdict(state))


def restore_latest(
    checkpoints: _Checkpoints, model: nn.Module, optimizer: Optimizer
) -> TrainerState | None:
    """Load the latest complete checkpoint into `model` and `optimizer`; None when there is none.

    RNG states are restored too, so random draws after the resume match an uninterrupted run.
    """
    latest = checkpoints.latest()
    if latest is None:
        return None
    loop = read_training_state(Path(latest.path), {MODEL: model}, optimizer)
    return TrainerState(
        step=loop["step"],
        epoch=loop["epoch"],
        batch_in_epoch=loop["batch_in_epoch"],
        order=loop["order"],
        sums=loop["sums"],
    )


def write_training_state(
    folder: Path,
    modules: Mapping[str, nn.Module],
    optimizer: Optimizer | None,
    loop: Mapping[str, Any],
    *,
    scheduler: LRScheduler | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> None:
    """Write a checkpoint into `folder`: one safetensors file per module (named by its key), the
    optimizer (when there is one: a loop between two optimizers has none), the scheduler, every
    RNG state, and `loop` (plain JSON values) in ``trainer.json``."""
    clash = _RESERVED & set(loop)
    if clash:
        raise ValueError(f"loop state keys {sorted(clash)} are reserved for the checkpoint format")
    for name, module in modules.items():
        save_weights(module, folder / f"{name}.safetensors")
    document: dict[str, Any] = {"format": FORMAT, **loop}
    if optimizer is not None:
        optimizer_tensors, document["optimizer"] = _split_optimizer_state(optimizer.state_dict())
        save_file(optimizer_tensors, str(folder / OPTIMIZER_FILE), metadata={"format": FORMAT})
        if scheduler is not None:
            document["scheduler"] = _plain(scheduler.state_dict(), "scheduler")
    document["rng"], rng_tensors = _capture_rng()
    for name, generator in (generators or {}).items():
        rng_tensors[f"generator.{name}"] = generator.get_state()
    save_file(rng_tensors, str(folder / RNG_FILE), metadata={"format": FORMAT})
    (folder / STATE_FILE).write_text(json.dumps(_plain(document, "trainer state")))


def read_training_state(
    folder: Path,
    modules: Mapping[str, nn.Module],
    optimizer: Optimizer | None,
    *,
    scheduler: LRScheduler | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint written by `write_training_state` into the modules and the global RNGs,
    and (unless `optimizer` is None) the optimizer, scheduler and generators; returns the loop
    state.

    Every file is checked against the format first, so a planted or foreign file (a serialised
    Python object above all) is refused with `CheckpointFormatError` and never opened.
    """
    module_files = {f"{name}.safetensors": module for name, module in modules.items()}
    document = _open_document(folder)
    expected = {*module_files, RNG_FILE, STATE_FILE}
    if "optimizer" in document:
        expected.add(OPTIMIZER_FILE)
    check_checkpoint_files(folder, expected)
    for file_name, module in module_files.items():
        try:
            load_weights(module, folder / file_name)
        except WeightsError as exc:
            reason = str(exc).removeprefix(f"{folder / file_name}: ")
            raise CheckpointFormatError(folder / file_name, reason) from exc
    if optimizer is not None:
        read_optimizer_state(folder, optimizer, scheduler=scheduler, generators=generators)
    rng_tensors = _tensors(folder / RNG_FILE)
    _restore_rng(document["rng"], rng_tensors)
    return {key: value for key, value in document.items() if key not in _RESERVED}


def read_optimizer_state(
    folder: Path,
    optimizer: Optimizer,
    *,
    scheduler: LRScheduler | None = None,
    generators: Mapping[str, torch.Generator] | None = None,
) -> bool:
    """Load the optimizer, scheduler and loop generators of a checkpoint; False (and nothing
    loaded) when it was written without an optimizer.

    For a loop that builds its optimizer after reading the weights (one per curriculum stage).
    """
    document = _open_document(folder)
    if "optimizer" not in document:
        return False
    optimizer_tensors = _tensors(folder / OPTIMIZER_FILE)
    optimizer.load_state_dict(_join_optimizer_state(optimizer_tensors, document["optimizer"]))
    if scheduler is not None:
        scheduler.load_state_dict(document["scheduler"])
    if generators:
        rng_tensors = _tensors(folder / RNG_FILE)
        for name, generator in generators.items():
            generator.set_state(rng_tensors[f"generator.{name}"])
    return True


def read_loop_state(folder: Path) -> dict[str, Any]:
    """The loop state of a checkpoint alone (what `read_training_state` returns), loading
    nothing into modules or RNGs."""
    document = _open_document(folder)
    return {key: value for key, value in document.items() if key not in _RESERVED}


def _open_document(folder: Path) -> dict[str, Any]:
    if not (folder / STATE_FILE).is_file():
        held = ", ".join(sorted(p.name for p in folder.iterdir() if p.name != MANIFEST))
        raise CheckpointFormatError(
            folder, f"no {STATE_FILE}, so not a {FORMAT} checkpoint (it holds {held}); {_RESTART}"
        )
    try:
        document = json.loads((folder / STATE_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointFormatError(folder / STATE_FILE, f"not a JSON document: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        found = document.get("format") if isinstance(document, dict) else type(document).__name__
        raise CheckpointFormatError(folder / STATE_FILE, f"not a {FORMAT} document ({found!r})")
    return document


def check_checkpoint_files(folder: Path, expected: set[str]) -> None:
    """Refuse a checkpoint folder holding anything but `expected` (and the manager's manifest),
    or missing one of them, before a byte of it is loaded."""
    foreign = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.relative_to(folder).as_posix() not in {*expected, MANIFEST}
    )
    if foreign:
        raise CheckpointFormatError(
            folder / foreign[0],
            f"{', '.join(foreign)} {'is' if len(foreign) == 1 else 'are'} not part of the "
            f"checkpoint format (which holds "
            f"{', '.join(sorted(expected))}); {_RESTART}",
        )
    missing = sorted(name for name in expected if not (folder / name).is_file())
    if missing:
        raise CheckpointFormatError(folder / missing[0], "missing from the checkpoint")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise CheckpointFormatError(path, f"not a readable safetensors file: {exc}") from exc


def _plain(value: Any, where: str) -> Any:
    """`value` when it is made of JSON values only (tuples become lists); else ValueError."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, where) for key, item in value.items()}
    raise ValueError(f"{where}: {type(value).__name__} cannot be written to {STATE_FILE}")


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
    # is_initialized is unannotated in torch; asking it (not device_count) leaves CUDA untouched.
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        for index, cuda_state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda.{index}"] = cuda_state
    return as_json, tensors


def _restore_rng(as_json: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    version, internal, gauss = as_json["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached = as_json["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda_states = [tensors[f"cuda.{i}"] for i in range(len(tensors)) if f"cuda.{i}" in tensors]
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        # On another machine (a different GPU count) the CUDA streams start fresh; CPU and data
        # order, which decide what is trained on, are restored regardless.
        torch.cuda.set_rng_state_all(cuda_states)
