"""Byte-level access to a store's root, over a local folder or any fsspec filesystem.

The local case is written against the OS directly because it needs what fsspec does not promise:
atomic rename for blobs and refs, `link` for create-only manifests, and hard links so that a
local worker can read a multi-gigabyte input without copying it.
"""

from __future__ import annotations

import abc
import collections
import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from voltx.errors import StoreError

# Chunk of a streamed read: big enough that per-chunk costs vanish, small enough for memory.
CHUNK_BYTES = 8 * 2**20
# Ranged reads in flight for one remote blob: round trips overlap while chunks stay in order.
_RANGES_IN_FLIGHT = 4


class Backing(abc.ABC):
    """Files under a store root, addressed by relative posix paths."""

    url: str

    @abc.abstractmethod
    def read_bytes(self, rel: str) -> bytes:
        """The file's content; FileNotFoundError when absent."""

    @abc.abstractmethod
    def read_chunks(self, rel: str) -> Iterator[bytes]:
        """The file's content in order, a chunk at a time; FileNotFoundError when absent."""

    @abc.abstractmethod
    def move(self, rel: str, new_rel: str) -> None:
        """Move a file to another path in the store (quarantine); FileNotFoundError if absent."""

    @abc.abstractmethod
    def write_bytes(self, rel: str, data: bytes) -> None:
        """Replace the file's content in one step (readers see old or new, never half)."""

    @abc.abstractmethod
    def create(self, rel: str, data: bytes) -> bool:
        """Write the file only if it does not exist; False when it already did."""

    @abc.abstractmethod
    def put_file(self, source: Path, rel: str) -> None:
        """Copy a local file in, appearing complete or not at all."""

    def adopt_file(self, source: Path, rel: str) -> None:
        """Like `put_file`, for a local file that is not needed afterwards (a checked download
        in staging): it may be moved in rather than copied."""
        self.put_file(source, rel)
        source.unlink(missing_ok=True)

    @abc.abstractmethod
    def get_file(self, rel: str, dest: Path, *, link: bool) -> None:
        """Copy (or, when `link` and possible, hard-link) a file out to `dest`."""

    @abc.abstractmethod
    def exists(self, rel: str) -> bool:
        """True when the file exists."""

    @abc.abstractmethod
    def size(self, rel: str) -> int:
        """The file's size in bytes."""

    @abc.abstractmethod
    def list_files(self, prefix: str) -> list[str]:
        """Every file under the folder `prefix`, as paths relative to the root."""

    @abc.abstractmethod
    def delete(self, rel: str) -> None:
        """Remove a file if present."""

    @property
    def local_root(self) -> Path | None:
        """The root as a local folder, when the store is one."""
        return None


