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

import os
import posixpath
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import structlog

from voltx.backend import Backend, JobRequest, Quote
from voltx.checkpoint_sync import discard_checkpoints
from voltx.errors import BackendError, VoltxError
from voltx.job_document import JOB_FILE, job_document_in
from voltx.spec import Resources
from voltx.store import ArtifactStore
from voltx_backends import _jobs
from voltx_backends._store_env import is_object_store, store_environment
from voltx_backends.ssh import _scripts, checkpoint_mirror, staging
from voltx_backends.ssh.bootstrap import VENV_DIR, install, prepare
from voltx_backends.ssh.handle import SSHJobHandle
from voltx_backends.ssh.settings import SSHSettings
from voltx_backends.ssh.target import (
    REMOTE_PATH_PATTERN,
    SSHTarget,
    TransportError,
)
from voltx_backends.ssh.transport import SSHTransport

log = structlog.get_logger(__name__)

LAUNCH_TIMEOUT_S = 120.0


class SSHBackend(Backend):
    """Runs each job on an SSH host, in ``<remote_root>/jobs/<job_id>/``.

    Its settings are an `SSHSettings` (the ``[backends.ssh]`` table), given whole or as keywords
    of the same names. Connection settings left as None come from the user's ssh config. Host
    keys are checked strictly against the user's known_hosts; `known_hosts` names another file,
    and ``strict_host_key_checking = "accept-new"`` pins the key seen first in it. `python` is
    the host's interpreter: it creates the venv that `bootstrap` fills, or runs the jobs itself
    when `bootstrap` is off (voltx must then be installed for it). `packages` and `plugins` are
    what the bootstrap installs (distribution names, source folders or wheels); `pip_args` go to
    the host's pip (an index URL, say). `forward_env` names more variables of this machine's
    environment passed on to every job; a job on an ``s3://`` store gets this machine's AWS
    settings without being told (`voltx_backends._store_env`). `cpu_cores`, `gpus` and `ram_gb`
    override what the host reports. `dollars_per_hour` is what the host costs while voltx uses
    it (plans price phases with it, and run budgets count it once however many jobs share the
    host). `checkpoint_pull_s` is how often a job on a folder store has its new checkpoints
    copied back here (`voltx_backends.ssh.checkpoint_mirror`).

    Settings with ``hosts`` instead of `host` describe several hosts: `SSHPoolBackend` runs
    those, each host through an `SSHBackend` of its own (docs/ssh.md, "Several hosts").
    """

    name = "ssh"

    def __init__(
        self,
        work_dir: Path | None = None,
        *,
        settings: SSHSettings | None = None,
        **options: Any,
    ) -> None:
        if settings is not None and options:
            raise BackendError("ssh: give settings or keyword settings, not both", self.name)
        settings = settings or SSHSettings.from_options(options)
        if settings.host is None:
            # A pool is its own backend: `voltx_backends.ssh.pool.ssh_backend` makes either.
            raise BackendError(
                "ssh: SSHBackend reaches one host; for a list of hosts use SSHPoolBackend",
                self.name,
            )
        self.settings = settings
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.target = SSHTarget(
            host=settings.host,
            user=settings.user,
            port=int(settings.port) if settings.port is not None else None,
            identity_file=settings.identity_file,
            known_hosts=settings.known_hosts,
            strict_host_key_checking=settings.strict_host_key_checking,
            connect_timeout_s=settings.connect_timeout_s,
            max_sessions=settings.max_sessions,
            options=tuple(settings.ssh_options),
        )
        self.transport = SSHTransport(self.target, transfer=settings.transfer)
        self.unreachable_timeout_s = float(settings.unreachable_timeout_s)
        self.checkpoint_pull_s = float(settings.checkpoint_pull_s)
        self._python = settings.python
        self._remote_root = settings.remote_root
        self._bootstrap = bool(settings.bootstrap)
        self._packages = tuple(settings.packages)
        self._plugins = tuple(settings.plugins)
        self._system_site_packages = bool(settings.system_site_packages)
        self._pip_args = tuple(settings.pip_args)
        self._forward_env = tuple(settings.forward_env)
        self._cpu_cores = settings.cpu_cores
        self._gpus = settings.gpus
        self._ram_gb = settings.ram_gb
        self.dollars_per_hour = float(settings.dollars_per_hour)
        self._lock = threading.Lock()
        # Held for a whole install: jobs started side by side wait for one install, not run two.
        self._bootstrap_lock = threading.Lock()
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
        """Install this machine's voltx on the host unless it is there; True if it installed.

        Callers at the same time share one install: the others wait for it."""
        with self._bootstrap_lock:
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

    @property
    def bootstrapped(self) -> bool:
        """Whether this backend has installed (or found) voltx on the host."""
        with self._lock:
            return self._bootstrapped or not self._bootstrap

    def stage_ahead(self, files: Mapping[str, bytes]) -> int:
        """Copy a worker job's inputs to the host's store before the job is submitted (while
        the bootstrap runs, say); `submit` then finds them there. Only a job on a folder store
        has inputs to copy; returns the files copied."""
        job = job_document_in(files)
        if job is None or not staging.is_folder_store(job.store):
            return 0
        store = ArtifactStore.open(job.store)
        remote_store = f"{self.remote_root}/{staging.REMOTE_STORE_DIR}"
        return staging.push_inputs(self.transport, store, remote_store, list(job.inputs.values()))

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
        job = job_document_in(request.files)
        env = store_environment() if job is not None and is_object_store(job.store) else {}
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
        job = job_document_in(files)
        if job is None:
            return None, None
        url = job.store
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
        staging.push_inputs(self.transport, store, remote_store, list(job.inputs.values()))
        checkpoints = checkpoint_mirror.folder_for(job)
        if checkpoints is not None and not REMOTE_PATH_PATTERN.fullmatch(checkpoints):
            checkpoints = None  # a phase id the host's shell would need quoted: not mirrored
        if checkpoints is not None:
            local = store.local_dir(*checkpoints.split("/"), create=False)
            assert local is not None
            if job.fresh:
                # A forced run starts from scratch: the checkpoints here are an earlier run's,
                # and they must neither reach the host nor await a later attempt here.
                discard_checkpoints(store, checkpoints, local, log)
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
        files[JOB_FILE] = attrs.evolve(job, store=f"file://{remote_store}").to_json()
        return store.url, checkpoints
