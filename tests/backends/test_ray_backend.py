"""The ray backend on a real Ray head bound to 127.0.0.1: the contract suite, and what is Ray's.

One head node serves the whole file (`ray_fixtures.ray_cluster`); the jobs' processes run on this
machine, so the suite's process-group checks run too.
"""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import ray_fixtures
from ray_fixtures import RayCluster

from voltx.backend import JobRequest, JobState, process_group_alive
from voltx.errors import BackendError
from voltx.spec import Resources
from voltx.testing.backend_contract import (
    BackendContract,
    sh,
    wait_finished,
    wait_for,
    wait_for_log,
    wait_until,
)
from voltx_backends.ray import RayBackend, RaySettings

pytestmark = pytest.mark.integration

ray_cluster = ray_fixtures.ray_cluster


@pytest.fixture(scope="module")
def ray_backend(ray_cluster: RayCluster) -> Iterator[RayBackend]:
    """One backend (one driver connection) for the file: connecting costs seconds."""
    backend = RayBackend(settings=RaySettings(**ray_cluster.settings()))
    yield backend


class TestRayBackendContract(BackendContract):
    @pytest.fixture
    def backend(self, ray_backend: RayBackend) -> RayBackend:
        return ray_backend


def submit(backend: RayBackend, argv: tuple[str, ...], **fields: Any) -> Any:
    return backend.submit(JobRequest(f"ray-{uuid.uuid4().hex[:12]}", argv, **fields))


def test_every_listening_socket_of_the_cluster_is_on_loopback(
    ray_cluster: RayCluster, ray_backend: RayBackend
) -> None:
    handle = submit(ray_backend, sh("echo up"))  # a worker and a node agent are up too
    assert wait_finished(handle).state is JobState.SUCCEEDED
    listening = []
    for process in ray_cluster.processes():
        try:
            connections = process.net_connections(kind="inet")
        except Exception:  # gone meanwhile, or not ours to look at
            continue
        listening += [c.laddr for c in connections if c.status == "LISTEN"]
    assert len(listening) >= 3, listening  # GCS, raylet, object manager at the least
    # gRPC's IPv6 sockets show loopback as the IPv4-mapped address, which is loopback as well.
    loopback = {"127.0.0.1", "::ffff:127.0.0.1"}
    assert [addr for addr in listening if addr.ip not in loopback] == []


def test_cancel_kills_the_process_group_on_its_node(ray_backend: RayBackend) -> None:
    handle = submit(ray_backend, sh("sleep 300 & echo started; wait"))
    wait_for_log(handle, b"started")
    pgid = int(wait_for(lambda: handle.read_file("pid"), "the job's pid file"))
    assert process_group_alive(pgid)
    # Through a second handle, as `voltx cancel` after a crash would: attach, then cancel.
    again = ray_backend.attach(json.loads(json.dumps(handle.ref)))
    again.cancel(grace_s=2.0)
    wait_until(lambda: not process_group_alive(pgid), f"process group {pgid} to end")
    assert wait_finished(handle).state in {JobState.FAILED, JobState.LOST}


def test_a_finished_job_gives_its_cpus_back(ray_backend: RayBackend) -> None:
    ray = ray_backend.ray()
    total = ray.cluster_resources()["CPU"]
    handle = submit(ray_backend, sh("exit 0"), resources=Resources(cpu_cores=2))
    assert wait_finished(handle).state is JobState.SUCCEEDED
    wait_until(
        lambda: ray.available_resources().get("CPU", 0) == total, "the runner's CPUs to return"
    )


def test_a_job_waiting_for_resources_is_running_and_can_be_cancelled(
    ray_backend: RayBackend,
) -> None:
    ray = ray_backend.ray()
    hog = submit(ray_backend, sh("echo hog; sleep 300"), resources=Resources(cpu_cores=4))
    wait_for_log(hog, b"hog")
    queued = submit(ray_backend, sh("echo never"), resources=Resources(cpu_cores=1))
    status = queued.status()
    assert status.state is JobState.RUNNING and "waiting" in status.detail
    # A handle attached after a crash finds the job's reservation by name, still queued.
    attached = ray_backend.attach(json.loads(json.dumps(queued.ref))).status()
    assert attached.state is JobState.RUNNING and "waiting" in attached.detail
    queued.cancel(grace_s=1.0)
    assert wait_finished(queued).state is JobState.LOST
    hog.cancel(grace_s=1.0)
    assert wait_finished(hog).state is not JobState.SUCCEEDED
    total = ray.cluster_resources()["CPU"]
    wait_until(lambda: ray.available_resources().get("CPU", 0) == total, "every CPU to return")


