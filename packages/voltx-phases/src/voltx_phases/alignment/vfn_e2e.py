"""Phase 4.1: end-to-end fine-tuning of the ScaledVFN, slot attention and the diffusion
controller on the problems' test results (`docs/phases.md`, 4.1).

    voltx run 4.1                          # tiny profile: seconds on one CPU core
    voltx run 4.1 --profile full --backend vast
    python -c 'import voltx; voltx.run("4.1")'

Each step: sample code for a batch of problems (the RAR from each problem frame, then the frozen
decoder sampling from the reasoned slots), run each sample's tests in the sandbox, and take one
AdamW step on 0.7 * 2.1's flow-matching loss + 0.3 * REINFORCE with the shaped test reward. The
tests of a batch run on a background thread while the next batch is sampled. Curriculum stages
widen the problem pool (HumanEval + MBPP, then APPS introductory, then APPS interview); one
optimizer and one warmup + cosine schedule (lr -> min_lr) span them. Checkpoints hold the
modules, AdamW, the baseline, the batch already sampled and the metrics, as safetensors and JSON
(`docs/formats.md`, checkpoint), so a run killed at any point resumes bit for bit.

Output: `vfn_e2e` (the three modules in 2.1's formats) and `vfn_e2e_report`.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from tokenizers import Tokenizer

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.schedules import set_lr, warmup_cosine_lr
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases._common.weights import save_weights
from voltx_phases.alignment.config import E2eConfig
from voltx_phases.alignment.e2e_data import StageData, load_stages
from voltx_phases.alignment.e2e_report import write_report
from voltx_phases.alignment.e2e_step import (
    FLOW_DRAWS,
    FLOW_PAIRS,
    PROBLEMS,
    ROLLOUT_NOISE,
    SAMPLING,
    choose,
    flow_matching_loss,
    policy_settings,
    step_generator,
    step_seed,
    validation_loss,
)
from voltx_phases.alignment.reinforce import EmaBaseline, reinforce_loss
from voltx_phases.alignment.rewards import RewardShaping, ScoredSample, ScoringPool
from voltx_phases.alignment.rollouts import Rollout, draw, reasoned_states, sequence_logprobs
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.models.decoder import CodeDecoder
from voltx_phases.models.loading import (
    CONTROLLER_FILE,
    SCALED_VFN_FILE,
    SLOT_ATTENTION_FILE,
    load_attention_bias,
    load_decoder,
    load_diffusion_controller,
    load_scaled_vfn,
    load_slot_attention,
)
from voltx_phases.models.rar import RarModels
from voltx_phases.soft_core.vfn_step import Models, weights_digest

# The running sums of a logging window: every step's rates count in the logged means.
_WINDOW_KEYS = ("loss", "flow", "reinforce", "reward", "pass_rate", "compile_rate", "tokens")


@attrs.define
class LoopState:
    """Where the loop stands; JSON in every checkpoint."""

    step: int = 0
    baseline: float | None = None
    # The batch of step `step`, sampled already (while the previous batch's tests ran).
    pending: dict[str, Any] | None = None
    window: dict[str, float] = attrs.field(factory=dict)
    metrics: list[dict[str, Any]] = attrs.field(factory=list)


@attrs.frozen
class _Phase:
    """What every step reads: the run's fixed parts."""

    ctx: PhaseContext
    config: E2eConfig
    stages: list[StageData]
    starts: tuple[int, ...]  # the global step each stage starts at, then the total
    models: Models
    decoder: CodeDecoder
    tokenizer: Tokenizer
    device: torch.device

    def stage_of(self, step: int) -> int:
        return max(index for index, start in enumerate(self.starts[:-1]) if start <= step)

    def batch(self, step: int) -> tuple[StageData, torch.Tensor]:
        data = self.stages[self.stage_of(step)]
        generator = step_generator(self.config.seed, step, PROBLEMS)
        return data, choose(len(data.problems), self.config.problems_per_step, generator)

    def rar(self) -> RarModels:
        return RarModels(self.models.vfn, self.models.attention, self.models.controller)

    def sample(self, step: int) -> Rollout:
        """Step `step`'s samples, drawn from the current weights."""
        data, chosen = self.batch(step)
        query = data.problems.query[chosen].to(self.device)
        present = data.problems.present[chosen].to(self.device)
        settings = policy_settings(self.config)
        with torch.no_grad():
            seed = step_seed(self.config.seed, step, ROLLOUT_NOISE)
            states = reasoned_states(self.rar(), query, present, settings, seed)
        seed = step_seed(self.config.seed, step, SAMPLING)
        return draw(decoder=self.decoder, states=states, present=present,
                    samples_per_problem=self.config.samples_per_problem,
                    settings=settings, seed=seed)  # fmt: skip

    def jobs(self, step: int, rollout: Rollout) -> list[tuple[str, tuple[str, ...]]]:
        data, chosen = self.batch(step)
        return [
            (
                self.tokenizer.decode(rollout.code_ids(row)),
                data.problems.tests[int(chosen[problem])],
            )
            for row, problem in enumerate(rollout.problems)
        ]


