"""Phase specs of the hard core family: the calibration phases 3.1-3.3. Torch-free: planning
imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.gamma_config import GAMMA_PROFILES, GammaCalibrationConfig
from voltx_phases.hard_core.safety_config import (
    BENIGN_SOURCES,
    SAFETY_PROFILES,
    SafetyRefinementConfig,
)

# Files brought from elsewhere are checked when added; the checks are named, so they are
# imported (with `_common.weights`, which imports torch) only then: a gamma curve (3.2), refined
# axioms (names, shapes, unit rows; 3.3).
ARTIFACT_CHECKS = {
    "gamma_calibration": "voltx_phases.hard_core.gamma_curve:check_gamma_curve_file",
    "safety_axioms": "voltx_phases.hard_core.safety_file:load_axioms",
}

GAMMA_CALIBRATION = PhaseSpec(
    id="3.2",
    name="certainty calibration",
    family="hard_core",
    entry="voltx_phases.hard_core.gamma_calibration:run",
    # The model it samples, and the datasets its problems (with their tests) come from.
    requires=(*VOLT_X_ARTIFACTS, "humaneval", "mbpp"),
    optional=("apps_introductory_train", "apps_interview_train", "apps_competition_train"),
    produces=("gamma_calibration", "gamma_calibration_report"),
    config_class=GammaCalibrationConfig,
    profiles=GAMMA_PROFILES,
    # Sampling is the GPU's; running ~20K samples' tests in the sandbox is the CPUs'.
    resources=Resources(gpus=1, gpu_memory_gb=16, cpu_cores=16, ram_gb=32, disk_gb=20),
    profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
    # Full: ~21K samples; sampling is minutes on the GPU, and running their tests (one sandboxed
    # process each, APPS problems carry ten or more) is ~250K processes over 16 cores.
    reference_hours=0.5,
    reference_hours_high=1.0,
    profile_hours={"tiny": 0.01},  # 16 problems x 3 samples: under a minute on one core
    description=(
        "Certainty calibration: model samples run against their tests; raw confidence fitted to "
        "pass rate (isotonic, temperature or Platt), ECE before and after"
    ),
)

PHASES = (
    GAMMA_CALIBRATION,
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
