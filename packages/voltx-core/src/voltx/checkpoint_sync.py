"""Checkpoints mirrored to a remote store while a phase trains, and restored on the next machine.

A worker whose store is not on its machine (``s3://``) trains into a local checkpoint folder,
which dies with the machine. `CheckpointSync` copies each committed checkpoint to the store in a
background thread, so a preempted instance costs at most one checkpoint interval:

    checkpoints/<phase>/<fp16>/files/<sha256>        each file once, named by its content
    checkpoints/<phase>/<fp16>/step-000000123.json   the files of checkpoint 123, written last
    checkpoints/<phase>/<fp16>/latest.json           names the newest complete step, then this

A step document is written only after every file it names is in the store, and ``latest.json``
only after its step document, so a reader never follows a name to a missing file. Files the phase
keeps beside its checkpoints (2.1 keeps its finished stages' weights there) travel with every
checkpoint: unchanged ones cost a lookup, not an upload.

Bounded: one upload runs at a time, and of the checkpoints committed meanwhile only the newest
waits (it makes the older ones worthless), pinned by hard links so pruning cannot pull files from
under it. A slow link therefore skips checkpoints; it never queues gigabytes or stalls training.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

import structlog

from voltx.checkpoints import MANIFEST, Checkpoint, CheckpointManager
from voltx.errors import ManifestError, VoltxError
from voltx.store import ArtifactStore
from voltx.store._hashing import sha256_file
from voltx.store.manifest import parse_record

LATEST = "latest.json"
_SNAPSHOTS = ".sync"
# What CheckpointManager keeps in its root besides checkpoints and files a phase put there.
_MANAGER_ENTRIES = ("step-", ".staging-", ".latest-", "latest", _SNAPSHOTS)

log = structlog.get_logger(__name__)


def store_prefix(phase_id: str, fingerprint: str) -> str:
    """Where a phase's checkpoints lie in a store: the same path a local store uses."""
    return f"checkpoints/{phase_id}/{fingerprint[:16]}"


