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

Every blob is hashed while it is read from the source, into a staging file that enters the
destination only when its size and digest match the manifest: a damaged blob in the source, or a
truncated download, is a `CorruptBlobError` naming the artifact, the file and the source store,
and never spreads to the destination under a name it does not match.
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

from voltx.errors import CorruptBlobError
from voltx.store._backing import Backing
from voltx.store._layout import blob_path, manifest_path
from voltx.store._verified import copy_checked
from voltx.store.artifacts import Artifact, ArtifactStore
from voltx.store.manifest import FileEntry, parse_manifest

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
    # Who each blob belongs to, so a damaged one is reported by artifact and file name.
    owners: dict[str, tuple[str, FileEntry]] = {}
    for _name, artifact, _is_ref in artifacts:
        for entry in artifact.files:
            blob_sizes[entry.sha256] = entry.size
            owners.setdefault(entry.sha256, (artifact.name, entry))
    src, dst = source._backing, dest._backing
    present = _map(workers, lambda d: dst.exists(blob_path(d)), list(blob_sizes))
    missing = [d for d, there in zip(blob_sizes, present, strict=True) if not there]
    small = [d for d in missing if blob_sizes[d] <= SMALL_BLOB_BYTES]
    large = [d for d in missing if blob_sizes[d] > SMALL_BLOB_BYTES]
    with staging_folder(dst) as staging:
        _map(workers, lambda d: copy_blob(src, dst, owners[d], staging), small)
        for digest in large:
            copy_blob(src, dst, owners[digest], staging)

    manifest_bytes = 0
    manifests_moved = 0
    for digest in dict.fromkeys(artifact.digest for _n, artifact, _r in artifacts):
        rel = manifest_path(digest)
        # Checked first rather than relying on create's refusal: a refused create has still
        # sent the manifest, and an unchanged push should send nothing.
        if dst.exists(rel):
            continue
        raw = src.read_bytes(rel)
        parse_manifest(raw, rel, source.url)  # a damaged manifest is not copied on
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
def staging_folder(dest: Backing) -> Iterator[Path]:
    """A temporary folder for blobs on their way in: inside a local destination, else in /tmp.

    Inside the destination, the final copy into place stays on one filesystem.
    """
    root = dest.local_root
    parent = root / "tmp" if root is not None else None
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="transfer-", dir=parent) as folder:
        yield Path(folder)


def copy_blob(source: Backing, dest: Backing, owner: tuple[str, FileEntry], staging: Path) -> None:
    """Copy one blob, hashing it as it is read; it enters `dest` only when it matches."""
    artifact, entry = owner
    rel = blob_path(entry.sha256)
    landed = staging / entry.sha256
    try:
        try:
            # By sha256 even where the manifest records BLAKE3: the blob is stored under its
            # sha256 in `dest`, and only that check keeps every blob true to its name there.
            checked = copy_checked(source.read_chunks(rel), landed, algorithm="sha256")
        except FileNotFoundError:
            raise CorruptBlobError(
                artifact, entry.path, source.url, f"its blob {entry.sha256[:12]} is missing"
            ) from None
        assert checked is not None
        problem = checked.mismatch(entry.sha256, entry.size)
        if problem is not None:
            raise CorruptBlobError(artifact, entry.path, source.url, problem)
        dest.adopt_file(landed, rel)  # into a local store's own staging: a rename
    finally:
        landed.unlink(missing_ok=True)
