"""The ``ray`` backend: each phase job is a detached actor on a running Ray cluster.

    [backends.ray]              # voltx.toml (docs/ray.md)
    address = "ray://head:10001"

    voltx run all --backend ray

A job holds the phase's resources (CPUs, GPUs, memory) as a detached placement group named after
it, placed by Ray's scheduler; a short task in that reservation has the node's long-lived
`NodeAgent` (`voltx_backends.ray.node`) start the same worker command and job folder protocol as
every other backend, and the agent gives the reservation back when the job exits. Status, logs,
files and cancel go through the node's agent. Why a placement group and not an actor per job, a
task or a Ray job: a detached placement group is named (a crashed orchestrator's successor finds
it), outlives its driver (a task dies with the driver that owns it), and starts no process, where
an actor starts a Ray worker process per phase and a Ray job adds a supervisor actor and the
dashboard's job API to every phase (docs/ray.md, "Overhead").

Ray is imported on first use, so this package loads without it; using the backend without Ray
installed is one line that says to install ``voltx-backends[ray]``.
"""

from __future__ import annotations

import importlib
import os
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from voltx.backend import Backend, JobRequest, Quote
from voltx.errors import BackendError
from voltx.job_document import job_document_in
from voltx.spec import Resources
from voltx_backends import _jobs
from voltx_backends._store_env import is_object_store, store_environment
from voltx_backends.ray import runtime_env
from voltx_backends.ray.accelerators import ACCELERATOR_PREFIX, accelerator_resource
from voltx_backends.ray.handle import RayJobHandle
from voltx_backends.ray.node import BACKEND, NODE_PYTHON, launch, reservation_name
from voltx_backends.ray.settings import RaySettings
from voltx_backends.ray.train import train_request, uses_ray_train, worker_share

log = structlog.get_logger(__name__)

GIB = 2**30
INSTALL_HINT = "the ray backend needs Ray: install voltx-backends[ray]"
CONNECT_TIMEOUT_S = 10.0
# Serves reads of every job folder on a node at once; a cancel waits out its grace period.
AGENT_CONCURRENCY = 16


