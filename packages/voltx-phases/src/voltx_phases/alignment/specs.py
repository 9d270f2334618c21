"""Phase specs of the alignment family: 4.1 (end-to-end fine-tuning), 4.2 (RLVF alignment) and
4.3 (sleep consolidation). Torch-free: planning imports only this."""

from __future__ import annotations

from voltx import PhaseSpec, Resources
from voltx_phases.alignment.config import E2E_DATASETS, E2E_PROFILES, E2eConfig
from voltx_phases.alignment.rlvf_config import RLVF_PROFILES, RlvfConfig
from voltx_phases.alignment.sleep_config import OLD_DATASETS, SLEEP_PROFILES, SleepConfig

# What every alignment phase loads besides the soft core it starts from: the frozen translator
# and the slot-attention bias of record.
_TRANSLATOR = ("code_tokenizer", "code_encoder", "code_decoder", "code_attention_bias")

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
    PhaseSpec(
        id="4.2",
        name="RLVF alignment",
        family="alignment",
        entry="voltx_phases.alignment.vfn_rlvf:run",
        requires=(
            *_TRANSLATOR,
            "vfn_e2e",
            "gamma_calibration",
            "safety_axioms",
            "apps_interview_train",
            "apps_competition_train",
        ),
        produces=("vfn_rlvf", "vfn_rlvf_report"),
        config_class=RlvfConfig,
        profiles=RLVF_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=24, cpu_cores=8, ram_gb=32, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        # Sandbox execution, not the GPU, bounds the full profile: 100K steps x 8 samples x
        # their tests, at 60-100 sandboxed programs per second per core.
        reference_hours=30.0,
        profile_hours={"tiny": 0.005},  # 6 steps of 4 samples: seconds on one core
        description=(
            "REINFORCE on the RLVF reward table (tests passed x calibrated certainty, safety "
            "veto); ECE and overconfident errors before and after"
        ),
    ),
    PhaseSpec(
        id="4.3",
        name="sleep consolidation",
        family="alignment",
        entry="voltx_phases.alignment.vfn_sleep:run",
        requires=(
            *_TRANSLATOR,
            "vfn_rlvf",
            "problem_frames",
            *OLD_DATASETS,
            "apps_interview_train",
            "apps_competition_train",
        ),
        produces=("vfn_sleep", "vfn_sleep_report"),
        config_class=SleepConfig,
        profiles=SLEEP_PROFILES,
        resources=Resources(gpus=1, gpu_memory_gb=24, cpu_cores=8, ram_gb=32, disk_gb=20),
        profile_resources={"tiny": Resources(cpu_cores=1, ram_gb=2, disk_gb=1)},
        reference_hours=4.0,
        profile_hours={"tiny": 0.005},  # 7 problems scored twice, 8 replayed, 6 steps
        description=(
            "Replay on new problems, flow-matching consolidation of the verified samples with "
            "rehearsal; fails (commits nothing) if HumanEval + MBPP drop beyond the limit"
        ),
    ),
)
