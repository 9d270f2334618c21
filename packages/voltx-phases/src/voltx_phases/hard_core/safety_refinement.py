"""Phase 3.3: safety axiom refinement -> `safety_axioms` (+ `safety_axioms_report`).

    voltx run 3.3                           # tiny profile: a minute on one CPU core
    voltx run 3.3 --profile full --backend vast
    python -c 'import voltx; voltx.run("3.3")'

The constant axioms K1-K5 are hash vectors that no real frame comes near, so the safety layer
catches nothing (`docs/phases.md`, "Hard core"). This phase builds a labelled set (the store's
reference solutions as benign programs, templated attacks labelled with the axiom each violates;
`safety_corpus`), reads every program's frame with the trained model
(`VoltModel.hard_core_inputs`), fits the 5 x 256 axioms with a logistic loss over the monitor's
own score (`safety_training`), then sets each threshold just above the highest training benign
score, so that no training benchmark solution is flagged. The report gives the monitor's
false-negative and false-positive rates per axiom on a held-out split disjoint by template and
problem, before (constant axioms) and after.

Resume: training checkpoints (axioms, optimizer, RNG, loss history) go through
`_common/training_state.py`; the frames are recomputed on a rerun (the model is deterministic on a
given device), so a SIGKILL and rerun give the bytes of an uninterrupted run.
"""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases._common.weights import WeightsError
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.safety import Axiom, default_axioms
from voltx_phases.hard_core.safety_config import SafetyRefinementConfig
from voltx_phases.hard_core.safety_corpus import (
    LabelledProgram,
    adversarial_programs,
    benign_programs,
    split_by_source,
)
from voltx_phases.hard_core.safety_file import FILE_NAME, load_axioms, write_axioms
from voltx_phases.hard_core.safety_report import write_report
from voltx_phases.hard_core.safety_training import (
    AxiomMatrix,
    Frames,
    constrained_thresholds,
    error_rates,
    flags,
    logistic_loss,
    max_cosines,
    targets,
    unit_slots,
)
from voltx_phases.models.inference import VoltModel

_MODULE = "axioms"


def _labelled_set(
    ctx: PhaseContext, config: SafetyRefinementConfig
) -> tuple[list[LabelledProgram], list[LabelledProgram]]:
    """(train, held-out), refusing inputs that cannot give a benign side on both."""
    files = {name: ctx.input_file(name, "*.jsonl") for name in config.benign_datasets}
    try:
        benign = benign_programs(files)
    except ValueError as exc:  # a malformed line: the reader names the file and line
        raise PhaseError(ctx.phase_id, str(exc)) from exc
    if len(benign) < 2:
        raise PhaseError(
            ctx.phase_id,
            f"{len(benign)} benign program(s): the reference solutions of "
            f"{', '.join(config.benign_datasets)} hold fewer than 2 non-empty distinct ones; "
            "need at least 2 (one to refine on, one held out)",
        )
    attacks = adversarial_programs(config.adversarial_per_axiom, config.seed)
    return split_by_source(benign + attacks, config.held_out_fraction, config.seed)


def _frames(
    ctx: PhaseContext, config: SafetyRefinementConfig, programs: list[LabelledProgram]
) -> Frames:
    """Every program's frame as `config.frames` names it: the RAR's, one program per call so
    that each is `VoltModel.hard_core_inputs([code])` whatever its neighbours, or the
    encoder's."""
    paths = {name: ctx.inputs[name] for name in VOLT_X_ARTIFACTS}
    try:
        model = VoltModel.from_artifacts(paths, config.device)
    except (ValueError, WeightsError) as exc:
        raise PhaseError(ctx.phase_id, f"cannot load the model: {exc}") from exc
    codes = [p.code for p in programs]
    if config.frames == "reasoned":
        inputs = model.hard_core_inputs(codes, batch=1)
        return Frames(inputs.r0, inputs.present)
    r0, present = [], []
    for start in range(0, len(codes), config.frame_batch):
        frames = model.encode(codes[start : start + config.frame_batch])
        r0.append(frames.vectors.float().cpu().numpy())
        present.append(frames.present.cpu().numpy())
    return Frames(np.concatenate(r0), np.concatenate(present))


