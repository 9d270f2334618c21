"""Reading a blob while checking it: the bytes are hashed as they stream, never in a second pass.

Every blob voltx reads out of a store (a phase input, `voltx artifacts get`, a push or pull,
`verify`, `repair`) and every checkpoint file fetched with its digest
(`ArtifactStore.fetch_file(..., sha256=)`) goes through `copy_checked` or `hash_chunks`: sha256
is computed on the same chunks that are written out, in a thread of its own when there are
several, so that hashing overlaps reading and writing (hashlib releases the GIL on large
updates). The copy lands in a partial file beside its target and is renamed into place only when
its size and digest match the manifest, so a mismatch leaves nothing at the destination. See
`docs/formats.md` for the digests a manifest records.
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

import attrs

# Chunks queued for the hashing thread at most: bounds memory to a few chunks per copy.
_QUEUE_CHUNKS = 4


@attrs.frozen
class Checked:
    """What a stream turned out to hold: its sha256 and length."""

    sha256: str
    size: int

    def mismatch(self, sha256: str, size: int) -> str | None:
        """Why this is not the expected content (None when it is)."""
        if self.size != size:
            return f"expected {size} bytes, read {self.size}"
        if self.sha256 != sha256:
            return f"content does not match its digest {sha256[:12]} (read {self.sha256[:12]})"
        return None


def hash_chunks(chunks: Iterable[bytes]) -> Checked:
    """sha256 and length of a stream of chunks, read once."""
    digest = hashlib.sha256()
    size = 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
    return Checked(digest.hexdigest(), size)


def partial_path(target: Path) -> Path:
    """A unique hidden name beside `target`: same filesystem, so the final rename is atomic."""
    return target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")


def copy_checked(chunks: Iterable[bytes], dest: Path, *, verify: bool = True) -> Checked | None:
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
            return Checked(hashlib.sha256(first).hexdigest(), len(first))
        hasher = _HashingThread()
        try:
            for chunk in itertools.chain((first, second), stream):
                hasher.feed(chunk)
                out.write(chunk)
        finally:
            checked = hasher.finish()
    return checked


class _HashingThread:
    """sha256 of the chunks fed to it, computed in a thread beside the caller's I/O."""

    def __init__(self) -> None:
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=_QUEUE_CHUNKS)
        self._digest = hashlib.sha256()
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
        return Checked(self._digest.hexdigest(), self._size)


def install(partial: Path, target: Path) -> None:
    """Move a checked partial file into place (replacing what is there)."""
    os.replace(partial, target)
