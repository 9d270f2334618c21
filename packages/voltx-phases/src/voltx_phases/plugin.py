"""Registers the Volt X phases. Specs only: the training code is imported by the worker."""

from __future__ import annotations

import voltx
from voltx import EmptyConfig, PhaseSpec, Resources
from voltx.hookspecs import RegisterArtifactCheck, RegisterPhase
from voltx_phases.datasets import specs as dataset_specs
from voltx_phases.soft_core import specs as soft_core_specs
from voltx_phases.translator import codebook_specs
from voltx_phases.translator import specs as translator_specs

_OWN_PHASES = (
    PhaseSpec(
        id="0.4",
        name="code attention bias",
        family="translator",
        entry="voltx_phases.translator.code_attention_bias:run",
        produces=("code_attention_bias",),
        config_class=EmptyConfig,
        resources=Resources(cpu_cores=1, ram_gb=0.5, disk_gb=0.1),
        reference_hours=0.0,
        description="The constant 16x16 slot-attention prior for code (spec section 7.2)",
    ),
)


PHASES = (
    *dataset_specs.PHASES,
    *translator_specs.PHASES,
    *codebook_specs.PHASES,
    *_OWN_PHASES,
    *soft_core_specs.PHASES,
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)


# Files users bring from the original implementation are vetted when added (tensor names,
# shapes, headers); the checks import torch, so they are named here and loaded on use.
ARTIFACT_CHECKS = {
    "code_tokenizer": "voltx_phases.translator.checks:check_tokenizer_file",
    "code_encoder": "voltx_phases.translator.checks:check_encoder_file",
    "code_decoder": "voltx_phases.translator.checks:check_decoder_file",
    "codebook_code": "voltx_phases.translator.codebook_file:check_codebook_file",
}


@voltx.hookimpl
def register_artifact_checks(register: RegisterArtifactCheck) -> None:
    for name, check in ARTIFACT_CHECKS.items():
        register(name, check)