class CheckpointSync:
    """Mirrors the checkpoints of `manager` to `store` under `prefix`, in the background."""

    def __init__(
        self, store: ArtifactStore, prefix: str, manager: CheckpointManager, logger: Any = None
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.manager = manager
        self.log = logger or log
        self.uploaded_steps: list[int] = []
        self.failures: list[str] = []
        self._known: set[str] = set()  # digests already in the store
        self._digests: dict[tuple[int, int, int], str] = {}  # (inode, size, mtime) -> sha256
        self._pending: tuple[int, Path] | None = None
        self._busy = False
        self._closed = False
        self._wake = threading.Condition()
        self._thread = threading.Thread(target=self._loop, name="checkpoint-sync", daemon=True)
        self._thread.start()
        manager.on_commit(self.submit)

    # -- the training side -----------------------------------------------------------------

    def submit(self, checkpoint: Checkpoint) -> None:
        """Queue `checkpoint` (and the files beside it) for upload, replacing any waiting one."""
        snapshot = self._snapshot(checkpoint)
        with self._wake:
            if self._closed:
                shutil.rmtree(snapshot, ignore_errors=True)
                return
            if self._pending is not None:
                shutil.rmtree(self._pending[1], ignore_errors=True)
                self.log.info(
                    "checkpoint upload skipped", step=self._pending[0], newer=checkpoint.step
                )
            self._pending = (checkpoint.step, snapshot)
            self._wake.notify_all()

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every submitted checkpoint is uploaded (or failed); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: self._pending is None and not self._busy, timeout_s)

    def close(self, timeout_s: float | None = None) -> bool:
        """Finish the upload in flight and the waiting one; True when nothing is left undone."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        self._thread.join(timeout_s)
        shutil.rmtree(self.manager.root / _SNAPSHOTS, ignore_errors=True)
        return not self._thread.is_alive()

    def _snapshot(self, checkpoint: Checkpoint) -> Path:
        """Hard-link the checkpoint and the files beside it into a private folder."""
        snapshot = self.manager.root / _SNAPSHOTS / f"{checkpoint.step}-{uuid.uuid4().hex[:8]}"
        _link_tree(checkpoint.path, snapshot / "checkpoint", skip=(MANIFEST,))
        for path in _extras(self.manager.root):
            _link(path, snapshot / "extras" / path.relative_to(self.manager.root))
        return snapshot

    # -- the upload thread -----------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wake:
                while self._pending is None and not self._closed:
                    self._wake.wait()
                if self._pending is None:
                    return
                step, snapshot = self._pending
                self._pending = None
                self._busy = True
            try:
                self._upload(step, snapshot)
                self.uploaded_steps.append(step)
            except (OSError, VoltxError) as exc:
                # Training goes on; the next checkpoint tries again with whatever is missing.
                self.failures.append(f"step {step}: {exc}")
                self.log.warning("checkpoint upload failed", step=step, error=str(exc))
            finally:
                shutil.rmtree(snapshot, ignore_errors=True)
                with self._wake:
                    self._busy = False
                    self._wake.notify_all()

    def _upload(self, step: int, snapshot: Path) -> None:
        document: dict[str, Any] = {"step": step, "files": [], "extras": []}
        for part, key in (("checkpoint", "files"), ("extras", "extras")):
            root = snapshot / part
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                digest = self._digest(path)
                if digest not in self._known and not self.store.has_file(self._file(digest)):
                    self.store.put_file(self._file(digest), path)
                self._known.add(digest)
                document[key].append(
                    {
                        "path": path.relative_to(root).as_posix(),
                        "size": path.stat().st_size,
                        "sha256": digest,
                    }
                )
        self.store.put_bytes(self._step_document(step), json.dumps(document, indent=1).encode())
        self.store.put_bytes(f"{self.prefix}/{LATEST}", json.dumps({"step": step}).encode())
        self.log.info("checkpoint uploaded", step=step, files=len(document["files"]))
        self._prune()

    def _prune(self) -> None:
        """Keep the newest `manager.keep` steps in the store and the files they name."""
        steps = sorted(self._stored_steps())
        doomed, kept = steps[: -self.manager.keep], steps[-self.manager.keep :]
        if not doomed:
            return
        live: set[str] = set()
        for step in kept:
            document = self._read_step(step)
            if document is not None:
                entries = [*document["files"], *document["extras"]]
                live.update(str(e.get("sha256")) for e in entries if isinstance(e, dict))
        for step in doomed:
            self.store.delete_file(self._step_document(step))
        for path in self.store.list_files(f"{self.prefix}/files"):
            digest = path.rsplit("/", 1)[-1]
            if digest not in live:
                self.store.delete_file(path)
                self._known.discard(digest)

    def _digest(self, path: Path) -> str:
        stat = path.stat()
        key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        if key not in self._digests:
            self._digests[key] = sha256_file(path)
        return self._digests[key]

    # -- restore ---------------------------------------------------------------------------

    def restore(self) -> Checkpoint | None:
        """Bring the store's newest complete checkpoint here when the manager has none.

        Files beside the checkpoints come too, where absent. Returns what was restored.
        """
        if self.manager.latest() is not None:
            return None
        for step in self._restore_order():
            document = self._read_step(step)
            if document is None:
                continue
            try:
                return self._install(step, document)
            except (OSError, VoltxError) as exc:
                # A half-pruned or damaged step: an older one is still a resume point.
                self.log.warning("checkpoint restore failed", step=step, error=str(exc))
        return None

    def _restore_order(self) -> list[int]:
        """The step ``latest.json`` names first, then every stored step, newest first.

        A damaged ``latest.json`` only loses its hint: the step documents are still listed.
        """
        path = f"{self.prefix}/{LATEST}"
        latest = self.store.read_bytes(path)
        named: list[int] = []
        if latest:
            try:
                step = parse_record(latest, path, self.store.url).get("step")
            except ManifestError as exc:
                self.log.warning("checkpoint pointer unreadable", error=str(exc))
            else:
                if isinstance(step, int) and not isinstance(step, bool):
                    named = [step]
        return named + [s for s in sorted(self._stored_steps(), reverse=True) if s not in named]

    def _install(self, step: int, document: dict[str, Any]) -> Checkpoint:
        staging = self.manager.staging_folder(step)
        try:
            for entry in document["files"]:
                path, digest = _checked_entry(entry)
                self._fetch(path, digest, staging / path)
            for entry in document["extras"]:
                path, digest = _checked_entry(entry)
                target = self.manager.root / path
                if not target.exists():
                    self._fetch(path, digest, target)
            checkpoint = self.manager.commit(staging, step)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.log.info("checkpoint restored from the store", step=step, store=self.store.url)
        return checkpoint

    def _fetch(self, path: str, digest: str, target: Path) -> None:
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        # Hashed as it streams: a mismatch is an IntegrityError and leaves nothing at `partial`.
        self.store.fetch_file(self._file(digest), partial, sha256=digest)
        os.replace(partial, target)

    # -- store paths -----------------------------------------------------------------------

    def _file(self, digest: str) -> str:
        return f"{self.prefix}/files/{digest}"

    def _step_document(self, step: int) -> str:
        return f"{self.prefix}/step-{step:09d}.json"

    def _stored_steps(self) -> list[int]:
        steps = []
        for path in self.store.list_files(self.prefix):
            name = path.rsplit("/", 1)[-1]
            if name.startswith("step-") and name.endswith(".json"):
                steps.append(int(name.removeprefix("step-").removesuffix(".json")))
        return steps

    def _read_step(self, step: int) -> dict[str, Any] | None:
        """Step `step`'s document; None when it is absent or damaged (an older step may do)."""
        path = self._step_document(step)
        data = self.store.read_bytes(path)
        if data is None:
            return None
        try:
            document = parse_record(data, path, self.store.url)
        except ManifestError as exc:
            self.log.warning("checkpoint step document unreadable", step=step, error=str(exc))
            return None
        if not all(isinstance(document.get(key), list) for key in ("files", "extras")):
            self.log.warning("checkpoint step document incomplete", step=step, file=path)
            return None
        return document


