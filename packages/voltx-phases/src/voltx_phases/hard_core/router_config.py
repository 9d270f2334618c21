"""Config of phase 3.1, the intent router calibration (torch-free: `voltx plan` imports this)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from voltx_phases._common.bounds import between, non_negative, positive, seed


def _counts(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(count) for count in value)


def _five_counts(
    _instance: object, attribute: attrs.Attribute[tuple[int, ...]], value: tuple[int, ...]
) -> None:
    if len(value) != 5 or any(count < 2 for count in value):
        raise ValueError(
            f"{attribute.name} must be five counts of at least 2 (one per strand, in the order "
            f"CodeRunner, CodeDebugger, CodeExplainer, MathEngine, MemoryRetrieval), got {value}"
        )


@attrs.frozen
class RouterCalibrationConfig:
    """Phase 3.1: labelled queries for the five strands, encoded and reasoned by the model, and
    the strands' capability vectors and thresholds learnt on them."""

    # Queries kept per strand (the most; fewer when the datasets give fewer), in strand order.
    # The plan's mix: 4K CodeRunner, 2K CodeDebugger, 2K CodeExplainer, 1K MathEngine,
    # 1K MemoryRetrieval.
    queries_per_strand: tuple[int, ...] = attrs.field(
        default=(4000, 2000, 2000, 1000, 1000), converter=_counts, validator=_five_counts
    )
    # Share of source problems (and corpus functions) whose queries are held out: 2K of 10K.
    held_out_fraction: float = attrs.field(default=0.2, validator=between(0.05, 0.5))
    steps: int = attrs.field(default=10_000, validator=positive())
    batch_size: int = attrs.field(default=256, validator=positive())
    lr: float = attrs.field(default=1e-3, validator=positive())
    weight_decay: float = attrs.field(default=0.0, validator=non_negative())
    # Softmax temperature of the contrastive term over the five strands' cosines.
    temperature: float = attrs.field(default=0.02, validator=positive())
    # Sharpness and weight of the per-strand sigmoid term that learns the thresholds.
    threshold_temperature: float = attrs.field(default=0.05, validator=positive())
    threshold_weight: float = attrs.field(default=1.0, validator=non_negative())
    eval_every_steps: int = attrs.field(default=250, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=1000, validator=positive())
    # The RAR budget of the frames the strands are fitted on: the model's default at inference
    # (50). Calibrate with the budget the model will be run with; the tiny profile uses 1, since
    # the tiny 2.1 model's RAR pulls every frame to nearly the same point within a few
    # iterations (docs/phases.md, 3.1).
    reasoning_iterations: int = attrs.field(default=50, validator=positive())
    # Texts encoded and reasoned at once when the frames are built.
    encode_batch: int = attrs.field(default=64, validator=positive())
    seed: int = attrs.field(default=42, validator=seed())
    device: str = "auto"
    threads: int = attrs.field(
        default=0, validator=non_negative()
    )  # 0: torch's default; fixed counts make CPU runs reproducible


ROUTER_PROFILES = {
    "tiny": RouterCalibrationConfig(
        queries_per_strand=(60, 60, 60, 60, 60),
        held_out_fraction=0.25,
        steps=300,
        batch_size=32,
        eval_every_steps=20,
        checkpoint_every_steps=50,
        reasoning_iterations=1,
        encode_batch=32,
        threads=1,
    ),
    "full": RouterCalibrationConfig(),
}
