"""`VoltxS3FileSystem`: s3fs with voltx's settings, pipelined large transfers, and retries.

It is an ordinary fsspec filesystem (s3fs's, with three methods replaced), registered with fsspec
as ``voltx-s3``; voltx's store prefers it for ``s3://`` URLs (see `voltx_backends.s3`).

What it changes:

- ``put_file`` of a file larger than one part is a multipart upload of `part_size` parts with
  `max_concurrency` in flight at once. s3fs sends parts in batches and waits for the slowest of
  each batch, and aborts the whole upload when one part fails; here a fixed number of workers
  keep the connections busy, and a part that fails is retried on its own (`retry`). Every part
  (or the one request of a smaller file) carries its CRC32 for the server to check.
- ``get_file`` reads the object as concurrent ranged GETs of `part_size`, each retried on its
  own, written in place into a preallocated file; a download that fails removes its partial file,
  so a reader never finds a file of the right size with holes in it.
- ``pipe_file``/``put_file`` with ``mode="create"`` (manifests) send ``If-None-Match: *`` so
  only the first writer wins, as s3fs does; `S3Settings.conditional_writes` false replaces it
  with a check and then a write, for servers that ignore the header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import s3fs  # type: ignore[import-untyped]
import structlog
from fsspec.callbacks import DEFAULT_CALLBACK

from voltx.errors import did_you_mean
from voltx.secrets import add_secret
from voltx_backends.s3.retry import Backoff, retry_async
from voltx_backends.s3.settings import S3Settings

log = structlog.get_logger(__name__)

_SETTINGS = frozenset(field.name for field in attrs.fields(S3Settings))
# What else a caller may pass: s3fs's own arguments, fsspec's, and aiobotocore's session's.
_PASSTHROUGH = frozenset(inspect.signature(s3fs.S3FileSystem.__init__).parameters) | {
    "use_listings_cache",
    "listings_expiry_time",
    "max_paths",
    "skip_instance_cache",
    "session_vars",
}
# Options whose values are tables: the caller's entries are laid over ours, not instead of them.
_MERGED = ("config_kwargs", "client_kwargs")


def split_options(options: dict[str, Any]) -> tuple[S3Settings, dict[str, Any]]:
    """voltx's settings, and s3fs's keyword arguments carrying them plus the caller's own."""
    ours = {key: value for key, value in options.items() if key in _SETTINGS}
    theirs = {key: value for key, value in options.items() if key not in _SETTINGS}
    unknown = sorted(key for key in theirs if key not in _PASSTHROUGH or key in ("self", "kwargs"))
    if unknown:
        known = sorted(_SETTINGS | _PASSTHROUGH)
        raise ValueError(
            "S3 store settings: "
            + "; ".join(f"{key}: unknown setting{did_you_mean(key, known)}" for key in unknown)
        )
    settings = S3Settings.from_options(ours)
    merged = settings.s3fs_options()
    for key, value in theirs.items():
        if key in _MERGED and isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return settings, merged


_sessions: dict[tuple[int, str | None], Any] = {}
_sessions_lock = threading.Lock()


def shared_session(profile: str | None) -> Any:
    """This process's aiobotocore session for `profile`, made on first use.

    Every store opened shares it, so that a new client reuses the S3 service model botocore
    parsed for the first one instead of parsing it again (a quarter of a second each time).
    Credentials are resolved once per session; botocore refreshes expiring ones itself.
    """
    import aiobotocore.session  # type: ignore[import-untyped]

    key = (os.getpid(), profile)  # a forked child makes its own
    with _sessions_lock:
        if key not in _sessions:
            _sessions[key] = aiobotocore.session.AioSession(profile=profile)
        return _sessions[key]


def read_part(fd: int, length: int, offset: int, checksum: str) -> tuple[bytes, dict[str, str]]:
    """`length` bytes of an open file at `offset`, and the checksum arguments to send them with.

    Run in a thread: reading and CRC32 both release the GIL, so the event loop keeps sending.
    """
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise OSError(f"file shrank while being uploaded: {length} bytes expected at {offset}")
    if checksum != "crc32":
        return data, {}
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    return data, {"ChecksumCRC32": crc}


