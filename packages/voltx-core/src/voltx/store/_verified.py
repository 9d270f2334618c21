"""Reading a blob while checking it: the bytes are hashed as they stream, never in a second pass.

Every blob voltx reads out of a store (a phase input, `voltx artifacts get`, a push or pull,
`verify`, `repair`) and every checkpoint file fetched with its digest
(`ArtifactStore.fetch_file(..., sha256=)`) goes through `copy_checked` or `hash_chunks`: the
digest is computed on the same chunks that are written out, in a thread of its own when there
are several, so that hashing overlaps reading and writing (hashlib and blake3 release the GIL on
large updates). The copy lands in a partial file beside its target and is renamed into place
only when its size and digest match the manifest, so a mismatch leaves nothing at the
destination.

Which digest is checked: a manifest entry that records a BLAKE3 digest beside its sha256 is
checked with BLAKE3, which one core computes several times faster than sha256, so a read from a
fast disk is not held back by the hashing; an entry without one (a manifest written before
voltx recorded BLAKE3) is checked with its sha256. The sha256 stays the content address, so a
blob copied into another store is checked by sha256 (`voltx.store.transfer`). See
`docs/formats.md` for the digests a manifest records and `docs/concepts.md` for the choice.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import queue
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, Protocol

import attrs
from blake3 import blake3

from voltx.store.manifest import FileEntry

Algorithm = Literal["sha256", "blake3"]

# Chunks queued for the hashing thread at most: bounds memory to a few chunks per copy.
_QUEUE_CHUNKS = 4


class _Digest(Protocol):
    def update(self, data: bytes, /) -> object: ...

    def hexdigest(self) -> str: ...


def _new_digest(algorithm: Algorithm) -> _Digest:
    return blake3() if algorithm == "blake3" else hashlib.sha256()


def algorithm_for(entry: FileEntry) -> Algorithm:
    """The digest a read of this manifest entry is checked with (module docstring)."""
    return "blake3" if entry.blake3 is not None else "sha256"


@attrs.frozen
class Checked:
    """What a stream turned out to hold: its length and its digest by `algorithm`."""

    algorithm: Algorithm
    hexdigest: str
    size: int

    @property
    def sha256(self) -> str | None:
        return self.hexdigest if self.algorithm == "sha256" else None

    def mismatch(self, sha256: str, size: int) -> str | None:
        """Why this is not the content of that sha256 and size (None when it is)."""
        if self.algorithm != "sha256":
            raise ValueError(f"a {self.algorithm} digest cannot be compared with a sha256")
        return self._differs(size, self.hexdigest != sha256, sha256)

    def against(self, entry: FileEntry) -> str | None:
        """Why this is not the content the manifest entry names (None when it is)."""
        if self.algorithm == "blake3":
            if entry.blake3 is None:
                raise ValueError(f"{entry.path} records no blake3 digest to compare with")
            return self._differs(entry.size, self.hexdigest != entry.blake3, entry.sha256)
        return self.mismatch(entry.sha256, entry.size)

    def _differs(self, size: int, digest_differs: bool, sha256: str) -> str | None:
        if self.size != size:
            return f"expected {size} bytes, read {self.size}"
        if digest_differs:
            read = "" if self.algorithm == "sha256" else f"{self.algorithm} "
            return (
                f"content does not match its digest {sha256[:12]} "
                f"(read {read}{self.hexdigest[:12]})"
            )
        return None


def hash_chunks(chunks: Iterable[bytes], algorithm: Algorithm = "sha256") -> Checked:
    """The digest and length of a stream of chunks, read once."""
    digest = _new_digest(algorithm)
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return Checked(algorithm, digest.hexdigest(), size)


def partial_path(target: Path) -> Path:
    """A unique hidden name beside `target`: same filesystem, so the final rename is atomic."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")


def copy_checked(
    chunks: Iterable[bytes],
    dest: Path,
    *,
    verify: bool = True,
    algorithm: Algorithm = "sha256",
) -> Checked | None:
    """Write the stream to `dest` (a new file), hashing it on the way; None when not verifying.

    The caller writes to a partial path and renames it into place once the result matches.
    `verify=False` exists for the benchmark (`bench/store_verify.py`), which measures what the
    hashing costs against the same copy without it.
    """
    if not verify:
        with open(dest, "xb") as out:
            for chunk in chunks:
                out.write(chunk)
        return None
    stream = iter(chunks)
    first = next(stream, b"")
    second = next(stream, None)
    with open(dest, "xb") as out:
        if second is None:
            # One chunk (most files of a folder artifact): nothing to overlap, no thread.
            out.write(first)
            return hash_chunks((first,), algorithm)
        hasher = _HashingThread(algorithm)
        try:
            for chunk in itertools.chain((first, second), stream):
                hasher.feed(chunk)
                out.write(chunk)
        finally:
            checked = hasher.finish()
    return checked


class _HashingThread:
    """The digest of the chunks fed to it, computed in a thread beside the caller's I/O."""

    def __init__(self, algorithm: Algorithm) -> None:
        self._algorithm: Algorithm = algorithm
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._digest = _new_digest(algorithm)
        self._size = 0
        self._thread = threading.Thread(target=self._run, name="voltx-hash", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            self._digest.update(chunk)
            self._size += len(chunk)

    def feed(self, chunk: bytes) -> None:
        self._queue.put(chunk)

    def finish(self) -> Checked:
        self._queue.put(None)
        self._thread.join()
        return Checked(self._algorithm, self._digest.hexdigest(), self._size)


def install(partial: Path, target: Path) -> None:
    """Move a checked partial file into place (replacing what is there)."""
    os.replace(partial, target)
