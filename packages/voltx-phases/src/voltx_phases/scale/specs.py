"""Phase specs of the scale family: 5.1 (the VFN grown and distilled, data parallel), 5.2a/b/c
(a decoder per language, `specs_languages.py`) and 5.3 (the benchmark report). Torch-free:
planning imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.scale.report_config import (
    MODEL_INPUTS,
    REPORT_PROFILES,
    BenchmarkReportConfig,
)
from voltx_phases.scale.scaling_config import SCALING_PROFILES, ScalingConfig
from voltx_phases.scale.specs_languages import ARTIFACT_CHECKS as LANGUAGE_CHECKS
from voltx_phases.scale.specs_languages import LANGUAGE_PHASES

BENCHMARK_INPUTS = (
    "humaneval",
    "mbpp",
    "apps_introductory_train",
    "apps_interview_train",
    "apps_competition_train",
    "multipl_e",
)

# The grown VFNs have 2.1's file layout; the ScaledVFN check reads any width. Reports are read,
# not loaded as weights: nothing to vet when one is added.
ARTIFACT_CHECKS: dict[str, str] = {
    **{
        name: "voltx_phases.models.loading:check_scaled_vfn_file"
        for name in ("vfn_200m", "vfn_500m")
    },
    **LANGUAGE_CHECKS,
}

VFN_SCALING = PhaseSpec(
    id="5.1",
    name="VFN scaling",
    family="scale",
    entry="voltx_phases.scale.vfn_scaling:run",
    requires=("vfn_sleep", "problem_frames"),
    produces=("vfn_200m", "vfn_500m", "vfn_scaling_report"),
    config_class=ScalingConfig,
    profiles=SCALING_PROFILES,
    # Data parallel: one rank per GPU (torchrun, NCCL). The 457M student with AdamW holds
    # about 7.3 GB of weights and moments per GPU.
    resources=Resources(gpus=4, gpu_memory_gb=40, cpu_cores=16, ram_gb=64, disk_gb=50, processes=4),
    # Two CPU ranks (gloo) on the tiny profile, so the demo exercises the same path; the
    # scheduler runs one where the backend has one core.
    profile_resources={"tiny": Resources(cpu_cores=2, ram_gb=2, disk_gb=1, processes=2)},
    # Latency-bound, not arithmetic-bound: 800K small steps (16 problems, about 256 slot
    # rows) whose FLOP are seconds of a GPU, each paying the all-reduce of up to 1.8 GB of
    # gradients (457M x 4 bytes) over NVLink, about 20-50 ms a step on 4 GPUs.
    reference_hours=10.0,
    reference_hours_high=25.0,
    description=(
        "ScaledVFN grown 51M -> 204M -> 457M (function-preserving widening), each student "
        "trained on flow matching + distillation of its teacher, data parallel (torchrun)"
    ),
)

BENCHMARK_REPORT = PhaseSpec(
    id="5.3",
    name="benchmark report",
    family="scale",
    entry="voltx_phases.scale.benchmark_report:run",
    # The final model (5.1's VFN, 5.2's decoders), the calibrated certainty (3.2) for the
    # reliability diagram, and the benchmarks.
    requires=(*MODEL_INPUTS, "gamma_calibration", *BENCHMARK_INPUTS),
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
)

PHASES = (VFN_SCALING, *LANGUAGE_PHASES, BENCHMARK_REPORT)
