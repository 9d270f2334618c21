"""Phase 4.2, RLVF alignment: REINFORCE on the RLVF reward table, which rewards passing tests
and penalises confidence that the tests do not bear out (`docs/phases.md`, 4.2).

    voltx run 4.2                          # tiny profile
    voltx run 4.2 --profile full --backend vast
    python -c 'import voltx; voltx.run("4.2")'

Each step: draw `batch_size` problems (APPS interview and competition, and verified mutations of
solved ones, `mutations.py`), sample `samples_per_problem` programs from the policy
(`policy.py`), run their tests in the sandbox, map each sample's raw confidence through 3.2's
gamma curve, read its program's frame with 3.3's refined axioms, score it with the reward table
(`rlvf_rewards.py`), and take one AdamW step on

    L = - mean over samples of clip(R - b, +-advantage_clip) * log pi(sample)

with b an EMA of the mean reward. Before the first step and after the last, a held-out set is
sampled with fixed seeds and scored: pass rate, ECE and the overconfident-error rate (wrong with
gamma >= 0.7), in the report with a reliability diagram.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases.alignment.alignment_reports import (
    CalibrationSummary,
    plot_curves,
    plot_reliability,
    write_metrics,
)
from voltx_phases.alignment.mutations import make_mutations
from voltx_phases.alignment.policy import Policy, Rollout, verify
from voltx_phases.alignment.problem_pool import draw_problems
from voltx_phases.alignment.reinforce import EmaBaseline, reinforce_loss
from voltx_phases.alignment.rlvf_config import RlvfConfig
from voltx_phases.alignment.rlvf_rewards import RewardRow
from voltx_phases.datasets.schema import Problem
from voltx_phases.execution.limits import SandboxLimits
from voltx_phases.execution.results import TestReport
from voltx_phases.hard_core.gamma_curve import GammaCurve
from voltx_phases.hard_core.safety_file import load_axioms

OUTPUT = "vfn_rlvf"
REPORT = "vfn_rlvf_report"
_EVAL_SEED = 7_777_777  # the held-out set is sampled with the same seeds before and after


def run(ctx: PhaseContext) -> None:
    config: RlvfConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    train, held_out = _problems(ctx, config)
    torch.manual_seed(config.seed)
    policy = Policy.load(ctx.inputs, "vfn_e2e", device)
    curve = GammaCurve.load(ctx.input_file("gamma_calibration", "*.safetensors"))
    axioms = load_axioms(ctx.input_file("safety_axioms", "*.safetensors"))
    optimizer = torch.optim.AdamW(
        policy.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )

    loop: dict[str, Any] = {"step": 0, "baseline": None, "before": None, "history": []}
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_training_state(Path(latest.path), policy.modules(), optimizer)
        ctx.log.info("resuming", step=loop["step"])

    def score(problems: list[Problem], seed: int) -> tuple[Rollout, list[TestReport], np.ndarray]:
        """Sample, run the tests, and map each sample's raw confidence to gamma."""
        texts = [p.query for p in problems]
        rollout = policy.rollout(texts, config.samples_per_problem, config.policy, seed)
        reports = verify(problems, rollout, config.policy)
        return rollout, reports, curve.apply(rollout.raw_confidence)

    def calibration() -> CalibrationSummary:
        _, reports, gammas = score(held_out, _EVAL_SEED)
        correct = np.array([r.all_passed for r in reports], dtype=bool)
        return CalibrationSummary.of(gammas, correct, config.rewards.confident_gamma)

    if loop["before"] is None:
        before_json = calibration().to_json()
        loop["before"] = before_json
        ctx.log.info("held-out before", **_headline(before_json))

    while loop["step"] < config.steps:
        step = loop["step"]
        batch = [train[i] for i in _batch_indices(len(train), config, step)]
        seed = config.seed * 1_000_003 + step
        rollout, reports, gammas = score(batch, seed)
        vetoes = policy.vetoed(rollout.codes, axioms, config.policy, seed)
        rows = [
            config.rewards.row(r.passed_count, r.total, float(g), v)
            for r, g, v in zip(reports, gammas, vetoes, strict=True)
        ]
        rewards = np.array(
            [
                config.rewards.reward(r.passed_count, r.total, float(g), v)
                for r, g, v in zip(reports, gammas, vetoes, strict=True)
            ]
        )
        mean_reward = float(rewards.mean())
        # 4.1's baseline: advantages against b before this step's rewards move it.
        ema = EmaBaseline(config.baseline_decay, loop["baseline"])
        baseline = mean_reward if ema.value is None else float(ema.value)
        advantages = torch.tensor(
            ema.advantages(rewards.tolist(), config.advantage_clip), device=device
        )
        loop["baseline"] = ema.value

        optimizer.zero_grad(set_to_none=True)
        logp = policy.sequence_logprobs(rollout, config.policy, seed)
        loss = reinforce_loss(logp, advantages)
        if not torch.isfinite(loss):
            raise PhaseError(
                ctx.phase_id, f"loss is {float(loss)} at step {step + 1}; try a lower 4.2.lr"
            )
        torch.autograd.backward(loss)
        torch.nn.utils.clip_grad_norm_(policy.parameters(), config.max_grad_norm)
        optimizer.step()
        with torch.no_grad():
            moved = policy.sequence_logprobs(rollout, config.policy, seed)
        # The surrogate objective sum A * log pi on the step's own samples, after minus before:
        # positive when the update moved probability towards the samples that beat the baseline.
        gain = float((advantages * (moved - logp.detach())).mean())

        loop["step"] = step + 1
        metrics = {
            "reward": mean_reward,
            "baseline": baseline,
            "loss": float(loss.detach()),
            "objective_gain": gain,
            "pass_rate": float(np.mean([r.pass_rate for r in reports])),
            "compile_rate": float(np.mean([_compiles(r) for r in reports])),
            "gamma": float(gammas.mean()),
            "overconfident": float(np.mean([row is RewardRow.NONE_OVERCONFIDENT for row in rows])),
            "vetoed": float(np.mean(vetoes)),
        }
        loop["history"].append({"step": step + 1, **metrics})
        if (step + 1) % config.log_every_steps == 0 or step == 0:
            ctx.metrics.log_metrics(step + 1, **metrics)
            ctx.progress(step + 1, config.steps, reward=mean_reward, loss=float(loss.detach()))
        stopping = ctx.stop_requested()
        if (step + 1) % config.checkpoint_every_steps == 0 or stopping or step + 1 == config.steps:
            _save(ctx, policy, optimizer, loop)
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"step {step + 1}")

    after = calibration()
    before = CalibrationSummary.from_json(loop["before"])
    ctx.log.info("held-out after", **_headline(after.to_json()))
    policy.save(ctx.outputs[OUTPUT])
    report = ctx.outputs[REPORT]
    write_metrics(
        report,
        {
            "before": before.to_json(),
            "after": after.to_json(),
            "train_problems": len(train),
            "held_out_problems": len(held_out),
            "mutations": sum("~m" in p.id for p in train),
            "steps": config.steps,
            "final_baseline": loop["baseline"],
        },
        loop["history"],
    )
    plot_curves(
        report / "reward_curve.png",
        loop["history"],
        ("reward", "baseline", "gamma"),
        f"Phase {ctx.phase_id}: RLVF reward",
    )
    plot_curves(
        report / "loss_curve.png",
        loop["history"],
        ("loss",),
        f"Phase {ctx.phase_id}: REINFORCE loss",
    )
    plot_reliability(
        report / "reliability_diagram.png",
        before,
        after,
        f"Phase {ctx.phase_id}: held-out reliability",
    )


