"""Data parallel on one host: the worker runs a phase's entry as N ranks under ``torchrun``.

A phase asks for it with ``Resources(processes=N)``; the scheduler clamps N to the backend's GPUs
(or cores, on a CPU run) and writes it in the job document. The worker then does everything it
does for one process (fetch the inputs, open the checkpoints, commit the outputs) and, in place
of calling the entry, `run_ranks` launches::

    python -m voltx._rank --launch <worker pid>  --nnodes 1 --nproc-per-node N \\
        --master-addr 127.0.0.1 --master-port <free port> --max-restarts 0 \\
        -m voltx._rank <job folder>

(``voltx._rank --launch`` asks the kernel for SIGTERM when the worker dies, then becomes
``python -m torch.distributed.run`` with the rest of the arguments.)

torchrun gives each rank its environment (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``); the phase creates the process group (gloo on CPU, NCCL on
GPUs) from it. What each rank is handed travels in ``ranks.json`` (`RankPlan`, docs/formats.md).

The rules (docs/concepts.md, "Data parallel"):

- only rank 0 writes outputs that are committed; the other ranks get a scratch folder;
- every rank reads the checkpoints, only rank 0 commits one (another rank's attempt raises);
- a stop request reaches every rank: the worker forwards SIGTERM to torchrun, which sends it to
  each rank, whose `PhaseContext.stop_requested` turns true;
- a rank that dies ends the attempt: torchrun (``--max-restarts 0``) stops the other ranks and
  exits non-zero, the worker reports the failure, and a rerun resumes from rank 0's last
  checkpoint.

This module never imports torch: torchrun runs as a subprocess of the worker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from voltx.checkpoints import Checkpoint, CheckpointManager
from voltx.config import structure, unstructure
from voltx.errors import PhaseError, PhaseStopped

PLAN_FILE = "ranks.json"
RANKS_FOLDER = "ranks"  # ranks/<rank>/: each rank's error text, and scratch for ranks > 0
ERROR_FILE = "error.txt"
# How often the worker looks for a new checkpoint to mirror and for a stop request.
POLL_S = 0.2


@attrs.frozen
class RankPlan:
    """What every rank of one job is handed, written by the worker into ``ranks.json``.

    `inputs` and `outputs` map artifact names to the folders the worker prepared (only rank 0
    writes into `outputs`); `checkpoints` is the checkpoint folder all ranks read.
    """

    inputs: dict[str, str]
    outputs: dict[str, str]
    checkpoints: str
    processes: int
    format: str = "voltx-ranks/1"

    def write(self, job_dir: Path) -> None:
        (job_dir / PLAN_FILE).write_text(json.dumps(unstructure(self), indent=1))

    @classmethod
    def read(cls, job_dir: Path) -> RankPlan:
        plan: RankPlan = structure(cls, json.loads((job_dir / PLAN_FILE).read_text()), path="ranks")
        return plan


class FollowerCheckpoints(CheckpointManager):
    """The checkpoints as a rank other than 0 sees them: readable, never written."""

    def __init__(self, root: Path, rank: int) -> None:
        super().__init__(root)
        self.rank = rank

    def staging_folder(self, step: int) -> Path:
        raise RuntimeError(f"rank {self.rank} tried to commit checkpoint {step}; only rank 0 does")

    def commit(self, staging: Path, step: int) -> Checkpoint:
        raise RuntimeError(f"rank {self.rank} tried to commit checkpoint {step}; only rank 0 does")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for the rendezvous."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def torchrun_command(processes: int, job_dir: Path, port: int) -> list[str]:
    """The command that runs `processes` ranks of the job in `job_dir` on this host: torchrun,
    started through `voltx._rank`'s launcher so it dies with this process."""
    return [
        sys.executable,
        "-m",
        "voltx._rank",
        "--launch",
        str(os.getpid()),
        "--nnodes",
        "1",
        "--nproc-per-node",
        str(processes),
        "--master-addr",
        "127.0.0.1",
        "--master-port",
        str(port),
        # One attempt: a dead rank fails the job, and the scheduler's retry resumes from the
        # last checkpoint, as for any other lost job.
        "--max-restarts",
        "0",
        "--monitor-interval",
        "0.2",
        "-m",
        "voltx._rank",
        str(job_dir),
    ]


def run_ranks(
    phase_id: str,
    job_dir: Path,
    plan: RankPlan,
    stop: threading.Event,
    checkpoints: CheckpointManager,
    on_checkpoint: Callable[[Checkpoint], None] | None = None,
    log: Any = None,
) -> None:
    """Run the job's entry as `plan.processes` ranks and wait for them.

    `on_checkpoint(checkpoint)` is called for each new checkpoint rank 0 commits (the worker
    mirrors it to a remote store). Raises `PhaseStopped` when `stop` was set, `PhaseError` when a
    rank failed (with the first rank's error that says why).
    """
    plan.write(job_dir)
    (job_dir / RANKS_FOLDER).mkdir(exist_ok=True)
    for stale in (job_dir / RANKS_FOLDER).glob(f"*/{ERROR_FILE}"):
        stale.unlink()
    command = torchrun_command(plan.processes, job_dir, free_port())
    if log is not None:
        log.info("launching data-parallel ranks", processes=plan.processes, command=command)
    env = dict(os.environ)
    loopback = _loopback_interface()
    if loopback is not None:
        # gloo otherwise binds the interface the host name resolves to: keep the ranks'
        # traffic on loopback, as the rendezvous is.
        env.setdefault("GLOO_SOCKET_IFNAME", loopback)
    process = subprocess.Popen(command, env=env)
    forwarded = False
    seen = _step(checkpoints.latest())
    while True:
        try:
            code: int | None = process.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            code = None
        latest = checkpoints.latest()
        if latest is not None and latest.step != seen and on_checkpoint is not None:
            on_checkpoint(latest)
        seen = _step(latest)
        if code is not None:
            break
        if stop.is_set() and not forwarded:
            # torchrun's agent sends it on to every rank (and kills them after its own grace).
            process.send_signal(signal.SIGTERM)
            forwarded = True
    if code == 0:
        return
    if stop.is_set():
        raise PhaseStopped(phase_id, f"{plan.processes} ranks stopped on request")
    raise PhaseError(
        phase_id, f"data-parallel ranks failed (torchrun exit {code}): {_first_error(job_dir)}"
    )


def _loopback_interface() -> str | None:
    names = [name for _index, name in socket.if_nameindex() if name.startswith("lo")]
    return names[0] if names else None


def _step(checkpoint: Checkpoint | None) -> int | None:
    return None if checkpoint is None else checkpoint.step


def _first_error(job_dir: Path) -> str:
    """The error of the lowest rank that wrote one; a rank killed by a signal writes none."""
    for path in sorted(
        (job_dir / RANKS_FOLDER).glob(f"*/{ERROR_FILE}"), key=lambda p: int(p.parent.name)
    ):
        return f"rank {path.parent.name}: {path.read_text().strip()}"
    return "a rank was killed (no rank wrote an error); a rerun resumes from the last checkpoint"
