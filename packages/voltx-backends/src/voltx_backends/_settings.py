"""Backend settings built from a program's keywords (`SSHBackend(host=...)`, `VastBackend(...)`).

The project file's tables go through voltx's config reader instead, which reports every problem
with its key path; this is the same strictness for keyword callers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from voltx.errors import BackendError, did_you_mean

Settings = TypeVar("Settings")


def settings_from_options(
    cls: type[Settings], options: Mapping[str, Any], backend: str
) -> Settings:
    """`cls(**options)`; an unknown key or a bad value is a BackendError naming `backend`."""
    # Every caller passes an attrs class; a TypeVar cannot say so to mypy.
    known = {field.name for field in attrs.fields(cls)}  # type: ignore[arg-type]
    unknown = [key for key in options if key not in known]
    if unknown:
        raise BackendError(
            f"unknown {backend} setting(s): "
            + ", ".join(f"{key!r}{did_you_mean(key, known)}" for key in sorted(unknown)),
            backend,
        )
    try:
        return cls(**options)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"bad {backend} settings: {exc}", backend) from exc
