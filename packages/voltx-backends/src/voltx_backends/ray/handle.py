"""The driver's side of a job on Ray: `RayJobHandle` finds the job's node and asks its agent.

Where a job runs is known once its launch task has had the node's agent start it. Until then the
job is waiting for the cluster's resources, and reported as running ("waiting for resources"), as
a queued job is. A handle made by `RayBackend.attach` (after an orchestrator crash) asks the job's
placement group by name where it was placed, and once that is gone (the job is over), every live
node's agent, which node holds the job's folder.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import structlog

from voltx.backend import JobHandle, JobState, JobStatus
from voltx.errors import BackendError
from voltx_backends import _jobs
from voltx_backends.ray.node import BACKEND, agent_name, reservation_name
from voltx_backends.ray.settings import RaySettings

log = structlog.get_logger(__name__)


class RayConnection(Protocol):
    """What a handle asks of its backend (`RayBackend`, which imports this module): the
    settings, and the ``ray`` module connected to the cluster."""

    settings: RaySettings

    def ray(self) -> Any: ...


# How long one question to the cluster may take before the handle gives up on it.
CALL_TIMEOUT_S = 60.0
# How long a status call waits for a runner's answer before reporting the job as still queued.
PENDING_WAIT_S = 0.2
WAITING = "waiting for resources on the Ray cluster"


class _Pending:
    """The job has not been started yet (it waits for resources)."""


PENDING = _Pending()


class RayJobHandle(JobHandle):
    """A job started by the `NodeAgent` of the node its placement group is on."""

    def __init__(
        self,
        backend: RayConnection,
        job_id: str,
        started: Any = None,
        node_id: str | None = None,
        leader_pid: int | None = None,
    ) -> None:
        self._backend = backend
        self.job_id = job_id
        self._started = started  # the ObjectRef of the launch task, for the submitter
        self._node_id = node_id
        self._leader_pid = leader_pid
        self._agent_handle: Any = None  # asked for once: every status call would cost a lookup
        self._released = False

    def __repr__(self) -> str:
        return f"RayJobHandle(job_id={self.job_id!r}, node_id={self._node_id!r})"

    @property
    def ref(self) -> dict[str, Any]:
        ref: dict[str, Any] = {
            "backend": BACKEND,
            "job_id": self.job_id,
            "namespace": self._backend.settings.namespace,
            "job_root": self._backend.settings.job_root,
        }
        if self._node_id is not None:
            ref["node_id"] = self._node_id
        return ref

    @property
    def price_per_hour(self) -> float:
        return self._backend.settings.dollars_per_hour

    # -- finding the job ---------------------------------------------------------------------

    def _agent(self) -> Any:
        """The agent of the job's node; `PENDING` while queued; None when nothing holds it."""
        ray = self._backend.ray()
        if self._node_id is None:
            where = self._where(ray)
            if where is PENDING:
                return PENDING
            if where is None:
                self._node_id = self._scan_nodes(ray)
            else:
                self._node_id, self._leader_pid = where["node_id"], where["pid"]
            if self._node_id is None:
                return None
        if self._agent_handle is None:
            try:
                self._agent_handle = ray.get_actor(
                    agent_name(self._node_id), namespace=self._namespace
                )
            except ValueError:
                return None  # the node's agent is gone: the node left the cluster
        return self._agent_handle

    def _where(self, ray: Any) -> Any:
        """Where the job started: a dict, `PENDING`, or None (not started, or already over)."""
        started = self._started
        if started is None:
            return self._placed(ray)
        ready, _ = ray.wait([started], timeout=PENDING_WAIT_S)
        if not ready:
            return PENDING
        try:
            return ray.get(started, timeout=CALL_TIMEOUT_S)
        except ray.exceptions.RayError as exc:
            # The start failed, or its reservation was removed (a cancel): whatever folder it
            # left, if any, tells the rest.
            log.debug("job launch gave no start", job_id=self.job_id, error=str(exc)[:500])
            self._started = None
            return None

    def _placed(self, ray: Any) -> Any:
        """For an attached handle: `PENDING` while the job's reservation waits for resources or
        for its start; None once it is gone (the job is over), when the folders tell the rest."""
        reservation = self._reservation(ray)
        if reservation is None:
            return None
        table = ray.util.placement_group_table(reservation)
        if table.get("state") == "RESCHEDULING":
            return None  # its node left the cluster: the job, if it started, went with it
        node_id = (table.get("bundles_to_node_id") or {}).get(0)
        if table.get("state") != "CREATED" or not node_id:
            return PENDING
        try:
            agent = ray.get_actor(agent_name(node_id), namespace=self._namespace)
            if not ray.get(
                agent.has_job.remote(self._job_root, self.job_id), timeout=CALL_TIMEOUT_S
            ):
                return PENDING
        except ValueError:
            return PENDING  # placed, but its launch task has not made the node's agent yet
        return {"node_id": node_id, "pid": None}

    def _reservation(self, ray: Any) -> Any:
        try:
            return ray.util.get_placement_group(reservation_name(self._namespace, self.job_id))
        except ValueError:
            return None

    def _release(self, ray: Any) -> None:
        """Give the job's reservation back, once: its agent does that when the job exits, but
        not when the agent went away with its node (Ray would place the reservation again)."""
        if self._released:
            return
        self._released = True
        reservation = self._reservation(ray)
        if reservation is not None:
            with contextlib.suppress(Exception):  # removed meanwhile
                ray.util.remove_placement_group(reservation)

    def _scan_nodes(self, ray: Any) -> str | None:
        for node in ray.nodes():
            if not node.get("Alive"):
                continue
            try:
                agent = ray.get_actor(agent_name(node["NodeID"]), namespace=self._namespace)
                if ray.get(
                    agent.has_job.remote(self._job_root, self.job_id), timeout=CALL_TIMEOUT_S
                ):
                    return str(node["NodeID"])
            except (ValueError, ray.exceptions.RayError):
                continue
        return None

    def _ask(self, agent: Any, method: str, *args: Any) -> Any:
        ray = self._backend.ray()
        try:
            return ray.get(
                getattr(agent, method).remote(self._job_root, self.job_id, *args),
                timeout=CALL_TIMEOUT_S,
            )
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if isinstance(exc.cause, BackendError) else None
            if cause is not None:
                raise BackendError(str(cause), BACKEND) from None
            raise BackendError(f"job {self.job_id}: {method} failed: {exc}", BACKEND) from exc

    @property
    def _namespace(self) -> str:
        return self._backend.settings.namespace

    @property
    def _job_root(self) -> str:
        return self._backend.settings.job_root

    # -- the job protocol --------------------------------------------------------------------

    def status(self) -> JobStatus:
        ray = self._backend.ray()
        agent = self._agent()
        if agent is PENDING:
            return JobStatus(JobState.RUNNING, detail=WAITING)
        if agent is None:
            self._release(ray)
            return JobStatus(
                JobState.LOST, detail="no node of the Ray cluster holds the job's folder"
            )
        try:
            status: JobStatus = self._ask(agent, "status", self._leader_pid)
        except ray.exceptions.RayActorError:
            status = JobStatus(JobState.LOST, detail="the job's node left the Ray cluster")
        if status.state is not JobState.RUNNING:
            self._release(ray)
        return status

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        if offset < 0:
            raise BackendError(f"log offset must not be negative, got {offset}", BACKEND)
        agent = self._agent()
        if agent is PENDING or agent is None:
            return b"", offset
        data: tuple[bytes, int] = self._ask(agent, "read_log", offset)
        return data

    def read_file(self, name: str) -> bytes | None:
        _jobs.check_file_name(name, BACKEND)
        agent = self._agent()
        if agent is PENDING or agent is None:
            return None
        data: bytes | None = self._ask(agent, "read_file", name)
        return data

    def cancel(self, grace_s: float = 10.0) -> None:
        ray = self._backend.ray()
        agent = self._agent()
        if agent is PENDING:
            # Not started: taking the reservation away is the whole cancel (no process yet).
            self._release(ray)
            self._started = None
            # The launch may have started the job just before the reservation went: that job
            # is stopped like any other, through its node's agent.
            self._node_id = self._scan_nodes(ray)
            agent = self._agent() if self._node_id is not None else None
            if agent is None or agent is PENDING:
                return
        if agent is not None:
            self._ask(agent, "cancel", grace_s, self._leader_pid)