def _problems(ctx: PhaseContext, config: RlvfConfig) -> tuple[list[Problem], list[Problem]]:
    """(training problems with their mutations, held-out problems)."""
    pool = draw_problems(ctx, config.datasets, config.problems_per_dataset, config.seed)
    if len(pool) <= config.eval_problems:
        raise PhaseError(
            ctx.phase_id,
            f"{len(pool)} usable problem(s) in {', '.join(config.datasets)}, not more than the "
            f"{config.eval_problems} held out; lower 4.2.eval_problems",
        )
    held_out, train = pool[: config.eval_problems], pool[config.eval_problems :]
    limits = SandboxLimits(timeout_s=config.policy.sandbox_timeout_s)
    mutated = make_mutations(train, config.mutations, limits, config.policy.sandbox_workers)
    ctx.log.info("problems", train=len(train), mutations=len(mutated), held_out=len(held_out))
    train = train + mutated
    if len(train) < config.batch_size:
        raise PhaseError(
            ctx.phase_id,
            f"{len(train)} training problem(s) is less than one batch of {config.batch_size}; "
            "lower 4.2.batch_size",
        )
    return train, held_out


def _batch_indices(count: int, config: RlvfConfig, step: int) -> list[int]:
    """The problems of `step`: epochs of a seeded permutation, so resuming at any step draws
    what an uninterrupted run draws."""
    per_epoch = count // config.batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([config.seed, epoch]).permutation(count)
    start = position * config.batch_size
    return [int(i) for i in order[start : start + config.batch_size]]


def _compiles(report: TestReport) -> bool:
    return "compile_error" not in report.failures


def _headline(summary: dict[str, Any]) -> dict[str, float]:
    return {k: summary[k] for k in ("pass_rate", "ece", "overconfident_error_rate", "mean_gamma")}


def _save(
    ctx: PhaseContext, policy: Policy, optimizer: torch.optim.Optimizer, loop: dict[str, Any]
) -> None:
    with ctx.checkpoints.save(int(loop["step"])) as folder:
        write_training_state(Path(folder), policy.modules(), optimizer, loop)
