"""Adding user files as artifacts, vetted by the checks plugins register for that name.

`voltx artifacts add code_encoder weights.safetensors` runs every check registered for
``code_encoder`` (tensor names, shapes, file headers) before anything is written, so a file that
later phases could not load is refused with an explanation instead of failing hours later.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from voltx.errors import ArtifactFormatError, PluginError, SourceFileError, VoltxError
from voltx.hookspecs import ArtifactCheck
from voltx.plugins import registry
from voltx.store import Artifact, ArtifactStore, check_name


def check_artifact(name: str, path: Path) -> None:
    """Run the registered checks for `name` on `path`; ArtifactFormatError on the first failure."""
    for origin, check in registry().artifact_checks.get(name, []):
        function = _load(check, origin)
        try:
            function(path)
        except VoltxError:
            raise
        except (ValueError, KeyError, OSError) as exc:
            raise ArtifactFormatError(name, str(path), str(exc)) from exc


def add_artifact(store: ArtifactStore, name: str, path: Path) -> Artifact:
    """Check, then add, a user file or folder as artifact `name`."""
    check_name(name)
    if not path.exists():
        raise SourceFileError(str(path), "no such file or folder")
    check_artifact(name, path)
    return store.add(name, path)


def _load(check: ArtifactCheck | str, origin: str) -> ArtifactCheck:
    if not isinstance(check, str):
        return check
    module_name, _, attribute = str(check).partition(":")
    try:
        function: ArtifactCheck = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        message = f"artifact check {check!r} of {origin!r} cannot load: {exc}"
        raise PluginError(message, origin) from exc
    return function
