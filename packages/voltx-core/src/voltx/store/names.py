"""Validation of artifact names and of paths inside an artifact, so nothing escapes the store."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from voltx.errors import InvalidArtifactNameError, StoreError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def check_name(name: str) -> str:
    """Return `name` if it is a plain artifact name, else raise InvalidArtifactNameError."""
    if "/" in name or "\\" in name:
        raise InvalidArtifactNameError(name, "names cannot contain '/' or '\\'")
    if ".." in name:
        raise InvalidArtifactNameError(name, "names cannot contain '..'")
    if not _NAME.match(name):
        raise InvalidArtifactNameError(
            name, "use letters, digits, '_', '-' and '.', starting with a letter or digit"
        )
    return name


def is_digest(text: str) -> bool:
    """True for a full lowercase hex sha256."""
    return bool(_DIGEST.match(text))


def check_member_path(path: str) -> str:
    """Return a relative path inside an artifact folder, refusing anything that could escape."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or "\\" in path or any(p in ("..", "") for p in pure.parts):
        raise StoreError(f"unsafe path {path!r} in an artifact")
    if pure.as_posix() != path:
        raise StoreError(f"path {path!r} in an artifact is not normalized")
    return path
