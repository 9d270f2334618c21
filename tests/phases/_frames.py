"""Synthetic inputs for the soft-core phases: problem frames with a learnable query -> solution map.

Shaped like the original's smoke data (`docs/phases.md`, 2.1): each problem has a few active
slots with random unit queries, and its solution is normalize(0.8 * roll(q, -7) + noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from voltx_phases.soft_core.code_attention_bias import code_attention_bias
from voltx_phases.soft_core.config import PROBLEM_DATASETS
from voltx_phases.soft_core.frames import FrameSet, write_frame_set


def write_problem_frames(folder: Path, problems: int = 48, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index, dataset in enumerate(PROBLEM_DATASETS):
        query = np.zeros((problems, 16, 256), dtype=np.float32)
        solution = np.zeros_like(query)
        present = np.zeros((problems, 16), dtype=bool)
        for p in range(problems):
            slots = rng.choice(16, size=int(rng.integers(2, 5)), replace=False)
            for s in slots:
                q = rng.standard_normal(256).astype(np.float32)
                q /= np.linalg.norm(q)
                a = 0.8 * np.roll(q, -7) + rng.uniform(-0.1, 0.1, 256).astype(np.float32)
                query[p, s], solution[p, s] = q, a / np.linalg.norm(a)
                present[p, s] = True
        ids = tuple(f"{dataset}/{index}-{p}" for p in range(problems))
        write_frame_set(
            folder / f"{dataset}.safetensors", FrameSet(ids, query, present, solution, present)
        )
    return folder


def write_bias(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "code_attention_bias.safetensors"
    save_file({"bias": code_attention_bias()}, str(path))
    return path
