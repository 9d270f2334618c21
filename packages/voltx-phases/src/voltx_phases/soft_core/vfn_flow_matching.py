"""Phase 2.1 (with 2.2 and 2.3): curriculum flow matching of the ScaledVFN, jointly with slot
attention and the diffusion controller.

    voltx run 2.1                          # tiny profile: seconds on a laptop CPU
    voltx run 2.1 --profile full --backend vast
    python -c 'import voltx; voltx.run("2.1")'

What it fixes from the original `train-vfn` (`docs/phases.md`, 2.1):

- one AdamW and one warmup+cosine schedule per stage, continuous across epochs (the original
  rebuilt both every epoch, so warmup never finished); `legacy_epoch_restart` reproduces it;
- each curriculum stage starts from the previous stage's final weights (the original started
  every stage from random weights);
- slot attention and the diffusion controller are trained (the original never trained them):
  see `voltx_phases.models.rar` for the objective;
- training resumes from the latest complete checkpoint, bit for bit on CPU; checkpoints hold
  safetensors and JSON only, nothing that runs code when read (`vfn_checkpoints`,
  `docs/formats.md`, checkpoint).

Loss per step: MSE(VFN(x_t, t), a - q) + rar_weight * (L_rar + iteration_weight * L_iter).
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from safetensors.torch import load_file

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx.checkpoints import Checkpoint
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.weights import WeightsError, load_weights, save_weights
from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.rar import RarSettings
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape, shape_from_tensors
from voltx_phases.models.slot_attention import SlotAttention
from voltx_phases.soft_core.config import PROBLEM_DATASETS, Stage, VfnTrainingConfig
from voltx_phases.soft_core.pairs import PairSet, load_pairs, split_validation
from voltx_phases.soft_core.vfn_checkpoints import (
    Position,
    StageTrainer,
    restore_metrics,
    restore_models,
    restore_trainer,
    save_checkpoint,
)
from voltx_phases.soft_core.vfn_step import (
    Models,
    lr_factor,
    train_step,
    validation_loss,
    weights_digest,
)

# -- checks before any training ------------------------------------------------------------


def _check_inputs(
    ctx: PhaseContext, config: VfnTrainingConfig
) -> dict[str, tuple[PairSet, PairSet]]:
    """Load every stage's pairs; every problem is reported before a step is taken."""
    if not config.stages:
        raise PhaseError(ctx.phase_id, "no curriculum stages configured")
    expected = set(ctx.outputs) - {"slot_attention", "diffusion_controller", "vfn_training_report"}
    outputs = {stage.output for stage in config.stages}
    if outputs != expected:
        raise PhaseError(
            ctx.phase_id,
            f"stage outputs {sorted(outputs)} must be exactly the phase's {sorted(expected)}",
        )
    frame_dir = ctx.inputs["problem_frames"]
    pairs: dict[str, tuple[PairSet, PairSet]] = {}
    for stage in config.stages:
        unknown = [d for d in stage.datasets if d not in PROBLEM_DATASETS]
        if unknown:
            raise PhaseError(
                ctx.phase_id,
                f"stage {stage.name} lists unknown dataset {unknown[0]!r}; "
                f"known: {', '.join(PROBLEM_DATASETS)}",
            )
        loaded = load_pairs(frame_dir, stage.datasets)
        if len(loaded) < 2:
            raise PhaseError(
                ctx.phase_id,
                f"stage {stage.name}: {len(loaded)} usable problem(s) in "
                f"{', '.join(stage.datasets)} after dropping problems whose frames share no slot; "
                "need at least 2",
            )
        train, valid = split_validation(loaded, config.validation_fraction)
        if len(train) // stage.batch_size == 0:
            raise PhaseError(
                ctx.phase_id,
                f"stage {stage.name}: {len(train)} training problems is less than one batch of "
                f"{stage.batch_size}; lower {ctx.phase_id}.stages batch_size",
            )
        pairs[stage.name] = (train, valid)
    return pairs


def _initial_vfn(ctx: PhaseContext, shape: VfnShape) -> ScaledVFN:
    vfn = ScaledVFN(shape)
    if "scaled_vfn_init" not in ctx.inputs:
        return vfn
    path = ctx.input_file("scaled_vfn_init", "*.safetensors")
    found = shape_from_tensors(load_file(str(path)))
    if found != shape:
        raise PhaseError(
            ctx.phase_id,
            f"scaled_vfn_init {path.name} is H={found.hidden_dim}, B={found.num_blocks}, "
            f"F={found.time_freqs} but the config asks for H={shape.hidden_dim}, "
            f"B={shape.num_blocks}, F={shape.time_freqs}; set hidden_dim/num_blocks/time_freqs",
        )
    try:
        load_weights(vfn, path)
    except WeightsError as exc:
        raise PhaseError(ctx.phase_id, str(exc)) from exc
    ctx.log.info("starting from scaled_vfn_init", file=path.name)
    return vfn


