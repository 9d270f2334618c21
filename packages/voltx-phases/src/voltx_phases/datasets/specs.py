"""The declaration of phase 0.2 (the dataset pipeline), for the plugin module to register.

Torch-free and cheap to import: planning a run reads only this. The code is named by `entry`
and imported by the worker that runs the phase.
"""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.datasets.config import DATASET_PROFILES, DatasetConfig

APPS_DIFFICULTIES = ("introductory", "interview", "competition")
# Raw user files, used when the store holds them; the embedded data fills in for each one that
# is missing (see voltx_phases.datasets.dataset_pipeline).
RAW_INPUTS = (
    "raw_humaneval",
    "raw_mbpp",
    "raw_apps",
    "raw_problems",
    "raw_stack",
    "raw_multipl_e",
)
OUTPUTS = (
    "humaneval",
    "mbpp",
    "code_training_combined",
    *(f"apps_{difficulty}_train" for difficulty in APPS_DIFFICULTIES),
    "stack_python",
    "multipl_e",
)

# Raw datasets are read leniently and checked line by line when the phase runs; nothing to vet
# when they are added.
ARTIFACT_CHECKS: dict[str, str] = {}

PHASES = (
    PhaseSpec(
        id="0.2",
        name="dataset pipeline",
        family="datasets",
        entry="voltx_phases.datasets.dataset_pipeline:run",
        optional=RAW_INPUTS,
        produces=OUTPUTS,
        config_class=DatasetConfig,
        profiles=DATASET_PROFILES,
        # Two cores validate generated problems in the sandbox; the disk is for a full Stack
        # sample (tens of GB) copied into `stack_python`.
        resources=Resources(cpu_cores=2, ram_gb=2, disk_gb=50),
        profile_resources={"tiny": Resources(cpu_cores=2, ram_gb=1, disk_gb=1)},
        reference_hours=0.5,
        description=(
            "HumanEval, MBPP, APPS, MultiPL-E and Stack files (or the embedded generated "
            "problems and stdlib corpus) to unified problem and corpus JSONL"
        ),
    ),
)
