"""Phase specs of the hard core family: the calibration phases 3.1-3.3. Torch-free: planning
imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.safety_config import (
    BENIGN_SOURCES,
    SAFETY_PROFILES,
    SafetyRefinementConfig,
)

# A refined axioms file brought from elsewhere is checked (names, shapes, unit rows) when added.
ARTIFACT_CHECKS = {"safety_axioms": "voltx_phases.hard_core.safety_file:load_axioms"}

PHASES = (
    PhaseSpec(
        id="3.3",
        name="safety axiom refinement",
        family="hard_core",
        entry="voltx_phases.hard_core.safety_refinement:run",
        # The model reads every program's frame (`VoltModel.hard_core_inputs`); the problem
        # datasets give the benign programs (the profile chooses which of them it reads).
        requires=(*VOLT_X_ARTIFACTS, *BENIGN_SOURCES),
        produces=("safety_axioms", "safety_axioms_report"),
        config_class=SafetyRefinementConfig,
        profiles=SAFETY_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=8, cpu_cores=4, ram_gb=8, disk_gb=5),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=1, disk_gb=1)},
        # 2,638 programs through the model once, then 400 full-batch steps over 1,280 numbers.
        reference_hours=0.1,
        description=(
            "Refine the safety axioms K1-K5 and their thresholds on encoder frames of benign "
            "solutions and templated adversarial programs (no false positive on the benchmarks)"
        ),
    ),
)
