"""Garbage collection: removing what no ref or fingerprint record keeps alive.

A damaged ref, manifest or record stops `gc` with a one-line `ManifestError` naming the file
rather than guessing: deleting blobs on a partial view of what is referenced could destroy data
a damaged manifest still names. `voltx artifacts repair` quarantines such files first.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import attrs

from voltx.errors import ManifestError
from voltx.store._backing import Backing
from voltx.store._layout import manifest_path
from voltx.store.manifest import Artifact


class Collectable(Protocol):
    """What `gc` needs of a store (`ArtifactStore` is one): its names, records and manifests,
    and its backing to list and delete files. A protocol rather than the class: the store
    module imports this one, and the dependency must go one way only."""

    _backing: Backing

    @property
    def url(self) -> str: ...

    @property
    def local_root(self) -> Path | None: ...

    def names(self) -> list[str]: ...

    def ref(self, name: str) -> str | None: ...

    def iter_records(self, prefix: str) -> Iterator[tuple[str, dict[str, Any]]]: ...

    def load_manifest(self, digest: str) -> Artifact: ...

    def _manifest_digests(self) -> list[str]: ...


@attrs.frozen
class GcReport:
    """What `gc` removed (or would remove, on a dry run)."""

    manifests: tuple[str, ...]
    blobs: tuple[str, ...]
    staging: tuple[str, ...]
    freed_bytes: int


# Staging files older than this belong to a writer that died; gc may remove them.
STALE_STAGING_S = 3600


def collect_garbage(store: Collectable, *, dry_run: bool, keep_digests: frozenset[str]) -> GcReport:
    """Remove manifests no ref or record points at, then blobs no manifest covers."""
    backing = store._backing
    referenced = set(keep_digests)
    for name in store.names():
        digest = store.ref(name)
        if digest:
            referenced.add(digest)
    for path, record in store.iter_records("fingerprints"):
        outputs = record.get("outputs", {})
        if not isinstance(outputs, dict):
            raise ManifestError(f"records/{path}", store.url, "field 'outputs' is not an object")
        referenced.update(str(d) for d in outputs.values())
    manifests = store._manifest_digests()
    doomed_manifests = [d for d in manifests if d not in referenced]
    live_blobs: set[str] = set()
    for digest in manifests:
        if digest in doomed_manifests:
            continue
        live_blobs.update(entry.sha256 for entry in store.load_manifest(digest).files)
    doomed_blobs = [
        path for path in backing.list_files("blobs") if path.rsplit("/", 1)[-1] not in live_blobs
    ]
    staging = _stale_staging(store)
    freed = sum(backing.size(path) for path in doomed_blobs)
    if not dry_run:
        # Manifests first: a reader must never find a manifest whose blobs are gone.
        for digest in doomed_manifests:
            backing.delete(manifest_path(digest))
        for path in (*doomed_blobs, *staging):
            backing.delete(path)
    return GcReport(tuple(doomed_manifests), tuple(doomed_blobs), tuple(staging), freed)


def _stale_staging(store: Collectable) -> list[str]:
    root = store.local_root
    if root is None:
        return []
    cutoff = time.time() - STALE_STAGING_S
    stale = []
    for path in store._backing.list_files("tmp"):
        try:
            if (root / path).stat().st_mtime < cutoff:
                stale.append(path)
        except FileNotFoundError:
            continue  # a live writer renamed it into place while we looked
    return stale
