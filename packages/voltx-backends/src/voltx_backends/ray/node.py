"""What runs on the Ray cluster's nodes: each node's long-lived agent, and a job's launch task.

A job's resources are held by a detached placement group of one bundle (the phase's CPUs, GPUs,
memory), named after the job, which Ray places on a node that has them. A short task scheduled
into that reservation (`launch`) finds the node and asks the node's `NodeAgent` to write the job
folder under the node's job root and start the same ``run.sh`` wrapper as the local backend
(`voltx_backends._jobs`), in a session of its own. The agent waits for the wrapper and removes
the placement group when it exits, giving the resources back.

Why not an actor per job: a new actor is a new Ray worker process (about a second per phase, see
docs/ray.md "Overhead"), where the agent and the task's worker are started once and reused. The
placement group keeps what the actor gave: it is detached (it outlives the orchestrator), named
(a later orchestrator finds it), and holds the resources until the job's wrapper exits.

Each node has one agent (detached, named after the node, no resources) that also reads status,
logs and files from the folders on its node and kills a job's process group on cancel, with the
very functions the local backend uses. A node that is lost takes its agent with it, which the
driver's handle sees as a lost job.

Nothing here imports ray at module level: `voltx_backends.ray.backend` wraps these with
``ray.remote`` once Ray is imported, so this module loads without Ray installed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.backend import JobRequest, JobStatus
from voltx_backends import _jobs
from voltx_backends.ray.train import ADDRESS_ENV, RUNTIME_ENV_ENV

BACKEND = "ray"
# The interpreter a job's argv starts with, as the driver cannot know the node's: the launch task
# puts its own (the Python of the Ray worker, with the runtime environment's packages) in its place.
NODE_PYTHON = "<ray-node-python>"
RESERVATION_PREFIX = "voltx-job-"
AGENT_PREFIX = "voltx-node-"


def reservation_name(namespace: str, job_id: str) -> str:
    """The name of the job's placement group (one per job id and namespace)."""
    return f"{RESERVATION_PREFIX}{namespace}-{job_id}"


def agent_name(node_id: str) -> str:
    """The folder agent's name in the backend's namespace (one per node)."""
    return AGENT_PREFIX + node_id


def job_dir(job_root: str, job_id: str) -> Path:
    """The job's folder on this node: ``<job_root>/jobs/<job_id>`` (``~`` is this node's home)."""
    _jobs.check_job_id(job_id, BACKEND)
    return Path(job_root).expanduser() / "jobs" / job_id


class NodeAgent:
    """Starts and serves the jobs of one node: start, status, log, files, cancel (threaded)."""

    def start(
        self, job_root: str, request: JobRequest, env: Mapping[str, str], reservation: Any
    ) -> dict[str, Any]:
        """Write the folder, start the wrapper; `reservation` is removed when it exits.

        `env` is the whole environment of the launch task's worker (so the job runs with the
        submitting driver's runtime environment, not the one this agent was created with).
        """
        ray: Any = importlib.import_module("ray")  # untyped; loaded only on a node

        folder = job_dir(job_root, request.job_id)
        _jobs.write_folder(folder, request, BACKEND)
        # Its own session: cancel reaches everything the job starts, and nothing of Ray's
        # signals to this worker reach the job.
        process = subprocess.Popen(
            _jobs.launch_argv(request.job_id, shell="/bin/sh"),
            cwd=folder,
            env=dict(env),
            start_new_session=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def release() -> None:
            process.wait()
            with contextlib.suppress(Exception):  # removed already (a cancel while queued)
                ray.util.remove_placement_group(reservation)

        threading.Thread(target=release, name=f"release-{request.job_id}", daemon=True).start()
        return {"node_id": ray.get_runtime_context().get_node_id(), "pid": process.pid}

    def has_job(self, job_root: str, job_id: str) -> bool:
        return (job_dir(job_root, job_id) / _jobs.RUN_SCRIPT).exists()

    def status(self, job_root: str, job_id: str, leader_pid: int | None) -> JobStatus:
        return _jobs.read_status(job_dir(job_root, job_id), job_id, leader_pid)

    def read_log(self, job_root: str, job_id: str, offset: int) -> tuple[bytes, int]:
        return _jobs.read_log(job_dir(job_root, job_id), offset)

    def read_file(self, job_root: str, job_id: str, name: str) -> bytes | None:
        return _jobs.read_file(job_dir(job_root, job_id), name, BACKEND)

    def cancel(self, job_root: str, job_id: str, grace_s: float, leader_pid: int | None) -> None:
        _jobs.cancel(job_dir(job_root, job_id), job_id, grace_s, leader_pid, BACKEND)


def launch(
    namespace: str,
    agent_options: Mapping[str, Any],
    job_root: str,
    request: JobRequest,
    env: Mapping[str, str],
    reservation: Any,
) -> dict[str, Any]:
    """Run inside the job's reservation: have this node's agent start the job (a Ray task).

    Returns the node id and the wrapper's pid.
    """
    ray: Any = importlib.import_module("ray")
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if request.argv and request.argv[0] == NODE_PYTHON:
        request = attrs.evolve(request, argv=(sys.executable, *request.argv[1:]))
    node_id = ray.get_runtime_context().get_node_id()
    agent = (
        ray.remote(NodeAgent)
        .options(
            name=agent_name(node_id),
            namespace=namespace,
            lifetime="detached",
            get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            **agent_options,
        )
        .remote()
    )
    context = ray.get_runtime_context()
    # A data-parallel job connects to the cluster itself (`voltx_backends.ray.train`), with the
    # runtime environment this task has (the wheels the submitting backend shipped).
    cluster = {ADDRESS_ENV: context.gcs_address, RUNTIME_ENV_ENV: context.get_runtime_env_string()}
    where: dict[str, Any] = ray.get(
        agent.start.remote(job_root, request, {**os.environ, **cluster, **env}, reservation)
    )
    return where
