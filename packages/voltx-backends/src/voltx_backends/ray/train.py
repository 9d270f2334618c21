"""Data-parallel phases on the ray backend: the ranks run under Ray Train's ``TorchTrainer``.

A job whose document asks for N > 1 processes is submitted like any other (a placement group,
the node's agent, the ``run.sh`` wrapper, docs/ray.md "How a phase runs"), but its command is
``python -m voltx_backends.ray.train job.json`` in place of ``voltx worker``, and its reservation
is a sliver of a CPU: this process only drives. It connects to the cluster and starts a
``TorchTrainer`` with N workers, each holding one N-th of the phase's resources, which Ray places
over the cluster's nodes; Ray Train makes the process group (gloo on CPU, NCCL on GPUs) and
gives each worker ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.

Each worker runs `voltx.worker.run_job` for its rank in a folder of its own on its node
(``<job folder>/ranks/<rank>``), fetching the inputs from the store, which every node reaches.
Rank 0 commits the outputs and uploads the checkpoints, as a single process does; the others
read the checkpoints and commit nothing. Rank 0's result becomes this job's ``result.json``.

A rank whose phase fails fails the job (that rank's exit code and error). A rank that vanished
(its node died, its process was killed) ends the job with exit 137, as if killed, which the
scheduler retries like a lost job: the next attempt resumes from rank 0's last checkpoint in the
store. SIGTERM (a cancel, a budget stop) is passed on to the ranks, which stop at a step they
agree on. The ranks are actors owned by this process: a KILL of it takes them down too.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from voltx.backend import JobRequest
from voltx.config import structure, unstructure
from voltx.job_document import JOB_FILE, RESULT_FILE, JobDocument
from voltx.spec import Resources
from voltx.worker import StopRequest, run_job, write_result
from voltx_backends.ray.accelerators import accelerator_resource

GIB = 2**30
# Set by the backend in the job's environment: what `main` needs to start the trainer.
PLAN_ENV = "VOLTX_RAY_TRAIN"
# Set by the launch task on the node (`voltx_backends.ray.node.launch`): the cluster's address
# and the runtime environment of the submitting connection (the shipped voltx wheels).
ADDRESS_ENV = "VOLTX_RAY_ADDRESS"
RUNTIME_ENV_ENV = "VOLTX_RAY_RUNTIME_ENV"
RANKS_FOLDER = "ranks"
PROGRESS_FILE = "progress.json"  # what `MetricsReporter` writes and the live view reads
# How often the driver looks for a stop request, and each rank for the driver's.
POLL_S = 0.5
# The exit code of a job a rank of which vanished: 128 + SIGKILL, which the scheduler retries.
RANK_LOST_EXIT = 137
# Collectives of Ray Train's process group give up after this long (a phase's own timeout
# applies only to a group it makes itself, docs/concepts.md "Data parallel").
GROUP_TIMEOUT_S = 600
# The environment a rank must not inherit from the job: Ray gives each worker its own GPUs.
NOT_FORWARDED = frozenset({"CUDA_VISIBLE_DEVICES", PLAN_ENV})


@attrs.frozen
class TrainPlan:
    """What the driver needs from the submitting backend (travels as JSON in `PLAN_ENV`)."""

    namespace: str
    resources_per_worker: dict[str, float]
    use_gpu: bool
    # Names of the job's environment variables every rank gets too (store settings, secrets).
    forward: tuple[str, ...]

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> TrainPlan:
        plan: TrainPlan = structure(cls, json.loads(environ[PLAN_ENV]), path=PLAN_ENV)
        return plan


def uses_ray_train(resources: Resources, data_parallel: str) -> bool:
    """Whether the ray backend runs a job of `resources` under Ray Train (else as one job)."""
    return resources.processes > 1 and data_parallel == "ray-train"


def worker_share(resources: Resources) -> Resources:
    """One rank's share of the phase's resources: what one node must have for one worker."""
    n = resources.processes
    return attrs.evolve(
        resources,
        gpus=math.ceil(resources.gpus / n),
        cpu_cores=max(1, math.ceil(resources.cpu_cores / n)),
        ram_gb=resources.ram_gb / n,
        processes=1,
    )


def resources_per_worker(resources: Resources) -> dict[str, float]:
    """The Ray resources of one Ray Train worker: an equal share of the phase's."""
    n = resources.processes
    share = {"CPU": resources.cpu_cores / n, "GPU": resources.gpus / n}
    if 0 < resources.ram_gb != float("inf"):
        share["memory"] = float(int(resources.ram_gb * GIB / n))
    # Every rank on a node with the phase's GPU model, if it names one.
    share.update(accelerator_resource(resources))
    return {name: amount for name, amount in share.items() if amount > 0}


