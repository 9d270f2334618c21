"""The config of phase 3.3 (safety axiom refinement) and its profiles (torch-free: `voltx plan`
imports this)."""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from voltx_phases._common.bounds import at_least, between, positive, seed

# The problem datasets whose reference solutions may serve as benign programs; the phase declares
# all three as inputs, a profile chooses which it reads.
BENIGN_SOURCES = ("humaneval", "mbpp", "code_training_combined")


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _benign_datasets(_instance: object, _attribute: object, value: tuple[str, ...]) -> None:
    unknown = [name for name in value if name not in BENIGN_SOURCES]
    if not value or unknown:
        raise ValueError(f"must be a non-empty subset of {', '.join(BENIGN_SOURCES)}, got {value}")


@attrs.frozen
class SafetyRefinementConfig:
    """Phase 3.3: refine the five axioms K1-K5 and their thresholds on the frames of benign and
    adversarial programs (`docs/phases.md`, 3.3)."""

    # The plan's benign set: HumanEval 164 + MBPP 974 = 1,138 reference solutions.
    benign_datasets: tuple[str, ...] = attrs.field(
        default=("humaneval", "mbpp"), converter=_names, validator=_benign_datasets
    )
    # 300 x 5 = the plan's 1,500 adversarial programs, spread over all five axioms.
    adversarial_per_axiom: int = attrs.field(default=300, validator=at_least(2))
    # Share of each group's sources (templates, problems) held out for the before/after figures.
    held_out_fraction: float = attrs.field(default=0.25, validator=between(0.05, 0.5))
    # Which frame of a program the axioms are refined on: "reasoned", the RAR's frame that
    # `VoltModel.hard_core_inputs([code])` gives and the model's hard core reads; or "encoded",
    # the encoder's frame before RAR (the frame the original's safety layer pre-checks). The
    # tiny profile needs "encoded": its RAR maps every program onto nearly one frame.
    frames: str = attrs.field(
        default="reasoned", validator=attrs.validators.in_(("reasoned", "encoded"))
    )
    steps: int = attrs.field(default=400, validator=positive())
    lr: float = attrs.field(default=0.01, validator=positive())
    # Cosines of encoder and RAR frames spread over a few hundredths around a shared direction,
    # so the logistic loss reads scale * (cos - bias) with a large scale: a gap of 0.01 between
    # a program and the bias is a logit of 2 at the default.
    logit_scale: float = attrs.field(default=200.0, validator=positive())
    # A benign program's loss counts this many times a caught attack's: the constraint is no
    # false positive on the benchmark solutions, so errors on them cost more.
    benign_weight: float = attrs.field(default=2.0, validator=positive())
    # Threshold = the highest cosine of a training benign program plus this many standard
    # deviations of the training benign cosines (strictly above it, so no training benign
    # program is flagged), leaving room for unseen solutions. In standard deviations because
    # the cosines' spread, not their scale, is what an unseen solution varies by.
    threshold_margin_sd: float = attrs.field(default=0.5, validator=between(0, 5))
    # Programs per encoder call ("encoded" frames only: reasoned frames are read one program at
    # a time, since the RAR's noise depends on a program's row in the batch).
    frame_batch: int = attrs.field(default=64, validator=positive())
    seed: int = attrs.field(default=0, validator=seed())
    log_every_steps: int = attrs.field(default=10, validator=positive())
    checkpoint_every_steps: int = attrs.field(default=50, validator=positive())
    device: str = "auto"
    threads: int = attrs.field(default=0, validator=at_least(0))  # 0: torch's default


SAFETY_PROFILES = {
    # The tiny store's benchmarks hold a handful of problems; the combined training set's
    # solutions make the benign side large enough that a held-out FP rate means something.
    # Its frames are the encoder's: the tiny RAR's frames of any two programs have a cosine
    # above 0.99 (docs/phases.md, 3.3).
    "tiny": SafetyRefinementConfig(
        benign_datasets=BENIGN_SOURCES,
        adversarial_per_axiom=24,
        frames="encoded",
        steps=200,
        log_every_steps=5,
        checkpoint_every_steps=20,
        frame_batch=32,
        threads=1,
    ),
    "full": SafetyRefinementConfig(),
}
