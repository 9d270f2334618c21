"""The worker: runs one phase on whatever machine its job landed on.

``python -m voltx worker job.json``, started by a backend inside the job folder. It reads the job
document (`voltx.job_document`), fetches the inputs from the store, runs the phase, commits the
outputs and the fingerprint record, and writes ``result.json``. Local and remote runs execute this
same code.
"""

from __future__ import annotations

import _thread
import json
import os
import signal
import socket
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import structlog

from voltx import __version__
from voltx._logging import add_secret, redact_text, register_environment_secrets
from voltx.checkpoint_sync import CheckpointSync, discard_checkpoints, store_prefix
from voltx.checkpoints import CheckpointManager
from voltx.config import merge, structure
from voltx.context import MetricsReporter, PhaseContext
from voltx.data_parallel import ERROR_FILE, RANKS_FOLDER, FollowerCheckpoints, RankPlan, run_ranks
from voltx.errors import PhaseError, PhaseStopped, VoltxError
from voltx.fingerprint import record_success
from voltx.job_document import JOB_FILE, RESULT_FILE, JobDocument
from voltx.plugins import host
from voltx.remote_inputs import fetch_remote, is_remote_artifact, read_document
from voltx.spec import resolve_entry
from voltx.store import ArtifactStore
from voltx.store.artifacts import utc_now

# Config values whose keys name secrets travel in this environment variable, never in job.json.
SECRETS_ENV = "VOLTX_JOB_SECRETS"
# How long a finishing or stopped worker waits for its last checkpoint to reach the store.
SYNC_FLUSH_S = 300.0
# After SIGTERM, how long a phase has to notice `ctx.stop_requested()`, commit a checkpoint and
# stop, before it is interrupted where it is. Well inside the grace a cancel gives before KILL
# (voltx.scheduler.CANCEL_GRACE_S), so what follows, the checkpoint's upload, has time too.
STOP_PATIENCE_S = 3.0


def write_result(job_dir: Path, result: dict[str, Any]) -> None:
    staging = job_dir / f".{RESULT_FILE}.tmp"
    staging.write_text(json.dumps(result, indent=1))
    os.replace(staging, job_dir / RESULT_FILE)


def _make_logger(stream: TextIO, job: JobDocument) -> Any:
    from voltx._logging import _redact_processor

    return structlog.wrap_logger(
        structlog.PrintLogger(file=stream),
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact_processor,
            structlog.processors.JSONRenderer(),
        ],
    ).bind(run_id=job.run_id, phase_id=job.phase_id, attempt=job.attempt)


class StopRequest:
    """SIGTERM, handled in two steps: ask the phase to stop, then interrupt it if it does not.

    The first signal sets `event` (what `PhaseContext.stop_requested` reads) and arms a timer
    that raises KeyboardInterrupt in the main thread after `patience_s`; a second signal
    interrupts at once. `disarm` is called as soon as the phase returns, so the timer never cuts
    short the upload of the checkpoint that follows.
    """

    def __init__(self, patience_s: float = STOP_PATIENCE_S) -> None:
        self.event = threading.Event()
        self.patience_s = patience_s
        self._timer: threading.Timer | None = None
        self._armed = True

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)

    def disarm(self) -> None:
        self._armed = False
        if self._timer is not None:
            self._timer.cancel()

    def _on_signal(self, _signum: int, _frame: Any) -> None:
        if self.event.is_set() and self._armed:
            raise KeyboardInterrupt
        self.event.set()
        if self._armed:
            self._timer = threading.Timer(self.patience_s, self._interrupt)
            self._timer.daemon = True
            self._timer.start()

    def _interrupt(self) -> None:
        if self._armed:
            _thread.interrupt_main()


def run_job(
    job_dir: Path,
    log_stream: TextIO | None = None,
    stop: StopRequest | None = None,
    rank: int | None = None,
) -> int:
    """Run the job described by ``job_dir/job.json``; returns the process exit code.

    `rank` is set when a backend launched the job's ranks itself (Ray Train on the ray backend,
    docs/ray.md "Data-parallel phases"), each with a job folder of its own on its node and the
    process group already made: this process runs that one rank, fetching the inputs itself.
    Rank 0 commits the outputs as a single process does; the other ranks commit nothing.
    """
    register_environment_secrets()
    try:
        job = JobDocument.read(job_dir / JOB_FILE)
    except VoltxError as exc:
        # No document, no run id to log under: say why on stderr, and in result.json.
        print(f"voltx worker: {exc}", file=log_stream or sys.stderr)
        write_result(job_dir, {"status": "failed", "error": str(exc)})
        return exc.exit_code
    secrets = json.loads(os.environ.get(SECRETS_ENV, "{}"))
    _register_secret_values(secrets)
    log = _make_logger(log_stream or sys.stderr, job)
    if rank is not None:
        log = log.bind(rank=rank)
    started = time.time()
    try:
        outputs = _run_phase(job_dir, job, secrets, log, stop or StopRequest(), rank)
    except PhaseStopped as exc:
        log.warning("phase stopped on request", detail=str(exc))
        write_result(job_dir, {"status": "failed", "error": str(exc)})
        return exc.exit_code
    except KeyboardInterrupt:
        # Cancelled or stopped for budget (SIGTERM arrives as KeyboardInterrupt): not a crash.
        # The checkpoints committed so far stay, in the store too, for the next attempt.
        log.warning("phase stopped by a signal; its latest checkpoint stays for a re-run")
        write_result(job_dir, {"status": "failed", "error": "stopped by a signal"})
        raise
    except BaseException as exc:
        message = redact_text(f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, VoltxError):
            log.error("phase raised", error=message, traceback=traceback.format_exc())
        else:
            log.error("phase failed", error=message)
        write_result(job_dir, {"status": "failed", "error": message})
        if isinstance(exc, SystemExit):
            raise
        return 1
    duration = time.time() - started
    log.info("phase finished", duration_s=round(duration, 3), outputs=outputs)
    write_result(job_dir, {"status": "succeeded", "outputs": outputs, "duration_s": duration})
    return 0


