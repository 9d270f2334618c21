"""Content digests: sha256 of a file, of a folder, and a cache so a big file is hashed once."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path

_CHUNK = 4 * 1024 * 1024
FOLDER_DIGEST_HEADER = b"voltx-folder-v1\n"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    """sha256 of local files keyed by (path, size, mtime, inode), so a rerun does not re-read 44 GB.

    SQLite because several workers may hash at once, and it handles concurrent writers for us.
    """

    def __init__(self, location: Path | None = None) -> None:
        self.location = location or default_cache_dir() / "hashes.sqlite3"

    def _connect(self) -> sqlite3.Connection:
        self.location.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.location, timeout=30)
        connection.execute(
            "CREATE TABLE IF NOT EXISTS hashes (path TEXT PRIMARY KEY, size INTEGER,"
            " mtime_ns INTEGER, inode INTEGER, sha256 TEXT)"
        )
        return connection

    def sha256(self, path: Path) -> str:
        """The file's digest, from the cache when its size, mtime and inode are unchanged."""
        resolved = path.resolve()
        stat = resolved.stat()
        key = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        try:
            connection = self._connect()
        except sqlite3.Error:
            return sha256_file(resolved)  # an unwritable cache must not stop the work
        try:
            with connection:
                row = connection.execute(
                    "SELECT size, mtime_ns, inode, sha256 FROM hashes WHERE path = ?",
                    (str(resolved),),
                ).fetchone()
                if row and tuple(row[:3]) == key:
                    return str(row[3])
                digest = sha256_file(resolved)
                connection.execute(
                    "INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?)",
                    (str(resolved), *key, digest),
                )
                return digest
        finally:
            connection.close()
