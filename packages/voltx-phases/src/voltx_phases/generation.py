"""The Volt X model as a generator for `voltx generate` and `voltx.generate` (docs/cli.md).

    voltx generate "Write a function that returns the sum of a list" -n 4

Torch-free at import, as the plugin module that registers `GENERATOR` must be; `generate`, the
entry voltx calls, loads the model (`models/inference.py`) from the artifacts voltx resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from voltx.generation import GeneratedSample, GenerationRequest, GeneratorSpec, ProblemSamples

if TYPE_CHECKING:
    from voltx_phases.hard_core.gamma_curve import GammaCurve

# The artifacts of `VoltModel` (models/inference.py, which imports torch, so they are listed here).
VOLT_X_ARTIFACTS = (
    "code_tokenizer",
    "code_encoder",
    "code_decoder",
    "scaled_vfn",
    "slot_attention",
    "diffusion_controller",
    "code_attention_bias",
)
# The hard core's calibrations (phases 3.1, 3.2, 3.3), used when the store has them: without
# them the router and the safety axioms are the constant defaults and no calibrated confidence
# is given (docs/phases.md, "The model at inference").
CALIBRATIONS = ("router_calibration", "gamma_calibration", "safety_axioms")

GENERATOR = GeneratorSpec(
    name="volt_x",
    requires=VOLT_X_ARTIFACTS,
    entry="voltx_phases.generation:generate",
    description="Volt X: encoder frame, RAR with the ScaledVFN, then the code decoder",
    optional=CALIBRATIONS,
)


def generate(request: GenerationRequest) -> list[ProblemSamples]:
    """Load the model from `request.artifacts` and sample `request.n` programs per prompt."""
    from voltx_phases.hard_core.gamma_curve import GammaCurve
    from voltx_phases.hard_core.safety_file import load_axioms
    from voltx_phases.hard_core.strands_file import load_strands
    from voltx_phases.models.inference import ReasoningSettings, VoltModel
    from voltx_phases.models.sampling import SamplingSettings

    model = VoltModel.from_artifacts(request.artifacts, request.device)
    artifacts = request.artifacts
    if "router_calibration" in artifacts:
        model.strands = load_strands(artifacts["router_calibration"])
    if "safety_axioms" in artifacts:
        model.axioms = load_axioms(artifacts["safety_axioms"])
    curve = None
    if "gamma_calibration" in artifacts:
        curve = GammaCurve.load(artifacts["gamma_calibration"])
    sampling = SamplingSettings(
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=request.seed,
    )
    reasoning = ReasoningSettings(max_iterations=request.max_iterations, seed=request.seed)
    problems = model.generate(request.prompts, request.n, sampling, reasoning)
    return problems if curve is None else [calibrate(problem, curve) for problem in problems]


def calibrate(problem: ProblemSamples, curve: GammaCurve) -> ProblemSamples:
    """`problem` with each sample's calibrated confidence: `curve` applied to the raw signal it
    was fitted on (the sample's `confidence`, or one of its `ConfidenceSignals` by name)."""
    import numpy as np

    raw = np.array([raw_signal(sample, curve.signal) for sample in problem.samples])
    samples = tuple(
        attrs.evolve(sample, calibrated_confidence=float(value))
        for sample, value in zip(problem.samples, curve.apply(raw), strict=True)
    )
    return attrs.evolve(problem, samples=samples)


def raw_signal(sample: GeneratedSample, name: str) -> float:
    """The sample's raw confidence signal `name`: `confidence`, or a `ConfidenceSignals` field."""
    if name == "confidence":
        return sample.confidence
    value = getattr(sample.signals, name, None)
    if not isinstance(value, int | float):
        raise ValueError(f"gamma_calibration maps an unknown signal {name!r}")
    return float(value)