def _register_secret_values(value: Any) -> None:
    """Every string the scheduler sent as secret is redacted from this worker's logs and files,
    whatever key the phase logs it under."""
    if isinstance(value, dict):
        for item in value.values():
            _register_secret_values(item)
    elif isinstance(value, str):
        add_secret(value)


def _run_phase(
    job_dir: Path,
    job: JobDocument,
    secrets: dict[str, Any],
    log: Any,
    stop: StopRequest,
    rank: int | None = None,
) -> dict[str, str]:
    plugins = host()
    registry = plugins.registry()
    spec = registry.phase(job.phase_id)
    origin = registry.phase_origin.get(spec.id, "unknown")
    store = ArtifactStore.open(job.store)
    config_data = merge(job.config, secrets)
    config = structure(spec.config_class, config_data, path=spec.id)

    inputs: dict[str, Path] = {}
    read_from_urls: dict[str, dict[str, Any]] = {}
    for name, digest in job.inputs.items():
        artifact = store.load_manifest(digest)
        target = job_dir / "inputs" / name
        if is_remote_artifact(artifact):
            # A URL input: this host reads it itself, hashing it as it streams (the store holds
            # only its identity); a pinned digest that does not match stops the phase here.
            document = read_document(store, artifact)
            log.info("reading input from its URL", input=name, url=document.url)
            read_from_urls[name] = fetch_remote(name, document, target)
            inputs[name] = target
        else:
            inputs[name] = store.get(digest, target, link=True)
    outputs: dict[str, Path] = {}
    for name in spec.produces:
        outputs[name] = job_dir / "outputs" / name
        outputs[name].mkdir(parents=True, exist_ok=True)

    prefix = store_prefix(spec.id, job.fingerprint)
    checkpoint_root = store.local_dir(*prefix.split("/"))
    checkpoints: CheckpointManager
    if rank:
        checkpoints = _follower_checkpoints(store, prefix, checkpoint_root, job, job_dir, rank)
        checkpoint_root = checkpoints.root  # so that no sync starts: a follower uploads nothing
    else:
        if job.fresh:
            discard_checkpoints(store, prefix, checkpoint_root, log)
        checkpoints = CheckpointManager(checkpoint_root or job_dir / "checkpoints")
    sync = None
    if checkpoint_root is None:
        # The store is elsewhere (s3://): checkpoints are made here and mirrored there, and a
        # new attempt on another machine starts from the newest one that made it.
        sync = CheckpointSync(store, prefix, checkpoints, log)
        restored = sync.restore()
        if restored is not None:
            log.info("resuming from the store's checkpoint", step=restored.step)
    metrics = MetricsReporter(job_dir, log)
    context = PhaseContext(
        run_id=job.run_id,
        phase_id=spec.id,
        config=config,
        inputs=inputs,
        outputs=outputs,
        work_dir=job_dir,
        log=log,
        metrics=metrics,
        checkpoints=checkpoints,
        device="cuda" if job.devices else "cpu",
        profile=job.profile,
        stop=stop.event,
        rank=rank or 0,
        world_size=1 if rank is None else job.processes,
    )
    log.info("phase starting", phase=spec.name, plugin=origin, inputs=job.inputs)
    entry = resolve_entry(spec)
    started_at = utc_now()
    try:
        if job.processes > 1 and rank is None:
            # The ranks stop themselves (each has its own StopRequest): this process only
            # forwards the request and waits for rank 0's checkpoint.
            stop.disarm()
            plan = RankPlan(
                inputs={name: str(path) for name, path in inputs.items()},
                outputs={name: str(path) for name, path in outputs.items()},
                checkpoints=str(checkpoints.root),
                processes=job.processes,
            )
            on_checkpoint = None if sync is None else sync.submit
            run_ranks(spec.id, job_dir, plan, stop.event, checkpoints, on_checkpoint, log)
        else:
            entry(context)
    except VoltxError:
        raise
    except Exception as exc:
        # The user-code boundary: the failure names the phase and the plugin it came from.
        raise PhaseError(spec.id, f"({origin}) {type(exc).__name__}: {exc}") from exc
    finally:
        stop.disarm()
        metrics.close()
        if sync is not None and not sync.close(timeout_s=SYNC_FLUSH_S):
            log.warning("checkpoint upload still running at exit", timeout_s=SYNC_FLUSH_S)

    if rank:
        return {}  # only rank 0 commits
    empty = [name for name, folder in outputs.items() if not any(folder.iterdir())]
    if empty:
        raise PhaseError(spec.id, f"wrote nothing for output {', '.join(empty)}")
    lineage = {
        "phase": spec.id,
        "phase_version": spec.version,
        "plugin": origin,
        "run_id": job.run_id,
        "profile": job.profile,
        "config": job.config,
        "inputs": job.inputs,
        "fingerprint": job.fingerprint,
        # What each URL input's bytes hashed to as this host read them (`docs/inputs.md`).
        **({"remote_inputs": read_from_urls} if read_from_urls else {}),
        "voltx_version": __version__,
        "host": socket.gethostname(),
        "gpus": len(job.devices),  # with the start and finish, what `voltx report` calls GPU-hours
        "started_at": started_at,
        "finished_at": utc_now(),
    }
    committed = {
        name: store.commit(name, folder, lineage).digest for name, folder in outputs.items()
    }
    record_success(
        store,
        phase_id=spec.id,
        fp=job.fingerprint,
        version=spec.version,
        config=job.config,
        inputs=job.inputs,
        outputs=committed,
        run_id=job.run_id,
    )
    return committed


