"""A staged job's checkpoints, mirrored between the host's store and the folder store here.

With a folder store the worker on the host commits its checkpoints into the host's store
(``<remote_root>/store/checkpoints/<phase>/<fp16>/``, `voltx.checkpoints`), which dies with the
host. So that a new attempt on another host resumes instead of starting over:

- while the job runs, its handle pulls the host's newest complete checkpoints into this machine's
  store at the same path (`pull`): each ``step-*`` folder the host finished (it has its
  ``MANIFEST.json``) into a ``.staging-*`` folder here, checked against its manifest, renamed into
  place; the files the phase keeps beside them (2.1's ``stages/``) when their size or time
  changed; then the ``latest`` pointer; then the oldest pruned, as `CheckpointManager` prunes;
- when a job is submitted, the newest complete checkpoint here goes to the host's store first,
  the files beside it with it and the pointer last (`push`), unless the host has as new a one.

A host that prunes a checkpoint while it is being copied leaves an incomplete copy, which the
manifest check drops; the next pull takes a newer one.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path

import attrs
import structlog

from voltx.checkpoint_sync import store_prefix
from voltx.checkpoints import CheckpointManager
from voltx.errors import BackendError
from voltx.job_document import JobDocument
from voltx_backends.ssh.target import TransportError
from voltx_backends.ssh.transport import SSHTransport, shell_path

log = structlog.get_logger(__name__)

# As many as the worker's CheckpointManager keeps by default.
KEEP = 3
POINTER = "latest"
_STEP_PREFIX = "step-"
# What CheckpointManager (and CheckpointSync) keep in a checkpoint folder besides the checkpoints
# and the files a phase put there.
_MANAGER_ENTRIES = (_STEP_PREFIX, ".staging-", ".latest-", ".sync", ".voltx-put-")

# Run by the host's python with the checkpoint folder as its argument: prints what it holds.
_LIST_SCRIPT = """
import json, os, stat, sys
root = sys.argv[1]
skip = tuple(sys.argv[2:])
found = {"latest": None, "steps": [], "files": {}}
try:
    names = sorted(os.listdir(root))
except OSError:
    names = []
for name in names:
    path = os.path.join(root, name)
    if name == "latest":
        try:
            with open(path) as pointer:
                found["latest"] = pointer.read().strip()
        except OSError:
            pass
    elif name.startswith("step-"):
        if os.path.isfile(os.path.join(path, "MANIFEST.json")):
            found["steps"].append(name)
    elif not name.startswith(skip):
        if os.path.isdir(path):
            paths = [os.path.join(f, n) for f, _, ns in os.walk(path) for n in ns]
        else:
            paths = [path]
        for full in paths:
            try:
                info = os.lstat(full)
            except OSError:
                continue  # gone since it was listed
            if stat.S_ISREG(info.st_mode):
                found["files"][os.path.relpath(full, root)] = [info.st_size, int(info.st_mtime)]