def train_request(request: JobRequest, namespace: str, env: Mapping[str, str]) -> JobRequest:
    """`request` (a data-parallel job) made into its Ray Train driver: the same folder files,
    `env` (the job's whole environment) plus the plan, and the driver's command."""
    plan = TrainPlan(
        namespace=namespace,
        resources_per_worker=resources_per_worker(request.resources),
        use_gpu=request.resources.gpus > 0,
        forward=tuple(sorted(set(env) - NOT_FORWARDED)),
    )
    python = request.argv[0]
    return attrs.evolve(
        request,
        argv=(python, "-m", "voltx_backends.ray.train", JOB_FILE),
        env={**env, PLAN_ENV: json.dumps(unstructure(plan))},
    )


class RankFailed(Exception):
    """A rank's phase failed (not a vanished rank): the job fails and is not retried."""


class DriverLink:
    """A small actor between the driver and the ranks: the job's environment, which the ranks
    take at start (never in the trainer's config, which Ray Train records in its run state);
    each rank's exit code and result, read by the driver at the end; rank 0's progress
    snapshot, which the driver keeps in its folder for the live view; and the driver's stop
    request, read by the ranks as they train."""

    def __init__(self) -> None:
        self.env: dict[str, str] = {}
        self.results: dict[int, tuple[int, dict[str, Any]]] = {}
        self.stop = False
        self.snapshot: bytes | None = None

    def set_environment(self, env: dict[str, str]) -> None:
        self.env = env

    def environment(self) -> dict[str, str]:
        return self.env

    def put_progress(self, snapshot: bytes) -> None:
        self.snapshot = snapshot

    def progress(self) -> bytes | None:
        return self.snapshot

    def put(self, rank: int, code: int, result: dict[str, Any]) -> None:
        self.results[rank] = (code, result)

    def get(self) -> dict[int, tuple[int, dict[str, Any]]]:
        return self.results

    def request_stop(self) -> None:
        self.stop = True

    def stop_requested(self) -> bool:
        return self.stop


def run_rank_in_worker(config: dict[str, Any]) -> None:
    """The Ray Train worker's loop: run this worker's rank of the job in a folder of its own."""
    import ray
    import ray.train

    rank = ray.train.get_context().get_world_rank()
    link = config["link"]
    env: dict[str, str] = ray.get(link.environment.remote())
    os.environ.update(env)
    # This process started before it got the job's environment: its PYTHONPATH (where a
    # plugin may live) is put on the path as Python would have at start.
    for entry in reversed(env.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    folder = Path(config["job_dir"]) / RANKS_FOLDER / str(rank)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / JOB_FILE).write_text(config["job"])
    # The loop runs in a thread of the Ray Train worker, where no signal arrives: the driver's
    # stop request comes through the actor and sets what `PhaseContext.stop_requested` reads.
    stop, finished = StopRequest(), threading.Event()

    def keep_in_touch() -> None:
        sent = None
        while not finished.wait(POLL_S):
            snapshot = _read(folder / PROGRESS_FILE) if rank == 0 else None
            if snapshot is not None and snapshot != sent:
                link.put_progress.remote(snapshot)
                sent = snapshot
            if ray.get(link.stop_requested.remote()):
                stop.event.set()

    threading.Thread(target=keep_in_touch, name="driver-link", daemon=True).start()
    try:
        code = run_job(folder, log_stream=sys.stderr, stop=stop, rank=rank)
    finally:
        finished.set()
    result = json.loads((folder / RESULT_FILE).read_text())
    ray.get(link.put.remote(rank, code, result))
    if code != 0:
        raise RankFailed(f"rank {rank}: {result.get('error', f'exit {code}')}")


