"""Declarations of phases 1.1 (+1.3) and 1.2. Torch-free: planning imports only this.

voltx run 1.2 --profile tiny     # runs 1.1 first when its outputs are missing
"""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases._common.work_estimates import decoder_training_work, encoder_training_work
from voltx_phases.translator.config import (
    DECODER_PROFILES,
    ENCODER_PROFILES,
    DecoderPhaseConfig,
    EncoderPhaseConfig,
)

# Files users bring from the original implementation are vetted when added (tensor names,
# shapes, special tokens); the checks import torch, so they are named here and loaded on use.
ARTIFACT_CHECKS = {
    "code_tokenizer": "voltx_phases.translator.checks:check_tokenizer_file",
    "code_encoder": "voltx_phases.models.loading:check_encoder_file",
    "code_decoder": "voltx_phases.models.loading:check_decoder_file",
}

_TINY = Resources(cpu_cores=1, ram_gb=2, disk_gb=1)

PHASES = (
    PhaseSpec(
        id="1.1",
        name="tokenizer and encoder",
        family="translator",
        entry="voltx_phases.translator.encoder_training:run",
        requires=("stack_python", "code_training_combined"),
        produces=("code_tokenizer", "code_encoder"),
        config_class=EncoderPhaseConfig,
        profiles=ENCODER_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=8, cpu_cores=4, ram_gb=16, disk_gb=20),
        profile_resources={"tiny": _TINY},
        # The original: 1.5 h for 10 epochs over 100K pairs on an RTX 5090 Mobile.
        reference_hours=1.5,
        work=encoder_training_work,
        description=(
            "Byte-level BPE tokenizer, then the CNN code encoder (InfoNCE + role loss, 1.1+1.3)"
        ),
    ),
    PhaseSpec(
        id="1.2",
        name="decoder",
        family="translator",
        entry="voltx_phases.translator.decoder_training:run",
        requires=("code_tokenizer", "code_encoder", "stack_python", "code_training_combined"),
        produces=("code_decoder",),
        config_class=DecoderPhaseConfig,
        profiles=DECODER_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=8, cpu_cores=4, ram_gb=16, disk_gb=20),
        profile_resources={"tiny": _TINY},
        # No timing was reported for the original; one decoder layer over 100K samples of at
        # most 256 tokens is about the encoder's work.
        reference_hours=1.5,
        work=decoder_training_work,
        description="Autoregressive code decoder over the frozen encoder's features",
    ),
)
