"""Phase specs of the soft core: 0.4, 2.0 and 2.1 (with 2.2 and 2.3). Torch-free: planning
imports only this.

0.4, the constant code attention bias, lives here because its one consumer is the soft core's
slot attention (trained in 2.1); its id keeps the original's numbering.
"""

from __future__ import annotations

from voltx import EmptyConfig, PhaseSpec, Resources
from voltx_phases._common.work_estimates import vfn_training_work
from voltx_phases.soft_core.config import (
    FRAME_CACHE_PROFILES,
    PROBLEM_DATASETS,
    VFN_PROFILES,
    FrameCacheConfig,
    VfnTrainingConfig,
)

# ScaledVFN weights brought from the original (as `scaled_vfn_init`, or published as a stage's
# output) are checked against the ScaledVFN layout when added; the check imports torch, so it is
# named here and loaded on use.
ARTIFACT_CHECKS = {
    name: "voltx_phases.models.loading:check_scaled_vfn_file"
    for name in ("scaled_vfn_init", "scaled_vfn_stage1", "scaled_vfn_stage2", "scaled_vfn")
}

PHASES = (
    PhaseSpec(
        id="0.4",
        name="code attention bias",
        family="soft_core",
        entry="voltx_phases.soft_core.code_attention_bias:run",
        produces=("code_attention_bias",),
        config_class=EmptyConfig,
        resources=Resources(cpu_cores=1, ram_gb=0.5, disk_gb=0.1),
        reference_hours=0.0,
        description="The constant 16x16 slot-attention prior for code (docs/phases.md, 0.4)",
    ),
    PhaseSpec(
        id="2.0",
        name="problem frames",
        family="soft_core",
        entry="voltx_phases.soft_core.problem_frames:run",
        requires=("code_tokenizer", "code_encoder", *PROBLEM_DATASETS),
        produces=("problem_frames",),
        config_class=FrameCacheConfig,
        profiles=FRAME_CACHE_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=4, cpu_cores=4, ram_gb=16, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=1, disk_gb=1)},
        reference_hours=0.2,
        description="Every problem dataset encoded once into slot frames by the frozen encoder",
    ),
    PhaseSpec(
        id="2.1",
        name="VFN flow matching",
        family="soft_core",
        entry="voltx_phases.soft_core.vfn_flow_matching:run",
        requires=("problem_frames", "code_attention_bias"),
        optional=("scaled_vfn_init",),
        produces=(
            "scaled_vfn_stage1",
            "scaled_vfn_stage2",
            "scaled_vfn",
            "slot_attention",
            "diffusion_controller",
            "vfn_training_report",
        ),
        config_class=VfnTrainingConfig,
        profiles=VFN_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=40, cpu_cores=8, ram_gb=32, disk_gb=50),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        # Plans time the GPU profile from `work`: 2.4e15 FLOP at full size, seconds of an H100's
        # arithmetic, minutes with its 3,000 small optimizer steps. This figure only scales the
        # CPU-only tiny profile. The 150 h once quoted for 2.1 did not fit the original's own
        # data (at most 5.4K problems x 10 epochs).
        reference_hours=0.1,
        work=vfn_training_work,
        description=(
            "ScaledVFN curriculum flow matching (3 chained stages), jointly training slot "
            "attention (2.2) and the diffusion controller (2.3) through an unrolled RAR loop"
        ),
    ),
)
