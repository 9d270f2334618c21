"""Phase 5.1: grow the VFN 51M -> 204M -> 457M and train each student by distillation, data
parallel over the job's GPUs (docs/phases.md, 5.1).

    voltx run 5.1                          # tiny: a 64-wide VFN grown x2 then x3, 2 CPU ranks
    voltx run 5.1 --profile full --backend vast
    python -c 'import voltx; voltx.run("5.1")'

Each stage widens the input VFN (`vfn_sleep`, 4.3's layout) by an integer factor without
changing its function (`voltx_phases.scale.growth`), then trains the student on
alpha * flow matching + (1 - alpha) * distillation of its teacher's velocity, alpha rising to 1
(`voltx_phases.scale.distillation`). The first stage's teacher is the input VFN, each later
stage's the previous stage's trained student. Slot attention and the diffusion controller are
carried over unchanged into every output folder, which has 2.1's layout.

The spec asks for several processes; the worker runs this entry once per rank under torchrun
(`voltx_phases.scale.distributed`). Every rank reads the checkpoints; rank 0 alone commits them
and writes the outputs. A step's data and times depend only on (seed, stage, step), so a run
resumed from a checkpoint, or run on another number of ranks, trains on the same rows.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.schedules import warmup_cosine_lr
from voltx_phases._common.training_state import (
    read_loop_state,
    read_training_state,
    write_training_state,
)
from voltx_phases._common.weights import WeightsError, save_weights
from voltx_phases.models.loading import (
    CONTROLLER_FILE,
    SCALED_VFN_FILE,
    SLOT_ATTENTION_FILE,
    load_scaled_vfn,
)
from voltx_phases.models.scaled_vfn import ScaledVFN, parameter_count
from voltx_phases.scale.distillation import (
    alpha_at,
    distillation_step,
    draw_times,
    flow_rows,
    validation_flow_loss,
    velocity_gap,
)
from voltx_phases.scale.distributed import Ranks, joined
from voltx_phases.scale.growth import widen
from voltx_phases.scale.scaling_config import GrowthStage, ScalingConfig
from voltx_phases.scale.scaling_report import write_report
from voltx_phases.soft_core.pairs import PairSet, load_pairs, split_validation

INPUT = "vfn_sleep"
REPORT = "vfn_scaling_report"
CARRIED = (SLOT_ATTENTION_FILE, CONTROLLER_FILE)


def _check_inputs(ctx: PhaseContext, config: ScalingConfig) -> tuple[ScaledVFN, PairSet, PairSet]:
    """The input VFN and the (train, valid) problems; every problem is named before a step."""
    outputs = tuple(stage.output for stage in config.stages)
    if not outputs or set(outputs) != set(ctx.outputs) - {REPORT}:
        raise PhaseError(
            ctx.phase_id,
            f"stage outputs {sorted(outputs)} must be exactly the phase's "
            f"{sorted(set(ctx.outputs) - {REPORT})}",
        )
    folder = ctx.inputs[INPUT]
    for name in (SCALED_VFN_FILE, *CARRIED):
        if not (folder / name).is_file():
            raise PhaseError(ctx.phase_id, f"input {INPUT} has no {name} (2.1's layout)")
    try:
        base = load_scaled_vfn(folder / SCALED_VFN_FILE)
    except (WeightsError, ValueError) as exc:
        raise PhaseError(ctx.phase_id, f"input {INPUT}: {exc}") from exc
    pairs = load_pairs(ctx.inputs["problem_frames"], config.datasets)
    if len(pairs) < 2:
        raise PhaseError(
            ctx.phase_id, f"{len(pairs)} usable problem(s) in {', '.join(config.datasets)}"
        )
    train, valid = split_validation(pairs, 0.1)
    for index, stage in enumerate(config.stages):
        split = ctx.world_size * stage.accumulation
        if stage.batch_size % split or stage.batch_size > len(train):
            raise PhaseError(
                ctx.phase_id,
                f"stages[{index}].batch_size {stage.batch_size} must divide into "
                f"{ctx.world_size} rank(s) x {stage.accumulation} micro-batches and fit in "
                f"{len(train)} training problems",
            )
    return base, train, valid


def run(ctx: PhaseContext) -> None:
    config: ScalingConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    base, train, valid = _check_inputs(ctx, config)
    with joined(ctx, device, timeout_s=config.collective_timeout_s) as ranks:
        students, history = _train(ctx, config, base, train, valid, ranks)
        if ranks.leader:
            _write_outputs(ctx, config, students, history)


def _train(
    ctx: PhaseContext,
    config: ScalingConfig,
    base: ScaledVFN,
    train: PairSet,
    valid: PairSet,
    ranks: Ranks,
) -> tuple[dict[str, ScaledVFN], list[dict[str, Any]]]:
    """Every stage from where the latest checkpoint left off: the trained students by output,
    and the metric rows of the whole run (restored rows first)."""
    finished: dict[str, ScaledVFN] = {}
    stage_at, step_at, history = 0, 0, []
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_loop_state(Path(latest.path))
        stage_at, step_at, history = loop["stage"], loop["step"], loop["history"]
        ctx.log.info("resuming", checkpoint=latest.step, stage=stage_at, step=step_at)
        for stage in config.stages[:stage_at]:
            finished[stage.output] = _grown(base, stage, config)
        if step_at == 0:
            # A stage boundary: the finished students alone (a mid-stage checkpoint is read
            # with its optimizer by the stage's loop).
            read_training_state(Path(latest.path), finished, None)
    # No rank may start before every rank has read the checkpoint it resumes from: rank 0
    # commits (and prunes) the next ones as it trains.
    ranks.barrier()
    valid_rows = flow_rows(valid, draw_times(len(valid), config.seed + 1000), ranks.device)
    base.to(ranks.device).eval()
    for index, stage in enumerate(config.stages):
        if index < stage_at:
            continue
        resume = latest if index == stage_at else None
        student = _grown(base, stage, config)
        teacher = base if index == 0 else finished[config.stages[index - 1].output]
        trainer = _StageRun(ctx, config, index, stage, ranks, history)
        trainer.train(student, teacher, base, finished, train, valid_rows, resume, step_at)
        finished[stage.output] = student
        step_at = 0
    return finished, history


def _grown(base: ScaledVFN, stage: GrowthStage, config: ScalingConfig) -> ScaledVFN:
    # The growth's shares depend on (seed, width) only: a resumed run rebuilds the same shapes.
    return widen(
        base,
        stage.width_factor,
        split_noise=config.split_noise,
        seed=config.seed * 31 + stage.width_factor,
    )


class _StageRun:
    """One stage's loop: AdamW with warmup + cosine, checkpoints by rank 0, stop on request."""

    def __init__(
        self,
        ctx: PhaseContext,
        config: ScalingConfig,
        index: int,
        stage: GrowthStage,
        ranks: Ranks,
        history: list[dict[str, Any]],
    ) -> None:
        self.ctx, self.config, self.index, self.stage = ctx, config, index, stage
        self.ranks, self.history = ranks, history
        # Checkpoint numbers run on across stages, so the latest is always the newest.
        self.offset = sum(s.steps for s in config.stages[:index])

    def train(
        self,
        student: ScaledVFN,
        teacher: ScaledVFN,
        source: ScaledVFN,
        finished: dict[str, ScaledVFN],
        train: PairSet,
        valid_rows: Any,
        resume: Any,
        start: int,
    ) -> None:
        ctx, config, stage, ranks = self.ctx, self.config, self.stage, self.ranks
        # On the device before the optimizer exists, so a resumed AdamW's moments land there too.
        student.to(ranks.device)
        optimizer = torch.optim.AdamW(
            student.parameters(), lr=stage.lr, weight_decay=config.weight_decay
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda s: warmup_cosine_lr(
                s + 1,
                max_lr=1.0,
                warmup_steps=stage.warmup_steps,
                total_steps=stage.steps,
                min_lr_ratio=config.min_lr_ratio,
            ),
        )
        if resume is not None and start > 0:
            modules = {**finished, "student": student}
            read_training_state(Path(resume.path), modules, optimizer, scheduler=schedule)
        teacher.to(ranks.device).eval()
        if start == 0:
            self._log_growth(student, teacher, source, valid_rows)
        model = ranks.wrap(student)
        per_epoch = len(train) // stage.batch_size
        started = time.monotonic()
        for step in range(start, stage.steps):
            epoch, batch_index = divmod(step, per_epoch)
            order = torch.randperm(
                len(train),
                generator=torch.Generator().manual_seed(
                    config.seed * 1_000_003 + self.index * 1009 + epoch
                ),
            )
            picked = order[batch_index * stage.batch_size : (batch_index + 1) * stage.batch_size]
            batch = train.take(picked)
            times = draw_times(len(batch), config.seed * 7919 + self.index * 104_729 + step)
            alpha = alpha_at(step, stage.steps, config.alpha_start, config.alpha_ramp)
            lr = float(schedule.get_last_lr()[0])
            losses = distillation_step(
                model, teacher, batch, times, alpha, optimizer, ranks, stage.accumulation
            )
            if not math.isfinite(losses["loss"]):
                raise PhaseError(
                    ctx.phase_id,
                    f"loss is {losses['loss']} at {stage.output} step {step + 1}; the last good "
                    "checkpoint is kept; try a lower lr",
                )
            schedule.step()
            done = step + 1
            if done % config.log_every_steps == 0 or done == stage.steps:
                self._record(done, lr=lr, alpha=alpha, **losses)
                rate = (done - start) / max(time.monotonic() - started, 1e-9)
                ctx.progress(self.offset + done, self._total(), loss=losses["loss"], steps_s=rate)
            stopping = ranks.any(ctx.stop_requested())
            if done % config.checkpoint_every_steps == 0 or stopping:
                self._save({**finished, "student": student}, optimizer, schedule, done)
            if stopping:
                raise PhaseStopped(ctx.phase_id, f"{stage.output}, step {done}")
        student.eval()
        self._record(
            stage.steps, valid_flow=validation_flow_loss(student, valid_rows), finished=1.0
        )
        # The boundary: the finished students only, so a resume starts the next stage fresh.
        finished_now = {**finished, stage.output: student}
        self._save(finished_now, None, None, stage.steps, stage=self.index + 1, step=0)

    def _log_growth(
        self, student: ScaledVFN, teacher: ScaledVFN, source: ScaledVFN, valid_rows: Any
    ) -> None:
        """Record the student as grown: its gap to the VFN it was grown from (float rounding
        only), and its and its teacher's validation flow loss."""
        gap = velocity_gap(student, source, valid_rows)
        self._record(
            0,
            parameters=float(parameter_count(student.shape)),
            growth_gap=gap,
            teacher_valid_flow=validation_flow_loss(teacher, valid_rows),
            valid_flow=validation_flow_loss(student, valid_rows),
        )
        self.ctx.log.info(
            "student grown",
            output=self.stage.output,
            hidden=student.shape.hidden_dim,
            parameters=parameter_count(student.shape),
            max_velocity_gap=gap,
        )

    def _record(self, step: int, **values: float) -> None:
        row = {"stage": self.index, "step": step, **values}
        self.history.append(row)
        if self.ranks.leader:
            self.ctx.metrics.log_metrics(self.offset + step, stage=self.index, **values)

    def _total(self) -> int:
        return sum(s.steps for s in self.config.stages)

    def _save(
        self,
        modules: dict[str, ScaledVFN],
        optimizer: torch.optim.Optimizer | None,
        schedule: torch.optim.lr_scheduler.LRScheduler | None,
        done: int,
        *,
        stage: int | None = None,
        step: int | None = None,
    ) -> None:
        if not self.ranks.leader:
            return
        loop = {
            "stage": self.index if stage is None else stage,
            "step": done if step is None else step,
            "history": self.history,
        }
        with self.ctx.checkpoints.save(self.offset + done) as folder:
            write_training_state(Path(folder), modules, optimizer, loop, scheduler=schedule)


def _write_outputs(
    ctx: PhaseContext,
    config: ScalingConfig,
    students: dict[str, ScaledVFN],
    history: list[dict[str, Any]],
) -> None:
    source = ctx.inputs[INPUT]
    for stage in config.stages:
        folder = ctx.outputs[stage.output]
        save_weights(students[stage.output].to("cpu"), folder / SCALED_VFN_FILE)
        for name in CARRIED:
            shutil.copyfile(source / name, folder / name)
    write_report(ctx.outputs[REPORT], history, config, ctx.phase_id)