def run(ctx: PhaseContext) -> None:
    config: SafetyRefinementConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    train, held_out = _labelled_set(ctx, config)
    ctx.log.info(
        "labelled set",
        train=len(train),
        held_out=len(held_out),
        benign=sum(p.benign for p in train + held_out),
    )
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    frames = _frames(ctx, config, train + held_out)
    train_frames = frames.take(range(len(train)))
    held_frames = frames.take(range(len(train), len(train) + len(held_out)))

    device = resolve_device(config.device, ctx)
    constant = default_axioms()
    model = AxiomMatrix(constant).to(device)
    history = _train(ctx, config, model, train, train_frames, device)

    refined = _refined_axioms(ctx, config, model, constant, train, train_frames)
    metrics: dict[str, Any] = {
        "labelled_set": _composition(train, held_out),
        "frames": config.frames,
        "thresholds": {a.name: a.threshold for a in refined},
        "loss": history,
    }
    for split, programs, split_frames in (
        ("held_out", held_out, held_frames),
        ("train", train, train_frames),
    ):
        metrics[split] = {
            "before": error_rates(programs, flags(split_frames, constant)),
            "after": error_rates(programs, flags(split_frames, refined)),
        }
    after = metrics["held_out"]["after"]
    ctx.log.info(
        "refined",
        held_out_fn=after["false_negative_rate"],
        held_out_fp=after["false_positive_rate"],
        caught_before=metrics["held_out"]["before"]["attacks_caught"],
        caught_after=after["attacks_caught"],
    )
    write_report(ctx.outputs["safety_axioms_report"], ctx.phase_id, metrics)


def _train(
    ctx: PhaseContext,
    config: SafetyRefinementConfig,
    model: AxiomMatrix,
    train: list[LabelledProgram],
    frames: Frames,
    device: torch.device,
) -> list[dict[str, float]]:
    """Full-batch Adam on the logistic loss for `config.steps` steps, resuming from the latest
    checkpoint; returns the loss history (every logged step of every attempt)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, history = 0, []
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_training_state(Path(latest.path), {_MODULE: model}, optimizer)
        step, history = int(loop["step"]), list(loop["history"])
        ctx.log.info("resuming", step=step)
    slots, present = unit_slots(frames, device)
    labels, weights = (t.to(device) for t in targets(train, config.benign_weight))
    while step < config.steps:
        optimizer.zero_grad()
        loss = logistic_loss(model, slots, present, labels, weights, config.logit_scale)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise PhaseError(ctx.phase_id, f"loss is {value} at step {step}; try a lower lr")
        if step % config.log_every_steps == 0 or step == 1:
            history.append({"step": step, "loss": value})
            ctx.metrics.log_metrics(step, loss=value)
            ctx.progress(step, config.steps, loss=value)
        stopping = ctx.stop_requested()
        if step % config.checkpoint_every_steps == 0 or stopping or step == config.steps:
            with ctx.checkpoints.save(step) as folder:
                loop = {"step": step, "history": history}
                write_training_state(Path(folder), {_MODULE: model}, optimizer, loop)
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"step {step}")
    return history


def _refined_axioms(
    ctx: PhaseContext,
    config: SafetyRefinementConfig,
    model: AxiomMatrix,
    constant: tuple[Axiom, ...],
    train: list[LabelledProgram],
    frames: Frames,
) -> tuple[Axiom, ...]:
    """Write the trained vectors with thresholds set under the no-false-positive constraint, and
    return the axioms as read back from the file (what every later reader will see)."""
    vectors = model.vectors.detach().cpu().numpy()
    path = ctx.outputs["safety_axioms"] / FILE_NAME
    provisional = tuple(
        Axiom(a.name, vectors[k], a.threshold, a.severity) for k, a in enumerate(constant)
    )
    # The scores are taken with the vectors as stored (normalised in float32), so the
    # constraint holds for the monitor that will read the file, to the last bit.
    write_axioms(path, provisional, frames=config.frames)
    stored = load_axioms(path)
    benign = [row for row, p in enumerate(train) if p.benign]
    scores = max_cosines(frames.take(benign), np.stack([a.vector for a in stored]))
    thresholds = constrained_thresholds(
        scores, [a.threshold for a in constant], config.threshold_margin_sd
    )
    final = tuple(Axiom(a.name, a.vector, thresholds[k], a.severity) for k, a in enumerate(stored))
    write_axioms(path, final, frames=config.frames)
    return load_axioms(path)


def _composition(
    train: list[LabelledProgram], held_out: list[LabelledProgram]
) -> dict[str, dict[str, Any]]:
    """Per group (benign, each axiom): programs and sources on each side, and the held-out
    sources by name, so a reader can check that no template is on both sides."""
    out: dict[str, dict[str, Any]] = {}
    for side, programs in (("train", train), ("held_out", held_out)):
        for program in programs:
            group = out.setdefault(program.axiom or "benign", {})
            entry = group.setdefault(side, {"programs": 0, "sources": set()})
            entry["programs"] += 1
            entry["sources"].add(program.source)
    for group in out.values():
        for side, entry in group.items():
            sources = sorted(entry["sources"])
            group[side] = {"programs": entry["programs"], "sources": len(sources)}
            if side == "held_out" and group is not out.get("benign"):
                group[side]["templates"] = sources
    return dict(sorted(out.items()))
