"""Phase specs of the alignment family: 4.1 (end-to-end fine-tuning). Torch-free: planning
imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.alignment.config import E2E_DATASETS, E2E_PROFILES, E2eConfig

# vfn_e2e is written by 4.1 in 2.1's formats; nothing is added by hand.
ARTIFACT_CHECKS: dict[str, str] = {}

PHASES = (
    PhaseSpec(
        id="4.1",
        name="end-to-end fine-tuning",
        family="alignment",
        entry="voltx_phases.alignment.vfn_e2e:run",
        requires=(
            "code_tokenizer",
            "code_decoder",
            "scaled_vfn",
            "slot_attention",
            "diffusion_controller",
            "code_attention_bias",
            "problem_frames",
            *E2E_DATASETS,
        ),
        produces=("vfn_e2e", "vfn_e2e_report"),
        config_class=E2eConfig,
        profiles=E2E_PROFILES,
        # The tests of each batch run on the CPU cores, in parallel with the next batch's
        # sampling on the GPU: execution, not arithmetic, bounds this phase.
        resources=Resources(gpus=1, gpu_memory_gb=24, cpu_cores=16, ram_gb=32, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        reference_hours=20.0,
        output_gb=0.2,
        description=(
            "0.7 flow matching + 0.3 REINFORCE on sandboxed test results: the ScaledVFN, slot "
            "attention and diffusion controller trained through the frozen decoder's samples"
        ),
    ),
)
