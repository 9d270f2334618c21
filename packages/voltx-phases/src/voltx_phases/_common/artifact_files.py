"""Finding an artifact's file, torch-free: phases and loaders take either the file itself or
the artifact's folder (what `ctx.inputs[name]` and `voltx artifacts get` give)."""

from __future__ import annotations

from pathlib import Path

from voltx.errors import ArtifactFormatError


def locate(path: Path | str, file_name: str) -> Path:
    """`path` itself when it is a file; else `file_name` in the folder, or its one file with the
    same suffix. A ValueError names the path when neither is there."""
    path = Path(path)
    if path.is_dir():
        if (path / file_name).is_file():
            return path / file_name
        suffix = Path(file_name).suffix
        matches = sorted(p for p in path.rglob(f"*{suffix}") if p.is_file())
        if len(matches) == 1:
            return matches[0]
        found = f"{len(matches)} *{suffix} files" if matches else f"no such file, nor a *{suffix}"
        raise ValueError(f"{path}: expected {file_name} (or one *{suffix} file); {found}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    return path


def locate_artifact_file(artifact: str, path: Path | str, file_name: str) -> Path:
    """`locate`, failing with the ArtifactFormatError that names `artifact` and the path."""
    try:
        return locate(path, file_name)
    except ValueError as exc:
        raise ArtifactFormatError(artifact, str(path), str(exc)) from exc