def discard_checkpoints(
    store: ArtifactStore, prefix: str, local_root: Path | None, log: Any
) -> None:
    """Remove every checkpoint kept for `prefix` (a forced run starts from scratch).

    `local_root` is the checkpoint folder inside a folder store (None for an object store);
    the mirrored copies under `prefix` in the store go too, so no later attempt resumes from them.
    """
    removed = 0
    if local_root is not None and local_root.exists():
        for child in local_root.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
            removed += 1
    else:
        for path in store.list_files(prefix):
            store.delete_file(path)
            removed += 1
    if removed:
        log.info("forced: earlier checkpoints discarded", checkpoints=prefix, entries=removed)


def _checked_entry(entry: Any) -> tuple[str, str]:
    """A step document's file entry as (path, sha256); VoltxError when damaged or escaping."""
    path, digest = (entry.get("path"), entry.get("sha256")) if isinstance(entry, dict) else (0, 0)
    if not isinstance(path, str) or not isinstance(digest, str):
        raise VoltxError(f"checkpoint step document names a file as {entry!r}")
    relative = Path(path)
    if relative.is_absolute() or ".." in relative.parts:
        raise VoltxError(f"checkpoint file {path!r} would leave the checkpoint folder")
    return path, digest


def _extras(root: Path) -> list[Path]:
    """Files a phase keeps in its checkpoint root that are not checkpoints."""
    found = []
    for child in root.iterdir():
        if child.name.startswith(_MANAGER_ENTRIES):
            continue
        found += [child] if child.is_file() else [p for p in child.rglob("*") if p.is_file()]
    return sorted(found)


def _link_tree(source: Path, dest: Path, skip: tuple[str, ...] = ()) -> None:
    for path in source.rglob("*"):
        if path.is_file() and path.name not in skip:
            _link(path, dest / path.relative_to(source))


def _link(source: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, dest)
    except OSError:
        shutil.copy2(source, dest)  # no hard links here: a copy pins the content as well
