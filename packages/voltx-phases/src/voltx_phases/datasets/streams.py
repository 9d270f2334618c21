"""Opening a dataset file as a stream of its decompressed bytes, archives member by member.

A file is recognised by its first bytes, not its name (a URL input arrives under its artifact's
name, without a suffix): gzip, zstandard, bzip2, and a tar archive inside any of them or none.
Everything is streamed: a ``.tar.gz`` is read member after member in tarfile's stream mode, never
extracted to disk, so memory stays that of the read buffers whatever the archive's size. A tar
member is itself recognised the same way (a ``.jsonl.gz`` inside a ``.tar`` is read).
"""

from __future__ import annotations

import bz2
import gzip
import io
import tarfile
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Protocol

# The names a folder's dataset files may have (a file given directly is taken whatever its name).
COMPRESSIONS = ("", ".gz", ".zst", ".bz2")
ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.bz2")
SUFFIXES = (
    *(f".jsonl{c}" for c in COMPRESSIONS),
    *(f".json{c}" for c in COMPRESSIONS),
    *ARCHIVES,
)
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_BZIP2 = b"BZh"
_TAR_MAGIC = b"ustar"
_TAR_MAGIC_AT = 257
_BUFFER = 1 << 18  # per layer; a few layers deep (file, zstd, tar member)


def dataset_streams(path: Path) -> Iterator[tuple[Path, IO[bytes]]]:
    """(name for messages, decompressed stream) for the file at `path`, or for each dataset
    member of the archive it is. Member names read ``archive.tar.gz/dir/part.jsonl``."""
    with ExitStack() as stack:
        raw = stack.enter_context(open(path, "rb"))
        stream = stack.enter_context(_decompressed(raw))
        if not _is_tar(stream):
            yield path, stream
            return
        archive = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
        for member in archive:
            if not member.isfile() or not member.name.endswith(SUFFIXES):
                continue
            extracted = archive.extractfile(member)
            if extracted is None:
                continue
            # A member is read before the next one is reached: stream mode cannot seek back.
            with _decompressed(extracted) as inner:
                yield path / member.name, inner


def _decompressed(raw: _Readable) -> io.BufferedReader:
    """`raw` decompressed by what its first bytes say, buffered so that it can be peeked at."""
    head = raw.read(4) or b""
    prefixed = _Prefixed(head, raw)
    stream: _Readable = prefixed
    if head.startswith(_GZIP):
        stream = gzip.GzipFile(fileobj=prefixed, mode="rb")
    elif head.startswith(_ZSTD):
        stream = _ZstdFrames(prefixed)
    elif head.startswith(_BZIP2):
        stream = bz2.BZ2File(prefixed, mode="rb")
    return io.BufferedReader(_Raw(stream), buffer_size=_BUFFER)


class _ZstdFrames(io.RawIOBase):
    """zstandard frames decompressed one after another; a stream that ends inside a frame is an
    OSError (zstandard's own stream reader ends quietly there, passing on a cut-short file)."""

    # Compressed bytes fed at a time. What one feed expands to is held at once: source code
    # compresses 3-10x, so a feed is well under a MB of text (a pathological file of repeated
    # bytes expands further, bounded by zstd's block size per feed).
    _FEED = 1 << 13

    def __init__(self, stream: _Readable) -> None:
        try:
            import zstandard
        except ImportError as exc:  # a dependency of voltx-phases; named if an install lacks it
            raise OSError("reading .zst needs the zstandard package") from exc
        self._new = zstandard.ZstdDecompressor().decompressobj
        self._error = zstandard.ZstdError
        self._stream = stream
        self._frame = self._new()
        self._pending = b""
        self._fed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            compressed = self._stream.read(self._FEED) or b""
            if not compressed:
                if self._fed and not self._frame.eof:
                    raise OSError("the zstandard stream ends inside a frame (cut short?)")
                return 0
            self._pending = self._decompress(compressed)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _decompress(self, compressed: bytes) -> bytes:
        self._fed = True
        out = []
        while compressed:
            if self._frame.eof:
                self._frame = self._new()
            try:
                out.append(self._frame.decompress(compressed))
            except self._error as exc:
                # An OSError, as gzip's and bz2's are, so the readers name the file.
                raise OSError(f"not a valid zstandard stream ({exc})") from None
            compressed = self._frame.unused_data if self._frame.eof else b""
        return b"".join(out)

    def close(self) -> None:
        self._stream.close()
        super().close()


def _is_tar(stream: io.BufferedReader) -> bool:
    head = stream.peek(_TAR_MAGIC_AT + len(_TAR_MAGIC))
    return head[_TAR_MAGIC_AT : _TAR_MAGIC_AT + len(_TAR_MAGIC)] == _TAR_MAGIC


class _Readable(Protocol):
    """What the layers of a stream need of the one below: bytes on demand, and closing."""

    def read(self, size: int = -1, /) -> bytes | None: ...  # None: a raw stream with no data yet

    def close(self) -> None: ...


class _Raw(io.RawIOBase):
    """Any readable binary stream as a raw one, so `io.BufferedReader` can buffer it."""

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer)) or b""
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._stream.close()
        super().close()


class _Prefixed(io.RawIOBase):
    """`rest` with the bytes already read from it (`head`) put back in front."""

    def __init__(self, head: bytes, rest: _Readable) -> None:
        self._head = head
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        # The head and what follows it in one read: a peek at the first bytes (the tar magic
        # at byte 257) must see past the few bytes that were put back.
        size = min(len(buffer), len(self._head))
        buffer[:size] = self._head[:size]
        self._head = self._head[size:]
        data = (self._rest.read(len(buffer) - size) or b"") if size < len(buffer) else b""
        buffer[size : size + len(data)] = data
        return size + len(data)

    def close(self) -> None:
        self._rest.close()
        super().close()
