"""The Volt X model as a generator for `voltx generate` and `voltx.generate` (docs/cli.md).

    voltx generate "Write a function that returns the sum of a list" -n 4

Torch-free at import, as the plugin module that registers `GENERATOR` must be; `generate`, the
entry voltx calls, loads the model (`models/inference.py`) from the artifacts voltx resolved.
"""

from __future__ import annotations

from voltx.generation import GenerationRequest, GeneratorSpec, ProblemSamples

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

GENERATOR = GeneratorSpec(
    name="volt_x",
    requires=VOLT_X_ARTIFACTS,
    entry="voltx_phases.generation:generate",
    description="Volt X: encoder frame, RAR with the ScaledVFN, then the code decoder",
)


def generate(request: GenerationRequest) -> list[ProblemSamples]:
    """Load the model from `request.artifacts` and sample `request.n` programs per prompt."""
    from voltx_phases.models.inference import ReasoningSettings, VoltModel
    from voltx_phases.models.sampling import SamplingSettings

    model = VoltModel.from_artifacts(request.artifacts, request.device)
    sampling = SamplingSettings(
        temperature=request.temperature,
        top_p=request.top_p,
        max_tokens=request.max_tokens,
        seed=request.seed,
    )
    reasoning = ReasoningSettings(max_iterations=request.max_iterations, seed=request.seed)
    return model.generate(request.prompts, request.n, sampling, reasoning)
