"""Inputs of phase 5.1 for tests: a tiny `vfn_sleep` folder (2.1's layout, as 4.3 writes it) and
synthetic problem frames, and a worker job that runs 5.1 on them with a chosen rank count."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import attrs
import torch

from phases._frames import write_problem_frames
from voltx.config import unstructure
from voltx.job_document import JOB_FILE, JobDocument
from voltx.store import ArtifactStore
from voltx_phases._common.weights import save_weights
from voltx_phases.models.diffusion_controller import DiffusionController
from voltx_phases.models.scaled_vfn import ScaledVFN, VfnShape
from voltx_phases.models.slot_attention import SlotAttention
from voltx_phases.scale.scaling_config import SCALING_PROFILES, ScalingConfig

TEACHER = VfnShape(hidden_dim=64, num_blocks=1, time_freqs=4)


def write_vfn_sleep(folder: Path, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    save_weights(ScaledVFN(TEACHER), folder / "scaled_vfn.safetensors")
    save_weights(SlotAttention(), folder / "slot_attention.safetensors")
    save_weights(DiffusionController(), folder / "diffusion_controller.safetensors")
    return folder


def add_inputs(store: ArtifactStore, folder: Path) -> dict[str, str]:
    """Add both inputs to `store`; their digests by name."""
    sleep = store.add("vfn_sleep", write_vfn_sleep(folder / "vfn_sleep"))
    frames = store.add("problem_frames", write_problem_frames(folder / "frames", problems=24))
    return {"vfn_sleep": sleep.digest, "problem_frames": frames.digest}


def tiny(**changes: Any) -> ScalingConfig:
    return attrs.evolve(SCALING_PROFILES["tiny"], **changes)


def long_tiny(steps: int) -> ScalingConfig:
    """The tiny profile with `steps` per stage, long enough to be interrupted."""
    config = tiny(checkpoint_every_steps=10, log_every_steps=5)
    stages = tuple(attrs.evolve(stage, steps=steps) for stage in config.stages)
    return attrs.evolve(config, stages=stages)


def write_job(
    job_dir: Path,
    store: ArtifactStore,
    inputs: dict[str, str],
    config: ScalingConfig,
    *,
    processes: int,
    fingerprint: str,
    attempt: int = 1,
) -> Path:
    job_dir.mkdir(parents=True)
    JobDocument(
        run_id=f"test-{fingerprint}",
        phase_id="5.1",
        store=store.url,
        fingerprint=fingerprint,
        attempt=attempt,
        profile="tiny",
        config=unstructure(config),
        inputs=inputs,
        processes=processes,
    ).write(job_dir / JOB_FILE)
    return job_dir


def start_worker(job_dir: Path) -> subprocess.Popen[bytes]:
    """``python -m voltx worker job.json`` in its own session, its log in ``job_dir/log``."""
    env = {**os.environ, "VOLTX_LOAD_PLUGINS": "phases"}
    with open(job_dir / "log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "voltx", "worker", JOB_FILE],
            cwd=job_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