class RayBackend(Backend):
    """Runs each job as a detached actor on the Ray cluster at `settings.address`.

    Its settings are a `RaySettings` (the ``[backends.ray]`` table), given whole or as keywords
    of the same names. `work_dir` is where the wheels shipped to the nodes are cached.
    """

    name = BACKEND

    def __init__(
        self,
        work_dir: Path | None = None,
        *,
        settings: RaySettings | None = None,
        **options: Any,
    ) -> None:
        if settings is not None and options:
            raise BackendError("ray: give settings or keyword settings, not both", self.name)
        self.settings = settings or RaySettings.from_options(options)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self._lock = threading.RLock()  # `ray` builds the runtime env under it
        self._ray: Any = None
        self._launch: Any = None
        self._env: dict[str, Any] | None = None
        self._env_built = False

    def __repr__(self) -> str:
        return f"RayBackend({self.settings.resolved_address()!r})"

    # -- the cluster -------------------------------------------------------------------------

    def ray(self) -> Any:
        """The ``ray`` module, connected to the cluster (connected once, on first use)."""
        with self._lock:
            if self._ray is not None:
                return self._ray
            try:
                ray = importlib.import_module("ray")
            except ImportError:
                raise BackendError(INSTALL_HINT, self.name) from None
            address = self.settings.resolved_address()
            if not ray.is_initialized():
                _check_reachable(address)
                # Ray uploads a local folder only as the whole connection's runtime environment
                # (not per actor), so the first backend to connect in a process sets it.
                shipped = self._runtime_env()
                try:
                    ray.init(
                        address=address,
                        namespace=self.settings.namespace,
                        runtime_env=shipped,
                        log_to_driver=False,
                        logging_level="WARNING",
                        configure_logging=False,
                    )
                except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
                    first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    raise BackendError(
                        f"cannot reach the Ray cluster at {address}: {first_line}", self.name
                    ) from None
            self._launch = ray.remote(launch)
            self._ray = ray
            return ray

    def _runtime_env(self) -> dict[str, Any] | None:
        """The connection's runtime environment, built once (the wheels once per content)."""
        with self._lock:
            if self._env_built:
                return self._env
            if self.settings.runtime_env == "inherit":
                self._env = {"pip": list(self.settings.pip)} if self.settings.pip else None
            else:
                cache = (self.work_dir or Path.home() / ".cache" / "voltx") / "ray-wheels"
                site = runtime_env.unpacked_site(runtime_env.voltx_wheels(cache), cache)
                self._env = runtime_env.runtime_env_for(site, self.settings.pip)
            self._env_built = True
            return self._env

    @property
    def python(self) -> str:
        # The node's interpreter is only known there: the runner puts its own in its place.
        return NODE_PYTHON

    def capacity(self) -> Resources:
        total = self.ray().cluster_resources()
        gpus = int(total.get("GPU", 0))
        return Resources(
            gpus=gpus,
            # Ray does not say how much memory a GPU has; the phases' own requests decide.
            gpu_memory_gb=float("inf") if gpus else 0.0,
            cpu_cores=int(total.get("CPU", 0)),
            ram_gb=total.get("memory", float("inf") * GIB) / GIB,
            disk_gb=float("inf"),
        )

    def quote(self, resources: Resources) -> Quote:
        return Quote(host=self.name, dollars_per_hour=self.settings.dollars_per_hour)

    def preflight(self, resources: Mapping[str, Resources]) -> list[str]:
        try:
            nodes = [node for node in self.ray().nodes() if node.get("Alive")]
        except BackendError as exc:
            return [str(exc)]
        problems = []
        for phase_id, asked in resources.items():
            # Under Ray Train, one node needs to hold one rank, not all of them.
            ray_train = uses_ray_train(asked, self.settings.data_parallel)
            wanted = worker_share(asked) if ray_train else asked
            if not any(_node_fits(node.get("Resources", {}), wanted) for node in nodes):
                problems.append(
                    f"phase {phase_id} needs {_describe(wanted)} on one node"
                    f"{' for each rank' if ray_train else ''}; no node of the "
                    f"Ray cluster at {self.settings.resolved_address()} has that"
                )
        return problems

    def store_problems(self, url: str) -> list[str]:
        """Whether every node reaches the store `url` (see docs/ray.md, "The store")."""
        if is_object_store(url):
            return []
        if url.startswith("memory://"):
            return [
                f"store {url} lives in this process only; the ray backend needs a store every "
                "node reaches (s3://, or a shared folder with shared_filesystem = true)"
            ]
        if self.settings.shared_filesystem or self._cluster_is_this_machine():
            return []
        return [
            f"store {url} is a folder on this machine, which the Ray cluster's nodes do not "
            "reach; use an s3:// store, or set shared_filesystem = true in [backends.ray] if "
            "the folder is shared with every node"
        ]

    def _cluster_is_this_machine(self) -> bool:
        try:
            nodes = [node for node in self.ray().nodes() if node.get("Alive")]
        except BackendError:
            return False
        here = _local_addresses()
        return bool(nodes) and all(node.get("NodeManagerAddress") in here for node in nodes)

    # -- jobs --------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> RayJobHandle:
        _jobs.folder_files(request, self.name)  # bad ids and paths fail here, not on a node
        job = job_document_in(request.files)
        if job is not None:
            problems = self.store_problems(job.store)
            if problems:
                raise BackendError(problems[0], self.name)
        ray = self.ray()
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        env = self._job_env(request, job is not None and is_object_store(job.store))
        held = request.resources
        if uses_ray_train(held, self.settings.data_parallel):
            # The ranks hold the phase's resources as Ray Train workers; the job only drives.
            request = train_request(request, self.settings.namespace, env)
            env, held = dict(request.env), Resources(cpu_cores=0, ram_gb=0)
        try:
            reservation = ray.util.placement_group(
                [_bundle(held)],
                strategy="STRICT_PACK",
                name=reservation_name(self.settings.namespace, request.job_id),
                lifetime="detached",
            )
        except ValueError as exc:
            raise BackendError(f"cannot start job {request.job_id}: {exc}", self.name) from exc
        # The task takes none of the bundle's resources: they are the job's, held until it exits.
        started = self._launch.options(
            num_cpus=0,
            max_retries=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(reservation, 0),
        ).remote(
            self.settings.namespace,
            {"num_cpus": 0, "max_concurrency": AGENT_CONCURRENCY},
            self.settings.job_root,
            request,
            env,
            reservation,
        )
        log.debug("job submitted", job_id=request.job_id, resources=str(request.resources))
        return RayJobHandle(self, request.job_id, started=started)

    def attach(self, ref: Mapping[str, Any]) -> RayJobHandle:
        job_id = ref.get("job_id")
        if not isinstance(job_id, str):
            raise BackendError(f"not a ray job ref (needs job_id): {ref!r}", self.name)
        _jobs.check_job_id(job_id, self.name)
        for key in ("namespace", "job_root"):
            if ref.get(key) not in (None, getattr(self.settings, key)):
                raise BackendError(
                    f"job {job_id} ran with {key} {ref.get(key)!r}, but this backend uses "
                    f"{getattr(self.settings, key)!r}",
                    self.name,
                )
        node_id = ref.get("node_id")
        if node_id is not None and not isinstance(node_id, str):
            raise BackendError(f"bad node_id in job ref: {node_id!r}", self.name)
        return RayJobHandle(self, job_id, node_id=node_id)

    def close(self) -> None:
        # The jobs are detached and go on; only this process's connection ends.
        with self._lock:
            if self._ray is not None and self._ray.is_initialized():
                self._ray.shutdown()
            self._ray = None

    def _job_env(self, request: JobRequest, object_store: bool) -> dict[str, str]:
        # A node reaches an s3:// store itself, with this machine's AWS settings. The variables
        # travel as the runner's arguments (in Ray's object store), never in a file or argv.
        env = store_environment() if object_store else {}
        env.update({k: os.environ[k] for k in self.settings.forward_env if k in os.environ})
        env.update(request.env)
        if request.resources.gpus == 0:
            # A CPU job on a GPU node must not pick up GPU 0 by default; with GPUs, Ray sets
            # CUDA_VISIBLE_DEVICES to the ones it gave the runner, and the job inherits them.
            env["CUDA_VISIBLE_DEVICES"] = ""
        return env


