"""Writing an artifact out of the store (`ArtifactStore.get`, `voltx artifacts get`, worker inputs).

Every byte is checked against the manifest while it is copied (`voltx.store._verified`): a file
whose bytes do not match is a `CorruptBlobError` naming the artifact, the file and the store, and
nothing is left at the destination. A folder artifact is checked whole in a staging folder beside
its destination before any of it lands there. Nothing is ever written into the store's own data
folders, and nothing existing is replaced unless the caller asks.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from voltx.errors import CorruptBlobError, DestinationExistsError
from voltx.store._layout import DATA_AREAS, blob_path
from voltx.store._verified import (
    Checked,
    algorithm_for,
    copy_checked,
    hash_chunks,
    install,
    partial_path,
)
from voltx.store.manifest import Artifact, FileEntry
from voltx.store.names import check_member_path


class BlobSource(Protocol):
    """What writing out needs of a store (`ArtifactStore` is one). A protocol rather than the
    class: the store module imports this one, and the dependency must go one way only."""

    @property
    def url(self) -> str: ...

    @property
    def local_root(self) -> Path | None: ...

    def check_blob(self, artifact: Artifact, entry: FileEntry, checked: Checked) -> None: ...

    def read_blob_chunks(self, digest: str) -> Iterator[bytes]: ...


def write_out(
    store: BlobSource, artifact: Artifact, dest: Path, *, link: bool, overwrite: bool
) -> Path:
    """Write `artifact` to `dest` (a file artifact into `dest` when it is a folder)."""
    refuse_store_destination(store, dest)
    if artifact.kind == "file":
        entry = artifact.files[0]
        target = dest / entry.path if dest.is_dir() else dest
        if target.is_dir():
            raise DestinationExistsError(str(target), "is a folder")
        if target.exists() and not overwrite:
            raise DestinationExistsError(str(target), "already exists (--overwrite replaces it)")
        fetch(store, artifact, entry, target, link=link)
        return target
    if dest.exists() and not dest.is_dir():
        raise DestinationExistsError(str(dest), f"is a file, and {artifact.name} is a folder")
    if dest.is_dir() and any(dest.iterdir()) and not overwrite:
        raise DestinationExistsError(
            str(dest), "is a folder that is not empty (--overwrite writes into it)"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = partial_path(dest)
    try:
        for entry in artifact.files:
            fetch(store, artifact, entry, staging / check_member_path(entry.path), link=link)
        if not dest.exists() or not any(dest.iterdir()):
            os.replace(staging, dest)  # an empty folder is replaced in one step
        else:
            for entry in artifact.files:
                target = dest / entry.path
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / entry.path, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return dest


def refuse_store_destination(store: BlobSource, dest: Path) -> None:
    """DestinationExistsError when `dest` is the store's folder or inside its data folders.

    Job and work folders beside the data are allowed: a local worker writes its inputs there.
    """
    root = store.local_root
    if root is None:
        return
    resolved = dest.resolve()
    if resolved == root or any(resolved.is_relative_to(root / area) for area in DATA_AREAS):
        raise DestinationExistsError(
            str(dest), f"is inside store {store.url}; write artifacts out to a path outside it"
        )


def fetch(
    store: BlobSource, artifact: Artifact, entry: FileEntry, target: Path, *, link: bool
) -> None:
    """Copy (or hard-link, on a local store) one file of `artifact` to `target`, checked."""
    blob = blob_path(entry.sha256)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    root = store.local_root
    try:
        if link and root is not None:
            # A link shares the blob's bytes, so they are hashed where they are (one read).
            chunks = store.read_blob_chunks(entry.sha256)
            store.check_blob(artifact, entry, hash_chunks(chunks, algorithm_for(entry)))
            try:
                os.link(root / blob, partial)
            except OSError:
                pass  # another filesystem, or links not allowed: a checked copy instead
            else:
                install(partial, target)
                return
        checked = copy_checked(
            store.read_blob_chunks(entry.sha256), partial, algorithm=algorithm_for(entry)
        )
        assert checked is not None
        store.check_blob(artifact, entry, checked)
        install(partial, target)
    except FileNotFoundError:
        raise CorruptBlobError(
            artifact.name, entry.path, store.url, f"its blob {entry.sha256[:12]} is missing"
        ) from None
    finally:
        partial.unlink(missing_ok=True)
