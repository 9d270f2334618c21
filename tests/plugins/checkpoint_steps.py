"""A test plugin: a phase that checkpoints every step, resumes from its latest checkpoint, and
writes the step it started from into its output.

Loaded in worker subprocesses through ``VOLTX_PLUGINS=checkpoint_steps`` with this folder on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import time

import attrs

import voltx
from voltx import PhaseContext, PhaseSpec
from voltx.hookspecs import RegisterPhase

STAGE_EVERY = 5


@attrs.frozen
class StepsConfig:
    steps: int = 30
    sleep_s: float = 0.05


def count_steps(ctx: PhaseContext) -> None:
    """Sum the step numbers, one step at a time; every STAGE_EVERY steps, keep a "stage" file
    beside the checkpoints (as 2.1 keeps its finished stages' weights)."""
    start, total = 0, 0
    latest = ctx.checkpoints.latest()
    if latest is not None:
        state = json.loads((latest.path / "state.json").read_text())
        start, total = state["step"] + 1, state["total"]
    stages = ctx.checkpoints.root / "stages"
    stages.mkdir(exist_ok=True)
    for step in range(start, ctx.config.steps):
        time.sleep(ctx.config.sleep_s)
        total += step
        if step % STAGE_EVERY == 0:
            (stages / f"stage-{step:03d}.txt").write_text(f"stage {step}\n")
        with ctx.checkpoints.save(step) as folder:
            (folder / "state.json").write_text(json.dumps({"step": step, "total": total}))
    result = {"start": start, "total": total, "stages": sorted(p.name for p in stages.iterdir())}
    (ctx.outputs["step_count"] / "result.json").write_text(json.dumps(result))


PHASES = (
    PhaseSpec(
        id="ckpt.steps",
        name="steps",
        entry=f"{__name__}:count_steps",
        produces=("step_count",),
        config_class=StepsConfig,
    ),
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
