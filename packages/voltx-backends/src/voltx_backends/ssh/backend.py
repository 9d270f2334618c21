"""The ``ssh`` backend: jobs run on a machine reached over SSH, under the local job protocol.

A job gets a folder ``<remote_root>/jobs/<job_id>/`` on the host holding the same ``run.sh``
wrapper as a local job (`voltx_backends._jobs`). It is started detached with ``setsid nohup`` in
one ssh call that returns at once; it survives a dropped connection, and everything about it is
read from its folder: status from ``exit_code`` and ``pid`` (with the job-id check against a reused
pid), logs from a byte offset, files by name. Cancel signals its whole process group.

    [backends.ssh]              # voltx.toml
    host = "gpu-box"            # anything ``ssh gpu-box`` understands
    user = "me"                 # the rest is optional
    remote_root = "~/.voltx"
    plugins = ["./my-plugin"]   # shipped to the host with voltx itself

    voltx run all --backend ssh

Before the first job the backend installs this machine's voltx (and the listed plugins) into
``<remote_root>/venv`` on the host (`voltx_backends.ssh.bootstrap`). With a folder store it copies
each job's inputs to the host and its outputs back (`voltx_backends.ssh.staging`), and its
checkpoints back while it runs (every ``checkpoint_pull_s`` seconds) and to the host of its next
attempt before that starts (`voltx_backends.ssh.checkpoint_mirror`). With an object store the
host uses the store directly, with the endpoint, region and keys of this machine's ``AWS_*``
environment (or AWS profile) sent along. The job's environment (secrets included) reaches the
host inside the job folder's tar stream on ssh's stdin and a file of mode 0600 there, which
the job deletes as it starts: never a command line.
"""

from __future__ import annotations

import json
import os
import posixpath
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from voltx.backend import Backend, JobHandle, JobRequest, JobState, JobStatus, Quote
from voltx.errors import BackendError, VoltxError
from voltx.spec import Resources
from voltx.store import ArtifactStore
from voltx_backends import _jobs
from voltx_backends._store_env import is_object_store, store_environment
from voltx_backends.ssh import _scripts, checkpoint_mirror, staging
from voltx_backends.ssh.bootstrap import DEFAULT_PACKAGES, VENV_DIR, install, prepare
from voltx_backends.ssh.target import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_MAX_SESSIONS,
    REMOTE_PATH_PATTERN,
    AuthenticationError,
    HostKeyError,
    SSHTarget,
    TransportError,
)
from voltx_backends.ssh.transport import SSHTransport

log = structlog.get_logger(__name__)

# The worker's file names (voltx.worker); repeated here so that loading the backend plugin does
# not import the worker and everything it needs.
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
DEFAULT_REMOTE_ROOT = "~/.voltx"
DEFAULT_UNREACHABLE_TIMEOUT_S = 300.0
# A running job's status is asked of the host at most this often; the scheduler polls faster,
# and each ask starts a few processes on the host.
STATUS_INTERVAL_S = 0.3
# While the host cannot be reached, status asks again at most this often (seconds, doubling).
_RETRY_FIRST_S = 0.5
_RETRY_MAX_S = 15.0
LAUNCH_TIMEOUT_S = 120.0
# A staged job's new checkpoints are copied back here at most this often (seconds).
DEFAULT_CHECKPOINT_PULL_S = 30.0