def _check_reachable(address: str) -> None:
    """Fail in seconds on a cluster that does not answer (Ray's own connect retries for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise BackendError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}", BACKEND
        ) from None


def _bundle(wanted: Resources) -> dict[str, float]:
    """The job's placement group bundle: what the phase asks of one node."""
    bundle: dict[str, float] = {"CPU": float(wanted.cpu_cores), "GPU": float(wanted.gpus)}
    if wanted.ram_gb > 0 and wanted.ram_gb != float("inf"):
        bundle["memory"] = float(int(wanted.ram_gb * GIB))
    bundle.update(accelerator_resource(wanted))
    bundle = {name: amount for name, amount in bundle.items() if amount > 0}
    # Ray refuses an empty bundle; a phase that asks for nothing holds a sliver of a CPU.
    return bundle or {"CPU": 0.01}


def _node_fits(available: Mapping[str, float], wanted: Resources) -> bool:
    return (
        available.get("CPU", 0) >= wanted.cpu_cores
        and available.get("GPU", 0) >= wanted.gpus
        and available.get("memory", float("inf")) >= wanted.ram_gb * GIB
        and all(
            available.get(name, 0) >= share for name, share in accelerator_resource(wanted).items()
        )
    )


def _describe(wanted: Resources) -> str:
    parts = [f"{wanted.cpu_cores} CPU(s)", f"{wanted.ram_gb:g} GB of memory"]
    if wanted.gpus:
        parts.insert(0, f"{wanted.gpus} GPU(s)")
    if wanted.accelerator:
        parts.insert(
            0, f"a {wanted.accelerator} accelerator ({ACCELERATOR_PREFIX}{wanted.accelerator})"
        )
    return ", ".join(parts)


def _local_addresses() -> set[str]:
    """This machine's own addresses, from its interfaces (no name lookups)."""
    addresses = {"127.0.0.1", "localhost", socket.gethostname()}
    try:
        psutil: Any = importlib.import_module("psutil")  # a dependency of Ray itself
    except ImportError:
        return addresses
    for interface in psutil.net_if_addrs().values():
        addresses.update(str(entry.address) for entry in interface)
    return addresses
