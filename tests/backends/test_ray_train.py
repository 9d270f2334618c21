"""Data parallel on the ray backend: phase 5.1 (tiny, 2 ranks) under Ray Train's TorchTrainer.

Two CPU workers (gloo) on the loopback head, each rank in a job folder of its own that fetched
the inputs from the S3 store; the outputs rank 0 commits equal a single process's, and rank 1
commits nothing. One Ray Train run: its start-up alone takes about 20 s.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

torch = pytest.importorskip("torch")

import ray_fixtures  # noqa: E402
from ray_fixtures import RayCluster  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from phases._scaling import add_inputs, start_worker, tiny, write_job  # noqa: E402
from voltx import Resources  # noqa: E402
from voltx.backend import JobState  # noqa: E402
from voltx.config import unstructure  # noqa: E402
from voltx.job_document import JobDocument  # noqa: E402
from voltx.job_request import job_request  # noqa: E402
from voltx.store import ArtifactStore  # noqa: E402
from voltx.testing.backend_contract import read_whole_log, wait_finished  # noqa: E402
from voltx_backends.ray import RayBackend, RaySettings  # noqa: E402

if TYPE_CHECKING:
    from conftest import S3Server  # tests/backends/conftest.py, the `s3` fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ray_cluster = ray_fixtures.ray_cluster
OUTPUTS = ("vfn_200m", "vfn_500m")
# The ranks' gloo traffic stays on loopback, as the rest of the test cluster's does.
FORWARD_ENV = ("PYTHONPATH", "VOLTX_LOAD_PLUGINS", "GLOO_SOCKET_IFNAME")


def _weights(store: ArtifactStore, digest: str, target: Path) -> dict[str, torch.Tensor]:
    return load_file(str(store.get(digest, target) / "scaled_vfn.safetensors"))


def test_5_1_tiny_under_ray_train_equals_one_process_and_only_rank_0_commits(
    ray_cluster: RayCluster, s3: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOLTX_LOAD_PLUGINS", "phases")
    loopback = next(name for _, name in socket.if_nameindex() if name.startswith("lo"))
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", loopback)
    store = ArtifactStore.open(s3.url("train"))
    inputs = add_inputs(store, tmp_path / "inputs")
    config = tiny()

    # The reference: one process, as `voltx worker` runs it anywhere.
    reference = write_job(tmp_path / "one", store, inputs, config, processes=1, fingerprint="one")
    assert start_worker(reference).wait(timeout=300) == 0, (reference / "log").read_text()[-3000:]
    single = json.loads((reference / "result.json").read_text())["outputs"]

    backend = RayBackend(settings=RaySettings(**ray_cluster.settings(forward_env=FORWARD_ENV)))
    document = JobDocument(
        run_id="train",
        phase_id="5.1",
        store=store.url,
        fingerprint="ranks-2",
        profile="tiny",
        inputs=inputs,
        processes=2,
    )
    resources = Resources(cpu_cores=2, ram_gb=2, disk_gb=1, processes=2)
    request = job_request(document, unstructure(config), python=backend.python, resources=resources)
    handle = backend.submit(request)
    status = wait_finished(handle, timeout_s=400)
    log = read_whole_log(handle).decode(errors="replace")
    assert status.state is JobState.SUCCEEDED, log[-5000:]
    raw = handle.read_file("result.json")
    assert raw is not None
    ranked = json.loads(raw)["outputs"]

    for name in OUTPUTS:
        expected = _weights(store, single[name], tmp_path / "w1" / name)
        got = _weights(store, ranked[name], tmp_path / "w2" / name)
        for key, value in expected.items():
            assert torch.allclose(got[key], value, atol=1e-5, rtol=1e-4), key
    # Both ranks ran (their log lines reach the job's log) and each had a folder of its own with
    # the inputs fetched into it; rank 1 wrote no output anywhere, and rank 0 committed them.
    assert '"rank": 1' in log and '"rank": 0' in log, log[-3000:]
    folder = ray_cluster.job_root / "jobs" / request.job_id
    for rank in (0, 1):
        assert sorted(p.name for p in (folder / "ranks" / str(rank) / "inputs").iterdir()) == [
            "problem_frames",
            "vfn_sleep",
        ]
    rank_one = folder / "ranks" / "1" / "outputs"
    assert not [p for p in rank_one.rglob("*") if p.is_file()]
    assert store.load_manifest(ranked["vfn_200m"]).lineage["run_id"] == "train"