async def run_bounded(jobs: Iterable[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Run `jobs` with at most `limit` at once; the first failure cancels the rest and is raised.

    A new job starts as soon as one ends (no batches waiting for their slowest member).
    """
    waiting = iter(jobs)
    running: set[asyncio.Future[None]] = set()
    try:
        while True:
            while len(running) < limit and (job := next(waiting, None)) is not None:
                running.add(asyncio.ensure_future(job()))
            if not running:
                return
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
    finally:
        for task in running:
            task.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)


class VoltxS3FileSystem(s3fs.S3FileSystem):  # type: ignore[misc]  # s3fs ships no types
    """s3fs configured from `S3Settings`, with pipelined, retried large transfers."""

    # "s3" first: paths come back as s3:// URLs, and fsspec's [s3] config applies here too.
    protocol = ("s3", "s3a", "voltx-s3")
    # Settings are read from the environment when a store is opened; an instance cached from an
    # earlier open (keyed on the arguments alone) would keep stale ones.
    cachable = False

    def __init__(self, **options: Any) -> None:
        settings, s3fs_options = split_options(options)
        for name in ("secret", "token", "password"):
            value = s3fs_options.get(name)
            if isinstance(value, str):
                add_secret(value)  # given in code: keep it out of every log and record
        if s3fs_options.get("session") is None and not s3fs_options.get("asynchronous"):
            s3fs_options["session"] = shared_session(settings.profile)
        super().__init__(**s3fs_options)
        self.settings = settings
        # s3fs's own retry loop (for response-read errors botocore leaves alone) runs around
        # botocore's attempts; two of its rounds are enough, more would multiply the wait.
        self.retries = 2
        self._backoff = Backoff(
            settings.transfer_attempts, settings.backoff_s, settings.max_backoff_s
        )

    # -- writing ---------------------------------------------------------------------------

    async def _pipe_file(
        self, path: str, data: bytes, *args: Any, mode: str = "overwrite", **kwargs: Any
    ) -> Any:
        mode = await self._checked_create(path, mode)
        return await super()._pipe_file(path, data, *args, mode=mode, **kwargs)

    async def _put_file(
        self,
        lpath: str,
        rpath: str,
        callback: Any = DEFAULT_CALLBACK,
        chunksize: int | None = None,
        max_concurrency: int | None = None,
        mode: str = "overwrite",
        **kwargs: Any,
    ) -> None:
        lpath = os.fspath(lpath)
        if Path(lpath).is_dir():
            await super()._put_file(lpath, rpath, callback=callback, mode=mode, **kwargs)
            return
        mode = await self._checked_create(rpath, mode)
        size = Path(lpath).stat().st_size
        part_size = chunksize or self.settings.effective_part_size(size)
        callback.set_size(size)
        if size <= part_size:
            await self._single_upload(lpath, rpath, size, mode, kwargs)
            callback.relative_update(size)
        else:
            await self._multipart_upload(
                lpath,
                rpath,
                size,
                part_size,
                max_concurrency or self.settings.max_concurrency,
                mode,
                callback,
                kwargs,
            )
        self.invalidate_cache(rpath)

    async def _checked_create(self, path: str, mode: str) -> str:
        """The mode to send: "create" as asked, or a check then "overwrite" without support."""
        if mode != "create" or self.settings.conditional_writes:
            return mode
        # Check-then-write: a writer between the check and the write goes unnoticed (see
        # S3Settings.conditional_writes for why that is tolerable for manifests).
        if await self._exists(path):
            raise FileExistsError(path)
        return "overwrite"

    async def _single_upload(
        self, lpath: str, rpath: str, size: int, mode: str, kwargs: dict[str, Any]
    ) -> None:
        """One PutObject, which botocore retries; retried whole here when it gives up."""
        bucket, key, _ = self.split_path(rpath)
        match = {"IfNoneMatch": "*"} if mode == "create" else {}
        loop = asyncio.get_running_loop()

        async def attempt() -> Any:
            fd = os.open(lpath, os.O_RDONLY)
            try:
                body, checksum = await loop.run_in_executor(
                    None, read_part, fd, size, 0, self.settings.checksum
                )
            finally:
                os.close(fd)
            return await self._call_s3(
                "put_object", Bucket=bucket, Key=key, Body=body, **checksum, **match, **kwargs
            )

        await retry_async(attempt, self._backoff, f"upload of {rpath}")

    async def _multipart_upload(
        self,
        lpath: str,
        rpath: str,
        size: int,
        part_size: int,
        concurrency: int,
        mode: str,
        callback: Any,
        kwargs: dict[str, Any],
    ) -> None:
        bucket, key, _ = self.split_path(rpath)
        where = {"Bucket": bucket, "Key": key}

        declared = {"ChecksumAlgorithm": "CRC32"} if self.settings.checksum == "crc32" else {}

        async def start() -> Any:
            return await self._call_s3("create_multipart_upload", **where, **declared, **kwargs)

        upload_id = (await retry_async(start, self._backoff, f"start of upload {rpath}"))[
            "UploadId"
        ]
        count = -(-size // part_size)
        # What CompleteMultipartUpload must list: each part's number, ETag (and checksum).
        parts: list[dict[str, Any]] = [{} for _ in range(count)]
        loop = asyncio.get_running_loop()
        fd = os.open(lpath, os.O_RDONLY)

        def part_job(index: int) -> Callable[[], Awaitable[None]]:
            offset = index * part_size
            length = min(part_size, size - offset)

            async def attempt() -> dict[str, Any]:
                # Read again on every attempt: a part is held in memory only while it is sent.
                body, checksum = await loop.run_in_executor(
                    None, read_part, fd, length, offset, self.settings.checksum
                )
                number = index + 1
                out = await self._call_s3(
                    "upload_part",
                    **where,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=body,
                    **checksum,
                )
                return {"PartNumber": number, "ETag": out["ETag"], **checksum}

            async def send() -> None:
                parts[index] = await retry_async(
                    attempt, self._backoff, f"part {index + 1}/{count} of {rpath}"
                )
                callback.relative_update(length)

            return send

        try:
            await run_bounded((part_job(i) for i in range(count)), concurrency)
            match = {"IfNoneMatch": "*"} if mode == "create" else {}

            async def complete() -> Any:
                return await self._call_s3(
                    "complete_multipart_upload",
                    **where,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},
                    **match,
                )

            await retry_async(complete, self._backoff, f"completion of upload {rpath}")
        except BaseException:
            # The parts are invisible until completed, but they are stored (and billed): abort.
            try:
                await self._call_s3("abort_multipart_upload", **where, UploadId=upload_id)
            except Exception as exc:
                log.warning(
                    "could not abort a failed multipart upload; a bucket lifecycle rule"
                    " (AbortIncompleteMultipartUpload) removes it later",
                    path=rpath,
                    error=f"{type(exc).__name__}: {exc}",
                )
            raise
        finally:
            os.close(fd)

    # -- reading ---------------------------------------------------------------------------

    async def _get_file(
        self,
        rpath: str,
        lpath: str,
        callback: Any = DEFAULT_CALLBACK,
        version_id: str | None = None,
        chunksize: int | None = None,
        max_concurrency: int | None = None,
        **kwargs: Any,
    ) -> None:
        lpath = os.fspath(lpath)
        if Path(lpath).is_dir():
            return
        bucket, key, path_version = self.split_path(rpath)
        where: dict[str, Any] = {"Bucket": bucket, "Key": key, **self.req_kw}
        if version_id or path_version:
            where["VersionId"] = version_id or path_version

        async def head() -> Any:
            return await self._call_s3("head_object", **where)

        info = await retry_async(head, self._backoff, f"size of {rpath}")
        size = int(info["ContentLength"])
        # Every range must come from the same object: one replaced meanwhile fails with 412
        # instead of being stitched together from two versions.
        if info.get("ETag"):
            where["IfMatch"] = info["ETag"]
        part_size = chunksize or self.settings.part_size
        callback.set_size(size)
        loop = asyncio.get_running_loop()
        fd = os.open(lpath, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

        def range_job(offset: int) -> Callable[[], Awaitable[None]]:
            length = min(part_size, size - offset)

            async def attempt() -> bytes:
                response = await self._call_s3(
                    "get_object", **where, Range=f"bytes={offset}-{offset + length - 1}"
                )
                try:
                    data: bytes = await response["Body"].read()
                finally:
                    response["Body"].close()
                if len(data) != length:
                    raise ConnectionResetError(
                        f"{rpath}: got {len(data)} of {length} bytes at offset {offset}"
                    )
                return data

            async def fetch() -> None:
                data = await retry_async(attempt, self._backoff, f"bytes {offset}+ of {rpath}")
                written = await loop.run_in_executor(None, os.pwrite, fd, data, offset)
                if written != length:
                    raise OSError(f"{lpath}: wrote {written} of {length} bytes at {offset}")
                callback.relative_update(length)

            return fetch

        try:
            os.ftruncate(fd, size)
            await run_bounded(
                (range_job(offset) for offset in range(0, size, part_size)),
                max_concurrency or self.settings.max_concurrency,
            )
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                Path(lpath).unlink()
            raise
        os.close(fd)
