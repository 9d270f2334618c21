"""Phase specs of the scale family: 5.3, the benchmark report. Torch-free: planning imports
only this. (5.1, the VFN scaling, is declared here too by its own branch.)"""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.generation import VOLT_X_ARTIFACTS
from voltx_phases.scale.report_config import REPORT_PROFILES, BenchmarkReportConfig

BENCHMARK_INPUTS = (
    "humaneval",
    "mbpp",
    "apps_introductory_train",
    "apps_interview_train",
    "apps_competition_train",
    "multipl_e",
)

# Reports are read, not loaded as weights: nothing to vet when one is added.
ARTIFACT_CHECKS: dict[str, str] = {}

PHASES = (
    PhaseSpec(
        id="5.3",
        name="benchmark report",
        family="scale",
        entry="voltx_phases.scale.benchmark_report:run",
        requires=(*VOLT_X_ARTIFACTS, *BENCHMARK_INPUTS),
        # Used when the store holds it as the phase starts: the planner does not order a phase
        # after the producers of its optional inputs (docs/phases.md, 5.3).
        optional=("gamma_calibration",),
        produces=("benchmark_report",),
        config_class=BenchmarkReportConfig,
        profiles=REPORT_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=16, cpu_cores=16, ram_gb=32, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=2, ram_gb=2, disk_gb=1)},
        # 200 samples of ~1,300 problems, each run in the sandbox: the tests, not the GPU, take
        # most of the time on 16 cores.
        reference_hours=3.0,
        description=(
            "pass@1/10/100 on HumanEval, MBPP, APPS and MultiPL-E with ground-truth and "
            "contamination checks, as Markdown, HTML, JSON and PNGs"
        ),
    ),
)