def run(ctx: PhaseContext) -> None:
    config: E2eConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    stages = load_stages(
        ctx.phase_id,
        config,
        lambda dataset: ctx.input_file(dataset, "*.jsonl"),
        ctx.inputs["problem_frames"],
    )
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    attention = load_slot_attention(ctx.input_file("slot_attention", SLOT_ATTENTION_FILE))
    attention.set_bias(load_attention_bias(ctx.input_file("code_attention_bias", "*.safetensors")))
    models = Models(
        load_scaled_vfn(ctx.input_file("scaled_vfn", SCALED_VFN_FILE)),
        attention,
        load_diffusion_controller(ctx.input_file("diffusion_controller", CONTROLLER_FILE)),
    )
    decoder = load_decoder(ctx.input_file("code_decoder", "*.safetensors")).eval()
    decoder.requires_grad_(False)  # frozen: the gradient passes through it to the context
    tokenizer = Tokenizer.from_file(str(ctx.input_file("code_tokenizer", "*.json")))
    optimizer = torch.optim.AdamW(
        models.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    state = LoopState()
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_training_state(Path(latest.path), models.modules(), optimizer)
        state = LoopState(**loop)
        ctx.log.info("resuming", step=state.step)
    for module in models.modules().values():
        module.to(device)
    decoder.to(device)
    starts = [0]
    for stage in config.stages:
        starts.append(starts[-1] + stage.steps)
    phase = _Phase(ctx, config, stages, tuple(starts), models, decoder, tokenizer, device)
    shaping = RewardShaping(
        config.compile_error_reward, config.runtime_error_reward, config.wrong_answer_reward
    )
    limits = SandboxLimits(timeout_s=config.test_timeout_s)
    with ScoringPool(shaping, limits, config.sandbox_workers) as pool:
        for step in range(state.step, starts[-1]):
            _train_step(phase, optimizer, state, pool, step)
    folder = ctx.outputs["vfn_e2e"]
    save_weights(models.vfn, folder / SCALED_VFN_FILE)
    save_weights(models.attention, folder / SLOT_ATTENTION_FILE)
    save_weights(models.controller, folder / CONTROLLER_FILE)
    write_report(ctx.outputs["vfn_e2e_report"], ctx.phase_id, state.metrics)


def _train_step(
    phase: _Phase,
    optimizer: torch.optim.Optimizer,
    state: LoopState,
    pool: ScoringPool,
    step: int,
) -> None:
    ctx, config, models = phase.ctx, phase.config, phase.models
    stage_index = phase.stage_of(step)
    total = phase.starts[-1]
    if step == phase.starts[stage_index]:
        _log_stage_edge(phase, state, stage_index, "init")
    rollout = Rollout.from_json(state.pending) if state.pending is not None else phase.sample(step)
    pool.submit(step, phase.jobs(step, rollout))
    # The next batch is sampled while this one's tests run: from the weights before this update.
    upcoming = phase.sample(step + 1) if config.overlap_sandbox and step + 1 < total else None
    scores = pool.result(step)

    lr = warmup_cosine_lr(
        step + 1,
        max_lr=config.lr,
        warmup_steps=config.warmup_steps,
        total_steps=total,
        min_lr_ratio=config.min_lr / config.lr,
    )
    set_lr(optimizer, lr)
    optimizer.zero_grad(set_to_none=True)
    data, chosen = phase.batch(step)
    pairs = data.train.take(
        choose(
            len(data.train), config.flow_batch_size, step_generator(config.seed, step, FLOW_PAIRS)
        )
    )
    flow_term, flow = flow_matching_loss(
        models, pairs, config, step_generator(config.seed, step, FLOW_DRAWS), phase.device
    )
    query = data.problems.query[chosen].to(phase.device)
    present = data.problems.present[chosen].to(phase.device)
    states = reasoned_states(
        phase.rar(),
        query,
        present,
        policy_settings(config),
        step_seed(config.seed, step, ROLLOUT_NOISE),
    )
    log_pi = sequence_logprobs(
        phase.decoder, states, present, rollout.ids, rollout.problems, config.temperature
    )
    baseline = EmaBaseline(config.baseline_decay, state.baseline)
    advantages = baseline.advantages([s.reward for s in scores], config.advantage_clip)
    drawn = torch.tensor(rollout.logprobs, dtype=log_pi.dtype, device=log_pi.device)
    reinforce = reinforce_loss(log_pi, advantages, drawn)
    loss = config.flow_weight * flow_term + config.reinforce_weight * reinforce
    if not math.isfinite(float(loss.detach())):
        raise PhaseError(
            ctx.phase_id,
            f"loss is {float(loss.detach())} at step {step + 1} (stage "
            f"{config.stages[stage_index].name}); the last good checkpoint is kept; try a lower lr",
        )
    torch.autograd.backward(loss)
    optimizer.step()

    state.step, state.baseline = step + 1, baseline.value
    state.pending = None if upcoming is None else upcoming.to_json()
    _accumulate(state, loss, flow, reinforce, scores, rollout)
    if state.step % config.log_every_steps == 0 or state.step == total or step == 0:
        row = _flush_window(state, stage=stage_index, lr=lr, baseline=baseline.value or 0.0)
        ctx.metrics.log_metrics(state.step, **row)
        state.metrics.append({"step": state.step, **row})
        ctx.progress(state.step, total, loss=row["loss"], reward=row["reward"])
    if state.step == phase.starts[stage_index + 1]:
        _log_stage_edge(phase, state, stage_index, "final")
    stopping = ctx.stop_requested()
    if state.step % config.checkpoint_every_steps == 0 or stopping:
        with ctx.checkpoints.save(state.step) as folder:
            write_training_state(Path(folder), models.modules(), optimizer, attrs.asdict(state))
    if stopping:
        raise PhaseStopped(ctx.phase_id, f"step {state.step}")


def _accumulate(
    state: LoopState,
    loss: torch.Tensor,
    flow: torch.Tensor,
    reinforce: torch.Tensor,
    scores: list[ScoredSample],
    rollout: Rollout,
) -> None:
    count = len(scores)
    values = {
        "loss": float(loss.detach()),
        "flow": float(flow.detach()),
        "reinforce": float(reinforce.detach()),
        "reward": sum(s.reward for s in scores) / count,
        "pass_rate": sum(s.pass_rate for s in scores) / count,
        "compile_rate": sum(s.compiled for s in scores) / count,
        "tokens": sum(len(row) for row in rollout.ids) / count,
    }
    for key in _WINDOW_KEYS:
        state.window[key] = state.window.get(key, 0.0) + values[key]
    state.window["steps"] = state.window.get("steps", 0.0) + 1


def _flush_window(state: LoopState, **extra: float) -> dict[str, float]:
    steps = state.window.get("steps", 1.0)
    row = {key: state.window.get(key, 0.0) / steps for key in _WINDOW_KEYS}
    state.window = {}
    return {**row, **extra}


def _log_stage_edge(phase: _Phase, state: LoopState, stage_index: int, edge: str) -> None:
    """At a stage's start and end: the flow-matching validation loss and the weights' digest."""
    data = phase.stages[stage_index]
    valid = validation_loss(phase.models, data.valid, phase.config, stage_index, phase.device)
    digest = weights_digest(phase.models.vfn)
    row: dict[str, Any] = {
        "stage": stage_index,
        "valid_loss": valid,
        f"{edge}_digest_int": int(digest[:12], 16),
    }
    phase.ctx.metrics.log_metrics(state.step, **row)
    state.metrics.append({"step": state.step, **row})
    phase.ctx.log.info(
        f"stage {'starting' if edge == 'init' else 'done'}",
        stage=phase.config.stages[stage_index].name,
        problems=len(data.problems),
        valid_loss=valid,
        weights=digest,
    )
