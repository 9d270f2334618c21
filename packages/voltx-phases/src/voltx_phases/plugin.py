"""Registers the Volt X phases. Specs only: the training code is imported by the worker."""

from __future__ import annotations

import voltx
from voltx import EmptyConfig, PhaseSpec, Resources
from voltx.hookspecs import RegisterPhase
from voltx_phases.datasets import specs as dataset_specs
from voltx_phases.soft_core import specs as soft_core_specs

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


PHASES = (*dataset_specs.PHASES, *_OWN_PHASES, *soft_core_specs.PHASES)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
