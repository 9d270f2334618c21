"""Phase specs of the hard core family: 3.1 (with 3.2 and 3.3 beside it). Torch-free: planning
imports only this.

The three calibrations read the trained model and the datasets, not one another, so the graph
runs them side by side after 2.1.
"""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.hard_core.router_config import ROUTER_PROFILES, RouterCalibrationConfig
from voltx_phases.soft_core.config import PROBLEM_DATASETS

# A router_calibration file from elsewhere is checked (header, shapes, unit rows) when added;
# the check needs only numpy and safetensors.
ARTIFACT_CHECKS = {"router_calibration": "voltx_phases.hard_core.strands_file:check_strands_file"}

PHASES = (
    PhaseSpec(
        id="3.1",
        name="intent router calibration",
        family="hard_core",
        entry="voltx_phases.hard_core.router_calibration:run",
        # The model (the frames the router reads at inference), the problem datasets (queries
        # for four strands) and the corpus (MemoryRetrieval's queries).
        requires=(*VOLT_X_ARTIFACTS, *PROBLEM_DATASETS, "stack_python"),
        produces=("router_calibration", "router_calibration_report"),
        config_class=RouterCalibrationConfig,
        profiles=ROUTER_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=8, cpu_cores=4, ram_gb=16, disk_gb=10),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        # 10K queries through the model's RAR loop, then 10K steps on 1,280 parameters.
        reference_hours=0.2,
        description=(
            "The five code strands' capability vectors and thresholds, learnt contrastively on "
            "labelled queries encoded and reasoned by the trained model"
        ),
    ),
)
