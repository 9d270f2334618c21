"""A real Ray head node on 127.0.0.1 for the ray backend's tests (not a conftest: import it).

    from ray_fixtures import ray_cluster  # noqa: F401 (a fixture, used by name)

`ray_cluster` starts ``ray start --head`` once per session, bound to 127.0.0.1 only (Ray binds
every interface unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set as well as the node
address), with usage statistics and the dashboard off, ports from the OS and its own temp
folder. It stops the cluster by its processes' ids (``ray stop`` would kill every Ray process
on the machine, other sessions' included) and checks that none is left. Without Ray installed
the tests that use it skip.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from _support import RAY_ENV

START_TIMEOUT_S = 90.0
STOP_GRACE_S = 5.0
# Logical CPUs the head offers: enough for the diamond's two lanes and a contract job at once.
HEAD_CPUS = 4
# The accelerator type the head declares (`voltx_backends.ray.accelerators`).
HEAD_ACCELERATOR = "accelerator_type:VOLTXTEST"


@attrs.frozen
class RayCluster:
    """A running head node: its GCS address and the folder its processes are named by."""

    address: str
    temp_dir: Path
    job_root: Path

    def processes(self) -> list[Any]:
        """The cluster's processes: those naming its temp folder, and all their descendants."""
        import psutil

        found: dict[int, Any] = {}
        marker = str(self.temp_dir)
        for process in psutil.process_iter(["cmdline"]):
            try:
                if any(marker in part for part in process.info["cmdline"] or ()):
                    found[process.pid] = process
                    for child in process.children(recursive=True):
                        found[child.pid] = child
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return list(found.values())

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """Backend settings for this cluster, with the nodes using this venv as it is."""
        return {
            "address": self.address,
            "runtime_env": "inherit",
            "job_root": str(self.job_root),
            **overrides,
        }


def _stop(processes: list[Any]) -> list[Any]:
    import psutil

    for process in processes:
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(processes, timeout=STOP_GRACE_S)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            continue
    _, alive = psutil.wait_procs(alive, timeout=STOP_GRACE_S)
    return list(alive)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    """A Ray head on 127.0.0.1 for the whole session, stopped by pid with nothing left behind."""
    # Before Ray is imported: it reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import, and
    # without it the driver swaps 127.0.0.1 for the machine's own address.
    os.environ.update(RAY_ENV)
    pytest.importorskip("ray", reason="Ray is not installed (pip install voltx-backends[ray])")
    # Short: Ray's unix sockets live under the temp folder, and their paths are limited.
    temp_dir = Path(tempfile.mkdtemp(prefix="vray-", dir="/tmp"))
    job_root = temp_dir / "voltx"
    ray_bin = Path(sys.executable).with_name("ray")
    command = [
        str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", "--port=0",
        f"--num-cpus={HEAD_CPUS}", "--num-gpus=0", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={temp_dir}",
        # What Ray gives a node with GPUs of a model it knows, declared by hand (no GPU here).
        f"--resources={json.dumps({HEAD_ACCELERATOR: 1})}",
    ]  # fmt: skip
    cluster = RayCluster(address="", temp_dir=temp_dir, job_root=job_root)
    try:
        result = subprocess.run(
            command, env=os.environ.copy(), capture_output=True, text=True, timeout=START_TIMEOUT_S
        )
        # With --port=0 the address is not printed; the head writes it into its temp folder.
        current = temp_dir / "ray_current_cluster"
        address = current.read_text().strip() if current.exists() else ""
        match = re.fullmatch(r"127\.0\.0\.1:\d+", address)
        assert result.returncode == 0 and match, (
            f"ray start failed:\n{result.stdout}\n{result.stderr}"
        )
        cluster = attrs.evolve(cluster, address=address)
        yield cluster
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        left = _stop(cluster.processes())
        time.sleep(0.5)
        stray = cluster.processes()
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left and not stray, f"Ray processes left behind: {left + stray}"
