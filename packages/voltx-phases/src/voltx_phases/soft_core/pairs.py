"""Flow-matching pairs from cached frames (`docs/phases.md`, 2.1), as tensors ready for batching.

A problem contributes one pair of frames (description x0, solution x1); every slot present in
both frames is one training row. Problems sharing no slot are dropped. Datasets are concatenated
in the stage's order and the validation split is the *last* fraction, as the original's.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np
import torch

from voltx_phases.soft_core.frames import read_frame_set


@attrs.frozen
class PairSet:
    """Problem-level frame pairs: [P, 16, 256] twice and the shared-slot mask [P, 16]."""

    query: torch.Tensor
    solution: torch.Tensor
    shared: torch.Tensor

    def __len__(self) -> int:
        return int(self.query.shape[0])

    def take(self, index: torch.Tensor | slice) -> PairSet:
        return PairSet(self.query[index], self.solution[index], self.shared[index])


def load_pairs(frame_dir: Path, datasets: Sequence[str]) -> PairSet:
    """Concatenate the datasets' frames in order, keeping problems with a shared slot."""
    queries, solutions, masks = [], [], []
    for dataset in datasets:
        frames = read_frame_set(frame_dir / f"{dataset}.safetensors")
        shared = frames.query_present & frames.solution_present
        keep = shared.any(axis=1)
        queries.append(frames.query[keep])
        solutions.append(frames.solution[keep])
        masks.append(shared[keep])
    return PairSet(
        query=torch.from_numpy(np.concatenate(queries)),
        solution=torch.from_numpy(np.concatenate(solutions)),
        shared=torch.from_numpy(np.concatenate(masks)),
    )


def split_validation(pairs: PairSet, fraction: float) -> tuple[PairSet, PairSet]:
    """(train, valid) with valid the last max(1, floor(fraction * n)) problems."""
    count = len(pairs)
    valid = max(1, int(fraction * count))
    return pairs.take(slice(0, count - valid)), pairs.take(slice(count - valid, count))


@attrs.frozen
class FlowBatch:
    x_t: torch.Tensor  # [N, 256]
    t: torch.Tensor  # [N]
    target: torch.Tensor  # [N, 256] velocity a - q


def flow_batch(
    pairs: PairSet, source: str, generator: torch.Generator, device: torch.device
) -> FlowBatch:
    """One t per problem; every shared slot gives x_t = (1 - t) q + t a with target a - q."""
    problems = len(pairs)
    t_problem = torch.rand(problems, generator=generator)
    if source == "gaussian":
        noise = torch.randn(pairs.query.shape, generator=generator)
        start = noise
    else:
        start = pairs.query
    mask = pairs.shared
    q = start[mask]
    a = pairs.solution[mask]
    t = t_problem[:, None].expand(-1, mask.shape[1])[mask]
    x_t = (1.0 - t[:, None]) * q + t[:, None] * a
    return FlowBatch(x_t.to(device), t.to(device), (a - q).to(device))
