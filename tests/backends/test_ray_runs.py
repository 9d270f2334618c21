"""Whole runs on the ray backend: a diamond graph on a Ray head bound to 127.0.0.1, with moto S3.

The phases are the scheduler bench's sleep graph (bench/_sleep_plugin.py); the workers run as
Ray actors' subprocesses on the (one) node, and reach the store themselves with the AWS settings
the backend sends along.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import ray_fixtures
from ray_fixtures import RayCluster

import voltx
from _support import statuses, subprocess_env
from voltx.ledger import Ledger
from voltx.plugins import registered
from voltx.store import ArtifactStore
from voltx.testing.backend_contract import wait_until
from voltx_backends.ray import RayBackend, RaySettings

if TYPE_CHECKING:
    from conftest import S3Server  # tests/backends/conftest.py, the `s3` fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ray_cluster = ray_fixtures.ray_cluster
BENCH = Path(__file__).resolve().parents[2] / "bench"
# What the workers need from this process besides the store's settings (sent without asking).
FORWARD_ENV = ("PYTHONPATH", "VOLTX_PLUGINS", "VOLTX_LOAD_PLUGINS", "VOLTX_HOME", "VOLTX_CACHE_DIR")


@pytest.fixture
def sleep_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """bench/_sleep_plugin.py's graph, two wide, for this process and the workers."""
    monkeypatch.setenv("VOLTX_BENCH_WIDTH", "2")
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "backends")
    monkeypatch.syspath_prepend(str(BENCH))
    monkeypatch.setenv("PYTHONPATH", str(BENCH))
    import _sleep_plugin

    # Registered in this process's plugin host (whatever an earlier test left loaded there), and
    # named in VOLTX_PLUGINS for the workers.
    with registered(_sleep_plugin):
        yield


def _at(stamp: str | None) -> float:
    assert stamp is not None
    return datetime.fromisoformat(stamp).timestamp()


def test_diamond_graph_runs_on_ray_with_both_lanes_at_once(
    ray_cluster: RayCluster, s3: S3Server, sleep_plugin: None
) -> None:
    backend = RayBackend(settings=RaySettings(**ray_cluster.settings(forward_env=FORWARD_ENV)))
    store_url = s3.url("diamond")
    phases = ("a", "b1", "b2", "c", "d1", "d2", "e")
    overrides = {f"bench.{name}.seconds": 1.0 for name in phases}
    result = voltx.run("bench.e", backend=backend, store=store_url, overrides=overrides)
    result.raise_for_status()
    assert {pid: p.status for pid, p in result.phases.items()} == {
        f"bench.{name}": "succeeded" for name in phases
    }
    assert {p.backend for p in result.phases.values()} == {"ray"}
    # The two lanes of each fan ran side by side on the cluster, not one after the other.
    states = Ledger(ArtifactStore.open(store_url), result.run_id).phase_states()
    for left, right in (("b1", "b2"), ("d1", "d2")):
        one, two = states[f"bench.{left}"], states[f"bench.{right}"]
        assert _at(one.started_at) < _at(two.finished_at)
        assert _at(two.started_at) < _at(one.finished_at)
    store = ArtifactStore.open(store_url)
    assert store.resolve("bench_e").lineage["phase"] == "bench.e"


WHEELS_PROBE = """
import sys
from pathlib import Path
from voltx.backend import JobRequest, JobState
from voltx.testing.backend_contract import read_whole_log, wait_finished
from voltx_backends.ray import RayBackend, RaySettings

address, job_root, work = sys.argv[1:]
settings = RaySettings(address=address, job_root=job_root, runtime_env="wheels")
backend = RayBackend(Path(work), settings=settings)
probe = "import voltx, voltx_backends; print(voltx.__file__); print(voltx_backends.__file__)"
handle = backend.submit(JobRequest("wheels-1", (backend.python, "-c", probe)))
status = wait_finished(handle, timeout_s=240)
print(status.state.value)
print(read_whole_log(handle).decode())
"""


