"""Content digests: sha256 (and BLAKE3) of a file, of a folder, and a cache so a big file is
hashed once."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from blake3 import blake3

_CHUNK = 4 * 1024 * 1024
FOLDER_DIGEST_HEADER = b"voltx-folder-v1\n"
# Files modified more recently than this are not cached (see HashCache).
_RACY_NS = 2_000_000_000
# v2 added ctime_ns; a new table keeps an older cache file usable instead of failing on insert.
_TABLE = "hashes_v2"
# BLAKE3 digests, a table of their own so that the sha256 rows above are read as before.
_BLAKE3_TABLE = "blake3_v1"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def blake3_file(path: Path) -> str:
    """Hex BLAKE3 of a file's content, read in chunks (constant memory)."""
    digest = blake3()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_digests(path: Path) -> tuple[str, str]:
    """(sha256, BLAKE3) of a file's content from one read: what a commit records."""
    sha256, fast = hashlib.sha256(), blake3()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            sha256.update(chunk)
            fast.update(chunk)
    return sha256.hexdigest(), fast.hexdigest()


def folder_digest(entries: Iterable[tuple[str, int, str]]) -> str:
    """Digest of a folder from its (relative path, size, sha256) entries, in path order."""
    digest = hashlib.sha256(FOLDER_DIGEST_HEADER)
    for path, size, file_digest in sorted(entries):
        digest.update(f"{path}\t{size}\t{file_digest}\n".encode())
    return digest.hexdigest()


def default_cache_dir() -> Path:
    """Where voltx keeps per-user caches (``$VOLTX_CACHE_DIR`` or ``~/.cache/voltx``)."""
    configured = os.environ.get("VOLTX_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "voltx"


class HashCache:
    """sha256 of local files keyed by (path, size, mtime, ctime, inode), so a rerun does not
    re-read 44 GB.

    SQLite because several workers may hash at once, and it handles concurrent writers for us.
    A file modified within the last `_RACY_NS` is hashed but not cached: on a filesystem whose
    clock ticks coarsely, a second same-size write in the same tick would leave every stat field
    as it was, and the cache would return the old content's digest (git's "racy clean" problem).
    The change time is in the key because tools that restore mtimes (``cp -p``, ``tar x``,
    ``rsync -t``) cannot restore it.
    """

    def __init__(self, location: Path | None = None) -> None:
        self.location = location or default_cache_dir() / "hashes.sqlite3"

    def _connect(self, table: str, column: str) -> sqlite3.Connection:
        self.location.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.location, timeout=30)
        try:
            connection.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (path TEXT PRIMARY KEY, size INTEGER,"
                f" mtime_ns INTEGER, ctime_ns INTEGER, inode INTEGER, {column} TEXT)"
            )
        except sqlite3.Error:
            connection.close()
            raise
        return connection

    def sha256(self, path: Path) -> str:
        """The file's digest, from the cache when its size, times and inode are unchanged."""
        return self._digest(path, _TABLE, "sha256", sha256_file)

    def blake3(self, path: Path) -> str:
        """The file's BLAKE3 digest, cached the same way."""
        return self._digest(path, _BLAKE3_TABLE, "blake3", blake3_file)

    def _digest(self, path: Path, table: str, column: str, compute: Callable[[Path], str]) -> str:
        resolved = path.resolve()
        key = _stat_key(resolved)
        try:
            connection = self._connect(table, column)
        except (sqlite3.Error, OSError):
            return compute(resolved)  # an unwritable cache must not stop the work
        try:
            try:
                row = connection.execute(
                    f"SELECT size, mtime_ns, ctime_ns, inode, {column} FROM {table} WHERE path = ?",
                    (str(resolved),),
                ).fetchone()
            except sqlite3.Error:
                row = None
            if row and tuple(row[:4]) == key:
                return str(row[4])
            digest = compute(resolved)
            settled = time.time_ns() - key[1] > _RACY_NS
            # Cache only what was stable while it was read and cannot be rewritten unnoticed.
            if settled and _stat_key(resolved) == key:
                with contextlib.suppress(sqlite3.Error), connection:
                    connection.execute(
                        f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?, ?, ?, ?)",
                        (str(resolved), *key, digest),
                    )
            return digest
        finally:
            connection.close()


def _stat_key(path: Path) -> tuple[int, int, int, int]:
    stat = path.stat()
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
