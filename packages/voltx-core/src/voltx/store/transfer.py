"""Copying artifacts from one store to another, moving only what the destination lacks.

    from voltx.store import ArtifactStore
    from voltx.store.transfer import transfer

    local = ArtifactStore.open(".voltx")
    remote = ArtifactStore.open("s3://my-bucket/voltx")
    report = transfer(local, remote, ["code_encoder"])    # voltx artifacts push s3://my-bucket/voltx
    report = transfer(remote, local)                      # voltx artifacts pull s3://... (all)

Blobs are named by their content, so a blob the destination already holds is the same bytes and
is skipped after one existence check; pushing an unchanged artifact again moves nothing. The
destination is written in the order of a commit: every missing blob, then the manifests
(create-only), then the refs. A transfer that fails part way leaves blobs no manifest names yet,
which readers never see and ``voltx artifacts gc`` removes.

A blob read from a store that is not on this machine is hashed before it is written anywhere, so
a corrupted or truncated download never enters the destination under a name it does not match.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import attrs
import structlog

from voltx.errors import IntegrityError
from voltx.store._backing import Backing
from voltx.store._hashing import sha256_file
from voltx.store.artifacts import Artifact, ArtifactStore, _blob_path, _manifest_path

log = structlog.get_logger(__name__)

T = TypeVar("T")

# Blobs up to this size are copied several at once: for them the time goes into round trips.
# Larger ones go one at a time, each spread over connections by the store's own filesystem
# (parts in flight), so that memory stays at one file's worth of parts.
SMALL_BLOB_BYTES = 8 * 2**20
DEFAULT_WORKERS = 8


@attrs.frozen
class TransferReport:
    """What a transfer wrote to the destination, and what it found already there."""

    artifacts: tuple[str, ...]  # the names (or digests) asked for, as given
    bytes_moved: int  # blob and manifest bytes written to the destination
    blobs_moved: int
    blobs_skipped: int  # held by the destination already
    manifests_moved: int
    refs_moved: int  # refs created or repointed (a ref already at the digest is left alone)


def transfer(
    source: ArtifactStore,
    dest: ArtifactStore,
    names: Sequence[str] | None = None,
    *,
    workers: int = DEFAULT_WORKERS,
) -> TransferReport:
    """Copy the artifacts `names` (names, digests or digest prefixes; default every name).

    A name's ref is created or repointed in `dest`; a digest copies the artifact without a ref.
    Every name is resolved before anything is copied, so a misspelled one copies nothing.
    """
    wanted = list(names) if names is not None else source.names()
    artifacts: list[tuple[str, Artifact, bool]] = []
    for name in wanted:
        artifact = source.resolve(name)
        artifacts.append((name, artifact, source.ref(name) is not None))

    blob_sizes: dict[str, int] = {}
    for _name, artifact, _is_ref in artifacts:
        for entry in artifact.files:
            blob_sizes[entry.sha256] = entry.size
    src, dst = source._backing, dest._backing
    present = _map(workers, lambda d: dst.exists(_blob_path(d)), list(blob_sizes))
    missing = [d for d, there in zip(blob_sizes, present, strict=True) if not there]
    small = [d for d in missing if blob_sizes[d] <= SMALL_BLOB_BYTES]
    large = [d for d in missing if blob_sizes[d] > SMALL_BLOB_BYTES]
    with _staging_folder(dst) as staging:
        _map(workers, lambda d: _copy_blob(src, dst, d, blob_sizes[d], staging), small)
        for digest in large:
            _copy_blob(src, dst, digest, blob_sizes[digest], staging)

    manifest_bytes = 0
    manifests_moved = 0
    for digest in dict.fromkeys(artifact.digest for _n, artifact, _r in artifacts):
        rel = _manifest_path(digest)
        # Checked first rather than relying on create's refusal: a refused create has still
        # sent the manifest, and an unchanged push should send nothing.
        if dst.exists(rel):
            continue
        raw = src.read_bytes(rel)
        if dst.create(rel, raw):
            manifest_bytes += len(raw)
            manifests_moved += 1

    refs_moved = 0
    for name, artifact, is_ref in artifacts:
        if is_ref and dest.ref(name) != artifact.digest:
            dest.set_ref(name, artifact.digest)
            refs_moved += 1

    report = TransferReport(
        artifacts=tuple(wanted),
        bytes_moved=sum(blob_sizes[d] for d in missing) + manifest_bytes,
        blobs_moved=len(missing),
        blobs_skipped=len(blob_sizes) - len(missing),
        manifests_moved=manifests_moved,
        refs_moved=refs_moved,
    )
    log.debug("transfer finished", source=source.url, dest=dest.url, **attrs.asdict(report))
    return report


def _map(workers: int, function: Callable[[str], T], items: Iterable[str]) -> list[T]:
    """`function` over `items`, several at once; the first failure is raised."""
    items = list(items)
    if len(items) <= 1 or workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(function, items))


@contextlib.contextmanager
def _staging_folder(dest: Backing) -> Iterator[Path]:
    """A temporary folder for blobs on their way in: inside a local destination, else in /tmp.

    Inside the destination, the final copy into place stays on one filesystem.
    """
    root = dest.local_root
    parent = root / "tmp" if root is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="transfer-", dir=parent) as folder:
        yield Path(folder)


def _copy_blob(source: Backing, dest: Backing, digest: str, size: int, staging: Path) -> None:
    rel = _blob_path(digest)
    local = source.local_root
    if local is not None:
        # The source's blob is a file on this machine: hand it to the destination as it is.
        dest.put_file(local / rel, rel)
        return
    landed = staging / digest
    try:
        source.get_file(rel, landed, link=False)
        got = landed.stat().st_size
        if got != size:
            raise IntegrityError(f"blob {digest[:12]}: expected {size} bytes, got {got}")
        if sha256_file(landed) != digest:
            raise IntegrityError(f"blob {digest[:12]} from {source.url}: content does not match")
        dest.put_file(landed, rel)
    finally:
        landed.unlink(missing_ok=True)