@pytest.mark.slow
def test_jobs_import_voltx_from_the_wheels_the_backend_ships(
    ray_cluster: RayCluster, tmp_path: Path
) -> None:
    """runtime_env = "wheels": this machine's voltx packages, built once per content, are what
    the job's Python imports on the node, ahead of the venv the loopback node shares. (A driver
    process of its own: Ray takes a local folder only as a connection's runtime environment.)"""
    work = tmp_path / "work"
    command = [sys.executable, "-c", WHEELS_PROBE, ray_cluster.address, str(ray_cluster.job_root)]
    result = subprocess.run(
        [*command, str(work)], env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    state, *paths = result.stdout.strip().splitlines()[-3:]
    assert state == "succeeded", result.stdout
    for path in paths:
        assert "runtime_resources" in path and "/packages/" not in path, path
    wheels = sorted((work / "ray-wheels").glob("*/*.whl"))
    assert {w.name.split("-")[0] for w in wheels} >= {"voltx_core", "voltx_backends"}
    # Cached by content: a second backend builds nothing and ships the same folder.
    first = RayBackend(work, settings=RaySettings(runtime_env="wheels"))._runtime_env()
    assert sorted((work / "ray-wheels").glob("*/*.whl")) == wheels
    assert first is not None and Path(first["working_dir"]).parent == work / "ray-wheels"


# The tiny profile, smaller still; 1.1 trains 48 steps with a checkpoint every 10, so a kill
# after the first checkpoint lands mid-training.
SHRINK = (
    "--profile", "tiny",
    "--set", "0.2.generated_count=30",
    "--set", "0.2.corpus_max_files=50",
    "--set", "1.1.max_pairs=64",
    "--set", "1.1.epochs=6",
    "--set", "1.1.tokenizer_max_files=50",
)  # fmt: skip
RUN_TIMEOUT_S = 300


def write_ray_project(folder: Path, cluster: RayCluster, store_url: str) -> Path:
    folder.mkdir(parents=True)
    settings = cluster.settings(forward_env=list(FORWARD_ENV))
    lines = [
        "[project]",
        'backend = "ray"',
        f"store = {json.dumps(store_url)}",
        "",
        "[backends.ray]",
    ]
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    (folder / "voltx.toml").write_text("\n".join(lines) + "\n")
    return folder


def test_worker_killed_mid_training_is_resubmitted_and_ends_bit_exact(
    ray_cluster: RayCluster, s3: S3Server, tmp_path: Path
) -> None:
    env = subprocess_env()
    reference = write_ray_project(tmp_path / "reference", ray_cluster, s3.url("reference"))
    done = subprocess.run(
        [sys.executable, "-m", "voltx", "run", "1.1", *SHRINK],
        cwd=reference, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    expected = ArtifactStore.open(s3.url("reference")).resolve("code_encoder").files

    store_url = s3.url("killed")
    project = write_ray_project(tmp_path / "killed", ray_cluster, store_url)
    orchestrator = subprocess.Popen(
        [sys.executable, "-m", "voltx", "run", "1.1", *SHRINK],
        cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until(
            lambda: any(k.endswith("/latest.json") for k in s3.keys("killed/checkpoints/1.1/")),
            "1.1's first checkpoint in the store",
            RUN_TIMEOUT_S,
        )
        # The reference run's 1.1 folder is there too, finished (it has its exit code).
        (pid_file,) = [
            p
            for p in (ray_cluster.job_root / "jobs").glob("*1.1-1/pid")
            if not (p.parent / "exit_code").exists()
        ]
        # The worker dies at once, wrapper included, with no exit code: as in an OOM kill.
        os.killpg(int(pid_file.read_text()), signal.SIGKILL)
        out, err = orchestrator.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        orchestrator.kill()
    assert orchestrator.returncode == 0, err
    assert statuses(out)["1.1"] == "succeeded", out
    assert "job lost; resubmitting" in err
    (second,) = (ray_cluster.job_root / "jobs").glob(f"{pid_file.parent.name[:-2]}-2")
    log = (second / "log").read_text()
    assert "checkpoint restored from the store" in log and '"resuming"' in log
    assert ArtifactStore.open(store_url).resolve("code_encoder").files == expected