def drive(job_dir: Path) -> int:
    """Run the job in `job_dir` as a Ray Train run; writes its ``result.json``, returns the
    exit code."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    job = JobDocument.read(job_dir / JOB_FILE)
    plan = TrainPlan.from_env(os.environ)
    runtime_env = json.loads(os.environ.get(RUNTIME_ENV_ENV) or "{}") or None
    ray.init(
        address=os.environ[ADDRESS_ENV],
        namespace=plan.namespace,
        runtime_env=runtime_env,
        # The ranks' output arrives here, in this job's log, prefixed with their worker.
        log_to_driver=True,
        configure_logging=False,
    )
    link: Any = ray.remote(num_cpus=0)(DriverLink).remote()
    # Secrets among them: sent as a call's argument, never as the actor's creation argument
    # (kept by Ray to restart it) nor in the trainer's config.
    forwarded = {name: os.environ[name] for name in plan.forward if name in os.environ}
    ray.get(link.set_environment.remote(forwarded))
    trainer = TorchTrainer(
        run_rank_in_worker,
        train_loop_config={
            "job": (job_dir / JOB_FILE).read_text(),
            "job_dir": str(job_dir),
            "link": link,
        },
        scaling_config=ScalingConfig(
            num_workers=job.processes,
            use_gpu=plan.use_gpu,
            resources_per_worker=plan.resources_per_worker,
        ),
        torch_config=TorchConfig(
            backend="nccl" if plan.use_gpu else "gloo", timeout_s=GROUP_TIMEOUT_S
        ),
        run_config=RunConfig(
            name=f"voltx-{job_dir.name}",
            storage_path=str(job_dir / "ray-train"),
            # One attempt: the scheduler's retry resumes from the last checkpoint, as for any job.
            failure_config=FailureConfig(max_failures=0),
        ),
    )
    failure = _fit_forwarding_stop(trainer, link, job_dir)
    results: dict[int, tuple[int, dict[str, Any]]] = ray.get(link.get.remote())
    return _conclude(job_dir, job.processes, results, failure, _vanished(failure))


def _vanished(failure: Exception | None) -> bool:
    """Whether a rank's actor died (its node left, its process was killed): the others' errors,
    if any, are then only their collectives losing a peer. Ray Train reports each rank's error,
    a dead actor as its failed health check."""
    import ray

    failures: Mapping[int, Exception] = getattr(failure, "worker_failures", None) or {}
    causes = {rank: getattr(e, "health_check_failure", e) for rank, e in failures.items()}
    if causes:
        kinds = {rank: type(cause).__name__ for rank, cause in causes.items()}
        print(f"voltx: Ray Train ended on the ranks' errors {kinds}", file=sys.stderr)
    return any(isinstance(cause, ray.exceptions.RayActorError) for cause in causes.values())


def _fit_forwarding_stop(trainer: Any, link: Any, job_dir: Path) -> Exception | None:
    """Run the trainer to its end; SIGTERM (a cancel, a budget stop) meanwhile is passed on to
    the ranks, which stop at a step they agree on, as under torchrun, and rank 0's progress is
    kept in `job_dir`. Returns Ray Train's error.
    """
    import ray

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    failure: list[Exception] = []
    done = threading.Event()

    def fit() -> None:
        try:
            trainer.fit()
        except Exception as exc:  # Ray Train's error, whatever its class in this Ray version
            failure.append(exc)
        finally:
            done.set()

    # The main thread only waits, so that the signal's handler runs at once.
    threading.Thread(target=fit, name="ray-train-fit", daemon=True).start()
    forwarded, shown = False, None
    while not done.wait(POLL_S):
        if stop.is_set() and not forwarded:
            ray.get(link.request_stop.remote())
            forwarded = True
        snapshot = ray.get(link.progress.remote())
        if snapshot is not None and snapshot != shown:
            staging = job_dir / f".{PROGRESS_FILE}.tmp"
            staging.write_bytes(snapshot)
            os.replace(staging, job_dir / PROGRESS_FILE)
            shown = snapshot
    return failure[0] if failure else None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _conclude(
    job_dir: Path,
    processes: int,
    results: Mapping[int, tuple[int, dict[str, Any]]],
    failure: Exception | None,
    vanished: bool = False,
) -> int:
    """The job's result and exit code from its ranks': rank 0's when every rank succeeded,
    else the lowest failed rank's, or, when a rank vanished, a retried failure."""
    failed = sorted(rank for rank, (code, _) in results.items() if code != 0)
    if failure is None and not failed and 0 in results:
        write_result(job_dir, results[0][1])
        return 0
    if failed and not vanished:
        code, result = results[failed[0]]
        error = f"rank {failed[0]} of {processes}: {result.get('error')}"
        write_result(job_dir, {"status": "failed", "error": error})
        return code
    missing = sorted(set(range(processes)) - set(results))
    error = (
        f"rank(s) {', '.join(map(str, missing))} of {processes} vanished (a node left the Ray "
        "cluster, or a process was killed; the job's log has Ray Train's account); a rerun "
        "resumes from the last checkpoint"
    )
    write_result(job_dir, {"status": "failed", "error": error})
    return RANK_LOST_EXIT


def main(argv: list[str]) -> int:
    """Entry for ``python -m voltx_backends.ray.train JOB_FILE`` (the job's command)."""
    job_file = Path(argv[0] if argv else JOB_FILE).resolve()
    # The ranks' lines land in a log file, whole: no colour codes, and no folding of the lines
    # two ranks print alike into one (read by Ray when it is imported).
    os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    return drive(job_file.parent)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
