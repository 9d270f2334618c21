"""The first runbook's whole phase table (its sections 1 and 2) as specs, for planning tests.

Hours are the runbook's "Est. Time (1x H100)" ranges; dependencies are its section 2 graph:
0.3 and 2.x are independent; 3.1-3.3 need both the codebook and the VFN; 4.1 -> 4.2 -> 4.3 ->
5.1 are sequential; the 5.2 languages are independent; 5.3 comes last. Nothing here runs.
"""

from __future__ import annotations

import voltx
from voltx import PhaseSpec, Resources
from voltx.hookspecs import RegisterPhase

CPU32 = Resources(cpu_cores=32, ram_gb=64, disk_gb=50)
GPU = Resources(gpus=1, gpu_memory_gb=24, cpu_cores=8, ram_gb=32, disk_gb=100)
LIGHT = Resources(gpus=1, gpu_memory_gb=16, cpu_cores=4, ram_gb=16, disk_gb=50)
MULTI = Resources(gpus=4, gpu_memory_gb=80, cpu_cores=32, ram_gb=256, disk_gb=500)

# id, name, requires, produces, resources, hours (low, high), output GB
TABLE = [
    ("0.3", "codebook k-means", (), ("codebook",), CPU32, (1.5, 1.5), 0.07),
    ("2.1", "VFN flow matching", (), ("vfn",), GPU, (100, 200), 0.2),
    ("2.2", "slot attention", ("vfn",), ("slot_attention",), GPU, (0, 0), 0.001),
    ("2.3", "diffusion tuning", ("vfn",), ("diffusion",), GPU, (5, 10), 0.001),
    (
        "3.1",
        "intent router",
        ("codebook", "vfn", "slot_attention", "diffusion"),
        ("router",),
        LIGHT,
        (1, 2),
        0.001,
    ),
    (
        "3.2",
        "certainty calibration",
        ("codebook", "vfn", "slot_attention", "diffusion"),
        ("gamma",),
        LIGHT,
        (5, 10),
        0.001,
    ),
    (
        "3.3",
        "safety refinement",
        ("codebook", "vfn", "slot_attention", "diffusion"),
        ("safety",),
        LIGHT,
        (3, 5),
        0.001,
    ),
    (
        "4.1",
        "end-to-end fine-tuning",
        ("router", "gamma", "safety"),
        ("vfn_e2e",),
        GPU,
        (75, 150),
        0.2,
    ),
    ("4.2", "RLVF alignment", ("vfn_e2e",), ("vfn_rlvf",), GPU, (40, 75), 0.2),
    ("4.3", "sleep consolidation", ("vfn_rlvf",), ("vfn_sleep",), GPU, (15, 25), 0.2),
    ("5.1", "VFN scaling", ("vfn_sleep",), ("vfn_500m",), MULTI, (400, 750), 2.0),
    (
        "5.2a",
        "multi-language: JavaScript",
        ("vfn_500m",),
        ("decoder_javascript",),
        GPU,
        (50, 100),
        0.04,
    ),
    ("5.2b", "multi-language: Java", ("vfn_500m",), ("decoder_java",), GPU, (50, 100), 0.04),
    ("5.2c", "multi-language: Rust+Go", ("vfn_500m",), ("decoder_rust_go",), GPU, (50, 100), 0.04),
    (
        "5.3",
        "benchmarks",
        ("vfn_500m", "decoder_javascript", "decoder_java", "decoder_rust_go"),
        ("benchmark_report",),
        GPU,
        (100, 200),
        0.01,
    ),
]

PHASES = tuple(
    PhaseSpec(
        id=phase_id,
        name=name,
        entry="seed_phase_table:never_runs",
        requires=requires,
        produces=produces,
        resources=resources,
        reference_hours=hours[0],
        reference_hours_high=hours[1],
        output_gb=output_gb,
        description=name,
    )
    for phase_id, name, requires, produces, resources, hours, output_gb in TABLE
)


@voltx.hookimpl
def register_phases(register: RegisterPhase) -> None:
    for spec in PHASES:
        register(spec)