class LocalBacking(Backing):
    """A store in a local folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"file://{root}"

    @property
    def local_root(self) -> Path:
        return self.root

    def _path(self, rel: str) -> Path:
        return self.root / rel

    def _staging(self) -> Path:
        staging = self.root / "tmp"
        staging.mkdir(parents=True, exist_ok=True)
        return staging / uuid.uuid4().hex

    def read_bytes(self, rel: str) -> bytes:
        return self._path(rel).read_bytes()

    def read_chunks(self, rel: str) -> Iterator[bytes]:
        with open(self._path(rel), "rb") as stream:
            while chunk := stream.read(CHUNK_BYTES):
                yield chunk

    def move(self, rel: str, new_rel: str) -> None:
        target = self._path(new_rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._path(rel), target)

    def write_bytes(self, rel: str, data: bytes) -> None:
        tmp = self._staging()
        tmp.write_bytes(data)
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def create(self, rel: str, data: bytes) -> bool:
        tmp = self._staging()
        tmp.write_bytes(data)
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            # link() fails when the target exists: the create-only step, atomic on POSIX.
            os.link(tmp, target)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
        return True

    def put_file(self, source: Path, rel: str) -> None:
        tmp = self._staging()
        shutil.copyfile(source, tmp)
        # Blobs are immutable: read-only, so a hard-linked input cannot be edited in place.
        tmp.chmod(0o444)
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, target)

    def adopt_file(self, source: Path, rel: str) -> None:
        source.chmod(0o444)  # as put_file leaves a blob: read-only
        target = self._path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError:
            super().adopt_file(source, rel)  # staged on another filesystem: copy it in

    def get_file(self, rel: str, dest: Path, *, link: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        source = self._path(rel)
        if link:
            try:
                os.link(source, dest)
                return
            except OSError:
                pass  # another filesystem, or links not allowed: fall back to a copy
        shutil.copyfile(source, dest)

    def exists(self, rel: str) -> bool:
        return self._path(rel).exists()

    def size(self, rel: str) -> int:
        return self._path(rel).stat().st_size

    def list_files(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            path.relative_to(self.root).as_posix() for path in base.rglob("*") if path.is_file()
        )

    def delete(self, rel: str) -> None:
        self._path(rel).unlink(missing_ok=True)


# A package can tune how voltx uses a protocol without voltx importing it: it registers an fsspec
# implementation named "voltx-<protocol>" through fsspec's own entry points ("fsspec.specs"), and
# stores with that protocol use it (voltx-backends registers "voltx-s3"). Other users of fsspec in
# the same process keep the protocol's usual implementation. Storage stays an fsspec protocol;
# there is no voltx hook for it.
TUNED_PROTOCOL_PREFIX = "voltx-"


def _filesystem(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """The fsspec filesystem for `url` (a tuned one when registered) and the root path in it."""
    # Imported here: a worker on a local store should not pay for fsspec's import.
    import fsspec

    protocol, _ = fsspec.core.split_protocol(url)
    tuned = f"{TUNED_PROTOCOL_PREFIX}{protocol}"
    if protocol and tuned in fsspec.available_protocols():
        cls = fsspec.get_filesystem_class(tuned)
        return cls(**storage_options), cls._strip_protocol(url)
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    return fs, str(root)


class FsspecBacking(Backing):
    """A store on any fsspec filesystem (memory://, s3://, gcs://, ...).

    Failures other than "absent" and "already exists" (a refused connection, a missing bucket,
    a denied request, after the filesystem's own retries) become one-line `StoreError`s naming
    the store, so the CLI reports them as it reports any voltx error.
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        self.url = url.rstrip("/")
        self.fs, root = _filesystem(self.url, storage_options)
        self.root = root.rstrip("/")
        protocols = self.fs.protocol
        # fsspec's memory filesystem hands every reader of a file the same file object, so two
        # threads reading one blob at once would share its position; they copy bytes instead.
        self._shared_handles = "memory" in (
            (protocols,) if isinstance(protocols, str) else protocols
        )
        # A tuned filesystem (see TUNED_PROTOCOL_PREFIX) may say how big its ranged reads should
        # be and how many may be in flight (voltx-s3: `part_size`, `max_concurrency`).
        tuned = getattr(self.fs, "settings", None)
        self._range_bytes = int(getattr(tuned, "part_size", CHUNK_BYTES))
        self._ranges_in_flight = int(getattr(tuned, "max_concurrency", _RANGES_IN_FLIGHT))

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    @contextlib.contextmanager
    def _failing_as_store_error(self, action: str, rel: str, *, absent_ok: bool) -> Iterator[None]:
        try:
            yield
        except FileExistsError:
            raise
        except FileNotFoundError as exc:
            if absent_ok:
                raise  # the caller's answer: the file is not there
            # Writing and finding nothing: the bucket (or the folder above) does not exist.
            raise StoreError(
                f"cannot {action} {rel} in store {self.url}: {_one_line(exc)}"
            ) from exc
        except StoreError:
            raise
        except Exception as exc:  # s3fs, botocore and aiohttp raise many kinds; one line each
            raise StoreError(
                f"cannot {action} {rel} in store {self.url}: {_one_line(exc)}"
            ) from exc

    def read_bytes(self, rel: str) -> bytes:
        with self._failing_as_store_error("read", rel, absent_ok=True):
            data = self.fs.cat_file(self._path(rel))
        assert isinstance(data, bytes)
        return data

    def read_chunks(self, rel: str) -> Iterator[bytes]:
        path = self._path(rel)
        with self._failing_as_store_error("read", rel, absent_ok=True):
            size = int(self.fs.size(path))
        step, in_flight = self._range_bytes, self._ranges_in_flight
        if size <= step:
            with self._failing_as_store_error("read", rel, absent_ok=True):
                yield self._range(path, 0, size)
            return
        # Ranges of one blob are fetched a few at a time but handed out in order, so the
        # reader's hash sees the bytes as they stand in the file.
        starts = iter(range(0, size, step))
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            pending: collections.deque[Future[bytes]] = collections.deque()

            def submit_next() -> None:
                start = next(starts, None)
                if start is not None:
                    end = min(start + step, size)
                    pending.append(pool.submit(self._range, path, start, end))

            for _ in range(in_flight):
                submit_next()
            try:
                while pending:
                    with self._failing_as_store_error("read", rel, absent_ok=True):
                        chunk = pending.popleft().result()
                    submit_next()
                    yield chunk
            finally:
                for future in pending:
                    future.cancel()

    def _range(self, path: str, start: int, end: int) -> bytes:
        data = self.fs.cat_file(path, start=start, end=end)
        assert isinstance(data, bytes)
        return data

    def move(self, rel: str, new_rel: str) -> None:
        with self._failing_as_store_error("move", rel, absent_ok=True):
            self.fs.mv(self._path(rel), self._path(new_rel))

    def write_bytes(self, rel: str, data: bytes) -> None:
        # A single PUT is atomic on object stores and in memory.
        with self._failing_as_store_error("write", rel, absent_ok=False):
            self.fs.pipe_file(self._path(rel), data)

    def create(self, rel: str, data: bytes) -> bool:
        try:
            with self._failing_as_store_error("create", rel, absent_ok=False):
                self.fs.pipe_file(self._path(rel), data, mode="create")
        except FileExistsError:
            return False
        return True

    def put_file(self, source: Path, rel: str) -> None:
        with self._failing_as_store_error("upload", rel, absent_ok=False):
            self.fs.put_file(str(source), self._path(rel))

    def get_file(self, rel: str, dest: Path, *, link: bool) -> None:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._failing_as_store_error("download", rel, absent_ok=True):
            if self._shared_handles:
                dest.write_bytes(self.fs.cat_file(self._path(rel)))
            else:
                self.fs.get_file(self._path(rel), str(dest))

    def exists(self, rel: str) -> bool:
        with self._failing_as_store_error("look for", rel, absent_ok=True):
            return bool(self.fs.exists(self._path(rel)))

    def size(self, rel: str) -> int:
        with self._failing_as_store_error("read the size of", rel, absent_ok=True):
            return int(self.fs.size(self._path(rel)))

    def list_files(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        try:
            with self._failing_as_store_error("list", prefix, absent_ok=True):
                found = self.fs.find(base)
        except FileNotFoundError:
            return []
        start = len(self.root) + 1
        return sorted(path[start:] if path.startswith(self.root) else path for path in found)

    def delete(self, rel: str) -> None:
        with (
            contextlib.suppress(FileNotFoundError),
            self._failing_as_store_error("delete", rel, absent_ok=True),
        ):
            self.fs.rm_file(self._path(rel))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def open_backing(url: str, **storage_options: Any) -> Backing:
    """The backing for a store URL; a plain path or ``file://`` URL is a local folder."""
    if "://" not in url or url.startswith("file://"):
        root = Path(url.removeprefix("file://")).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        return LocalBacking(root)
    return FsspecBacking(url, **storage_options)
