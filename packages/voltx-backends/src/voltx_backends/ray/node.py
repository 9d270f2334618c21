"""What runs on the Ray cluster's nodes: a job's runner actor, and each node's folder agent.

A job is a detached actor, `JobRunner`, created with the phase's resources (so Ray places it on a
node that has them and holds them for the job). It writes the job folder under the node's job
root and starts the same ``run.sh`` wrapper as the local backend (`voltx_backends._jobs`), in a
session of its own, then waits for it and exits, giving the resources back. Detached, it outlives
the orchestrator that created it; a later orchestrator finds it by name.

The job folder outlives the runner: each node has one `NodeAgent` (detached, named after the
node, no resources) that reads status, logs and files from the folders on its node and kills a
job's process group on cancel, with the very functions the local backend uses. A node that is
lost takes its agent with it, which the driver's handle sees as a lost job.

Neither class imports ray at module level: `voltx_backends.ray.backend` wraps them with
``ray.remote`` once Ray is imported, so this module loads without Ray installed.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.backend import JobRequest, JobStatus
from voltx_backends import _jobs

BACKEND = "ray"
# The interpreter a job's argv starts with, as the driver cannot know the node's: the runner puts
# its own (the Python of the Ray worker, with the runtime environment's packages) in its place.
NODE_PYTHON = "<ray-node-python>"
RUNNER_PREFIX = "voltx-job-"
AGENT_PREFIX = "voltx-node-"


def runner_name(job_id: str) -> str:
    """The runner actor's name in the backend's namespace (one per job id)."""
    return RUNNER_PREFIX + job_id


def agent_name(node_id: str) -> str:
    """The folder agent's name in the backend's namespace (one per node)."""
    return AGENT_PREFIX + node_id


def job_dir(job_root: str, job_id: str) -> Path:
    """The job's folder on this node: ``<job_root>/jobs/<job_id>`` (``~`` is this node's home)."""
    _jobs.check_job_id(job_id, BACKEND)
    return Path(job_root).expanduser() / "jobs" / job_id


class NodeAgent:
    """Serves the job folders of one node: status, log, files, cancel (threaded actor)."""

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


class JobRunner:
    """Starts one job on the node Ray placed it on, waits for it, then exits (threaded actor).

    `start` and `wait` are called together by the driver; `wait` waits for `start` first (a
    threaded actor may run them in either order), and exits the actor when the job is over, or
    at once when the start failed, so the job's resources go back to the cluster either way.
    """

    def __init__(self, namespace: str, agent_options: Mapping[str, Any]) -> None:
        self._namespace = namespace
        self._agent_options = dict(agent_options)
        self._settled = threading.Event()
        self._process: subprocess.Popen[bytes] | None = None
        self._where: dict[str, Any] | None = None

    def start(self, job_root: str, request: JobRequest, env: Mapping[str, str]) -> dict[str, Any]:
        """Write the folder, start the wrapper; returns the node id, the folder and the pid."""
        import os

        import ray

        try:
            if request.argv and request.argv[0] == NODE_PYTHON:
                request = attrs.evolve(request, argv=(sys.executable, *request.argv[1:]))
            folder = job_dir(job_root, request.job_id)
            node_id = ray.get_runtime_context().get_node_id()
            self._ensure_agent(node_id)
            _jobs.write_folder(folder, request, BACKEND)
            # Its own session: cancel reaches everything the job starts, and nothing of Ray's
            # signals to this worker reach the job.
            self._process = subprocess.Popen(
                _jobs.launch_argv(request.job_id, shell="/bin/sh"),
                cwd=folder,
                env={**os.environ, **env},
                start_new_session=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self._where = {"node_id": node_id, "pid": self._process.pid}
            return self._where
        finally:
            self._settled.set()

    def where(self) -> dict[str, Any] | None:
        """The node and pid of the started job (None if the start failed)."""
        self._settled.wait()
        return self._where

    def wait(self) -> int | None:
        """Wait for the job's wrapper to exit, then end this actor (freeing its resources)."""
        ray: Any = importlib.import_module("ray")  # untyped; loaded only on a node

        self._settled.wait()
        code = self._process.wait() if self._process is not None else None
        ray.actor.exit_actor()
        return code  # not reached: exit_actor raises to end the actor

    def _ensure_agent(self, node_id: str) -> None:
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray.remote(NodeAgent).options(
            name=agent_name(node_id),
            namespace=self._namespace,
            lifetime="detached",
            get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
            **self._agent_options,
        ).remote()
