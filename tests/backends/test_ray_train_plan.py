"""The ray backend's Ray Train pieces that need no cluster: when it is chosen, what each worker
holds, the driver's request, and the job's result from its ranks'."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from voltx.backend import JobRequest
from voltx.errors import BackendError
from voltx.job_document import JOB_FILE, RESULT_FILE
from voltx.spec import Resources
from voltx_backends.ray import RaySettings
from voltx_backends.ray.node import NODE_PYTHON
from voltx_backends.ray.train import (
    PLAN_ENV,
    RANK_LOST_EXIT,
    TrainPlan,
    _conclude,
    _vanished,
    resources_per_worker,
    train_request,
    uses_ray_train,
    worker_share,
)

GIB = 2**30
FOUR_GPUS = Resources(gpus=4, cpu_cores=16, ram_gb=64, processes=4)


def test_ray_train_runs_the_phases_of_more_than_one_process_unless_set_to_torchrun() -> None:
    assert RaySettings().data_parallel == "ray-train"
    assert uses_ray_train(FOUR_GPUS, "ray-train")
    assert not uses_ray_train(FOUR_GPUS, "torchrun")
    assert not uses_ray_train(Resources(gpus=1), "ray-train")
    with pytest.raises(BackendError, match="data_parallel must be one of ray-train, torchrun"):
        RaySettings(data_parallel="mpi")


def test_each_worker_holds_an_equal_share_of_the_phase() -> None:
    assert resources_per_worker(FOUR_GPUS) == {"CPU": 4.0, "GPU": 1.0, "memory": 16.0 * GIB}
    cpu_only = Resources(cpu_cores=2, ram_gb=2, processes=2)
    assert resources_per_worker(cpu_only) == {"CPU": 1.0, "memory": 1.0 * GIB}
    # What one node must have for one rank, for preflight (whole CPUs and GPUs).
    share = worker_share(Resources(gpus=2, cpu_cores=3, ram_gb=8, processes=2))
    assert (share.gpus, share.cpu_cores, share.ram_gb, share.processes) == (1, 2, 4.0, 1)
    # A GPU model the phase names goes with every rank, as a marker of Ray's resource.
    h100 = attrs.evolve(FOUR_GPUS, accelerator="H100")
    assert resources_per_worker(h100)["accelerator_type:H100"] == 0.001
    assert worker_share(h100).accelerator == "H100"


def test_the_driver_request_keeps_the_folder_and_forwards_the_environment_but_the_gpus() -> None:
    request = JobRequest(
        "run-5.1-1",
        (NODE_PYTHON, "-m", "voltx", "worker", JOB_FILE),
        files={JOB_FILE: b"{}"},
        resources=Resources(cpu_cores=2, processes=2),
    )
    env = {"AWS_REGION": "x", "VOLTX_JOB_SECRETS": "{}", "CUDA_VISIBLE_DEVICES": ""}
    driver = train_request(request, "voltx", env)
    assert driver.argv == (NODE_PYTHON, "-m", "voltx_backends.ray.train", JOB_FILE)
    assert driver.files == request.files and driver.resources == request.resources
    plan = TrainPlan.from_env(driver.env)
    assert plan.forward == ("AWS_REGION", "VOLTX_JOB_SECRETS")
    assert not plan.use_gpu and plan.resources_per_worker == {"CPU": 1.0, "memory": 0.5 * GIB}
    assert {k: v for k, v in driver.env.items() if k != PLAN_ENV} == env


def _result(job_dir: Path) -> dict[str, object]:
    result: dict[str, object] = json.loads((job_dir / RESULT_FILE).read_text())
    return result


def test_the_job_result_is_rank_0s_or_the_failure_that_ended_the_ranks(tmp_path: Path) -> None:
    done = {"status": "succeeded", "outputs": {"vfn": "d" * 64}, "duration_s": 1.0}
    idle = {"status": "succeeded", "outputs": {}, "duration_s": 1.0}
    assert _conclude(tmp_path, 2, {0: (0, done), 1: (0, idle)}, None) == 0
    assert _result(tmp_path) == done

    broken = {"status": "failed", "error": "PhaseError: loss is nan"}
    assert _conclude(tmp_path, 2, {1: (1, broken)}, RuntimeError("worker group failed")) == 1
    assert _result(tmp_path)["error"] == "rank 1 of 2: PhaseError: loss is nan"
    # A stop request: the ranks' own exit code (130), as the worker's under torchrun.
    stopped = {"status": "failed", "error": "phase 5.1: stopped on request at step 20"}
    assert _conclude(tmp_path, 2, {0: (130, stopped), 1: (130, stopped)}, None) == 130
    assert str(_result(tmp_path)["error"]).startswith("rank 0 of 2: phase 5.1: stopped")

    # A rank's actor died (its node left): the job reads as killed, which the scheduler
    # retries, even when its peer reported the collective that lost it.
    lost = {"status": "failed", "error": "RuntimeError: Connection closed by peer"}
    died = RuntimeError("actor died")
    assert _conclude(tmp_path, 2, {1: (1, lost)}, died, vanished=True) == RANK_LOST_EXIT
    assert "rank(s) 0 of 2 vanished" in str(_result(tmp_path)["error"])


def test_a_rank_whose_actor_died_is_told_from_one_whose_phase_failed() -> None:
    exceptions = pytest.importorskip("ray.exceptions")

    class HealthCheckFailed(Exception):  # the shape of Ray Train's WorkerHealthCheckFailedError
        def __init__(self, failure: Exception) -> None:
            self.health_check_failure = failure

    class TrainingFailed(Exception):  # the shape of Ray Train's WorkerGroupError
        def __init__(self, worker_failures: dict[int, Exception]) -> None:
            self.worker_failures = worker_failures

    phase = RuntimeError("rank 0: PhaseError: loss is nan")
    assert not _vanished(None) and not _vanished(TrainingFailed({0: phase}))
    died = HealthCheckFailed(exceptions.ActorDiedError())
    assert _vanished(TrainingFailed({0: phase, 1: died}))


@pytest.mark.parametrize("name", ["", " ", "H 100", 100])
def test_an_accelerator_is_a_gpu_models_name(name: object) -> None:
    with pytest.raises(ValueError, match="accelerator must be a GPU model's name"):
        Resources(accelerator=name)  # type: ignore[arg-type]