def test_preflight_names_a_phase_no_node_can_hold(ray_backend: RayBackend) -> None:
    problems = ray_backend.preflight(
        {"2.1": Resources(gpus=1), "0.3": Resources(cpu_cores=2), "big": Resources(cpu_cores=64)}
    )
    assert len(problems) == 2
    assert problems[0].startswith("phase 2.1 needs 1 GPU(s)")
    assert problems[1].startswith("phase big needs 64 CPU(s)")


def test_a_phase_naming_an_accelerator_goes_to_a_node_that_has_it(ray_backend: RayBackend) -> None:
    # The head declares accelerator_type:VOLTXTEST (ray_fixtures), as Ray does for a GPU model.
    handle = submit(ray_backend, sh("exit 0"), resources=Resources(accelerator="VOLTXTEST"))
    assert wait_finished(handle).state is JobState.SUCCEEDED
    assert ray_backend.preflight({"2.1": Resources(accelerator="VOLTXTEST")}) == []
    (problem,) = ray_backend.preflight({"2.1": Resources(gpus=1, accelerator="H100")})
    assert problem.startswith(
        "phase 2.1 needs a H100 accelerator (accelerator_type:H100), 1 GPU(s)"
    ), problem


def test_preflight_asks_a_node_for_one_rank_of_a_ray_train_phase(
    ray_backend: RayBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two ranks of 4 CPUs each: the head holds one rank, never both (docs/ray.md).
    wide = {"5.1": Resources(cpu_cores=8, processes=2)}
    assert ray_backend.preflight(wide) == []
    torchrun = attrs.evolve(ray_backend.settings, data_parallel="torchrun")
    monkeypatch.setattr(ray_backend, "settings", torchrun)
    (problem,) = ray_backend.preflight(wide)
    assert problem.startswith("phase 5.1 needs 8 CPU(s)") and "for each rank" not in problem
    monkeypatch.undo()
    (problem,) = ray_backend.preflight({"5.1": Resources(cpu_cores=16, processes=2)})
    assert problem.startswith("phase 5.1 needs 8 CPU(s), 0.5 GB of memory on one node for each")


def test_store_reachability(ray_backend: RayBackend, tmp_path: Path) -> None:
    assert ray_backend.store_problems("s3://bucket/prefix") == []
    (memory,) = ray_backend.store_problems("memory://x")
    assert "lives in this process only" in memory
    # The loopback cluster is this machine: its folders are the nodes' folders.
    assert ray_backend.store_problems(f"file://{tmp_path}") == []
    remote = RayBackend(settings=RaySettings(address="10.0.0.1:6379"))
    remote._cluster_is_this_machine = lambda: False  # type: ignore[method-assign]
    (folder,) = remote.store_problems(f"file://{tmp_path}")
    assert "shared_filesystem = true" in folder
    shared = RayBackend(settings=RaySettings(address="10.0.0.1:6379", shared_filesystem=True))
    assert shared.store_problems(f"file://{tmp_path}") == []


def test_settings_are_checked() -> None:
    with pytest.raises(BackendError, match="runtime_env must be one of"):
        RaySettings(runtime_env="docker")
    with pytest.raises(BackendError, match="unknown ray setting"):
        RayBackend(adress="auto")
    assert RaySettings().resolved_address({"RAY_ADDRESS": "ray://head:10001"}) == (
        "ray://head:10001"
    )
    assert RaySettings().resolved_address({}) == "auto"


def test_without_ray_the_backend_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def no_ray(name: str, *args: Any) -> Any:
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", no_ray)
    backend = RayBackend(address="127.0.0.1:1")
    with pytest.raises(BackendError, match=r"install voltx-backends\[ray\]"):
        backend.submit(JobRequest("no-ray", sh("exit 0")))


def test_the_example_project_file_configures_the_ray_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voltx.backend_factory import make_backend
    from voltx.session import open_session

    example = Path(__file__).resolve().parents[2] / "examples" / "ray-cluster" / "voltx.toml"
    (tmp_path / "voltx.toml").write_text(example.read_text())
    monkeypatch.chdir(tmp_path)
    session = open_session()
    assert session.store.url.startswith("s3://my-bucket/")
    backend = make_backend(session)
    assert isinstance(backend, RayBackend)  # made, not connected: nothing is contacted
    assert backend.settings.address == "ray://ray-head.example.internal:10001"
    assert backend.settings.runtime_env == "wheels"
    assert backend.settings.data_parallel == "ray-train"
    assert backend.store_problems(session.store.url) == []