# -- the loop --------------------------------------------------------------------------------


def _stage_file(ctx: PhaseContext, stage: Stage) -> Path:
    # Beside the checkpoints (a stable folder for this fingerprint), so a resumed run still has
    # the finished stages' weights to publish.
    folder = ctx.checkpoints.root / "stages"
    folder.mkdir(exist_ok=True)
    return folder / f"{stage.output}.safetensors"


def run(ctx: PhaseContext) -> None:
    config: VfnTrainingConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    pairs = _check_inputs(ctx, config)
    shape = VfnShape(config.hidden_dim, config.num_blocks, config.time_freqs)
    # Seed before building the models: their initial weights are part of the run's identity.
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    models = Models(_initial_vfn(ctx, shape), SlotAttention(), DiffusionController())
    bias = load_file(str(ctx.input_file("code_attention_bias", "*.safetensors")))["bias"]
    models.attention.set_bias(bias)

    position = Position()
    history: list[dict[str, Any]] = []
    latest = ctx.checkpoints.latest()
    if latest is not None:
        position = restore_models(latest, models)
        history = restore_metrics(latest)
        ctx.log.info(
            "resuming",
            stage=position.stage,
            epoch=position.epoch,
            batch=position.batch,
            step=position.step,
        )
    for module in models.modules().values():
        module.to(device)

    settings = RarSettings(config.rar_steps, config.rar_dt, config.rar_beta)
    total_steps = sum(
        stage.epochs * (len(pairs[stage.name][0]) // stage.batch_size) for stage in config.stages
    )
    done_before = sum(
        stage.epochs * (len(pairs[stage.name][0]) // stage.batch_size)
        for stage in config.stages[: position.stage]
    )
    clock = _Clock(done_before + position.step, total_steps, history)
    for stage_index, stage in enumerate(config.stages):
        if stage_index < position.stage:
            continue
        train, valid = pairs[stage.name]
        # Only the first stage this run trains can resume mid-stage; later ones start fresh.
        resume = latest if latest is not None and position.stage == stage_index else None
        start = position if resume is not None else Position(stage=stage_index)
        _train_stage(
            ctx,
            config,
            stage,
            stage_index,
            models,
            (train, valid),
            settings,
            device,
            clock,
            resume=resume,
            start=start,
        )
        latest = None
        save_weights(models.vfn, _stage_file(ctx, stage))
        save_checkpoint(
            ctx.checkpoints, models, Position(stage=stage_index + 1), None, clock.history
        )

    for stage in config.stages:
        target = ctx.outputs[stage.output] / f"{stage.output}.safetensors"
        target.write_bytes(_stage_file(ctx, stage).read_bytes())
    save_weights(models.attention, ctx.outputs["slot_attention"] / "slot_attention.safetensors")
    save_weights(
        models.controller, ctx.outputs["diffusion_controller"] / "diffusion_controller.safetensors"
    )
    _write_report(ctx, clock.history)


@attrs.define
class _Clock:
    """Global step count and throughput, for progress and ETA."""

    done: int
    total: int
    # Every metrics row of the run (restored from the checkpoint on resume), without wall-clock
    # times: the report is built from it and must depend only on inputs and config.
    history: list[dict[str, Any]]
    started: float = attrs.field(factory=time.monotonic)
    samples: int = 0

    def log(self, ctx: PhaseContext, step: int, **values: float) -> None:
        """Append a row to the phase's metrics file and to the history the report is made of."""
        ctx.metrics.log_metrics(step, **values)
        self.history.append({"step": step, **values})


def _train_stage(
    ctx: PhaseContext,
    config: VfnTrainingConfig,
    stage: Stage,
    stage_index: int,
    models: Models,
    split: tuple[PairSet, PairSet],
    settings: RarSettings,
    device: torch.device,
    clock: _Clock,
    *,
    resume: Checkpoint | None,
    start: Position,
) -> None:
    """Train one curriculum stage from `start`, resuming the stage's optimizer, schedule and
    generator from `resume` when it holds them."""
    train, valid = split
    steps_per_epoch = len(train) // stage.batch_size
    stage_steps = stage.epochs * steps_per_epoch

    def make_optimizer() -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        optimizer = torch.optim.AdamW(
            models.parameters(), lr=stage.lr, weight_decay=config.weight_decay
        )
        horizon = steps_per_epoch if config.legacy_epoch_restart else stage_steps
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, stage.warmup_steps, horizon, config.min_lr_ratio)
        )
        return optimizer, schedule

    trainer = StageTrainer(
        *make_optimizer(), torch.Generator().manual_seed(config.seed * 7919 + stage_index)
    )
    position = start
    if resume is not None:
        restore_trainer(resume, trainer)
    if position.step == 0:
        clock.log(
            ctx,
            clock.done,
            stage=stage_index,
            init_digest_int=int(weights_digest(models.vfn)[:12], 16),
        )
        ctx.log.info(
            "stage starting",
            stage=stage.name,
            datasets=stage.datasets,
            train=len(train),
            valid=len(valid),
            steps=stage_steps,
            init_weights=weights_digest(models.vfn),
        )

    for epoch in range(position.epoch, stage.epochs):
        if config.legacy_epoch_restart and position.batch == 0 and epoch > 0:
            trainer.optimizer, trainer.schedule = make_optimizer()
        # The order depends only on (seed, stage, epoch): a resumed run walks the same order.
        order = torch.randperm(
            len(train),
            generator=torch.Generator().manual_seed(
                config.seed * 1_000_003 + stage_index * 1009 + epoch
            ),
        )
        for batch_index in range(position.batch, steps_per_epoch):
            indices = order[batch_index * stage.batch_size : (batch_index + 1) * stage.batch_size]
            batch = train.take(indices)
            try:
                losses = train_step(
                    models, batch, trainer.optimizer, config, settings, trainer.generator, device
                )
            except torch.cuda.OutOfMemoryError as exc:
                raise PhaseError(
                    ctx.phase_id,
                    f"CUDA out of memory at batch size {stage.batch_size} (micro-batch "
                    f"{stage.batch_size // 2**config.micro_batch_halvings}); set "
                    f"{ctx.phase_id}.micro_batch_halvings={config.micro_batch_halvings + 1} to "
                    "halve the micro-batch with gradient accumulation (same effective batch), "
                    "or lower the stages' batch_size",
                ) from exc
            if not math.isfinite(losses["loss"]):
                raise PhaseError(
                    ctx.phase_id,
                    f"loss is {losses['loss']} at stage {stage.name}, epoch {epoch + 1}, step "
                    f"{position.step + 1}; the last good checkpoint is kept; try a lower lr",
                )
            lr = float(trainer.schedule.get_last_lr()[0])
            trainer.schedule.step()
            position = Position(stage_index, epoch, batch_index + 1, position.step + 1)
            clock.done += 1
            clock.samples += len(batch)
            if position.step % config.log_every_steps == 0 or position.step == 1:
                rate = clock.samples / max(time.monotonic() - clock.started, 1e-9)
                clock.log(ctx, clock.done, stage=stage_index, lr=lr, **losses)
                ctx.progress(
                    clock.done, clock.total, loss=losses["loss"], lr=lr, samples_per_s=rate
                )
            stopping = ctx.stop_requested()
            if position.step % config.checkpoint_every_steps == 0 or stopping:
                save_checkpoint(ctx.checkpoints, models, position, trainer, clock.history)
            if stopping:
                raise PhaseStopped(ctx.phase_id, f"stage {stage.name}, step {position.step}")
        valid_loss = validation_loss(models, valid, config, stage_index, device)
        clock.log(ctx, clock.done, stage=stage_index, epoch=epoch + 1, valid_loss=valid_loss)
        ctx.log.info("epoch done", stage=stage.name, epoch=epoch + 1, valid_loss=valid_loss)
        position = Position(stage_index, epoch + 1, 0, position.step)
        save_checkpoint(ctx.checkpoints, models, position, trainer, clock.history)
    clock.log(
        ctx,
        clock.done,
        stage=stage_index,
        final_digest_int=int(weights_digest(models.vfn)[:12], 16),
    )


def _write_report(ctx: PhaseContext, rows: list[dict[str, Any]]) -> None:
    """The loss curve as a PNG and the metrics rows of every attempt, in the
    `vfn_training_report` artifact."""
    report = ctx.outputs["vfn_training_report"]
    (report / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.5), dpi=100)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r]
    valid = [(r["step"], r["valid_loss"]) for r in rows if "valid_loss" in r]
    if train:
        axis.plot(*zip(*train, strict=True), label="training loss", linewidth=1.2)
    if valid:
        axis.plot(*zip(*valid, strict=True), "o-", label="validation flow loss", linewidth=1.2)
    for row in rows:
        if "init_digest_int" in row and row["step"] > 0:
            axis.axvline(row["step"], color="grey", linestyle=":", linewidth=0.8)
    axis.set_xlabel("optimizer step (all stages)")
    axis.set_ylabel("loss")
    axis.set_yscale("log")
    axis.set_title(f"Phase {ctx.phase_id}: VFN flow matching (dotted: stage boundaries)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(report / "loss_curve.png")
    plt.close(figure)
