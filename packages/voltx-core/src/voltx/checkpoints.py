"""Checkpoint folders committed atomically, and the lookup of the latest complete one.

A checkpoint is written into a staging folder, then its manifest (every file's size and sha256)
is written, then the folder is renamed into place, then the ``latest`` pointer is replaced. A
crash at any point leaves either the previous checkpoint as latest or a staging folder that no
reader looks at.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from voltx.store._hashing import sha256_file

MANIFEST = "MANIFEST.json"
_PREFIX = "step-"


@attrs.frozen
class Checkpoint:
    """A complete checkpoint folder."""

    step: int
    path: Path


class CheckpointManager:
    """Checkpoints of one phase under `root`, keeping the newest `keep`."""

    def __init__(self, root: Path, keep: int = 3) -> None:
        if keep < 1:
            # keep=0 would prune the checkpoint just committed, leaving nothing to resume from.
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.root = root
        self.keep = keep
        self._on_commit: list[Callable[[Checkpoint], None]] = []
        root.mkdir(parents=True, exist_ok=True)

    def on_commit(self, callback: Callable[[Checkpoint], None]) -> None:
        """Call `callback` with each checkpoint right after it is committed (before pruning)."""
        self._on_commit.append(callback)

    @contextmanager
    def save(self, step: int) -> Iterator[Path]:
        """Yield an empty folder to write checkpoint `step` into; commit it when the block ends.

        If the block raises, nothing is committed and the staging folder is removed.
        """
        staging = self.staging_folder(step)
        try:
            yield staging
            checkpoint = self.commit(staging, step)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        for callback in self._on_commit:
            callback(checkpoint)
        self._prune()

    def staging_folder(self, step: int) -> Path:
        """A new empty folder under the root that no reader looks at (for `commit`)."""
        staging = self.root / f".staging-{step}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        return staging

    def commit(self, staging: Path, step: int) -> Checkpoint:
        """Make the files in `staging` checkpoint `step`: manifest, rename, then ``latest``.

        `save` calls this; a restore from elsewhere (`voltx.checkpoint_sync`) calls it directly,
        which tells no `on_commit` listener and prunes nothing.
        """
        files = sorted(p for p in staging.rglob("*") if p.is_file() and p.name != MANIFEST)
        manifest = {
            "step": step,
            "files": [
                {
                    "path": p.relative_to(staging).as_posix(),
                    "size": p.stat().st_size,
                    "sha256": sha256_file(p),
                }
                for p in files
            ],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1))
        final = self.root / f"{_PREFIX}{step:09d}"
        if final.exists():
            shutil.rmtree(final)
        staging.replace(final)
        pointer = self.root / f".latest-{uuid.uuid4().hex[:8]}"
        pointer.write_text(final.name)
        pointer.replace(self.root / "latest")
        return Checkpoint(step, final)

    def latest(self) -> Checkpoint | None:
        """The newest checkpoint whose manifest matches its files (sizes), or None."""
        pointer = self.root / "latest"
        if pointer.exists():
            candidate = self.root / pointer.read_text().strip()
            found = self._load(candidate)
            if found is not None:
                return found
        for folder in sorted(self.root.glob(f"{_PREFIX}*"), reverse=True):
            found = self._load(folder)
            if found is not None:
                return found
        return None

    def all(self) -> list[Checkpoint]:
        """Every complete checkpoint, oldest first."""
        found = (self._load(f) for f in sorted(self.root.glob(f"{_PREFIX}*")))
        return [c for c in found if c is not None]

    def _load(self, folder: Path) -> Checkpoint | None:
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            for entry in manifest["files"]:
                if (folder / entry["path"]).stat().st_size != entry["size"]:
                    return None
        except (OSError, ValueError, KeyError):
            return None
        return Checkpoint(int(manifest["step"]), folder)

    def _prune(self) -> None:
        complete = self.all()
        for old in complete[: max(0, len(complete) - self.keep)]:
            shutil.rmtree(old.path, ignore_errors=True)
        for staging in self.root.glob(".staging-*"):
            # Only this phase writes here, one writer at a time: older staging is a dead write.
            shutil.rmtree(staging, ignore_errors=True)
        for pointer in self.root.glob(".latest-*"):
            pointer.unlink(missing_ok=True)  # a pointer a dead write never moved into place