def _follower_checkpoints(
    store: ArtifactStore,
    prefix: str,
    shared_root: Path | None,
    job: JobDocument,
    job_dir: Path,
    rank: int,
) -> FollowerCheckpoints:
    """The checkpoints a launched rank other than 0 resumes from, read-only: the store's own
    folder when it is on this machine, else a copy of the store's newest one. A fresh job starts
    from none (rank 0 is removing the old ones meanwhile)."""
    if shared_root is not None and not job.fresh:
        return FollowerCheckpoints(shared_root, rank)
    local = CheckpointManager(job_dir / "checkpoints")
    if shared_root is None and not job.fresh:
        restoring = CheckpointSync(store, prefix, local)
        restoring.restore()
        restoring.close()
    return FollowerCheckpoints(local.root, rank)


def run_rank(job_dir: Path, rank: int) -> int:
    """One data-parallel rank of the job in `job_dir` (`voltx._rank`): run the entry
    with the folders the worker prepared; returns the exit code. Commits nothing."""
    register_environment_secrets()
    stop = StopRequest()
    stop.install()
    job = JobDocument.read(job_dir / JOB_FILE)
    plan = RankPlan.read(job_dir)
    secrets = json.loads(os.environ.get(SECRETS_ENV, "{}"))
    _register_secret_values(secrets)
    log = _make_logger(sys.stderr, job).bind(rank=rank)
    spec = host().registry().phase(job.phase_id)
    config = structure(spec.config_class, merge(job.config, secrets), path=spec.id)
    scratch = job_dir / RANKS_FOLDER / str(rank)
    scratch.mkdir(parents=True, exist_ok=True)
    root = Path(plan.checkpoints)
    if rank == 0:
        work_dir, outputs = job_dir, {name: Path(path) for name, path in plan.outputs.items()}
        checkpoints = CheckpointManager(root)
    else:
        # The other ranks' outputs land in scratch that nothing commits.
        work_dir, outputs = scratch, {name: scratch / "outputs" / name for name in plan.outputs}
        for folder in outputs.values():
            folder.mkdir(parents=True, exist_ok=True)
        checkpoints = FollowerCheckpoints(root, rank)
    metrics = MetricsReporter(work_dir, log)
    context = PhaseContext(
        run_id=job.run_id,
        phase_id=spec.id,
        config=config,
        inputs={name: Path(path) for name, path in plan.inputs.items()},
        outputs=outputs,
        work_dir=work_dir,
        log=log,
        metrics=metrics,
        checkpoints=checkpoints,
        device="cuda" if job.devices else "cpu",
        profile=job.profile,
        stop=stop.event,
        rank=rank,
        world_size=plan.processes,
    )
    try:
        resolve_entry(spec)(context)
    except BaseException as exc:
        message = redact_text(f"{type(exc).__name__}: {exc}")
        (scratch / ERROR_FILE).write_text(message + "\n")
        log.error("rank failed", error=message)
        return exc.exit_code if isinstance(exc, VoltxError) else 1
    finally:
        stop.disarm()
        metrics.close()
    return 0


def main(argv: list[str]) -> int:
    """Entry for ``voltx worker JOB_FILE``."""
    job_file = Path(argv[0]) if argv else Path(JOB_FILE)
    stop = StopRequest()
    stop.install()
    return run_job(job_file.resolve().parent, stop=stop)