print(json.dumps(found))
"""


@attrs.frozen
class HostCheckpoints:
    """What a checkpoint folder on the host holds."""

    latest: str | None
    steps: tuple[str, ...]  # complete step folders, oldest first
    files: Mapping[str, tuple[int, int]]  # files beside them -> (size, mtime in seconds)

    @property
    def newest(self) -> int | None:
        return _step(self.steps[-1]) if self.steps else None


def folder_for(job: JobDocument) -> str | None:
    """The checkpoint folder of a worker job (relative to its store), or None if it has none."""
    if not job.phase_id or not job.fingerprint:
        return None
    return store_prefix(job.phase_id, job.fingerprint)


def list_host(transport: SSHTransport, python: str, remote_dir: str) -> HostCheckpoints:
    """The complete checkpoints and the files beside them in `remote_dir` on the host."""
    skip = " ".join(shlex.quote(prefix) for prefix in _MANAGER_ENTRIES)
    command = f"{python} -c {shlex.quote(_LIST_SCRIPT)} {shell_path(remote_dir)} {skip}"
    output = transport.check(command, idempotent=True, what="listing the host's checkpoints")
    found = json.loads(output.decode())
    steps = sorted(str(name) for name in found["steps"])
    files = {str(path): (int(size), int(mtime)) for path, (size, mtime) in found["files"].items()}
    return HostCheckpoints(found["latest"], tuple(steps), files)


def pull(
    transport: SSHTransport, python: str, remote_dir: str, local_dir: Path, keep: int = KEEP
) -> int | None:
    """Copy the host's newest complete checkpoints from `remote_dir` into `local_dir`.

    Returns the step the local ``latest`` pointer names afterwards (None: no checkpoint yet).
    """
    host = list_host(transport, python, remote_dir)
    if not host.steps:
        return None
    manager = CheckpointManager(local_dir, keep=keep)
    have = {checkpoint.path.name for checkpoint in manager.all()}
    steps = [name for name in host.steps[-keep:] if name not in have]
    files = [path for path, seen in host.files.items() if _size_and_time(local_dir / path) != seen]
    if steps or files:
        staging = local_dir / f".staging-pull-{uuid.uuid4().hex[:8]}"
        try:
            try:
                transport.get(remote_dir, staging, [*steps, *files])
            except TransportError:
                raise
            except BackendError as exc:
                # Most often a checkpoint the host pruned while it was copied: what did arrive
                # whole is still good, and the manifest check below tells which.
                log.debug("checkpoint copy incomplete", error=str(exc))
            arrived = {checkpoint.path.name for checkpoint in CheckpointManager(staging).all()}
            for name in steps:
                if name in arrived:
                    shutil.rmtree(local_dir / name, ignore_errors=True)
                    os.replace(staging / name, local_dir / name)
            for path in files:
                source = staging / path
                if _size_and_time(source) == host.files[path]:
                    (local_dir / path).parent.mkdir(parents=True, exist_ok=True)
                    os.replace(source, local_dir / path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    complete = [checkpoint.path.name for checkpoint in manager.all()]
    if not complete:
        return None
    latest = host.latest if host.latest in complete else complete[-1]
    _write_pointer(local_dir, latest)
    for name in complete[: max(0, len(complete) - keep)]:
        if name != latest:
            shutil.rmtree(local_dir / name, ignore_errors=True)
    return _step(latest)


def push(transport: SSHTransport, python: str, local_dir: Path, remote_dir: str) -> int | None:
    """Copy the newest complete checkpoint in `local_dir` to `remote_dir` on the host.

    Nothing is copied when there is none here or the host has one as new. Returns the step
    copied, or None.
    """
    if not local_dir.is_dir():
        return None
    latest = CheckpointManager(local_dir).latest()
    if latest is None:
        return None
    newest = list_host(transport, python, remote_dir).newest
    if newest is not None and newest >= latest.step:
        return None
    beside = sorted(
        entry.name
        for entry in local_dir.iterdir()
        if _is_beside(entry.name) and not entry.is_symlink()
    )
    transport.put(local_dir, remote_dir, [latest.path.name, *beside])
    # The pointer last, so that the host never names a checkpoint it does not have yet.
    with tempfile.TemporaryDirectory(prefix="voltx-pointer-") as folder:
        (Path(folder) / POINTER).write_text(latest.path.name)
        # Every pointer has the same size: one written in the same second would look unchanged.
        transport.put(Path(folder), remote_dir, [POINTER], every_file=True)
    log.info(
        "checkpoint pushed to host", step=latest.step, host=transport.destination, path=remote_dir
    )
    return latest.step


def _is_beside(name: str) -> bool:
    return name != POINTER and not name.startswith(_MANAGER_ENTRIES)


def _size_and_time(path: Path) -> tuple[int, int] | None:
    try:
        info = path.lstat()
    except OSError:
        return None
    return (info.st_size, int(info.st_mtime)) if path.is_file() else None


def _step(name: str) -> int:
    return int(name.removeprefix(_STEP_PREFIX))


def _write_pointer(local_dir: Path, name: str) -> None:
    pointer = local_dir / POINTER
    try:
        if pointer.read_text().strip() == name:
            return
    except OSError:
        pass
    staging = local_dir / f".latest-{uuid.uuid4().hex[:8]}"
    staging.write_text(name)
    staging.replace(pointer)
