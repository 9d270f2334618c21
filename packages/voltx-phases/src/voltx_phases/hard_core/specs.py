"""Phase specs of the hard core's calibration: 3.2 (with 3.1 and 3.3 beside it). Torch-free:
planning imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.gamma_config import GAMMA_PROFILES, GammaCalibrationConfig

# A curve brought from elsewhere is checked when added; the check is named, so it is imported
# (with `_common.weights`, which imports torch) only then.
ARTIFACT_CHECKS = {"gamma_calibration": "voltx_phases.hard_core.gamma_curve:check_gamma_curve_file"}

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

PHASES = (GAMMA_CALIBRATION,)
