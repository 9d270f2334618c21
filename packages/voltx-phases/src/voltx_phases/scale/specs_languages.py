"""Declarations of phases 5.2a, 5.2b and 5.2c: one language decoder each, independent lanes.

Torch-free: planning imports only this. The three phases read the same upstream artifacts and
none reads another's output, so a run schedules them side by side (three GPUs, or three cores
on the tiny profile):

    voltx run 5.2a,5.2b,5.2c --profile tiny
"""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.scale.language_config import (
    LANGUAGE_PROFILES,
    JavaDecoderConfig,
    JavaScriptDecoderConfig,
    LanguageDecoderConfig,
    RustGoDecoderConfig,
)

# The shared VFN (5.1's largest, a folder holding the ScaledVFN, slot attention and diffusion
# controller files) and the 0.4 bias: the end-to-end pass rate runs the whole model through
# them. `VFN_PARTS` are 2.1's artifacts of the same three files, which a declaration may name
# instead (the tests do, for a store without 5.1).
VFN_ARTIFACT = "vfn_500m"
VFN_PARTS = ("scaled_vfn", "slot_attention", "diffusion_controller")
_UPSTREAM = ("code_tokenizer", "code_encoder", "code_decoder", VFN_ARTIFACT, "code_attention_bias")
_GPU = Resources(gpus=1, gpu_memory_gb=8, cpu_cores=4, ram_gb=16, disk_gb=40)
_TINY = Resources(cpu_cores=1, ram_gb=1, disk_gb=1)


def _language_phase(
    phase_id: str,
    title: str,
    output: str,
    config_class: type[LanguageDecoderConfig],
    reference_hours: float,
) -> PhaseSpec:
    return PhaseSpec(
        id=phase_id,
        name=f"{title} decoder",
        family="scale",
        entry="voltx_phases.scale.language_training:run",
        requires=_UPSTREAM,
        # The Stack dump (its files of the phase's languages are read, `stack_languages.py`),
        # and problems users bring (unified problem JSONL with `language`, e.g. Exercism
        # exports); without the latter the phase generates its own.
        optional=("raw_stack", "raw_language_problems"),
        produces=(output, f"{output}_report"),
        config_class=config_class,
        profiles=LANGUAGE_PROFILES[phase_id],
        resources=_GPU,
        profile_resources={"tiny": _TINY},
        reference_hours=reference_hours,
        description=(
            f"{title} decoder: 1.2's decoder fine-tuned on {title} code over the frozen "
            "encoder's frames; validation token accuracy and sandbox pass rate on held-out "
            "problems"
        ),
    )


PHASES = LANGUAGE_PHASES = (
    # The plan's staging: JavaScript ~20 GB of Stack files and 2K problems, Java 20 GB and 1K,
    # Rust and Go 10 GB each and 1K together; hours scale with the corpus a decoder reads.
    _language_phase(
        "5.2a",
        "JavaScript",
        "code_decoder_javascript",
        JavaScriptDecoderConfig,
        reference_hours=50.0,
    ),
    _language_phase("5.2b", "Java", "code_decoder_java", JavaDecoderConfig, reference_hours=50.0),
    _language_phase(
        "5.2c",
        "Rust and Go",
        "code_decoder_rust_go",
        RustGoDecoderConfig,
        reference_hours=50.0,
    ),
)

# The language decoders have the layout of `code_decoder` (with their own `max_len`), so files
# brought from elsewhere are checked as 1.2's are.
ARTIFACT_CHECKS = {
    output: "voltx_phases.models.loading:check_decoder_file"
    for output in ("code_decoder_javascript", "code_decoder_java", "code_decoder_rust_go")
}
