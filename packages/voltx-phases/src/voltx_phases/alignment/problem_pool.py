"""The problems phases 4.2 and 4.3 draw from the store's datasets: Python problems with tests,
in a seeded order, so a resumed run draws the same ones."""

from __future__ import annotations

import random
from collections.abc import Sequence

from voltx import PhaseContext, PhaseError
from voltx_phases.datasets.schema import Problem, read_problems


def draw_problems(
    ctx: PhaseContext, datasets: Sequence[str], counts: Sequence[int], seed: int
) -> list[Problem]:
    """`counts[i]` problems of `datasets[i]` (0: all of them), each dataset shuffled with its own
    seeded generator, concatenated in order. Problems without tests or not in Python are left
    out: their reward would be undefined."""
    drawn: list[Problem] = []
    for index, (dataset, count) in enumerate(zip(datasets, counts, strict=True)):
        if dataset not in ctx.inputs:
            raise PhaseError(ctx.phase_id, f"dataset {dataset!r} is not an input of this phase")
        path = ctx.input_file(dataset, "*.jsonl")
        usable = [p for p in read_problems(path) if p.tests and p.language == "python"]
        random.Random(seed * 1_000_003 + index).shuffle(usable)
        drawn.extend(usable[:count] if count else usable)
    return drawn
