"""What phase 4.1 trains on, per curriculum stage (`docs/phases.md`, 4.1): problems with tests
for the REINFORCE term, and 2.1's flow-matching pairs for the flow term.

A problem's frame is read from `problem_frames` (phase 2.0 encoded every dataset with the frozen
encoder), matched to its tests in the dataset's unified JSONL by id. Problems without a filled
query slot, without tests, or not in Python are left out of the REINFORCE pool.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import attrs
import numpy as np
import torch

from voltx import PhaseError
from voltx_phases.alignment.config import E2E_DATASETS, E2eConfig, E2eStage
from voltx_phases.datasets.schema import read_problems
from voltx_phases.soft_core.frames import read_frame_set
from voltx_phases.soft_core.pairs import PairSet, load_pairs, split_validation


@attrs.frozen
class ProblemPool:
    """Problems of a stage for the policy: frames [N, 16, 256], filled slots [N, 16], tests."""

    ids: tuple[str, ...]
    query: torch.Tensor
    present: torch.Tensor
    tests: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.ids)


@attrs.frozen
class StageData:
    problems: ProblemPool
    train: PairSet  # flow-matching pairs
    valid: PairSet


def _dataset_pool(phase_id: str, dataset: str, jsonl: Path, frame_dir: Path) -> ProblemPool:
    frame_file = frame_dir / f"{dataset}.safetensors"
    if not frame_file.is_file():
        raise PhaseError(phase_id, f"problem_frames has no {frame_file.name}; rerun phase 2.0")
    frames = read_frame_set(frame_file)
    row_of = {problem_id: row for row, problem_id in enumerate(frames.ids)}
    ids, rows, tests = [], [], []
    for problem in read_problems(jsonl):
        if problem.id not in row_of:
            raise PhaseError(
                phase_id,
                f"dataset {dataset}: problem {problem.id!r} has no frame in problem_frames/"
                f"{frame_file.name}; the frames are older than the dataset, rerun phase 2.0",
            )
        row = row_of[problem.id]
        if problem.tests and problem.language == "python" and frames.query_present[row].any():
            ids.append(problem.id)
            rows.append(row)
            tests.append(problem.tests)
    return ProblemPool(
        tuple(ids),
        torch.from_numpy(np.ascontiguousarray(frames.query[rows])),
        torch.from_numpy(frames.query_present[rows]),
        tuple(tests),
    )


def _join(pools: list[ProblemPool]) -> ProblemPool:
    return ProblemPool(
        tuple(i for pool in pools for i in pool.ids),
        torch.cat([pool.query for pool in pools]),
        torch.cat([pool.present for pool in pools]),
        tuple(t for pool in pools for t in pool.tests),
    )


def load_stages(
    phase_id: str,
    config: E2eConfig,
    dataset_file: Callable[[str], Path],
    frame_dir: Path,
) -> list[StageData]:
    """Every stage's data, checked before a step is taken; `dataset_file` gives a dataset's
    unified JSONL."""
    if not config.stages:
        raise PhaseError(phase_id, "no curriculum stages configured")
    pools: dict[str, ProblemPool] = {}
    stages = []
    for stage in config.stages:
        unknown = [d for d in stage.datasets if d not in E2E_DATASETS]
        if unknown:
            raise PhaseError(
                phase_id,
                f"stage {stage.name} lists unknown dataset {unknown[0]!r}; "
                f"known: {', '.join(E2E_DATASETS)}",
            )
        for dataset in stage.datasets:
            if dataset not in pools:
                pools[dataset] = _dataset_pool(phase_id, dataset, dataset_file(dataset), frame_dir)
        problems = _join([pools[d] for d in stage.datasets])
        _check_stage(phase_id, config, stage, problems)
        pairs = load_pairs(frame_dir, stage.datasets)
        if len(pairs) < 2:
            raise PhaseError(
                phase_id,
                f"stage {stage.name}: {len(pairs)} problem(s) with a slot shared by query and "
                "solution frames; the flow-matching term needs at least 2",
            )
        train, valid = split_validation(pairs, config.validation_fraction)
        stages.append(StageData(problems, train, valid))
    return stages


def _check_stage(phase_id: str, config: E2eConfig, stage: E2eStage, problems: ProblemPool) -> None:
    if len(problems) < config.problems_per_step:
        raise PhaseError(
            phase_id,
            f"stage {stage.name}: {len(problems)} problem(s) with tests and a filled frame in "
            f"{', '.join(stage.datasets)}, fewer than problems_per_step "
            f"{config.problems_per_step}; lower {phase_id}.problems_per_step",
        )
