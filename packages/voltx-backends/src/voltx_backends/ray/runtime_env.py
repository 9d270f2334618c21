"""The runtime environment that brings voltx to a Ray cluster's nodes: wheels of this machine's.

The nodes need voltx-core, voltx-backends, voltx-phases and every installed plugin that
registers through the ``voltx`` entry-point group, at the versions this machine runs. Each is
built into a wheel from its source folder (where pip installed it from: an editable install or
a local folder), once per content: the wheel's folder is named after a digest of the source
files, so an unchanged package is never built twice.

The wheels are unpacked side by side into one folder (also named by content) that goes to Ray as
the ``working_dir``: Ray uploads it once, unpacks it on each node and puts it first on the
workers' ``PYTHONPATH``, which the job's worker process inherits. The unpacked ``.dist-info``
folders come along, so the nodes find the plugins' ``voltx`` entry points. (Ray's ``py_modules``
also takes ``.whl`` files, but installs them with ``pip install`` and their dependencies, torch
included; the nodes' image is expected to have those.)

A distribution installed from an index rather than a folder has no source here to build:
that one is taken from the nodes' own Python (add it to the ``pip`` setting otherwise).
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import json
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from voltx.errors import BackendError

log = structlog.get_logger(__name__)

VOLTX_DISTRIBUTIONS = ("voltx-core", "voltx-backends", "voltx-phases")
ENTRY_POINT_GROUP = "voltx"
# Folders whose content does not go into a wheel (and must not change its digest).
SKIPPED_PARTS = frozenset(
    {".git", "__pycache__", ".venv", "build", "dist", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
)
BUILD_TIMEOUT_S = 600


def shipped_distributions() -> list[str]:
    """voltx's own distributions that are installed, and every plugin of the voltx group."""
    names = []
    for name in VOLTX_DISTRIBUTIONS:
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        names.append(name)
    for dist in metadata.distributions():
        if any(ep.group == ENTRY_POINT_GROUP for ep in dist.entry_points):
            name = dist.metadata["Name"]
            if name and name not in names:
                names.append(name)
    return names


def source_folder(name: str) -> Path | None:
    """The folder `name` was installed from (PEP 610's direct_url.json), or None."""
    text = metadata.distribution(name).read_text("direct_url.json")
    if not text:
        return None
    try:
        url = json.loads(text).get("url", "")
    except ValueError:
        return None
    if not url.startswith("file://"):
        return None
    folder = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    return folder if (folder / "pyproject.toml").is_file() else None


def content_digest(folder: Path) -> str:
    """A digest of every file's path and bytes under `folder` (build outputs left out)."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if SKIPPED_PARTS.intersection(relative.parts) or not path.is_file():
            continue
        if any(part.endswith(".egg-info") for part in relative.parts):
            continue
        digest.update(str(relative).encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:20]


def build_wheel(name: str, folder: Path, cache: Path) -> Path:
    """The wheel of the source `folder`, built into `cache` unless one of this content is there."""
    target = cache / f"{name}-{content_digest(folder)}"
    built = sorted(target.glob("*.whl"))
    if built:
        return built[0]
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # an interrupted build's leftovers
    partial.mkdir(parents=True)
    # No build isolation and no network: the build backend (hatchling) is this environment's.
    command = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "--no-index", "--wheel-dir", str(partial), str(folder),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    wheels = sorted(partial.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise BackendError(
            f"cannot build a wheel of {name} from {folder} for the Ray nodes: "
            f"{result.stderr.strip()[-500:] or 'pip made no wheel'}; set runtime_env = "
            '"inherit" if the nodes have voltx installed',
            "ray",
        )
    partial.rename(target)
    log.info("wheel built for the Ray nodes", distribution=name, wheel=wheels[0].name)
    return target / wheels[0].name


def voltx_wheels(cache: Path, names: Iterable[str] | None = None) -> list[Path]:
    """Wheels of the installed voltx distributions and plugins that have a source folder."""
    wheels = []
    for name in shipped_distributions() if names is None else names:
        folder = source_folder(name)
        if folder is None:
            log.info("not shipped to the Ray nodes: no source folder", distribution=name)
            continue
        wheels.append(build_wheel(name, folder, cache))
    return wheels


def unpacked_site(wheels: Sequence[Path], cache: Path) -> Path:
    """One folder holding every wheel's files (packages and dist-info), built once per set."""
    digest = hashlib.sha256("\n".join(str(wheel) for wheel in wheels).encode()).hexdigest()[:20]
    site = cache / f"site-{digest}"
    if site.is_dir():
        return site
    partial = site.with_name(site.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(partial)  # our own wheels, just built from our own sources
    partial.mkdir(parents=True, exist_ok=True)
    partial.rename(site)
    return site


def runtime_env_for(site: Path, pip: Sequence[str] = ()) -> dict[str, Any]:
    """Ray's ``runtime_env``: the unpacked wheels as the working dir, and any pip requirements."""
    env: dict[str, Any] = {"working_dir": str(site)}
    if pip:
        env["pip"] = list(pip)
    return env
