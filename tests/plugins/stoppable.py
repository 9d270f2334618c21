"""A test plugin: two long counting phases, one that honours a stop request and one that does not.

Loaded in worker subprocesses through ``VOLTX_PLUGINS=stoppable`` with this folder on
``PYTHONPATH``.
"""

from __future__ import annotations

import json
import time

import attrs

import voltx
from voltx import PhaseContext, PhaseSpec, PhaseStopped
from voltx.hookspecs import RegisterPhase


@attrs.frozen
class CountConfig:
    steps: int = 400
    sleep_s: float = 0.05
    checkpoint_every: int = 1000  # rarer than the run is long: only a stop makes one


def _resume(ctx: PhaseContext) -> tuple[int, int]:
    latest = ctx.checkpoints.latest()
    if latest is None:
        return 0, 0
    state = json.loads((latest.path / "state.json").read_text())
    return int(state["step"]), int(state["total"])


def _save(ctx: PhaseContext, step: int, total: int) -> None:
    with ctx.checkpoints.save(step) as folder:
        (folder / "state.json").write_text(json.dumps({"step": step, "total": total}))


def count(ctx: PhaseContext, *, honour_stop: bool) -> None:
    start, total = _resume(ctx)
    for step in range(start + 1, ctx.config.steps + 1):
        time.sleep(ctx.config.sleep_s)
        total += step
        ctx.progress(step, ctx.config.steps)
        stopping = honour_stop and ctx.stop_requested()
        if step % ctx.config.checkpoint_every == 0 or stopping:
            _save(ctx, step, total)
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"step {step}")
    result = {"start": start, "total": total}
    (ctx.outputs[f"{ctx.phase_id}.sum"] / "result.json").write_text(json.dumps(result))


def count_politely(ctx: PhaseContext) -> None:
    count(ctx, honour_stop=True)


def count_stubbornly(ctx: PhaseContext) -> None:
    count(ctx, honour_stop=False)


PHASES = tuple(
    PhaseSpec(
        id=phase_id,
        name=entry,
        entry=f"{__name__}:{entry}",
        produces=(f"{phase_id}.sum",),
        config_class=CountConfig,
    )
    for phase_id, entry in (
        ("stop.polite", "count_politely"),
        ("stop.stubborn", "count_stubbornly"),
    )
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
