"""Phase specs of the soft core (torch-free: planning imports this)."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases._common.work_estimates import vfn_training_work
from voltx_phases.soft_core.config import (
    FRAME_CACHE_PROFILES,
    PROBLEM_DATASETS,
    VFN_PROFILES,
    FrameCacheConfig,
    VfnTrainingConfig,
)

PHASES = (
    PhaseSpec(
        id="2.0",
        name="problem frames",
        family="soft_core",
        entry="voltx_phases.soft_core.frame_cache:run",
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
        entry="voltx_phases.soft_core.vfn_training:run",
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
