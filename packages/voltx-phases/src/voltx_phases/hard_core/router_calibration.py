"""Phase 3.1: intent router calibration, the five code strands' capability vectors and
thresholds learnt on labelled queries (`docs/phases.md`, 3.1).

    voltx run 3.1                          # tiny profile: seconds on a laptop CPU
    voltx run 3.1 --profile full --backend vast
    python -c 'import voltx; voltx.run("3.1")'

Steps: labelled queries from the problem datasets and the corpus (`router_queries`), split by
source; every query encoded and reasoned by the trained model (`VoltModel.hard_core_inputs`,
the frames the router reads at inference); then AdamW on the 5 x 256 vectors and 5 thresholds
(`router_training`), starting from the constant strands. Held-out accuracy is measured with the
router's own decision (`hard_core.router.route`) from step 0, so the report's curve starts at
the constant strands' accuracy.

Outputs: `router_calibration` (`docs/formats.md`, router_calibration) and
`router_calibration_report` (metrics.json, accuracy_curve.png, confusion_matrix.png). Training
resumes from the latest checkpoint bit for bit; the frames are cached beside the checkpoints so
a resumed run does not encode again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from voltx import PhaseContext, PhaseError, PhaseStopped
from voltx_phases._common.devices import resolve_device
from voltx_phases._common.training_state import read_training_state, write_training_state
from voltx_phases.datasets.schema import read_documents, read_problems
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.router_config import RouterCalibrationConfig
from voltx_phases.hard_core.router_queries import (
    LabelledQuery,
    build_query_set,
    strand_counts,
)
from voltx_phases.hard_core.router_report import write_report
from voltx_phases.hard_core.router_training import (
    Evaluation,
    FrameBatch,
    StrandVectors,
    evaluate,
    router_loss,
)
from voltx_phases.hard_core.strands_file import (
    FILE_NAME,
    STRAND_NAMES,
    load_strands,
    write_strands,
)
from voltx_phases.models.inference import ReasoningSettings, VoltModel
from voltx_phases.soft_core.config import PROBLEM_DATASETS

_MODULE = "strand_vectors"
_FRAMES_FILE = "query_frames.safetensors"


def _queries(
    ctx: PhaseContext, config: RouterCalibrationConfig
) -> tuple[list[LabelledQuery], list[LabelledQuery]]:
    """The labelled queries, split; bad input (a strand with no training or no held-out query,
    a query set of one strand above all) is refused here, before the model is loaded."""
    problems = [
        problem
        for dataset in PROBLEM_DATASETS
        for problem in read_problems(ctx.input_file(dataset, "*.jsonl"))
    ]
    documents = read_documents(ctx.input_file("stack_python", "*.jsonl"))
    split = build_query_set(
        problems, documents, config.queries_per_strand, config.held_out_fraction, config.seed
    )
    train, held_out = split.train, split.held_out
    train_counts, held_counts = strand_counts(train), strand_counts(held_out)
    lacking = [name for name in STRAND_NAMES if not train_counts[name] or not held_counts[name]]
    if lacking:
        counts = ", ".join(f"{n} {train_counts[n]}+{held_counts[n]}" for n in STRAND_NAMES)
        raise PhaseError(
            ctx.phase_id,
            f"the query set lacks training or held-out queries for {', '.join(lacking)} "
            f"(train+held-out per strand: {counts}); every strand needs both. The problem "
            f"datasets ({len(problems)} problems) give CodeRunner, CodeDebugger, CodeExplainer "
            "and MathEngine queries, stack_python's functions give MemoryRetrieval's",
        )
    ctx.log.info("queries", train=train_counts, held_out=held_counts)
    return train, held_out


def _frames(
    ctx: PhaseContext, config: RouterCalibrationConfig, texts: list[str], device: torch.device
) -> tuple[np.ndarray, np.ndarray]:
    """r0 [N, 16, 256] and present [N, 16] of `texts`, from the cache when it holds these texts."""
    settings = ReasoningSettings(max_iterations=config.reasoning_iterations)
    digest = hashlib.sha256(repr((settings, texts)).encode()).hexdigest()
    cache = ctx.checkpoints.root / _FRAMES_FILE
    if cache.is_file():
        with safe_open(str(cache), framework="np") as handle:
            cached = (handle.metadata() or {}).get("texts")
        if cached == digest:
            tensors = load_file(str(cache))
            return tensors["r0"], tensors["present"].astype(bool)
    model = VoltModel.from_artifacts({name: ctx.inputs[name] for name in VOLT_X_ARTIFACTS}, device)
    inputs = model.hard_core_inputs(texts, settings, batch=config.encode_batch)
    staging = cache.with_name(cache.name + ".tmp")
    save_file(
        {"r0": inputs.r0, "present": inputs.present.astype(np.uint8)},
        str(staging),
        metadata={"texts": digest},
    )
    staging.replace(cache)
    return inputs.r0, inputs.present


def run(ctx: PhaseContext) -> None:
    config: RouterCalibrationConfig = ctx.config
    if config.threads:
        torch.set_num_threads(config.threads)
    device = resolve_device(config.device, ctx)
    train, held_out = _queries(ctx, config)
    r0, present = _frames(ctx, config, [q.text for q in train + held_out], device)
    labels = np.array([q.strand for q in train + held_out], dtype=np.int64)
    split = len(train)
    # A query whose frame has no present slot gives the router nothing to compare: it cannot
    # be learnt from, and on the held-out side it counts as a miss.
    usable = present[:split].any(axis=1)
    training = FrameBatch(
        torch.from_numpy(r0[:split][usable]),
        torch.from_numpy(present[:split][usable]),
        torch.from_numpy(labels[:split][usable]),
    ).to(device)
    held = (r0[split:], present[split:], labels[split:])
    if len(training) == 0:
        raise PhaseError(
            ctx.phase_id,
            f"none of the {split} training queries' frames has a present slot; the encoder "
            "(code_encoder) fills no slot for them",
        )

    torch.manual_seed(config.seed)
    vectors = StrandVectors.initial().to(device)
    optimizer = torch.optim.AdamW(
        vectors.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    loop: dict[str, Any] = {"step": 0, "history": []}
    latest = ctx.checkpoints.latest()
    if latest is not None:
        loop = read_training_state(Path(latest.path), {_MODULE: vectors}, optimizer)
        ctx.log.info("resuming", step=loop["step"])
    history: list[dict[str, Any]] = loop["history"]
    if loop["step"] == 0:
        _log_evaluation(ctx, history, 0, evaluate(vectors.strands(), *held))

    batch_size = min(config.batch_size, len(training))
    per_epoch = len(training) // batch_size
    for step in range(loop["step"] + 1, config.steps + 1):
        epoch, position = divmod(step - 1, per_epoch)
        # The order depends only on (seed, epoch): a resumed run walks the same batches.
        order = torch.randperm(
            len(training), generator=torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
        )
        batch = training.take(order[position * batch_size : (position + 1) * batch_size])
        optimizer.zero_grad(set_to_none=True)
        loss, parts = router_loss(vectors, batch, config)
        if not np.isfinite(parts["loss"]):
            raise PhaseError(
                ctx.phase_id,
                f"loss is {parts['loss']} at step {step}; the last good checkpoint is kept; "
                "try a lower lr",
            )
        torch.autograd.backward(loss)
        optimizer.step()
        if step % config.eval_every_steps == 0 or step == config.steps:
            _log_row(ctx, history, step, **parts)
            _log_evaluation(ctx, history, step, evaluate(vectors.strands(), *held))
            ctx.progress(step, config.steps, loss=parts["loss"])
        stopping = ctx.stop_requested()
        if step % config.checkpoint_every_steps == 0 or stopping:
            with ctx.checkpoints.save(step) as folder:
                write_training_state(
                    Path(folder), {_MODULE: vectors}, optimizer, {"step": step, "history": history}
                )
        if stopping:
            raise PhaseStopped(ctx.phase_id, f"step {step}")

    strands = vectors.strands()
    capabilities = np.stack([strand.capability for strand in strands])
    # A threshold beyond +-1 decides as +-1 does for a cosine; the file keeps it a cosine.
    thresholds = np.clip([strand.threshold for strand in strands], -1.0, 1.0)
    write_strands(ctx.outputs["router_calibration"] / FILE_NAME, capabilities, thresholds)
    # Measured on the strands as a reader gets them back from the file.
    final = evaluate(load_strands(ctx.outputs["router_calibration"]), *held)
    fit = evaluate(strands, r0[:split], present[:split], labels[:split])
    write_report(
        ctx.outputs["router_calibration_report"],
        final=final,
        train=fit,
        thresholds=thresholds,
        history=history,
        counts={"train": strand_counts(train), "held_out": strand_counts(held_out)},
        phase_id=ctx.phase_id,
    )


def _log_row(ctx: PhaseContext, history: list[dict[str, Any]], step: int, **values: float) -> None:
    """A metrics row for the phase's metrics file and for the report (no wall-clock time in the
    report's copy: it depends only on inputs and config)."""
    ctx.metrics.log_metrics(step, **values)
    history.append({"step": step, **values})


def _log_evaluation(
    ctx: PhaseContext, history: list[dict[str, Any]], step: int, evaluation: Evaluation
) -> None:
    _log_row(
        ctx,
        history,
        step,
        held_out_accuracy=evaluation.accuracy,
        activated_accuracy=evaluation.activated_accuracy,
    )
    ctx.log.info("held-out accuracy", step=step, accuracy=round(evaluation.accuracy, 4))