class SSHJobHandle(JobHandle):
    """A job in a folder on an SSH host."""

    def __init__(
        self,
        backend: SSHBackend,
        job_id: str,
        job_dir: str,
        stage_back: str | None = None,
        checkpoints: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.job_dir = job_dir
        # The folder store on this machine that the job's outputs come back to (None: the job
        # used a store the host reaches itself).
        self.stage_back = stage_back
        # The job's checkpoint folder, relative to both stores, mirrored here while it runs
        # (None: nothing to mirror).
        self.checkpoints = checkpoints if stage_back is not None else None
        self._backend = backend
        self._lock = threading.Lock()
        self._staged = False
        self._stage_error: str | None = None
        self._unreachable_since: float | None = None
        self._retry_at = 0.0
        self._failures = 0
        self._last_unreachable: JobStatus | None = None
        self._last_running: JobStatus | None = None
        self._last_running_at = 0.0
        self._pull_failing_since: float | None = None
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_pull: threading.Thread | None = None
        self._checkpoint_pulled_at = time.monotonic()
        self._checkpoints_final = False

    def __repr__(self) -> str:
        return f"SSHJobHandle(job_id={self.job_id!r}, host={self._backend.destination!r})"

    @property
    def _transport(self) -> SSHTransport:
        return self._backend.transport

    @property
    def ref(self) -> dict[str, Any]:
        return {
            "backend": SSHBackend.name,
            "host": self._backend.destination,
            "job_id": self.job_id,
            "job_dir": self.job_dir,
            "stage_back": self.stage_back,
            "checkpoints": self.checkpoints,
        }

    # -- status ----------------------------------------------------------------------------

    def status(self) -> JobStatus:
        """The job's state from its folder; RUNNING while the host is briefly unreachable.

        A host that stays unreachable for the backend's `unreachable_timeout_s` makes the job
        LOST. A job that succeeded with a folder store has its outputs brought back first.
        """
        now = time.monotonic()
        if self._unreachable_since is not None and now < self._retry_at:
            assert self._last_unreachable is not None
            return self._last_unreachable
        if self._last_running is not None and now - self._last_running_at < STATUS_INTERVAL_S:
            return self._last_running
        try:
            output = self._transport.check(
                _scripts.status(self.job_dir, self.job_id),
                idempotent=True,
                what=f"reading the status of job {self.job_id}",
            )
        except (HostKeyError, AuthenticationError):
            raise
        except TransportError as exc:
            return self._unreachable(exc)
        self._reachable()
        status = _scripts.parse_status(output.decode(errors="replace"), self.job_dir)
        if status.state is JobState.RUNNING:
            self._last_running, self._last_running_at = status, time.monotonic()
            self._pull_checkpoints_now_and_then()
        else:
            self._last_running = None
            self._pull_checkpoints_at_the_end(status)
        if status.state is JobState.SUCCEEDED and self.stage_back is not None:
            return self._with_outputs_back(status)
        return status

    def _reachable(self) -> None:
        self._unreachable_since = None
        self._failures = 0

    def _unreachable(self, error: TransportError) -> JobStatus:
        now = time.monotonic()
        if self._unreachable_since is None:
            self._unreachable_since = now
        waited = now - self._unreachable_since
        self._failures += 1
        self._retry_at = now + min(_RETRY_MAX_S, _RETRY_FIRST_S * 2 ** (self._failures - 1))
        limit = self._backend.unreachable_timeout_s
        if waited >= limit:
            self._last_unreachable = JobStatus(
                JobState.LOST,
                detail=f"host {self._backend.destination} unreachable for {waited:.0f} s: {error}",
            )
        else:
            self._last_unreachable = JobStatus(
                JobState.RUNNING, detail=f"host unreachable, trying again: {error}"
            )
            log.warning("host unreachable", host=self._backend.destination, error=str(error))
        return self._last_unreachable

    def _with_outputs_back(self, status: JobStatus) -> JobStatus:
        with self._lock:
            if not self._staged:
                try:
                    self._pull_outputs()
                except (HostKeyError, AuthenticationError):
                    raise
                except TransportError as exc:
                    # The outputs are safe on the host: report the job as still running and
                    # try again at the next poll, for as long as an unreachable host is waited for.
                    now = time.monotonic()
                    self._pull_failing_since = self._pull_failing_since or now
                    if now - self._pull_failing_since < self._backend.unreachable_timeout_s:
                        return self._unreachable(exc)
                    self._stage_error = f"{type(exc).__name__}: {exc}"
                except (VoltxError, OSError, ValueError, KeyError) as exc:
                    self._stage_error = f"{type(exc).__name__}: {exc}"
                    log.error("outputs not brought back", job_id=self.job_id, error=str(exc))
                self._staged = True
        if self._stage_error is not None:
            return JobStatus(
                JobState.FAILED,
                None,
                f"the job succeeded on {self._backend.destination}, but its outputs could not "
                f"be brought back: {self._stage_error}",
            )
        return status

    # -- checkpoints (staged jobs) ---------------------------------------------------------

    def _pull_checkpoints_now_and_then(self) -> None:
        """Start a pull of new checkpoints in the background, if one is due and none runs."""
        if self.checkpoints is None:
            return
        with self._checkpoint_lock:
            now = time.monotonic()
            running = self._checkpoint_pull is not None and self._checkpoint_pull.is_alive()
            if running or now - self._checkpoint_pulled_at < self._backend.checkpoint_pull_s:
                return
            self._checkpoint_pulled_at = now
            # In a thread: a large checkpoint must not hold up the scheduler's polls.
            self._checkpoint_pull = threading.Thread(
                target=self._pull_checkpoints,
                name=f"voltx-ssh-checkpoints-{self.job_id}",
                daemon=True,
            )
            self._checkpoint_pull.start()

    def _pull_checkpoints_at_the_end(self, status: JobStatus) -> None:
        """Once the job has finished, pull what it checkpointed last (before a retry pushes)."""
        if self.checkpoints is None or status.state is JobState.LOST:
            return
        with self._checkpoint_lock:
            if self._checkpoints_final:
                return
            self._checkpoints_final = True
            pulling = self._checkpoint_pull
        if pulling is not None:
            pulling.join(self._backend.unreachable_timeout_s)
            if pulling.is_alive():
                return  # stuck on a host that stopped answering: nothing more to get from it
        self._pull_checkpoints()

    def _pull_checkpoints(self) -> None:
        """Copy the host's new complete checkpoints here; a failure is only a warning."""
        assert self.checkpoints is not None and self.stage_back is not None
        try:
            local = ArtifactStore.open(self.stage_back).local_dir(*self.checkpoints.split("/"))
            assert local is not None
            remote = f"{self._backend.remote_root}/{staging.REMOTE_STORE_DIR}/{self.checkpoints}"
            step = checkpoint_mirror.pull(self._transport, self._backend.python, remote, local)
        except (VoltxError, OSError, ValueError, KeyError, TypeError) as exc:
            log.warning(
                "checkpoints not copied from the host",
                job_id=self.job_id,
                host=self._backend.destination,
                error=f"{type(exc).__name__}: {exc}",
            )
            return
        if step is not None:
            log.debug("checkpoints copied from the host", job_id=self.job_id, step=step)

    def _pull_outputs(self) -> None:
        assert self.stage_back is not None
        result = json.loads(self.read_file(RESULT_FILE) or b"{}")
        if not isinstance(result, dict) or result.get("status") != "succeeded":
            return  # the worker failed: there is nothing to bring back
        job = json.loads(self.read_file(JOB_FILE) or b"{}")
        store = ArtifactStore.open(self.stage_back)
        assert store.local_root is not None
        root = posixpath.dirname(posixpath.dirname(self.job_dir))
        staging.pull_outputs(
            self._transport, store, root, self.job_id, job, result, store.local_root / "tmp"
        )

    # -- the folder ------------------------------------------------------------------------

    def read_log(self, offset: int = 0) -> tuple[bytes, int]:
        if offset < 0:
            raise BackendError(f"log offset must not be negative, got {offset}", "ssh")
        data = self._transport.check(
            _scripts.read_log(self.job_dir, offset),
            idempotent=True,
            what=f"reading the log of job {self.job_id}",
        )
        return data, offset + len(data)

    def read_file(self, name: str) -> bytes | None:
        _jobs.check_file_name(name, "ssh")
        result = self._transport.run(_scripts.read_file(self.job_dir, name), idempotent=True)
        if result.returncode == _scripts.ABSENT_RC:
            return None
        if result.returncode != 0:
            raise BackendError(
                f"cannot read {name} of job {self.job_id} on {self._backend.destination}: "
                f"{result.stderr.decode(errors='replace').strip()}",
                "ssh",
            )
        return result.stdout

    @property
    def price_per_hour(self) -> float:
        return self._backend.dollars_per_hour

    @property
    def billing_key(self) -> str:
        # Every job on the host shares its bill.
        return f"ssh:{self._backend.destination}"

    def cancel(self, grace_s: float = 10.0) -> None:
        self._last_running = None  # the next status is read afresh
        waits = grace_s + _jobs.KILL_WAIT_S + _scripts.PID_WAIT_TENTHS / 10
        self._transport.check(
            _scripts.cancel(self.job_dir, self.job_id, grace_s),
            timeout=waits + 60,
            idempotent=True,
            what=f"cancelling job {self.job_id}",
        )


class SSHBackend(Backend):
    """Runs each job on an SSH host, in ``<remote_root>/jobs/<job_id>/``.

    Connection settings left as None come from the user's ssh config. Host keys are checked
    strictly against the user's known_hosts; `known_hosts` names another file, and
    ``strict_host_key_checking = "accept-new"`` pins the key seen first in it. `python` is the
    host's interpreter: it creates the venv that `bootstrap` fills, or runs the jobs itself when
    `bootstrap` is off (voltx must then be installed for it). `packages` and `plugins` are what
    the bootstrap installs (distribution names, source folders or wheels); `pip_args` go to the
    host's pip (an index URL, say). `forward_env` names more variables of this machine's
    environment passed on to every job; a job on an ``s3://`` store gets this machine's AWS
    settings without being told (`voltx_backends._store_env`). `cpu_cores`, `gpus` and `ram_gb`
    override what the host reports. `dollars_per_hour` is what the host costs while voltx uses
    it (plans price phases with it, and run budgets count it once however many jobs share the
    host). `checkpoint_pull_s` is how often a job on a folder store has its new checkpoints copied
    back here (`voltx_backends.ssh.checkpoint_mirror`).
    """

    name = "ssh"

    def __init__(
        self,
        work_dir: Path | None = None,
        *,
        host: str,
        user: str | None = None,
        port: int | None = None,
        identity_file: str | None = None,
        known_hosts: str | None = None,
        strict_host_key_checking: str = "yes",
        python: str = "python3",
        remote_root: str = DEFAULT_REMOTE_ROOT,
        bootstrap: bool = True,
        packages: Sequence[str] = DEFAULT_PACKAGES,
        plugins: Sequence[str] = (),
        system_site_packages: bool = False,
        pip_args: Sequence[str] = (),
        forward_env: Sequence[str] = (),
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        transfer: str = "auto",
        connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S,
        unreachable_timeout_s: float = DEFAULT_UNREACHABLE_TIMEOUT_S,
        checkpoint_pull_s: float = DEFAULT_CHECKPOINT_PULL_S,
        ssh_options: Sequence[str] = (),
        cpu_cores: int | None = None,
        gpus: int | None = None,
        ram_gb: float | None = None,
        dollars_per_hour: float = 0.0,
    ) -> None:
        limits = [
            ("cpu_cores", cpu_cores),
            ("gpus", gpus),
            ("ram_gb", ram_gb),
            ("dollars_per_hour", dollars_per_hour),
            ("checkpoint_pull_s", checkpoint_pull_s),
        ]
        for option, value in limits:
            if value is not None and value < 0:
                raise BackendError(f"{option} must not be negative, got {value}", self.name)
        if not REMOTE_PATH_PATTERN.fullmatch(remote_root):
            raise BackendError(
                f"remote_root {remote_root!r} must use only letters, digits and _ . / ~ + - "
                "(no spaces or quotes)",
                self.name,
            )
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.target = SSHTarget(
            host=host,
            user=user,
            port=int(port) if port is not None else None,
            identity_file=identity_file,
            known_hosts=known_hosts,
            strict_host_key_checking=strict_host_key_checking,
            connect_timeout_s=connect_timeout_s,
            max_sessions=max_sessions,
            options=tuple(ssh_options),
        )
        self.transport = SSHTransport(self.target, transfer=transfer)
        self.unreachable_timeout_s = float(unreachable_timeout_s)
        self.checkpoint_pull_s = float(checkpoint_pull_s)
        self._python = python
        self._remote_root = remote_root
        self._bootstrap = bool(bootstrap)
        self._packages = tuple(packages)
        self._plugins = tuple(plugins)
        self._system_site_packages = bool(system_site_packages)
        self._pip_args = tuple(pip_args)
        self._forward_env = tuple(forward_env)
        self._cpu_cores = cpu_cores
        self._gpus = gpus
        self._ram_gb = ram_gb
        self.dollars_per_hour = float(dollars_per_hour)
        self._lock = threading.Lock()
        self._info: _scripts.HostInfo | None = None
        self._bootstrapped = False

    def __repr__(self) -> str:
        return f"SSHBackend({self.destination!r})"

    @property
    def destination(self) -> str:
        """``user@host:port``, as given: it identifies the host in job refs."""
        return self.target.destination

    # -- the host --------------------------------------------------------------------------

    def host_info(self) -> _scripts.HostInfo:
        """What the host has (asked once): its home, resources and tools."""
        with self._lock:
            if self._info is None:
                output = self.transport.check(
                    _scripts.probe(self._remote_root), idempotent=True, what="probing the host"
                )
                info = _scripts.parse_probe(output.decode(errors="replace"))
                if not REMOTE_PATH_PATTERN.fullmatch(info.root):
                    raise BackendError(
                        f"remote_root resolves to {info.root!r} on {self.destination}, which "
                        "has characters voltx does not pass to a remote shell unquoted",
                        self.name,
                    )
                self._info = info
            return self._info

    @property
    def remote_root(self) -> str:
        """The absolute folder on the host that holds jobs, the venv and the staged store."""
        if self._remote_root.startswith("/"):
            return self._remote_root.rstrip("/") or "/"
        return self.host_info().root  # "~/..." needs the host's home

    @property
    def python(self) -> str:
        if self._bootstrap:
            return f"{self.remote_root}/{VENV_DIR}/bin/python"
        return self._python

    def bootstrap(self, *, force: bool = False) -> bool:
        """Install this machine's voltx on the host unless it is there; True if it installed."""
        with self._lock:
            if self._bootstrapped and not force:
                return False
        shipment = prepare(self._packages, self._plugins)
        installed = install(
            self.transport,
            self.remote_root,
            self._python,
            shipment,
            system_site_packages=self._system_site_packages,
            pip_args=self._pip_args,
        )
        with self._lock:
            self._bootstrapped = True
        return installed

    def capacity(self) -> Resources:
        info = self.host_info()
        gpus = self._gpus if self._gpus is not None else len(info.gpu_memories_gb)
        memories = info.gpu_memories_gb
        return Resources(
            gpus=gpus,
            # The scheduler asks whether a phase fits on one GPU: the smallest one answers that.
            gpu_memory_gb=min(memories) if gpus and memories else 0.0,
            cpu_cores=self._cpu_cores if self._cpu_cores is not None else info.cpu_cores,
            ram_gb=self._ram_gb if self._ram_gb is not None else info.ram_gb,
            disk_gb=info.disk_gb,
        )

    def quote(self, resources: Resources) -> Quote:
        # The host at the rate its settings give (free unless `dollars_per_hour` is set).
        return Quote(host=self.name, dollars_per_hour=self.dollars_per_hour)

    # -- jobs ------------------------------------------------------------------------------

    def submit(self, request: JobRequest) -> SSHJobHandle:
        _jobs.check_job_id(request.job_id, self.name)
        root = self.remote_root
        if self._bootstrap:
            self.bootstrap()
        files = _jobs.folder_files(request, self.name)
        if _scripts.ENV_FILE in files:
            raise BackendError(
                f"job file {_scripts.ENV_FILE!r} would replace the job's environment file",
                self.name,
            )
        env = self._job_env(request)
        stage_back, checkpoints = self._stage_inputs(files)
        files[_scripts.ENV_FILE] = _scripts.env_file(env)
        jobs_dir = f"{root}/jobs"
        result = self.transport.run(
            _scripts.launch(jobs_dir, request.job_id, self.python),
            input=_scripts.folder_archive(files),
            timeout=LAUNCH_TIMEOUT_S,
        )
        if result.returncode == _scripts.EXISTS_RC:
            raise BackendError(
                f"job folder {jobs_dir}/{request.job_id} already exists on {self.destination}",
                self.name,
            )
        if result.returncode != 0 or b"started" not in result.stdout:
            raise BackendError(
                f"cannot start job {request.job_id} on {self.destination} "
                f"(exit code {result.returncode}): "
                f"{result.stderr.decode(errors='replace').strip()[-2000:]}",
                self.name,
            )
        job_dir = f"{jobs_dir}/{request.job_id}"
        log.debug("job started", job_id=request.job_id, host=self.destination, job_dir=job_dir)
        return SSHJobHandle(self, request.job_id, job_dir, stage_back, checkpoints)

    def attach(self, ref: Mapping[str, Any]) -> SSHJobHandle:
        job_id, job_dir, host = ref.get("job_id"), ref.get("job_dir"), ref.get("host")
        stage_back = ref.get("stage_back")
        if not isinstance(job_id, str) or not isinstance(job_dir, str):
            raise BackendError(f"not an ssh job ref (needs job_id and job_dir): {ref!r}", self.name)
        _jobs.check_job_id(job_id, self.name)
        if host != self.destination:
            raise BackendError(
                f"job {job_id} ran on {host}, but this backend reaches {self.destination}",
                self.name,
            )
        if posixpath.basename(job_dir) != job_id or not REMOTE_PATH_PATTERN.fullmatch(job_dir):
            raise BackendError(f"job folder {job_dir} does not belong to job {job_id}", self.name)
        if stage_back is not None and not isinstance(stage_back, str):
            raise BackendError(f"bad stage_back in job ref: {stage_back!r}", self.name)
        checkpoints = ref.get("checkpoints")
        if checkpoints is not None and not (
            isinstance(checkpoints, str)
            and REMOTE_PATH_PATTERN.fullmatch(checkpoints)
            and ".." not in checkpoints.split("/")
        ):
            raise BackendError(f"bad checkpoints in job ref: {checkpoints!r}", self.name)
        return SSHJobHandle(self, job_id, job_dir, stage_back, checkpoints)

    def close(self) -> None:
        self.transport.close()

    def _job_env(self, request: JobRequest) -> dict[str, str]:
        # A worker on an object store reaches it itself, with this machine's AWS settings; the
        # env travels only as the job folder's 0600 env file, so keys may go with it.
        store = _job_store(request.files)
        env = store_environment() if store is not None and is_object_store(store) else {}
        env.update({name: os.environ[name] for name in self._forward_env if name in os.environ})
        env.update(request.env)
        if request.devices:
            gpus = self.capacity().gpus
            wrong = [device for device in request.devices if not 0 <= device < gpus]
            if wrong:
                raise BackendError(
                    f"job {request.job_id} asks for GPUs {wrong}, but {self.destination} has "
                    f"{gpus}",
                    self.name,
                )
        # Set even when empty: a CPU job on a GPU host must not grab GPU 0 by default. (Asking
        # the host whether it has GPUs would cost a round trip on a cold start; the empty value
        # does nothing where there are none.)
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(device) for device in request.devices)
        return env

    def _stage_inputs(self, files: dict[str, bytes]) -> tuple[str | None, str | None]:
        """For a worker job on a folder store: copy its inputs and its newest checkpoint over
        and point it at the host's store. Returns the local store's URL (where the outputs come
        back) and the job's checkpoint folder in both stores; (None, None) for other jobs."""
        raw = files.get(JOB_FILE)
        if raw is None:
            return None, None
        try:
            job = json.loads(raw)
        except ValueError:
            return None, None
        if not isinstance(job, dict) or not isinstance(job.get("store"), str):
            return None, None
        url = str(job["store"])
        if url.startswith("memory://"):
            raise BackendError(
                f"store {url} lives in this process only; the ssh backend needs a folder or an "
                "object store (file://, s3://)",
                self.name,
            )
        if not staging.is_folder_store(url):
            return None, None  # the host reads and writes the store itself
        store = ArtifactStore.open(url)
        remote_store = f"{self.remote_root}/{staging.REMOTE_STORE_DIR}"
        inputs = job.get("inputs") or {}
        staging.push_inputs(self.transport, store, remote_store, [str(d) for d in inputs.values()])
        checkpoints = checkpoint_mirror.folder_for(job)
        if checkpoints is not None and not REMOTE_PATH_PATTERN.fullmatch(checkpoints):
            checkpoints = None  # a phase id the host's shell would need quoted: not mirrored
        if checkpoints is not None:
            local = store.local_dir(*checkpoints.split("/"), create=False)
            assert local is not None
            # A new attempt (perhaps on a new host) resumes from the newest checkpoint here.
            try:
                checkpoint_mirror.push(
                    self.transport, self.python, local, f"{remote_store}/{checkpoints}"
                )
            except TransportError:
                raise  # the launch would not reach the host either
            except (VoltxError, OSError, ValueError, KeyError, TypeError) as exc:
                log.warning(
                    "checkpoint not pushed to the host; the phase starts over",
                    host=self.destination,
                    error=f"{type(exc).__name__}: {exc}",
                )
        job["store"] = f"file://{remote_store}"
        files[JOB_FILE] = json.dumps(job, indent=1).encode()
        return store.url, checkpoints


def _job_store(files: Mapping[str, bytes]) -> str | None:
    """The store URL of a worker job (from its ``job.json``), or None for another command."""
    raw = files.get(JOB_FILE)
    if raw is None:
        return None
    try:
        job = json.loads(raw)
    except ValueError:
        return None
    store = job.get("store") if isinstance(job, dict) else None
    return store if isinstance(store, str) else None
